"""What the page offers for download: shared files (with Range) and folders (as a streamed zip)."""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import secrets
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from aiohttp import hdrs, web
from aiohttp.helpers import parse_http_date

from p2p_transfer.events import EventBus, ShareDownloadDoneEvent, ShareDownloadStartedEvent
from p2p_transfer.limits import IO_BUFFER_SIZE, SHARE_DOWNLOAD_ID_BYTES
from p2p_transfer.share.zipstream import SourceChangedError, ZipLayout, collect, stream_zip

_ZIP_TYPE = "application/zip"
_DEFAULT_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class SharedItem:
    """One top-level path offered for download; ``index`` is its place in the URL."""

    index: int
    path: Path
    kind: Literal["file", "folder"]

    @property
    def download_name(self) -> str:
        """The name the browser saves it under (folders get ``.zip``)."""
        name = self.path.name or "share"
        return f"{name}.zip" if self.kind == "folder" else name

    @property
    def href(self) -> str:
        """Link relative to the page (``files/<index>/<name>``)."""
        return f"files/{self.index}/{quote(self.download_name)}"


def shared_items(paths: Sequence[Path]) -> list[SharedItem]:
    """Resolve the host's PATHs once, at start; a missing one is an error now, not later."""
    items = []
    for index, raw in enumerate(paths):
        path = Path(raw).expanduser().resolve(strict=True)
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            items.append(SharedItem(index, path, "folder"))
        elif stat.S_ISREG(mode):
            items.append(SharedItem(index, path, "file"))
        else:
            raise ValueError(f"{raw}: not a regular file or folder")
    return items


def _describe(item: SharedItem) -> dict[str, object]:
    """Listing entry; a folder's size and file count come from a walk (blocking)."""
    entry: dict[str, object] = {
        "name": item.download_name if item.kind == "folder" else item.path.name,
        "kind": item.kind,
        "url": item.href,
    }
    try:
        if item.kind == "file":
            entry["size"] = item.path.stat().st_size
            entry["files"] = 1
        else:
            members = collect(item.path)
            entry["size"] = sum(m.size for m in members)
            entry["files"] = sum(1 for m in members if not m.is_dir)
    except OSError:
        entry["missing"] = True
    return entry


async def describe_items(items: Sequence[SharedItem]) -> list[dict[str, object]]:
    """The page's download list, built in a worker thread (folders may be large)."""
    return await asyncio.to_thread(lambda: [_describe(item) for item in items])


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the exact UTF-8 name (RFC 6266 / 5987)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\%' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _etag(info: os.stat_result) -> str:
    """The strong ETag aiohttp gives a file: its mtime and size."""
    return f'"{info.st_mtime_ns:x}-{info.st_size:x}"'


def range_applies(request: web.BaseRequest, info: os.stat_result) -> bool:
    """Whether a ``Range`` may be served for the file as ``info`` describes it now.

    ``If-Range`` holds the validator of what the browser already has: a Range is
    served only if it still matches (RFC 9110 13.1.5), else the whole file. aiohttp
    reads If-Range only as a date: an ETag there (what browsers send when they have
    one) would count as absent, and a changed file would be resumed with the new
    file's bytes after the old one's.
    """
    validator = request.headers.get(hdrs.IF_RANGE)
    if validator is None:
        return True
    if (date := parse_http_date(validator)) is not None:
        return info.st_mtime <= date.timestamp()  # aiohttp's own rule for the date form
    return validator.strip() == _etag(info)  # strong comparison: a weak tag never matches


