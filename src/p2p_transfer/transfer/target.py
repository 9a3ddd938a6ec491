"""The receiver's side of the disk: the target folder, ``.part`` files and finishing.

Every path is sanitized before it gets here and is checked again to resolve
inside the target; no symlink is ever followed, and a finished name never
replaces an existing file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import blake3

from p2p_transfer.disk import write_all
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.limits import HASH_READ_SIZE
from p2p_transfer.protocol import PART_SUFFIX, numbered_name
from p2p_transfer.trust.files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE

#: How many ``name (N).ext`` alternatives are tried before giving up.
MAX_NAME_ALTERNATIVES = 999


class TargetError(P2PTransferError):
    """A received file cannot be placed; the message says why in one line."""


def describe_os_error(exc: OSError) -> str:
    """Short user-facing text for a disk error."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "receiver out of disk space"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "receiver cannot write to the target folder"
    return exc.strerror or str(exc)


@dataclass(slots=True)
class ResumePoint:
    """What the receiver already holds of one file."""

    offset: int
    hasher: blake3.blake3
    complete_file: bool  # the finished file already exists (not just a .part)

    @property
    def digest(self) -> str:
        """BLAKE3 of the bytes held so far."""
        return self.hasher.hexdigest()


class TargetFolder:
    """A folder received files are placed into, and nowhere else."""

    def __init__(self, root: Path, umask: int = 0o022) -> None:
        root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        self.root = root.resolve()
        self.umask = umask
        self._inside = os.path.join(str(self.root), "")  # the root with a trailing separator
        #: Folders made or checked already: a tree of small files costs one
        #: mkdir and lstat per folder, not per file.
        self._folders_ready: set[str] = {""}

    def location_of(self, relative: str) -> str:
        """The absolute path of a sanitized relative path, checked to stay inside; a plain
        string, cheap to hold for every file of an offer.

        The check runs on the normalized path (a prefix check alone is lexical and
        would let ``a/../../x`` through), so it holds even for an unsanitized path.
        """
        root = str(self.root)
        candidate = os.path.normpath(os.path.join(root, *relative.split("/")))
        if candidate != root and not candidate.startswith(self._inside):
            raise TargetError(f"path {relative!r} leaves the target folder")
        return candidate

    def ensure_folder(self, relative: str) -> None:
        """Create a folder (and parents) inside the target, refusing symlinked parts."""
        if relative in self._folders_ready:
            return
        parent, _, part = relative.rpartition("/")
        self.ensure_folder(parent)
        folder = self.location_of(relative)
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
        except OSError as exc:
            raise TargetError(describe_os_error(exc)) from None
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise TargetError(f"{relative!r}: {part!r} exists and is not a folder")
        self._folders_ready.add(relative)

    def _ensure_parent(self, relative: str) -> None:
        """Create the folder a file goes into."""
        self.ensure_folder(relative.rpartition("/")[0])

    def part_path(self, relative: str) -> str:
        """Where the bytes of ``relative`` collect until they are verified."""
        return self.location_of(relative + PART_SUFFIX)

    @staticmethod
    def _no_link_to(folder: str) -> bool:
        """True when no folder from the root down to ``folder`` (absolute) is a symlink."""
        return os.path.realpath(folder) == folder

    def find_resume_point(self, relative: str, size: int) -> ResumePoint | None:
        """Hash what is already here of a file: a ``.part``, or an identical-size final file.

        Never through a symlinked folder: the sender would learn the BLAKE3 of a file
        outside the target (and could confirm a guess of its contents).
        """
        if not self._no_link_to(self.location_of(relative.rpartition("/")[0])):
            return None
        return self._held(relative, size)

    def _held(self, relative: str, size: int) -> ResumePoint | None:
        """``find_resume_point`` once its folder is known to be no link."""
        for path, complete in (
            (self.part_path(relative), False),
            (self.location_of(relative), True),
        ):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode) or info.st_size > size:
                    continue
                if complete and info.st_size != size:
                    continue
                if info.st_size == 0 and not complete:
                    continue
                hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
                position = 0
                while chunk := os.pread(fd, HASH_READ_SIZE, position):
                    hasher.update(chunk)
                    position += len(chunk)
                return ResumePoint(position, hasher, complete)
            finally:
                os.close(fd)
        return None

    def find_resume_points(self, files: Iterable[tuple[str, int]]) -> dict[str, ResumePoint]:
        """``find_resume_point`` for many ``(relative, size)`` files, keyed by path.

        Each folder is listed once, so a fresh target (the usual case) costs a
        failed listing per folder instead of two failed opens per file.
        """
        wanted: dict[str, dict[str, int]] = {}
        for relative, size in files:
            folder, _, name = relative.rpartition("/")
            wanted.setdefault(folder, {})[name] = size
        points: dict[str, ResumePoint] = {}
        for folder, sizes in wanted.items():
            for name in self._present_in(folder, sizes.keys()):
                relative = f"{folder}/{name}" if folder else name
                if (point := self._held(relative, sizes[name])) is not None:
                    points[relative] = point
        return points

    def _present_in(self, folder: str, names: Collection[str]) -> set[str]:
        """Those of ``names`` with a file or a ``.part`` in ``folder`` (none behind a link)."""
        location = self.location_of(folder)
        if not self._no_link_to(location):
            return set()
        present: set[str] = set()
        try:
            with os.scandir(location) as listing:
                for item in listing:
                    if item.name in names:
                        present.add(item.name)
                    if (held := item.name.removesuffix(PART_SUFFIX)) in names:
                        present.add(held)
        except OSError:  # no such folder yet: nothing to resume
            return set()
        return present

    def open_part(self, relative: str, resume: ResumePoint | None) -> PartFile:
        """Open the ``.part`` for writing: appended to when resuming, else created anew."""
        self._ensure_parent(relative)
        path = self.part_path(relative)
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            if resume is not None and not resume.complete_file:
                fd = os.open(path, flags)
                os.lseek(fd, resume.offset, os.SEEK_SET)
                os.ftruncate(fd, resume.offset)
                return PartFile(path, fd, resume.hasher, resume.offset)
            fd = self._create_part(relative, path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise TargetError(f"{relative!r}: refusing to write through a symlink") from None
            if exc.errno == errno.EEXIST:
                name = os.path.basename(path)
                raise TargetError(f"{relative!r}: {name} exists and is not a file") from None
            raise TargetError(describe_os_error(exc)) from None
        return PartFile(path, fd, blake3.blake3(), 0)

    def _create_part(self, relative: str, path: str) -> int:
        """A new, empty part; a stale regular one that did not match is replaced."""
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_CREAT | os.O_EXCL
        try:
            return os.open(path, flags, PRIVATE_FILE_MODE)
        except FileExistsError:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise  # a link or folder by that name is never replaced
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        except FileNotFoundError:  # its folder was removed after it was made
            self._folders_ready.intersection_update({""})
            self._ensure_parent(relative)
        return os.open(path, flags, PRIVATE_FILE_MODE)

    def finish(self, part: PartFile, relative: str, mode: int, mtime: float) -> str:
        """Give a verified part its final name without replacing anything; returns it."""
        final_mode = mode & 0o777 & ~self.umask
        os.fchmod(part.fd, final_mode)
        os.utime(part.fd, (mtime, mtime))
        part.close()
        folder, slash, name = relative.rpartition("/")
        for number in range(MAX_NAME_ALTERNATIVES + 1):
            final = relative if number == 0 else folder + slash + numbered_name(name, number)
            try:
                os.link(part.path, self.location_of(final), follow_symlinks=False)
            except FileExistsError:
                continue
            except OSError as exc:
                raise TargetError(describe_os_error(exc)) from None
            os.unlink(part.path)
            return final
        raise TargetError(f"{relative!r}: too many files with that name")

    def discard(self, part: PartFile) -> None:
        """Delete a part whose bytes failed verification."""
        part.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part.path)


class PartFile:
    """An open ``.part`` file that hashes everything written to it."""

    def __init__(self, path: str, fd: int, hasher: blake3.blake3, offset: int) -> None:
        self.path = path
        self.fd = fd
        self.hasher = hasher
        self.offset = offset
        self._closed = False

    def write(self, data: bytes | memoryview) -> None:
        """Write and hash one buffer (runs in a worker thread)."""
        write_all(self.fd, data)
        self.hasher.update(data)
        self.offset += len(data)

    @property
    def digest(self) -> str:
        """BLAKE3 of everything in the file so far."""
        return self.hasher.hexdigest()

    def close(self) -> None:
        """Close once."""
        if not self._closed:
            self._closed = True
            os.close(self.fd)
