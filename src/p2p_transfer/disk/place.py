"""Giving a finished file its name without ever replacing one that is there.

Three ways, tried in this order; the first the file system supports is kept for
the rest of the target's files:

1. ``link`` the part to the name, then remove the part: ``link`` fails with
   EEXIST rather than replace anything (every Linux file system with hard links).
2. ``renameat2(RENAME_NOREPLACE)``: atomic and no-clobber, for file systems
   without hard links that have the flag.
3. An exclusive placeholder, then ``rename`` over it (exFAT/FAT through FUSE,
   some network shares: no hard links, and ``renameat2`` answers EINVAL). The
   name is first taken with ``O_CREAT | O_EXCL`` (which never replaces), so only
   our own empty placeholder is ever renamed over, after checking it is still
   the file we created. What remains is a window of microseconds between that
   check and the ``rename``, in which another local program with write access to
   the folder could delete our placeholder and put a file in its place, which
   the rename would then replace. Such a program can delete that folder's files
   anyway, and no data of ours reaches a place it could not already write, so
   this is safe enough for a folder that receives files.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from enum import Enum
from functools import partial

from p2p_transfer.disk.errors import name_taken
from p2p_transfer.disk.names import DiskNames
from p2p_transfer.disk.syscalls import rename_noreplace
from p2p_transfer.limits import MAX_NAME_ALTERNATIVES
from p2p_transfer.protocol.paths import numbered_name

_PLACEHOLDER_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PLACEHOLDER_MODE = 0o600


class Way(Enum):
    """How this file system lets a file take a name without replacing another."""

    LINK = "link"
    RENAME_NOREPLACE = "renameat2"
    PLACEHOLDER = "placeholder"


#: The errors with which a file system says it does not support a way.
_UNSUPPORTED = {
    Way.LINK: frozenset(
        {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS}
    ),
    Way.RENAME_NOREPLACE: frozenset(
        {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}
    ),
    Way.PLACEHOLDER: frozenset(),
}
_NEXT = {Way.LINK: Way.RENAME_NOREPLACE, Way.RENAME_NOREPLACE: Way.PLACEHOLDER}


def identity(info: os.stat_result) -> tuple[int, int]:
    """Which file a stat result describes."""
    return info.st_dev, info.st_ino


class NoClobber:
    """Names finished parts in one target; remembers which ``Way`` its file system takes."""

    def __init__(self, names: DiskNames) -> None:
        self._names = names
        self.way = Way.LINK

    def place(
        self, folder_fd: int, part: str, name: str, first_number: int = 0, numbered: bool = True
    ) -> str:
        """Give ``part`` the first free name of ``name``, ``name (1)``, …; returns the
        name it got (as the file system spells it). NameTakenError if none is free.
        Not ``numbered``: only the ``first_number``-th name, or NameTakenError."""
        last = MAX_NAME_ALTERNATIVES if numbered else first_number
        return _first_free(name, first_number, partial(self._place_as, folder_fd, part), last)

    def link_unnamed(self, folder_fd: int, fd: int, name: str) -> str:
        """Give an unnamed file (``O_TMPFILE``, open as ``fd``) the first free name of
        ``name``, ``name (1)``, …: ``linkat`` fails with EEXIST rather than replace."""
        source = f"/proc/self/fd/{fd}"

        def link(candidate: str) -> str:
            _, used = self._names.attempt(
                candidate, lambda tried: os.link(source, tried, dst_dir_fd=folder_fd)
            )
            return used

        return _first_free(name, 0, link)

    def _place_as(self, folder_fd: int, part: str, name: str) -> str:
        """One name: FileExistsError if taken; falls back to the next way if unsupported."""
        while True:
            way = self.way
            try:
                _, used = self._names.attempt(name, partial(_MOVES[way], folder_fd, part))
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED[way]:
                    raise
                self.way = _NEXT[way]
                continue
            return used


def _first_free(
    name: str, first_number: int, take: Callable[[str], str], last: int = MAX_NAME_ALTERNATIVES
) -> str:
    """``take`` the first of ``name``, ``name (1)``, … up to ``name (last)`` that is free
    (``take`` raises FileExistsError for a taken one); NameTakenError if none is."""
    for number in range(first_number, last + 1):
        try:
            return take(name if number == 0 else numbered_name(name, number))
        except FileExistsError:
            continue
    raise name_taken(name, several=last > first_number)



def _link(folder_fd: int, part: str, name: str) -> None:
    os.link(part, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(part, dir_fd=folder_fd)


def _rename_noreplace(folder_fd: int, part: str, name: str) -> None:
    rename_noreplace(folder_fd, part, name)


def _over_placeholder(folder_fd: int, part: str, name: str) -> None:
    """Take ``name`` with an empty file of our own, then rename the part over it."""
    held = os.open(name, _PLACEHOLDER_FLAGS, _PLACEHOLDER_MODE, dir_fd=folder_fd)
    try:
        ours = identity(os.fstat(held))
    finally:
        os.close(held)

    def still_ours() -> bool:
        try:
            return identity(os.stat(name, dir_fd=folder_fd, follow_symlinks=False)) == ours
        except FileNotFoundError:
            return False

    if not still_ours():
        raise FileExistsError(errno.EEXIST, "the name was taken meanwhile", name)
    try:
        os.rename(part, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except OSError:
        if still_ours():
            os.unlink(name, dir_fd=folder_fd)
        raise


_MOVES: dict[Way, Callable[[int, str, str], None]] = {
    Way.LINK: _link,
    Way.RENAME_NOREPLACE: _rename_noreplace,
    Way.PLACEHOLDER: _over_placeholder,
}
