"""The sender's side of the disk: which files a PATH list means, and reading them.

Reading and hashing happen together, in a worker thread, one buffer at a time:
the hash is ready when the last byte has been read, with no second pass.
"""

from __future__ import annotations

import hmac
import os
import stat
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import blake3

from p2p_transfer.limits import HASH_READ_SIZE
from p2p_transfer.net.streams import LocalFileError
from p2p_transfer.protocol import Entry, Manifest, Resume


class SourceError(LocalFileError):
    """A path to send cannot be read; the message names it."""


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """A manifest entry and where its bytes come from."""

    entry: Entry
    source: str


class Sources(Sequence[SourceEntry]):
    """What a PATH list means, kept by column: the offer's entries as a ``Manifest``
    (~90 bytes an entry) and where each is read from, worked out from its path.

    A tree of 100,000 files held as SourceEntry objects took ~400 bytes a file, most
    of a sender's memory. Within one PATH an entry is read from the PATH plus the
    rest of its relative path, so only where that does not hold is anything stored.
    """

    __slots__ = ("_bases", "_starts", "entries")

    def __init__(self, items: Iterable[SourceEntry] = ()) -> None:
        self.entries = Manifest()
        self._starts: list[int] = []  # the index from which each base applies
        #: (prefix, cut): an entry's source is ``prefix + path[cut:]``.
        self._bases: list[tuple[str, int]] = []
        for item in items:
            self.append(item.entry, item.source)

    def append(self, entry: Entry, source: str) -> None:
        """Keep one entry read from ``source``."""
        self._note_source(entry.path, source)
        self.entries.append(entry)

    def append_file(self, path: str, info: os.stat_result, source: str) -> None:
        """Keep the file at ``path`` (relative) as ``info`` describes it, read from
        ``source``: no Entry made on the way, as a listing may hold a million files."""
        self._note_source(path, source)
        self.entries.add(path, True, info.st_size, stat.S_IMODE(info.st_mode), info.st_mtime)

    def _note_source(self, path: str, source: str) -> None:
        """A new base from the next entry on, where ``source`` is not derived from ``path``."""
        if not self._bases or self._derived(self._bases[-1], path) != source:
            self._starts.append(len(self.entries))
            self._bases.append((source, len(path)))

    def source(self, index: int) -> str:
        """The path entry ``index`` is read from."""
        path = self.entries.path(index)  # IndexError out of range
        return self._derived(self._base_of(index), path)

    def _base_of(self, index: int) -> tuple[str, int]:
        """The source base of entry ``index`` (an index already checked)."""
        if index < 0:
            index += len(self)
        return self._bases[bisect_right(self._starts, index) - 1]

    @staticmethod
    def _derived(base: tuple[str, int], path: str) -> str:
        prefix, cut = base
        return prefix + path[cut:]

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, index: int) -> SourceEntry: ...
    @overload
    def __getitem__(self, index: slice) -> list[SourceEntry]: ...
    def __getitem__(self, index: int | slice) -> SourceEntry | list[SourceEntry]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        entry = self.entries[index]  # IndexError out of range, as any sequence
        return SourceEntry(entry, self._derived(self._base_of(index), entry.path))


def scan_sources(paths: list[Path], follow_symlinks: bool = False) -> Sources:
    """Expand files and folders into manifest entries, folders before their contents.

    Relative paths start at each PATH's own name; symlinks are skipped unless
    ``follow_symlinks`` (then a link loop is cut by tracking visited folders).
    """
    out = Sources()
    top_names: set[str] = set()
    for path in paths:
        try:
            info = os.stat(path) if follow_symlinks else os.lstat(path)
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror}") from None
        name = path.resolve().name if path.name in ("", ".", "..") else path.name
        _check_encodable(name)
        if name in top_names:
            raise SourceError(f"two paths are both named {name!r}; send them separately")
        top_names.add(name)
        if stat.S_ISDIR(info.st_mode):
            _scan_folder(path, name, follow_symlinks, out, visited=set())
        elif stat.S_ISREG(info.st_mode):
            out.append_file(name, info, str(path))
        elif stat.S_ISLNK(info.st_mode):
            raise SourceError(f"{path} is a symlink; use --follow-symlinks to send its target")
        else:
            raise SourceError(f"{path} is not a regular file or folder")
    return out


def _check_encodable(relative: str) -> None:
    """Names that are not valid UTF-8 cannot travel; say which one."""
    try:
        relative.encode()
    except UnicodeEncodeError:
        shown = relative.encode(errors="surrogateescape").decode(errors="replace")
        raise SourceError(f"{shown!r} is not a valid UTF-8 name; rename it to send it") from None


