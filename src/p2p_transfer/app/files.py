"""The UI's view of this machine's disk: a folder browser confined to a few roots, and staging.

Rule of the browser (and of every path the API accepts to send or share): a
path must be absolute and, once symlinks are resolved, lie inside one of the
roots: the home folder, the download folder, or the staging folder. A symlink
that points elsewhere is listed (so the user sees it) but cannot be opened or
sent. The UI is only reachable with the key, so this is not the only guard;
it keeps a bug or a stray request from reading the whole disk.

Staging holds files dragged into the page from the desktop: the browser
uploads them here (one folder per batch), through the one file writer, and they
are sent from here, then removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from p2p_transfer.disk import NameTakenError, TargetError, UploadFile, describe_os_error, free_space
from p2p_transfer.errors import LocalFault
from p2p_transfer.limits import APP_MAX_DIR_ENTRIES, APP_STAGING_BATCH_ID_CHARS
from p2p_transfer.protocol import ProtocolError
from p2p_transfer.protocol.paths import sanitize_path
from p2p_transfer.trust.files import PRIVATE_DIR_MODE

STAGING_DIR_NAME = "staging"
_HEX_DIGITS = frozenset("0123456789abcdef")


class PathRefused(LocalFault):
    """A path is outside the roots, or not usable; the message says why."""


class PathMissing(PathRefused):
    """The path does not exist (or vanished)."""


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One row of a folder listing."""

    name: str
    path: str
    kind: str  # "dir", "file", "link" (leads outside the roots, or nowhere) or "other"
    size: int | None
    modified: float | None
    hidden: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FileBrowser:
    """Lists folders and checks paths against the roots (given as a function: they can change)."""

    def __init__(self, roots: Callable[[], list[Path]]) -> None:
        self._roots = roots

    def roots(self) -> list[Path]:
        """The roots that exist, resolved, without duplicates, in order."""
        seen: list[Path] = []
        for root in self._roots():
            try:
                resolved = root.expanduser().resolve(strict=True)
            except OSError:
                continue
            if resolved.is_dir() and resolved not in seen:
                seen.append(resolved)
        return seen

    @property
    def home(self) -> Path:
        """Where the browser starts: the first root."""
        roots = self.roots()
        if not roots:
            raise PathRefused("no folder can be browsed (the home folder is missing)")
        return roots[0]

    def check(self, text: str) -> Path:
        """The resolved path ``text`` names, if it exists inside a root; else PathRefused."""
        if not isinstance(text, str) or not text or "\x00" in text:
            raise PathRefused("give an absolute path")
        path = Path(text).expanduser()
        if not path.is_absolute():
            raise PathRefused(f"not an absolute path: {text}")
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as exc:
            raise PathRefused(f"cannot use {text}: {exc}") from None
        # Containment first, so a refusal never tells whether something outside exists.
        if not self.inside(resolved):
            raise PathRefused(f"{text} is outside the folders the app may use")
        if not resolved.exists():
            raise PathMissing(f"no such file or folder: {text}")
        return resolved

    def inside(self, resolved: Path) -> bool:
        """Whether an already resolved path lies in one of the roots."""
        return any(resolved == root or resolved.is_relative_to(root) for root in self.roots())

    def list(self, text: str | None, show_hidden: bool) -> dict[str, Any]:
        """A folder's entries (folders first, by name), its parent, and the roots."""
        folder = self.home if not text else self.check(text)
        if not folder.is_dir():
            raise PathRefused(f"{folder} is not a folder")
        entries: list[DirEntry] = []
        total = 0
        try:
            with os.scandir(folder) as scan:
                for item in scan:
                    hidden = item.name.startswith(".")
                    if hidden and not show_hidden:
                        continue
                    total += 1
                    if len(entries) < APP_MAX_DIR_ENTRIES:
                        entries.append(self._entry(folder, item, hidden))
        except PermissionError:
            raise PathRefused(f"no permission to read {folder}") from None
        except OSError as exc:
            raise PathRefused(f"cannot read {folder}: {exc.strerror}") from None
        entries.sort(key=lambda e: (e.kind != "dir", e.name.casefold()))
        parent = folder.parent if folder != folder.parent and self.inside(folder.parent) else None
        return {
            "path": str(folder),
            "parent": str(parent) if parent is not None else None,
            "roots": [str(r) for r in self.roots()],
            "entries": [e.to_dict() for e in entries],
            "total": total,
            "truncated": total > len(entries),
        }

    def _entry(self, folder: Path, item: os.DirEntry[str], hidden: bool) -> DirEntry:
        path = folder / item.name
        try:
            info = item.stat(follow_symlinks=True)
        except OSError:
            return DirEntry(item.name, str(path), "link", None, None, hidden)
        if item.is_symlink():
            try:
                target_inside = self.inside(path.resolve(strict=True))
            except (OSError, RuntimeError):
                target_inside = False
            if not target_inside:
                return DirEntry(item.name, str(path), "link", None, info.st_mtime, hidden)
        if stat.S_ISDIR(info.st_mode):
            return DirEntry(item.name, str(path), "dir", None, info.st_mtime, hidden)
        if stat.S_ISREG(info.st_mode):
            return DirEntry(item.name, str(path), "file", info.st_size, info.st_mtime, hidden)
        return DirEntry(item.name, str(path), "other", None, info.st_mtime, hidden)


