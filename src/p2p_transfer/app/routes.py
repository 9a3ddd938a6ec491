"""The JSON API, in route groups: each a small class that registers its routes.

Every handler is one service call: it reads and checks the request, calls the
part of ``AppService`` that does the work, and answers JSON. Refusals are raised
(``AppError`` and its kinds) and mapped to statuses by the guard. A new concern
adds a group here and to ``route_groups``; the server registers them all.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import segno
from aiohttp import web

from p2p_transfer.app.errors import AppError, NotFoundError
from p2p_transfer.app.events import page_meta
from p2p_transfer.app.files import NoSuchBatch, StagingError
from p2p_transfer.app.guard import json_error
from p2p_transfer.app.prompts import answer_prompt
from p2p_transfer.app.service import AppService
from p2p_transfer.limits import APP_HISTORY_DEFAULT_ROWS, APP_STAGING_DATA_TIMEOUT, IO_BUFFER_SIZE

#: Pixels per QR module in the SVGs.
_QR_SCALE = 6
#: Quiet-zone modules around a QR code (scanners need some).
_QR_BORDER = 2
_PATHS_ERROR = "paths: a list of absolute paths"

Opener = Callable[[Path], Awaitable[bool]]


async def open_folder(folder: Path) -> bool:
    """Show a folder in the system's file manager; False when there is no way to."""
    if sys.platform == "win32":  # pragma: no cover - not tested on this platform
        os.startfile(folder)  # type: ignore[attr-defined]
        return True
    command = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(command) is None:
        return False
    await asyncio.create_subprocess_exec(
        command, str(folder), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    return True


# --- request and response helpers ---------------------------------------------------


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} without a body); anything else is AppError."""
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise AppError("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise AppError("the body must be a JSON object")
    return data


def _paths(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise AppError(_PATHS_ERROR)
    return value


def _texts(body: dict[str, Any], *names: str) -> list[str | None]:
    """Optional text fields of a body, each None or a string."""
    values = [body.get(name) for name in names]
    for name, value in zip(names, values, strict=True):
        if value is not None and not isinstance(value, str):
            raise AppError(f"{name}: text")
    return values


async def _chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body in buffers, each read under the staging data deadline."""
    while True:
        try:
            async with asyncio.timeout(APP_STAGING_DATA_TIMEOUT):
                chunk = await request.content.read(IO_BUFFER_SIZE)
        except TimeoutError:
            raise StagingError(f"no data for {APP_STAGING_DATA_TIMEOUT:.0f} s") from None
        if not chunk:
            return
        yield chunk


def qr_response(text: str) -> web.Response:
    """An SVG QR code (dark on white: scanners want light around dark, also in dark mode)."""
    buffer = io.BytesIO()
    segno.make(text, error="m").save(
        buffer, kind="svg", scale=_QR_SCALE, border=_QR_BORDER, dark="#111111", light="#ffffff",
        xmldecl=False, svgns=True,
    )
    return web.Response(body=buffer.getvalue(), content_type="image/svg+xml")


class RouteGroup:
    """Routes of one concern over the service; ``register`` adds them to the app."""

    def __init__(self, service: AppService) -> None:
        self.service = service

    def register(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError


# --- the groups -------------------------------------------------------------------------


class StateRoutes(RouteGroup):
    """What a tab draws from: the page's meta, the whole state, the settings."""

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/meta", self._meta)
        router.add_get("/api/state", self._state)
        router.add_get("/api/settings", self._get_settings)
        router.add_put("/api/settings", self._put_settings)

    @staticmethod
    async def _meta(request: web.Request) -> web.StreamResponse:
        return web.json_response(page_meta())

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.service.state())

    async def _get_settings(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.service.settings.to_dict())

    async def _put_settings(self, request: web.Request) -> web.StreamResponse:
        settings = await self.service.update_settings(await json_body(request))
        return web.json_response(settings.to_dict())