class _TrackedFileResponse(web.FileResponse):
    """A FileResponse (Range, ETag, sendfile) that reports when sending ends, and
    serves the whole file for an If-Range that no longer matches."""

    def __init__(self, path: Path, on_done: Callable[[bool, str], None], **kwargs: object) -> None:
        super().__init__(path, **kwargs)  # type: ignore[arg-type]
        self._on_done = on_done

    async def _prepare_open_file(  # type: ignore[override]
        self, request: web.BaseRequest, fobj: object, st: os.stat_result, encoding: str | None
    ) -> object:
        # ``st`` is the open file's own: the same bytes the response is about to send.
        if not range_applies(request, st):
            headers = request.headers.copy()
            for name in (hdrs.RANGE, hdrs.IF_RANGE):
                headers.popall(name, None)
            request = request.clone(headers=headers)
        return await super()._prepare_open_file(request, fobj, st, encoding)  # type: ignore[arg-type]

    async def prepare(self, request: web.BaseRequest) -> object:  # type: ignore[override]
        try:
            writer = await super().prepare(request)
        except (ConnectionError, asyncio.CancelledError):
            self._on_done(False, "the browser stopped the download")
            raise
        ok = self.status < web.HTTPBadRequest.status_code
        self._on_done(ok, "" if ok else f"HTTP {self.status}")
        return writer


class Downloads:
    """Request handlers for the shared items, emitting download events."""

    def __init__(self, items: Sequence[SharedItem], bus: EventBus) -> None:
        self.items = list(items)
        self.bus = bus

    def _item(self, request: web.Request) -> SharedItem:
        try:
            index = int(request.match_info["index"])
            item = self.items[index]
        except (ValueError, IndexError):
            raise web.HTTPNotFound() from None
        if request.match_info["filename"] != item.download_name:
            raise web.HTTPNotFound()
        return item

    def _start(self, item: SharedItem, kind: Literal["file", "zip"], size: int,
               client: str, offset: int) -> Callable[[bool, str], None]:
        download_id = secrets.token_hex(SHARE_DOWNLOAD_ID_BYTES)
        started = time.monotonic()
        self.bus.emit(ShareDownloadStartedEvent(
            download_id, item.download_name, kind, size, client, offset
        ))
        reported = False

        def done(ok: bool, message: str) -> None:
            nonlocal reported
            if not reported:
                reported = True
                self.bus.emit(ShareDownloadDoneEvent(
                    download_id, item.download_name, ok, time.monotonic() - started, message
                ))

        return done

    async def handle(self, request: web.Request, client: str) -> web.StreamResponse:
        """Serve a shared file (Range-capable) or a folder (zip stream)."""
        item = self._item(request)
        if item.kind == "folder":
            return await self._zip(request, item, client)
        try:
            info = await asyncio.to_thread(os.stat, item.path)
        except OSError:
            raise web.HTTPNotFound() from None
        offset = 0
        with contextlib.suppress(ValueError):  # a malformed Range: aiohttp answers 416
            if range_applies(request, info):
                offset = request.http_range.start or 0
        on_done = self._start(item, "file", info.st_size, client, max(offset, 0))
        content_type = mimetypes.guess_type(item.path.name)[0] or _DEFAULT_TYPE
        return _TrackedFileResponse(
            item.path,
            on_done,
            chunk_size=IO_BUFFER_SIZE,
            headers={
                "Content-Disposition": content_disposition(item.download_name),
                "Content-Type": content_type,
            },
        )

    async def _zip(self, request: web.Request, item: SharedItem, client: str) -> web.StreamResponse:
        try:
            members = await asyncio.to_thread(collect, item.path)
        except OSError:
            raise web.HTTPNotFound() from None
        layout = ZipLayout(members)
        response = web.StreamResponse(headers={
            "Content-Type": _ZIP_TYPE,
            "Content-Disposition": content_disposition(item.download_name),
            "Accept-Ranges": "none",
        })
        response.content_length = layout.total_size
        on_done = self._start(item, "zip", layout.total_size, client, 0)
        try:
            await response.prepare(request)
            await stream_zip(layout, response.write)
            await response.write_eof()
        except SourceChangedError as exc:
            on_done(False, str(exc))
            # The length promised cannot be kept: cut the connection so the
            # browser reports a failed download instead of saving a bad zip.
            if request.transport is not None:
                request.transport.abort()
            return response
        except (ConnectionError, asyncio.CancelledError):
            on_done(False, "the browser stopped the download")
            raise
        on_done(True, "")
        return response
