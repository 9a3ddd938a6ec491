"""A received folder's zip: checked whole first, then unpacked through the one file writer.

A magic-wormhole sender zips a folder; the zip is only as honest as its sender.
Before one byte is unpacked, every entry is checked against the offer the user
accepted: no ``..``, no absolute path, no symlink or device, no more files or bytes
than offered, no compression ratio that deflate cannot reach (a "zip bomb"). Then
each file goes through ``TargetFolder`` (``.part``, no clobbering, folders by
handle, never outside the target), its size held to what its entry declared.
Everything here blocks: run it in a worker thread.
"""

from __future__ import annotations

import re
import stat
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from p2p_transfer.disk import TargetFolder
from p2p_transfer.limits import IO_BUFFER_SIZE, WORMHOLE_ZIP_MAX_ENTRIES, WORMHOLE_ZIP_MAX_RATIO
from p2p_transfer.protocol import ProtocolError, sanitize_path
from p2p_transfer.units import format_size
from p2p_transfer.wormhole_classic.messages import FolderOffer

#: Mode of an unpacked file whose entry gives none (before the umask).
DEFAULT_FILE_MODE = 0o666
_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_UNIX = 3  # ZipInfo.create_system of an entry made on Unix: its external_attr has a mode


@dataclass(frozen=True, slots=True)
class PlannedEntry:
    """One zip entry that passed the checks, and where it goes inside the folder."""

    info: zipfile.ZipInfo
    #: Its safe path relative to the received folder.
    path: str
    is_dir: bool


@dataclass(frozen=True, slots=True)
class Unpacked:
    """A file that was unpacked, and the path (relative to the target) it got."""

    path: str
    size: int
    saved_as: str


def check_zip(infos: list[zipfile.ZipInfo], offer: FolderOffer) -> list[PlannedEntry]:
    """Refuse a zip that is not the folder that was offered (see the module's docstring)."""
    if len(infos) > WORMHOLE_ZIP_MAX_ENTRIES:
        raise ProtocolError(f"refused: the zip holds more than {WORMHOLE_ZIP_MAX_ENTRIES} entries")
    planned: list[PlannedEntry] = []
    files = total = 0
    for info in infos:
        kind = _kind(info)
        name = info.filename
        if kind == "link":
            raise ProtocolError(f"refused: the zip holds a symlink ({name[:120]!r})")
        if kind == "other":
            raise ProtocolError(f"refused: the zip holds a device or other special file "
                                f"({name[:120]!r})")
        path = _safe_path(name)
        if kind == "dir":
            planned.append(PlannedEntry(info, path, True))
            continue
        _check_file(info)
        files += 1
        total += info.file_size
        if files > offer.files or total > offer.size:
            raise ProtocolError(
                f"refused: the zip holds more than the {offer.files} files and "
                f"{format_size(offer.size)} that were offered"
            )
        planned.append(PlannedEntry(info, path, False))
    return planned


def unpack(
    archive: zipfile.ZipFile,
    planned: list[PlannedEntry],
    target: TargetFolder,
    top: str,
    done: Callable[[Unpacked], None],
) -> None:
    """Write the checked entries under ``top`` in ``target``; ``done`` is told of each
    file. A file whose data is not what its entry says is removed, and raises."""
    target.ensure_folder(top)
    for entry in planned:
        relative = f"{top}/{entry.path}"
        if entry.is_dir:
            target.ensure_folder(relative)
            continue
        saved = _unpack_file(archive, entry.info, target, relative)
        done(Unpacked(relative, entry.info.file_size, saved))


def open_zip(source: BinaryIO) -> zipfile.ZipFile:
    """The zip, its central directory read (nothing is decompressed): its entries are
    checked and then unpacked from this one reading (a second held ~6 MB per 10,000)."""
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise ProtocolError("refused: the folder did not arrive as a readable zip") from None


def _unpack_file(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: TargetFolder, relative: str
) -> str:
    part = target.open_part(relative, None)
    try:
        written = 0
        with archive.open(info) as data:
            while chunk := data.read(IO_BUFFER_SIZE):
                written += len(chunk)
                if written > info.file_size:
                    raise ProtocolError(f"refused: {relative!r} unpacks to more than it declared")
                part.write(chunk)
        if written != info.file_size:
            raise ProtocolError(f"refused: {relative!r} is shorter than it declared")
        return target.finish(part, _mode(info), _mtime(info))
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError):
        target.discard(part)
        raise ProtocolError(f"refused: {relative!r} is damaged in the zip") from None
    except BaseException:
        target.discard(part)
        raise


def _kind(info: zipfile.ZipInfo) -> str:
    """``file``, ``dir``, ``link`` or ``other``, from the entry's Unix file type if it has one."""
    kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == _UNIX else 0
    if kind == stat.S_IFLNK:
        return "link"
    if info.is_dir() or kind == stat.S_IFDIR:
        return "dir"
    if kind not in (0, stat.S_IFREG):  # 0: permissions only, as many zip writers leave it
        return "other"
    return "file"


def _safe_path(name: str) -> str:
    """The entry's path, refused if it is absolute or climbs with ``..``."""
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ProtocolError(f"refused: the zip holds an absolute path ({name[:120]!r})")
    if ".." in parts:
        raise ProtocolError(f"refused: the zip holds a path with '..' ({name[:120]!r})")
    try:
        return sanitize_path(name)
    except ProtocolError as exc:
        raise ProtocolError(f"refused: the zip holds an unusable path: {exc}") from None


def _check_file(info: zipfile.ZipInfo) -> None:
    if info.flag_bits & 0x1:
        raise ProtocolError(f"refused: {info.filename[:120]!r} is encrypted in the zip")
    if info.compress_type not in _METHODS:
        raise ProtocolError(
            f"refused: {info.filename[:120]!r} uses a compression other than deflate"
        )
    if info.file_size and (
        info.compress_size == 0 or info.file_size > info.compress_size * WORMHOLE_ZIP_MAX_RATIO
    ):
        raise ProtocolError(
            f"refused: {info.filename[:120]!r} claims to unpack {format_size(info.compress_size)} "
            f"into {format_size(info.file_size)}, more than deflate can (a zip bomb)"
        )


def _mode(info: zipfile.ZipInfo) -> int:
    mode = (info.external_attr >> 16) & 0o777 if info.create_system == _UNIX else 0
    return mode or DEFAULT_FILE_MODE


def _mtime(info: zipfile.ZipInfo) -> float | None:
    try:
        return time.mktime((*info.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return None
