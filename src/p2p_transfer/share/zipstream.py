"""A folder as a zip, streamed while it is read: constant memory, no temporary file.

Members are stored (not compressed: shared files are mostly photos, videos and
archives already, and a phone waits less for bytes than for CPU). Each CRC is
computed while reading, so each file's header says "sizes follow" and a data
descriptor follows its data. Because every size is known from ``stat`` first,
the exact archive length is known before the first byte: the browser can show
a real progress bar. ZIP64 records are used where a size or offset needs them.
"""

from __future__ import annotations

import asyncio
import os
import stat
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from p2p_transfer.errors import LocalFault
from p2p_transfer.limits import IO_BUFFER_SIZE

#: A size, offset or count at or above these needs a ZIP64 record.
ZIP64_LIMIT = 0xFFFFFFFF
ZIP64_COUNT_LIMIT = 0xFFFF
#: Zip's DOS timestamps start in 1980 and end in 2107.
_DOS_MIN_YEAR, _DOS_MAX_YEAR = 1980, 2107
_VERSION_DEFAULT, _VERSION_ZIP64 = 20, 45
_MADE_BY_UNIX = 3 << 8
_FLAG_DATA_DESCRIPTOR = 0x08
_FLAG_UTF8 = 0x800
_MSDOS_DIRECTORY = 0x10
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_DESCRIPTOR = struct.Struct("<4sIII")
_DESCRIPTOR64 = struct.Struct("<4sIQQ")
_END = struct.Struct("<4sHHHHIIH")
_END64 = struct.Struct("<4sQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<4sIQI")
_EXTRA64_HEADER = struct.Struct("<HH")
_ZIP64_EXTRA_ID = 0x0001


class SourceChangedError(LocalFault):
    """A file shrank or vanished while it was being zipped; the download is cut short."""


@dataclass(frozen=True, slots=True)
class ZipMember:
    """One entry of the archive: a file (with ``path``) or a folder (name ends in ``/``)."""

    arcname: str
    path: Path | None
    size: int
    mtime: float
    mode: int

    @property
    def is_dir(self) -> bool:
        """Folders are kept so that empty ones survive the trip."""
        return self.path is None


def collect(root: Path) -> list[ZipMember]:
    """The members for folder ``root``, named ``root.name/...`` (blocking: run in a thread).

    Symlinks are not followed and special files are skipped, so sharing a folder
    never reveals what a link inside it points to.
    """
    base = root.name or "share"
    st = root.stat()
    members = [ZipMember(base + "/", None, 0, st.st_mtime, st.st_mode)]
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        rel = here.relative_to(root).as_posix()
        prefix = base + "/" if rel == "." else f"{base}/{rel}/"
        for name in sorted(filenames) + [d + "/" for d in dirnames]:
            path = here / name.rstrip("/")
            try:
                st = path.lstat()
            except OSError:
                continue
            if name.endswith("/"):
                if stat.S_ISDIR(st.st_mode):
                    members.append(ZipMember(prefix + name, None, 0, st.st_mtime, st.st_mode))
            elif stat.S_ISREG(st.st_mode) and os.access(path, os.R_OK):
                members.append(ZipMember(prefix + name, path, st.st_size, st.st_mtime, st.st_mode))
    return members


def _dos_datetime(mtime: float) -> tuple[int, int]:
    t = time.localtime(mtime)
    year = min(max(t.tm_year, _DOS_MIN_YEAR), _DOS_MAX_YEAR)
    dos_date = (year - _DOS_MIN_YEAR) << 9 | t.tm_mon << 5 | t.tm_mday
    dos_time = t.tm_hour << 11 | t.tm_min << 5 | t.tm_sec // 2
    return dos_time, dos_date


@dataclass(frozen=True, slots=True)
class _Placed:
    member: ZipMember
    name: bytes
    offset: int
    zip64: bool