class DeviceRoutes(RouteGroup):
    """Devices, trust and lock-outs, the network check, this node's ticket."""

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/devices", self._devices)
        router.add_post("/api/doctor", self._doctor)
        router.add_delete("/api/pairings", self._forget_all)
        router.add_delete("/api/pairings/{endpoint_id}", self._forget)
        router.add_post("/api/lockouts/{endpoint_id}/unlock", self._unlock)
        router.add_get("/api/wan", self._wan)
        router.add_get("/api/wan/qr.svg", self._ticket_qr)
        router.add_post("/api/tickets/inspect", self._inspect_ticket)

    async def _devices(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.service.devices.devices())

    async def _doctor(self, request: web.Request) -> web.StreamResponse:
        checks = await self.service.devices.check_network()
        return web.json_response({"checks": [
            {"name": c.check, "status": c.status, "detail": c.detail, "advice": c.advice}
            for c in checks
        ]})

    async def _forget(self, request: web.Request) -> web.StreamResponse:
        removed = self.service.devices.forget(request.match_info["endpoint_id"])
        return web.json_response({"removed": removed})

    async def _forget_all(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"removed": self.service.devices.forget_all()})

    async def _unlock(self, request: web.Request) -> web.StreamResponse:
        self.service.devices.unlock(request.match_info["endpoint_id"])
        return web.json_response({"unlocked": True})

    async def _wan(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.service.devices.wan())

    async def _ticket_qr(self, request: web.Request) -> web.StreamResponse:
        return qr_response(self.service.running_node.transport.ticket)

    async def _inspect_ticket(self, request: web.Request) -> web.StreamResponse:
        ticket = (await json_body(request)).get("ticket")
        if not isinstance(ticket, str) or not ticket.strip():
            raise AppError("ticket: paste a ticket")
        return web.json_response(self.service.devices.inspect_ticket(ticket))


class FileRoutes(RouteGroup):
    """The file browser and staging batches (files dropped into the page)."""

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/files", self._files)
        router.add_post("/api/staging", self._new_batch)
        router.add_get("/api/staging/{batch}", self._get_batch)
        router.add_delete("/api/staging/{batch}", self._drop_batch)
        router.add_put("/api/staging/{batch}/files", self._stage_file)

    async def _files(self, request: web.Request) -> web.StreamResponse:
        path = request.query.get("path") or None
        hidden = request.query.get("hidden", "") in ("1", "true", "yes")
        listing = await asyncio.to_thread(self.service.files.list, path, hidden)
        return web.json_response(listing)

    async def _new_batch(self, request: web.Request) -> web.StreamResponse:
        batch = await self.service.sends.new_staging_batch()
        return web.json_response({"batch": batch}, status=201)

    async def _get_batch(self, request: web.Request) -> web.StreamResponse:
        batch = request.match_info["batch"]
        return web.json_response({"batch": batch, "items": self.service.sends.staged(batch)})

    async def _drop_batch(self, request: web.Request) -> web.StreamResponse:
        await self.service.sends.drop_staging_batch(request.match_info["batch"])
        return web.json_response({"removed": True})

    async def _stage_file(self, request: web.Request) -> web.StreamResponse:
        relative = request.query.get("path", "")
        size = request.content_length
        if size is None:
            raise AppError("send the file with a Content-Length")
        try:
            stored = await self.service.staging.write(
                request.match_info["batch"], relative, size, _chunks(request)
            )
        except NoSuchBatch as exc:
            raise NotFoundError(str(exc)) from None
        except StagingError as exc:
            raise AppError(str(exc)) from None
        return web.json_response({"path": stored, "size": size}, status=201)


class TransferRoutes(RouteGroup):
    """Sends to devices, the transfer cards (cancel, retry), and the open prompts."""

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/send", self._send)
        router.add_get("/api/transfers", self._transfers)
        router.add_post("/api/transfers/{id}/cancel", self._cancel)
        router.add_post("/api/transfers/{id}/retry", self._retry)
        router.add_get("/api/prompts", self._prompts)
        router.add_post("/api/prompts/{id}", self._answer)

    async def _send(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        paths = _paths(body.get("paths", []))
        to, device, batch, text = _texts(body, "to", "device", "staging", "text")
        devices = body.get("devices", [])
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise AppError("devices: a list of device IDs")
        targets: list[tuple[str | None, str | None]] = [(None, d) for d in [device, *devices] if d]
        if to and to.strip():
            targets.append((to, None))
        snapshots = self.service.sends.start_send(targets, paths, batch, text)
        return web.json_response(
            {"transfer": asdict(snapshots[0]), "transfers": [asdict(s) for s in snapshots]},
            status=202,
        )

    async def _transfers(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"transfers": [asdict(s) for s in self.service.board.snapshots()]}
        )

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        snapshot = self.service.cancel(request.match_info["id"])
        return web.json_response({"transfer": asdict(snapshot)})

    async def _retry(self, request: web.Request) -> web.StreamResponse:
        snapshot = self.service.sends.retry(request.match_info["id"])
        return web.json_response({"transfer": asdict(snapshot)}, status=202)

    async def _prompts(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"prompts": [p.event.to_dict() for p in self.service.prompts.pending()]}
        )

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        answer_prompt(self.service.prompts, request.match_info["id"], await json_body(request))
        return web.json_response({"answered": True})


