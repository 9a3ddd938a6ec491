"""Writing one upload inside the upload folder, and nowhere else.

Every name is one sanitized component opened relative to a descriptor of the
folder (``dir_fd``) with ``O_NOFOLLOW``: no separator, ``..`` or symlink can
lead outside it. Data goes to ``name.part`` (0600, ``O_EXCL``) and becomes
``name`` (or ``name (N)``) only once complete, linked without replacing
anything. These are blocking calls: the server runs them via ``asyncio.to_thread``.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import blake3

from p2p_transfer.disk import write_all
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.limits import SHARE_MAX_NAME_NUMBER
from p2p_transfer.protocol.paths import PART_SUFFIX, numbered_name, sanitize_component

#: Permissions of a file being received: only this user can read it until it is done.
PART_MODE = 0o600
#: Permissions of a finished file before the umask applies.
FILE_MODE = 0o666
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_PART_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY
#: Both separators count: a browser on Windows may send ``C:\\fakepath\\x``.
_SEPARATORS = re.compile(r"[/\\]")


class NameTakenError(P2PTransferError):
    """Every ``name (N)`` up to the limit exists already."""


def upload_name(raw: str) -> str:
    """The safe name for a browser's file name: its last component, sanitized ('' if none)."""
    return sanitize_component(_SEPARATORS.split(raw)[-1])


class PartFile:
    """One upload on disk: a ``.part`` file that becomes a finished file or disappears."""

    def __init__(self, directory: Path, name: str, umask: int | None = None) -> None:
        """Open the folder and create the ``.part`` for the first free ``name (N)``.

        ``umask`` set: the finished file gets the usual ``0o666 & ~umask``;
        until then (and with ``None``) only this user can read it.
        """
        if not name or name != sanitize_component(name) or _SEPARATORS.search(name):
            raise ValueError(f"not a safe file name: {name!r}")
        self.directory = directory
        self.name = name
        self.hasher = blake3.blake3()
        self.written = 0
        self._final_mode = None if umask is None else FILE_MODE & ~umask
        self._dir_fd = os.open(directory, os.O_RDONLY | _O_DIRECTORY)
        self._fd: int | None = None
        self._part: str | None = None
        #: The ``N`` whose ``.part`` this upload holds: its final name is tried first.
        self._number = 0
        try:
            self._create_part()
        except BaseException:
            os.close(self._dir_fd)
            raise

    def _candidates(self, start: int = 0) -> list[str]:
        names = [self.name] + [
            numbered_name(self.name, n) for n in range(1, SHARE_MAX_NAME_NUMBER + 1)
        ]
        return names[start:]

    def _exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def _create_part(self) -> None:
        for number, candidate in enumerate(self._candidates()):
            if self._exists(candidate):
                continue
            part = candidate + PART_SUFFIX
            try:
                self._fd = os.open(part, _PART_FLAGS, PART_MODE, dir_fd=self._dir_fd)
            except FileExistsError:
                continue  # another upload (or an old one) holds this .part
            self._part = part
            self._number = number
            return
        raise NameTakenError(f"no free name for {self.name!r}")

    def write(self, data: bytes) -> None:
        """Append ``data`` and feed it to the hash."""
        assert self._fd is not None, "part file closed"
        write_all(self._fd, data)
        self.hasher.update(data)
        self.written += len(data)

    def finish(self) -> str:
        """Flush, close and give the data its final name; returns that name.

        ``link`` fails instead of replacing an existing file, so a name taken
        meanwhile moves on to the next ``name (N)``. File systems without hard
        links get the name reserved with ``O_EXCL`` and then replaced.
        """
        assert self._fd is not None and self._part is not None, "part file closed"
        if self._final_mode is not None:
            os.fchmod(self._fd, self._final_mode)
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        for candidate in self._candidates(self._number):
            try:
                os.link(
                    self._part, candidate, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd,
                    follow_symlinks=False,
                )
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                if not self._reserve(candidate):
                    continue
                os.replace(self._part, candidate, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            else:
                os.unlink(self._part, dir_fd=self._dir_fd)
            self._part = None
            os.close(self._dir_fd)
            return candidate
        raise NameTakenError(f"no free name for {self.name!r}")

    def _reserve(self, name: str) -> bool:
        try:
            fd = os.open(name, _PART_FLAGS, PART_MODE, dir_fd=self._dir_fd)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def discard(self) -> None:
        """Remove the ``.part``: an upload that did not finish leaves nothing behind."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._part is not None:
            try:
                os.unlink(self._part, dir_fd=self._dir_fd)
            except FileNotFoundError:
                pass
            self._part = None
            os.close(self._dir_fd)