def _scan_folder(
    folder: Path | str,
    relative: str,
    follow_symlinks: bool,
    out: Sources,
    visited: set[tuple[int, int]],
) -> None:
    info = os.stat(folder)
    key = (info.st_dev, info.st_ino)
    if key in visited:
        return
    visited.add(key)
    mode = stat.S_IMODE(info.st_mode)
    out.append(Entry(relative, "dir", 0, mode, info.st_mtime), str(folder))
    try:
        # Children are looked at through the folder's handle: a name, not a whole path,
        # to resolve for each of (maybe) a million files.
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise SourceError(f"cannot list {folder}: {exc.strerror}") from None
    prefix = os.path.join(folder, "")  # joined once, not for each child
    try:
        names = sorted(os.listdir(handle))  # names only: a folder may hold a million
        for name in names:
            child_relative = f"{relative}/{name}"
            _check_encodable(child_relative)
            try:
                child_info = os.stat(name, dir_fd=handle, follow_symlinks=False)
                if stat.S_ISLNK(child_info.st_mode):
                    if not follow_symlinks:
                        continue
                    child_info = os.stat(name, dir_fd=handle)
            except OSError:
                continue  # a dangling link or a file that vanished
            if stat.S_ISREG(child_info.st_mode):
                out.append_file(child_relative, child_info, prefix + name)
            elif stat.S_ISDIR(child_info.st_mode):
                _scan_folder(prefix + name, child_relative, follow_symlinks, out, visited)
    except OSError as exc:
        raise SourceError(f"cannot list {folder}: {exc.strerror}") from None
    finally:
        os.close(handle)


class FileSource:
    """One file open for sending; reads and hashes in the calling (worker) thread."""

    def __init__(self, path: str | Path) -> None:
        self.name = os.path.basename(path)
        self._fd = os.open(path, os.O_RDONLY)
        self.hasher = blake3.blake3()
        self.position = 0

    def hash_prefix(self, length: int) -> str:
        """Hash the first ``length`` bytes (to check a resume point); keeps the state."""
        self.hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        position = 0
        while position < length:
            chunk = os.pread(self._fd, min(length - position, HASH_READ_SIZE), position)
            if not chunk:
                break
            self.hasher.update(chunk)
            position += len(chunk)
        self.position = position
        return self.hasher.hexdigest() if position == length else ""

    def restart(self) -> None:
        """Forget any prefix hashed so far."""
        self.hasher = blake3.blake3()
        self.position = 0

    def fill(self, view: memoryview) -> None:
        """Read the next ``len(view)`` bytes into ``view`` and add them to the hash."""
        size = len(view)
        got = os.preadv(self._fd, [view], self.position)
        while got < size:  # a short read: only the end of the file makes it final
            more = os.preadv(self._fd, [view[got:]], self.position + got)
            if not more:
                raise SourceError(f"{self.name} changed while being sent")
            got += more
        self.hasher.update(view)
        self.position += size

    def close(self) -> None:
        """Release the file descriptor."""
        os.close(self._fd)


@dataclass(frozen=True, slots=True)
class SmallFile:
    """A whole small file as it will be sent: from ``offset``, with its BLAKE3."""

    offset: int
    data: bytes
    digest: str


def read_small_files(
    files: list[tuple[str, int, Resume | None]],
) -> list[SmallFile | SourceError | OSError]:
    """``read_small_file`` for each ``(path, size, resume)``, a failure in its place.

    Meant for one thread hop: a hop costs more than reading a 4 KiB file.
    """
    read: list[SmallFile | SourceError | OSError] = []
    for path, size, resume in files:
        try:
            read.append(read_small_file(path, size, resume))
        except (SourceError, OSError) as exc:
            read.append(exc)
    return read


def read_small_file(path: str | Path, size: int, resume: Resume | None) -> SmallFile:
    """Read, hash and resume-check a file of at most SMALL_FILE_SIZE bytes at once."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, size + 1, 0)
    finally:
        os.close(fd)
    if len(data) != size:
        raise SourceError(f"{os.path.basename(path)} changed while being sent")
    offset = 0
    if resume is not None and 0 <= resume.offset <= size:
        held = blake3.blake3(data[: resume.offset]).hexdigest()
        if hmac.compare_digest(held, resume.blake3):
            offset = resume.offset
    return SmallFile(offset, data[offset:], blake3.blake3(data).hexdigest())