class CodeRoutes(RouteGroup):
    """Send and receive by a short code, and a send's code as a QR code."""

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/api/send-by-code", self._send_by_code)
        router.add_post("/api/receive-by-code", self._receive_by_code)
        router.add_get("/api/transfers/{id}/qr.svg", self._code_qr)

    async def _send_by_code(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        paths = _paths(body.get("paths", []))
        batch, text = _texts(body, "staging", "text")
        snapshot = self.service.sends.start_send_by_code(paths, batch, text)
        return web.json_response({"transfer": asdict(snapshot)}, status=202)

    async def _receive_by_code(self, request: web.Request) -> web.StreamResponse:
        code = (await json_body(request)).get("code")
        if not isinstance(code, str) or not code.strip():
            raise AppError("code: type the code the sending device shows")
        return web.json_response({"code": self.service.receive_by_code(code)}, status=202)

    async def _code_qr(self, request: web.Request) -> web.StreamResponse:
        record = self.service.board.get(request.match_info["id"])
        if record is None or not record.code:
            raise NotFoundError("no code for this transfer (yet)")
        # magic-wormhole's form, which phone apps (Warp) scan, as the CLI's QR code.
        return qr_response(f"wormhole-transfer:{record.code}")


class HistoryRoutes(RouteGroup):
    """Finished transfers, and opening their folders (or the download folder)."""

    def __init__(self, service: AppService, opener: Opener) -> None:
        super().__init__(service)
        self._opener = opener

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/history", self._history)
        router.add_delete("/api/history", self._clear_history)
        router.add_post("/api/history/{id}/open", self._open_history)
        router.add_post("/api/open-downloads", self._open_downloads)

    async def _history(self, request: web.Request) -> web.StreamResponse:
        try:
            limit = int(request.query.get("limit", APP_HISTORY_DEFAULT_ROWS))
        except ValueError:
            raise AppError("limit: a whole number") from None
        entries = await self.service.history.list(limit)
        return web.json_response({"history": [e.to_dict() for e in entries]})

    async def _clear_history(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"removed": await self.service.history.clear()})

    async def _open_history(self, request: web.Request) -> web.StreamResponse:
        entry = await self.service.history_entry(request.match_info["id"])
        if not entry.folder:
            raise NotFoundError("this transfer has no folder to open")
        return await self._open(Path(entry.folder))

    async def _open_downloads(self, request: web.Request) -> web.StreamResponse:
        folder = self.service.settings.download_path
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        return await self._open(folder)

    async def _open(self, folder: Path) -> web.StreamResponse:
        if not folder.is_dir():
            raise NotFoundError(f"{folder} no longer exists")
        if not await self._opener(folder):
            return json_error(501, "no file manager to open folders with on this system")
        return web.json_response({"opened": str(folder)})


class ShareRoutes(RouteGroup):
    """The browser share: start, stop, what it offers, its link as a QR code."""

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/share", self._share)
        router.add_post("/api/share/start", self._share_start)
        router.add_post("/api/share/stop", self._share_stop)
        router.add_put("/api/share/files", self._share_files)
        router.add_get("/api/share/qr.svg", self._share_qr)

    async def _share(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.service.share_state().to_dict())

    async def _share_start(self, request: web.Request) -> web.StreamResponse:
        paths = (await json_body(request)).get("paths")
        state = await self.service.start_share(None if paths is None else _paths(paths))
        return web.json_response(state.to_dict())

    async def _share_files(self, request: web.Request) -> web.StreamResponse:
        paths = _paths((await json_body(request)).get("paths"))
        return web.json_response((await self.service.set_share_files(paths)).to_dict())

    async def _share_stop(self, request: web.Request) -> web.StreamResponse:
        return web.json_response((await self.service.stop_share()).to_dict())

    async def _share_qr(self, request: web.Request) -> web.StreamResponse:
        url = self.service.share_url
        if url is None:
            raise NotFoundError("the share is not running")
        return qr_response(url)


def route_groups(service: AppService, opener: Opener) -> list[RouteGroup]:
    """Every API route group, as the server registers them."""
    return [
        StateRoutes(service), DeviceRoutes(service), FileRoutes(service),
        TransferRoutes(service), CodeRoutes(service), HistoryRoutes(service, opener),
        ShareRoutes(service),
    ]