class ZipLayout:
    """Where every member goes: gives the exact length, then the bytes in order."""

    def __init__(self, members: list[ZipMember], *, force_zip64: bool = False) -> None:
        self.force_zip64 = force_zip64
        self.placed: list[_Placed] = []
        offset = 0
        for member in members:
            name = member.arcname.encode("utf-8", "replace")
            zip64 = force_zip64 or member.size >= ZIP64_LIMIT
            placed = _Placed(member, name, offset, zip64)
            self.placed.append(placed)
            offset += self._local_size(placed) + member.size + self._descriptor_size(placed)
        self.central_offset = offset
        self.central_size = sum(self._central_size(p) for p in self.placed)
        self.zip64_end = (
            force_zip64
            or len(self.placed) >= ZIP64_COUNT_LIMIT
            or self.central_offset >= ZIP64_LIMIT
            or self.central_size >= ZIP64_LIMIT
        )
        end = _END.size + (_END64.size + _LOCATOR64.size if self.zip64_end else 0)
        #: Exact length of the archive in bytes.
        self.total_size = self.central_offset + self.central_size + end

    @staticmethod
    def _local_size(p: _Placed) -> int:
        extra = _EXTRA64_HEADER.size + 16 if p.zip64 else 0
        return _LOCAL.size + len(p.name) + extra

    @staticmethod
    def _descriptor_size(p: _Placed) -> int:
        if p.member.is_dir:
            return 0
        return _DESCRIPTOR64.size if p.zip64 else _DESCRIPTOR.size

    def _central_extra(self, p: _Placed) -> list[int]:
        values = []
        if p.zip64:
            values += [p.member.size, p.member.size]
        if self.force_zip64 or p.offset >= ZIP64_LIMIT:
            values.append(p.offset)
        return values

    def _central_size(self, p: _Placed) -> int:
        extra = self._central_extra(p)
        return _CENTRAL.size + len(p.name) + (_EXTRA64_HEADER.size + 8 * len(extra) if extra else 0)

    def local_header(self, p: _Placed) -> bytes:
        """The header in front of a member's data (sizes and CRC follow the data)."""
        dos_time, dos_date = _dos_datetime(p.member.mtime)
        flags = _FLAG_UTF8 | (0 if p.member.is_dir else _FLAG_DATA_DESCRIPTOR)
        extra = b""
        size32 = 0
        if p.zip64:
            extra = _EXTRA64_HEADER.pack(_ZIP64_EXTRA_ID, 16) + struct.pack("<QQ", 0, 0)
            size32 = ZIP64_LIMIT
        version = _VERSION_ZIP64 if p.zip64 else _VERSION_DEFAULT
        head = _LOCAL.pack(
            b"PK\x03\x04", version, flags, 0, dos_time, dos_date, 0, size32, size32,
            len(p.name), len(extra),
        )
        return head + p.name + extra

    @staticmethod
    def descriptor(p: _Placed, crc: int) -> bytes:
        """The CRC and sizes written after a member's data."""
        if p.member.is_dir:
            return b""
        if p.zip64:
            return _DESCRIPTOR64.pack(b"PK\x07\x08", crc, p.member.size, p.member.size)
        return _DESCRIPTOR.pack(b"PK\x07\x08", crc, p.member.size, p.member.size)

    def central_directory(self, crcs: list[int]) -> Iterator[bytes]:
        """The central directory and end records, once every CRC is known."""
        for p, crc in zip(self.placed, crcs, strict=True):
            dos_time, dos_date = _dos_datetime(p.member.mtime)
            values = self._central_extra(p)
            extra = b""
            if values:
                extra = _EXTRA64_HEADER.pack(_ZIP64_EXTRA_ID, 8 * len(values))
                extra += struct.pack(f"<{len(values)}Q", *values)
            size32 = ZIP64_LIMIT if p.zip64 else p.member.size
            offset32 = ZIP64_LIMIT if (self.force_zip64 or p.offset >= ZIP64_LIMIT) else p.offset
            if p.member.is_dir:
                flags = _FLAG_UTF8
                attrs = (stat.S_IFDIR | (p.member.mode & 0o7777)) << 16 | _MSDOS_DIRECTORY
            else:
                flags = _FLAG_UTF8 | _FLAG_DATA_DESCRIPTOR
                attrs = (stat.S_IFREG | (p.member.mode & 0o7777)) << 16
            version = _VERSION_ZIP64 if p.zip64 else _VERSION_DEFAULT
            yield _CENTRAL.pack(
                b"PK\x01\x02", _MADE_BY_UNIX | _VERSION_ZIP64, version, flags, 0,
                dos_time, dos_date, crc, size32, size32, len(p.name), len(extra), 0, 0, 0,
                attrs, offset32,
            ) + p.name + extra
        count = len(self.placed)
        if self.zip64_end:
            end64_offset = self.central_offset + self.central_size
            yield _END64.pack(
                b"PK\x06\x06", _END64.size - 12, _MADE_BY_UNIX | _VERSION_ZIP64, _VERSION_ZIP64,
                0, 0, count, count, self.central_size, self.central_offset,
            )
            yield _LOCATOR64.pack(b"PK\x06\x07", 0, end64_offset, 1)
            yield _END.pack(
                b"PK\x05\x06", 0, 0, min(count, ZIP64_COUNT_LIMIT), min(count, ZIP64_COUNT_LIMIT),
                ZIP64_LIMIT, ZIP64_LIMIT, 0,
            )
        else:
            yield _END.pack(
                b"PK\x05\x06", 0, 0, count, count, self.central_size, self.central_offset, 0
            )


class _Reader:
    """Reads one member's file in chunks, updating its CRC in the same (worker) thread."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_BINARY)
        self.crc = 0

    def read(self, size: int) -> bytes:
        data = os.read(self.fd, size)
        self.crc = zlib.crc32(data, self.crc)
        return data

    def close(self) -> None:
        os.close(self.fd)


async def stream_zip(
    layout: ZipLayout,
    write: Callable[[bytes], Awaitable[None]],
    *,
    chunk_size: int = IO_BUFFER_SIZE,
) -> int:
    """Write the whole archive through ``write``; file reads run in worker threads.

    Returns the bytes written, which always equal ``layout.total_size``; a file
    that shrank or vanished raises ``SourceChangedError`` instead.
    """
    written = 0
    crcs: list[int] = []
    for p in layout.placed:
        header = layout.local_header(p)
        await write(header)
        written += len(header)
        crc = 0
        if p.member.path is not None:
            try:
                reader = await asyncio.to_thread(_Reader, p.member.path)
            except OSError as exc:
                raise SourceChangedError(f"{p.member.arcname}: {exc.strerror}") from exc
            try:
                remaining = p.member.size
                while remaining:
                    data = await asyncio.to_thread(reader.read, min(chunk_size, remaining))
                    if not data:
                        raise SourceChangedError(f"{p.member.arcname} shrank while being sent")
                    await write(data)
                    remaining -= len(data)
                    written += len(data)
                crc = reader.crc
            finally:
                reader.close()
        crcs.append(crc)
        tail = layout.descriptor(p, crc)
        if tail:
            await write(tail)
            written += len(tail)
    for record in layout.central_directory(crcs):
        await write(record)
        written += len(record)
    assert written == layout.total_size, "zip layout and stream disagree"
    return written