class StagingError(LocalFault):
    """A staged upload cannot be stored; the message says why."""


class NoSuchBatch(StagingError):
    """The staging batch does not exist (never made, already sent, or removed)."""


class Staging:
    """Batches of files dropped into the page, each in ``<config>/staging/<batch>/``."""

    def __init__(self, config_dir: Path) -> None:
        self.root = config_dir / STAGING_DIR_NAME

    def clear_all(self, keep: Collection[str] = ()) -> None:
        """Remove every batch (left over from an earlier run) but those in ``keep``: the
        dropped files of sends waiting in the outbox."""
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        with contextlib.suppress(FileNotFoundError):
            for batch in self.root.iterdir():
                if batch.name not in keep:
                    shutil.rmtree(batch, ignore_errors=True)

    def create(self) -> str:
        """A new, empty batch; returns its ID."""
        self.root.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        batch = secrets.token_hex(APP_STAGING_BATCH_ID_CHARS // 2)
        (self.root / batch).mkdir(mode=PRIVATE_DIR_MODE)
        return batch

    def folder(self, batch: str) -> Path:
        """The batch's folder; StagingError if there is no such batch."""
        if len(batch) != APP_STAGING_BATCH_ID_CHARS or not set(batch) <= _HEX_DIGITS:
            raise NoSuchBatch("no such staging batch")
        folder = self.root / batch
        if not folder.is_dir():
            raise NoSuchBatch("no such staging batch")
        return folder

    def top_level(self, batch: str) -> list[Path]:
        """What a batch holds at its top: the paths to send."""
        return sorted(self.folder(batch).iterdir())

    def remove(self, batch: str) -> None:
        """Delete a batch and everything in it."""
        with contextlib.suppress(StagingError):
            shutil.rmtree(self.folder(batch), ignore_errors=True)

    async def write(
        self, batch: str, relative: str, size: int, chunks: AsyncIterator[bytes]
    ) -> str:
        """Store exactly ``size`` bytes from ``chunks`` as ``relative`` in the batch;
        returns the path it got.

        Through the one file writer (``disk``), like every file that comes from outside:
        folders walked by handle, never through a symlink; the bytes in a private part,
        named only when all arrived and never over a file, so a second file of the same
        name is refused. Nothing stays when fewer or more bytes arrive. Staged files are
        scratch copies (removed once sent, and at every start): they skip the flush.
        """
        folder = self.folder(batch)
        clean = self._clean(relative)
        free = await asyncio.to_thread(free_space, self.root)
        if free is not None and size > free:
            raise StagingError(f"not enough free space to stage {clean}")
        with _refusals(clean):
            upload = await asyncio.to_thread(UploadFile, folder, clean, None, True)
        step: asyncio.Future[Any] | None = None  # the writer's call running in a thread
        try:
            async for chunk in chunks:
                if upload.written + len(chunk) > size:
                    raise StagingError(f"{clean}: more bytes than announced")
                step = asyncio.ensure_future(asyncio.to_thread(upload.write, chunk))
                with _refusals(clean):
                    await asyncio.shield(step)
            if (written := upload.written) != size:
                raise StagingError(f"{clean}: upload ended early ({written} of {size} bytes)")
            step = asyncio.ensure_future(asyncio.to_thread(upload.finish, False))
            with _refusals(clean):
                return str(await asyncio.shield(step))
        except BaseException:
            await asyncio.shield(_abandon(upload, step))
            raise

    def _clean(self, relative: str) -> str:
        """A dropped file's relative path, sanitized (it stays inside the batch)."""
        try:
            return sanitize_path(relative)
        except ProtocolError as exc:
            raise StagingError(f"bad file name: {exc}") from None


async def _abandon(upload: UploadFile, step: asyncio.Future[Any] | None) -> None:
    """Remove an upload's part once the thread writing it (if any) is done with it."""
    if step is not None:
        await asyncio.wait([step])
    await asyncio.to_thread(upload.discard)


@contextlib.contextmanager
def _refusals(clean: str) -> Iterator[None]:
    """The writer's refusals as StagingError: a name dropped twice, a disk error."""
    try:
        yield
    except NameTakenError:
        raise StagingError(f"{clean} was dropped twice") from None
    except TargetError as exc:
        raise StagingError(f"cannot stage {clean}: {exc}") from None
    except OSError as exc:
        raise StagingError(f"cannot stage {clean}: {describe_os_error(exc)}") from None
