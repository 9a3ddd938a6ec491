"""The one writer of received files: ``.part`` files in a target folder, and nowhere else.

Bytes collect in ``NAME.part`` (0600) and take their name only when complete
(verified, for peer transfers), never replacing a file. A small file that arrived
whole and verified is written as an unnamed file (``O_TMPFILE``) and linked under
its name in one step where the file system allows: no part, no rename, and a
crash leaves nothing behind. Every file is opened
relative to a handle of its folder (see ``folders``) with ``O_NOFOLLOW``, new
parts with ``O_EXCL``; a part is resumed only if it is a plain file with one
link, the very file that was hashed for the offer. Peer transfers, browser
uploads, the app's dropped files and (later) LocalSend all write through this
module. Every call blocks: sessions run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import blake3

from p2p_transfer.disk.durability import PendingSync
from p2p_transfer.disk.errors import TargetError, describe_os_error, name_taken
from p2p_transfer.disk.folders import Folder, FolderHandles
from p2p_transfer.disk.names import DiskNames
from p2p_transfer.disk.place import NoClobber, identity
from p2p_transfer.disk.syscalls import flush_data, process_umask, start_writeback, write_all
from p2p_transfer.limits import (
    HASH_READ_SIZE,
    MAX_NAME_ALTERNATIVES,
    PART_RELEASE_WAIT,
    SYNC_EACH_FILE_FROM,
    WRITEBACK_STEP,
)
from p2p_transfer.protocol.paths import (
    PART_SUFFIX,
    numbered_name,
    portable_name,
    sanitize_component,
)

#: Permissions of a file being received: only this user can read it until it is done.
PART_MODE = 0o600
#: Permissions of a target folder the writer creates.
TARGET_MODE = 0o700
_CREATE_PART = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: O_NONBLOCK: a FIFO put in a part's place fails at once instead of blocking a thread.
_REOPEN_PART = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_READ_HELD = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_UNNAMED = os.O_WRONLY | os.O_CLOEXEC | getattr(os, "O_TMPFILE", 0)
#: How file systems (and kernels) say they have no unnamed files; then parts are used.
_NO_UNNAMED = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL, errno.ENOSYS}
)
#: How file systems without Unix permissions or times (FAT, some shares) refuse them.
_NO_METADATA = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
#: Whether a relative path with no empty, "." or ".." part joins the root as it is (the
#: usual, already sanitized one: an offer's 100,000 paths take no normpath each).
_PLAIN_RELATIVE = os.sep == "/" and os.altsep is None
#: Last components that are no file's name: a path ending so is checked in full.
_NOT_PLAIN_NAMES = frozenset({"", ".", ".."})

Result = TypeVar("Result")


class _OpenParts:
    """Parts that a writer of this process holds open (by file identity).

    Another writer never replaces, hashes or appends to one: two offers naming
    files that meet on one name (``A`` and ``a`` on a case-blind file system,
    ``a?b`` and ``a_b`` where ``?`` is refused), or a browser upload and a peer
    transfer into one folder, cannot write into each other's part. A superseded
    session may still be letting go of its parts when its successor looks for
    them: ``wait_released`` gives it ``PART_RELEASE_WAIT`` to do so.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held: set[tuple[int, int]] = set()

    def add(self, key: tuple[int, int]) -> bool:
        """Register a part (waiting a little for a writer that holds it); False if held."""
        with self._changed:
            if not self._changed.wait_for(lambda: key not in self._held, PART_RELEASE_WAIT):
                return False
            self._held.add(key)
            return True

    def discard(self, key: tuple[int, int]) -> None:
        with self._changed:
            self._held.discard(key)
            self._changed.notify_all()

    def released(self, key: tuple[int, int]) -> bool:
        """True once no writer holds ``key`` (waiting up to ``PART_RELEASE_WAIT``)."""
        with self._changed:
            return self._changed.wait_for(lambda: key not in self._held, PART_RELEASE_WAIT)


_OPEN_PARTS = _OpenParts()


@dataclass(slots=True)
class ResumePoint:
    """What the receiver already holds of one file."""

    offset: int
    hasher: blake3.blake3
    complete_file: bool  # the finished file already exists (not just a .part)
    #: Where it is, relative to the target, as the disk spells it.
    disk_path: str = ""
    #: Which file was hashed: only that very file is resumed.
    identity: tuple[int, int] = (0, 0)

    @property
    def digest(self) -> str:
        """BLAKE3 of the bytes held so far."""
        return self.hasher.hexdigest()


class WholeFile(NamedTuple):
    """A complete, verified small file to store in one go (``store_wholes``)."""

    relative: str
    data: bytes
    mode: int
    mtime: float | None


class PartFile:
    """An open ``.part`` file that hashes everything written to it."""

    def __init__(
        self,
        handles: FolderHandles,
        folder: Folder,
        name: str,
        part_name: str,
        fd: int,
        hasher: blake3.blake3,
        offset: int,
        first_number: int = 0,
        numbered: bool = True,
    ) -> None:
        self.folder = folder  # held (kept open) until the part is closed
        self.name = name  # the name wanted for the finished file
        self.part_name = part_name  # as it is on disk, in ``folder``
        self.fd = fd
        self.hasher = hasher
        self.offset = offset
        #: The ``N`` of ``name (N)`` tried first when it is finished...
        self.first_number = first_number
        #: ...and whether others are tried after it (else it takes that name or none).
        self.numbered = numbered
        self.identity = identity(os.fstat(fd))
        self._handles = handles
        self._written_back = offset
        self.closed = False

    @property
    def path(self) -> str:
        """The part's path relative to the target, for messages (files are never opened by it)."""
        return self.folder.child_path(self.part_name)

    @property
    def digest(self) -> str:
        """BLAKE3 of everything in the file so far."""
        return self.hasher.hexdigest()

    def write(self, data: bytes | memoryview) -> None:
        """Write and hash one buffer (runs in a worker thread)."""
        write_all(self.fd, data)
        self.hasher.update(data)
        self.offset += len(data)
        if self.offset - self._written_back >= WRITEBACK_STEP:
            start_writeback(self.fd, self._written_back, self.offset - self._written_back)
            self._written_back = self.offset

    def still_named(self) -> bool:
        """True while the part's name in its folder is still this very file."""
        try:
            info = os.stat(self.part_name, dir_fd=self.folder.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return identity(info) == self.identity

    def close(self) -> None:
        """Close once; the part stays on disk (for a resume)."""
        if not self.closed:
            self.closed = True
            os.close(self.fd)
            _OPEN_PARTS.discard(self.identity)
            self._handles.release(self.folder)


class TargetFolder:
    """A folder received files are placed into, and nowhere else.

    ``umask`` None: finished files keep the part's 0600 (browser uploads may ask
    for that); else they get the mode they are given, less the umask.
    """

    def __init__(self, root: Path, umask: int | None = 0o022) -> None:
        root.mkdir(parents=True, exist_ok=True, mode=TARGET_MODE)
        self.root = root.resolve()
        self.umask = umask
        self._inside = os.path.join(str(self.root), "")  # the root with a trailing separator
        self._names = DiskNames()
        self._folders = FolderHandles(str(self.root), self._names)
        self._no_clobber = NoClobber(self._names)
        self._pending = PendingSync(self._folders)
        #: Whether this file system makes unnamed files that can be linked in (learned).
        self._unnamed_files = bool(getattr(os, "O_TMPFILE", 0)) and os.path.isdir("/proc/self/fd")
        #: What the process umask takes from a create's mode (all bits when unknown: then
        #: every mode is set explicitly).
        self._process_umask = process_umask()
        self._close = weakref.finalize(self, _close_handles, self._pending, self._folders)

    def close(self) -> None:
        """Close the folder handles (those in use by open parts once they close), also
        when the target is dropped; what ``sync`` did not flush yet stays unflushed."""
        self._close()

    # --- paths and folders ----------------------------------------------------------

    def location_of(self, relative: str) -> str:
        """The absolute path of a relative path, checked to stay inside: a key (for the
        claims on files in flight) and text for messages; nothing is opened by it.

        The check runs on the normalized path (a prefix check alone is lexical and
        would let ``a/../../x`` through), so it holds even for an unsanitized path.
        """
        if _PLAIN_RELATIVE and relative and "//" not in (slashed := "/" + relative) and (
            "/." not in slashed and not relative.endswith("/")
        ):
            return self._inside + relative  # no empty, "." or ".." part: already normal
        root = str(self.root)
        candidate = os.path.normpath(os.path.join(root, *relative.split("/")))
        if candidate != root and not candidate.startswith(self._inside):
            raise TargetError(f"path {relative!r} leaves the target folder")
        return candidate

    def ensure_folder(self, relative: str) -> None:
        """Create a folder (and parents) inside the target, refusing symlinked parts."""
        _, folder = self._holding(relative, lambda folder: None)
        self._folders.release(folder)

    def is_folder(self, relative: str) -> bool:
        """Whether the folder ``relative`` exists already (walked by handle, never
        through a symlink); creates nothing."""
        try:
            folder = self._folders.hold(relative, create=False)
        except (OSError, TargetError):
            return False
        self._folders.release(folder)
        return True

    def _holding(
        self, relative: str, operation: Callable[[Folder], Result]
    ) -> tuple[Result, Folder]:
        """``operation`` in folder ``relative`` (made if missing); returns its result and
        the folder, still held for the caller to release. A folder found removed
        (a create in it finds nothing) is walked to and made once more."""
        self.location_of(relative)
        for last_try in (False, True):
            folder = None
            try:
                folder = self._folders.hold(relative, create=True)
                return operation(folder), folder
            except FileNotFoundError:
                if folder is not None:
                    self._folders.release(folder)
                if last_try:
                    raise
                self._folders.forget(relative)
            except BaseException:
                if folder is not None:
                    self._folders.release(folder)
                raise
        raise AssertionError("unreachable")

    # --- resuming ---------------------------------------------------------------------

    def find_resume_point(self, relative: str, size: int) -> ResumePoint | None:
        """What is already here of one file (see ``find_resume_points``)."""
        return self.find_resume_points([(relative, size)]).get(relative)

    def find_resume_points(self, files: Iterable[tuple[str, int]]) -> dict[str, ResumePoint]:
        """Hash what is already here of ``(relative, size)`` files, keyed by path: a
        ``.part``, or a finished file of the same size; also under the portable name
        a file system that refused the name gave it.

        Each folder is listed once, so a fresh target (the usual case) costs a
        failed open per folder. Never through a symlink: the sender would learn the
        BLAKE3 of a file outside the target (and could confirm a guess of it).
        """
        wanted: dict[str, dict[str, int]] = {}
        for relative, size in files:
            folder, _, name = relative.rpartition("/")
            wanted.setdefault(folder, {})[name] = size
        points: dict[str, ResumePoint] = {}
        for folder_path, sizes in wanted.items():
            try:
                folder = self._folders.hold(folder_path, create=False)
            except (OSError, TargetError):
                continue  # no such folder (yet), or not a folder: nothing to resume
            try:
                present = _listing(folder)
                for name, size in sizes.items():
                    if (point := _held(folder, name, size, present)) is not None:
                        points[f"{folder_path}/{name}" if folder_path else name] = point
            finally:
                self._folders.release(folder)
        return points

    # --- writing ----------------------------------------------------------------------

    def open_part(self, relative: str, resume: ResumePoint | None) -> PartFile:
        """Open the ``.part`` of ``relative``: the one ``resume`` hashed, appended to,
        or else a new one (a stale part is replaced, one in use is not)."""
        folder_path, _, name = relative.rpartition("/")
        resumed = resume is not None and not resume.complete_file

        def open_in(folder: Folder) -> tuple[int, str]:
            if resumed:
                assert resume is not None
                return _reopen(folder, relative, resume)
            return self._create_part(folder, relative, name)

        try:
            (fd, part_name), folder = self._holding(folder_path, open_in)
        except OSError as exc:
            raise TargetError(_describe(relative, exc)) from None
        hasher = resume.hasher if resumed and resume is not None else blake3.blake3()
        offset = resume.offset if resumed and resume is not None else 0
        return PartFile(self._folders, folder, name, part_name, fd, hasher, offset)

    def new_part(self, relative: str, numbered: bool = True) -> PartFile:
        """A part of its own for a file that arrives whole (a browser upload, a drop the
        app stages), under the first ``name (N)`` whose part and finished name are both
        free; never resumes, so uploads of one name at once get distinct names. Not
        ``numbered``: under ``relative`` itself, or NameTakenError. Missing folders of
        ``relative`` (sanitized components) are made."""
        components = relative.split("/")
        if not all(c and c == sanitize_component(c) and "\\" not in c for c in components):
            raise ValueError(f"not a safe relative path: {relative!r}")
        folder_path, _, name = relative.rpartition("/")

        def claim(folder: Folder) -> tuple[int, str, int] | None:
            # Not numbered, the name stays and only its part moves on to a free name: a
            # dropped ``x.part`` (a browser's unfinished download) must not refuse ``x``.
            for number in range(MAX_NAME_ALTERNATIVES + 1):
                stem = name if number == 0 else numbered_name(name, number)
                try:
                    claimed = self._claim_name(folder, stem if numbered else name, stem)
                except FileExistsError:
                    if not numbered:
                        return None
                    continue
                if claimed is not None:
                    return (*claimed, number if numbered else 0)
            return None

        found, folder = self._holding(folder_path, claim)
        if found is None:
            self._folders.release(folder)
            raise name_taken(name if numbered else relative, several=numbered)
        fd, part_name, number = found
        return PartFile(
            self._folders, folder, name, part_name, fd, blake3.blake3(), 0, number, numbered
        )

    def _claim_name(
        self, folder: Folder, candidate: str, part_stem: str
    ) -> tuple[int, str] | None:
        """Create the part of ``part_stem`` with O_EXCL if ``candidate`` does not exist:
        None if that part exists, FileExistsError if ``candidate`` does."""
        try:
            fd, part_name = self._names.attempt(part_stem + PART_SUFFIX, _part_creator(folder))
        except FileExistsError:
            return None  # another upload (or an old one) holds this part
        try:
            os.stat(self._names.first_choice(candidate), dir_fd=folder.fd, follow_symlinks=False)
        except FileNotFoundError:
            return _registered(fd), part_name
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the finished name is taken
        os.unlink(part_name, dir_fd=folder.fd)
        raise FileExistsError(errno.EEXIST, "the name is taken", candidate)

    def _create_part(self, folder: Folder, relative: str, name: str) -> tuple[int, str]:
        """A new, empty part; a stale one (not in use) is replaced."""
        create = _part_creator(folder)
        try:
            fd, part_name = self._names.attempt(name + PART_SUFFIX, create)
        except FileExistsError as exc:
            part_name = str(exc.filename)
            _remove_stale_part(folder, relative, part_name)
            fd = create(part_name)
        return _registered(fd), part_name

    def finish(
        self, part: PartFile, mode: int, mtime: float | None, flush: bool = False
    ) -> str:
        """Give a complete part its final name without replacing anything; returns the
        path it got, relative to the target. On failure the part stays open.

        Its data is flushed to disk first if it has ``SYNC_EACH_FILE_FROM`` bytes or
        more, or ``flush`` (a file arriving alone); else it waits for ``sync``.
        """
        if part.closed:
            raise TargetError(f"{part.path!r} was closed before it was finished")
        flushed = flush or part.offset >= SYNC_EACH_FILE_FROM
        try:
            self._set_metadata(part.fd, mode, mtime)
            if flushed:
                flush_data(part.fd)
            if not part.still_named():
                raise TargetError(f"{part.path!r} was replaced while it was being received")
            name = self._no_clobber.place(
                part.folder.fd, part.part_name, part.name, part.first_number, part.numbered
            )
        except OSError as exc:
            raise TargetError(describe_os_error(exc)) from None
        self._pending.named(part.folder, flushed)
        final = part.folder.child_path(name)
        part.close()
        return final

    def store_wholes(self, files: Sequence[WholeFile]) -> list[str | TargetError | None]:
        """Write complete, verified small files straight under the first free name of
        each (as ``finish`` names it): for each, the path it got, None where the file
        system has no unnamed files (then it goes through a part), or why it failed.

        A batch holds each of its folders once and leaves the data for ``sync``, like
        any small file's: a receiver of many small files pays little beyond the system
        calls (an unnamed create, a write, the time, a link, a close).
        """
        stored: list[str | TargetError | None] = []
        held: dict[str, Folder] = {}  # folders of this batch, held until its end
        placed: set[str] = set()  # of those, the ones given a file
        try:
            for file in files:
                if not self._unnamed_files:
                    stored.append(None)
                    continue
                folder_path, _, name = file.relative.rpartition("/")
                try:
                    name_got = self._store_unnamed(held, folder_path, name, file)
                except TargetError as exc:
                    stored.append(exc)
                    continue
                except OSError as exc:
                    stored.append(TargetError(_describe(file.relative, exc)))
                    continue
                if name_got is None:
                    stored.append(None)
                    continue
                placed.add(folder_path)
                stored.append(held[folder_path].child_path(name_got))
        finally:
            for folder_path, folder in held.items():
                if folder_path in placed:
                    self._pending.named(folder, flushed=False)
                self._folders.release(folder)
        return stored

    def _store_unnamed(
        self, held: dict[str, Folder], folder_path: str, name: str, file: WholeFile
    ) -> str | None:
        """One file of ``store_wholes`` in its folder (held in ``held``): the name it got,
        or None without unnamed files. A folder found removed is walked to once more."""
        for last_try in (False, True):
            folder = held.get(folder_path)
            if folder is None or name in _NOT_PLAIN_NAMES:
                self.location_of(file.relative)  # a new folder: the whole path checked
            try:
                if folder is None:
                    folder = held[folder_path] = self._folders.hold(folder_path, create=True)
                return self._write_unnamed(folder, name, file)
            except FileNotFoundError:
                if last_try:
                    raise
                if folder is not None:
                    del held[folder_path]
                    self._folders.release(folder)
                self._folders.forget(folder_path)
        raise AssertionError("unreachable")

    def _write_unnamed(self, folder: Folder, name: str, file: WholeFile) -> str | None:
        """Create an unnamed file in ``folder`` with ``file``'s bytes, mode and time, then
        link it in under the first free name of ``name``; None without unnamed files."""
        mode = PART_MODE if self.umask is None else file.mode & 0o777 & ~self.umask
        try:
            fd = os.open(".", _UNNAMED, mode, dir_fd=folder.fd)
        except OSError as exc:
            if exc.errno not in _NO_UNNAMED:
                raise
            self._unnamed_files = False
            return None
        try:
            write_all(fd, file.data)
            if mode & self._process_umask:  # the create left out bits the mode wants
                _best_effort(os.fchmod, fd, mode)
            if file.mtime is not None:
                _best_effort(os.utime, fd, (file.mtime, file.mtime))
            return self._no_clobber.link_unnamed(folder.fd, fd, name)
        finally:
            os.close(fd)

    def _set_metadata(self, fd: int, mode: int, mtime: float | None) -> None:
        """Mode (less the umask) and time, where the file system keeps them."""
        if self.umask is not None:
            _best_effort(os.fchmod, fd, mode & 0o777 & ~self.umask)
        if mtime is not None:
            _best_effort(os.utime, fd, (mtime, mtime))

    def discard(self, part: PartFile) -> None:
        """Delete a part whose bytes are not wanted (corrupt, or an upload given up)."""
        if part.closed:
            return
        try:
            if part.still_named():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part.part_name, dir_fd=part.folder.fd)
        finally:
            part.close()

    def sync(self) -> None:
        """Make the files finished so far durable, names included (see ``durability``):
        one ``syncfs`` if small files wait, else an fsync of each folder given names.

        Sessions call it before they report the transfer done (peer: before its
        ``Summary``; share: before an upload's ``complete``).
        """
        try:
            with self._folders.folder("", create=False) as root:
                self._pending.sync(root)
        except OSError as exc:
            raise TargetError(describe_os_error(exc)) from None


def _close_handles(pending: PendingSync, folders: FolderHandles) -> None:
    pending.drop()
    folders.close()


def _best_effort(change: Callable[..., None], *args: object) -> None:
    """Apply a metadata change, unless the file system keeps no such thing (FAT: modes)."""
    try:
        change(*args)
    except OSError as exc:
        if exc.errno not in _NO_METADATA:
            raise


def _part_creator(folder: Folder) -> Callable[[str], int]:
    """Creating a new part by name in ``folder`` (O_EXCL: never an existing file)."""
    return lambda name: os.open(name, _CREATE_PART, PART_MODE, dir_fd=folder.fd)


def _registered(fd: int) -> int:
    """``fd``, a part just created, entered among the parts in use."""
    _OPEN_PARTS.add(identity(os.fstat(fd)))
    return fd


def _remove_stale_part(folder: Folder, relative: str, part_name: str) -> None:
    """Remove a part left by an earlier transfer; a link, a folder or a part in use stays.

    A part with several links (someone hard-linked it to a file elsewhere) only
    loses this name: the other file keeps its data, and nothing is written into it.
    """
    info = os.stat(part_name, dir_fd=folder.fd, follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode):
        raise TargetError(f"{relative!r}: {part_name} exists and is not a file")
    if not _OPEN_PARTS.released(identity(info)):
        raise TargetError(f"{relative!r}: {part_name} is being written by another transfer")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(part_name, dir_fd=folder.fd)


def _reopen(folder: Folder, relative: str, resume: ResumePoint) -> tuple[int, str]:
    """The part ``resume`` hashed, open for appending after its verified prefix."""
    part_name = resume.disk_path.rpartition("/")[2]
    fd = os.open(part_name, _REOPEN_PART, dir_fd=folder.fd)
    registered = False
    try:
        info = os.fstat(fd)
        if (
            identity(info) != resume.identity
            or not stat.S_ISREG(info.st_mode)
            or info.st_nlink != 1
            or info.st_size < resume.offset
            or not (registered := _OPEN_PARTS.add(identity(info)))
        ):
            raise TargetError(f"{relative!r}: its partial file changed since the offer")
        os.set_blocking(fd, True)
        os.ftruncate(fd, resume.offset)
        os.lseek(fd, resume.offset, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        if registered:
            _OPEN_PARTS.discard(resume.identity)
        raise
    return fd, part_name


def _listing(folder: Folder) -> set[str]:
    """The names in ``folder``, read through a descriptor of its own (a listing moves
    its descriptor's position, which the cached handle shares with every copy)."""
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=folder.fd)
    try:
        return set(os.listdir(fd))
    finally:
        os.close(fd)


def _held(folder: Folder, name: str, size: int, present: set[str]) -> ResumePoint | None:
    """The resume point of ``name`` in ``folder``: its part first, then an identical-size
    finished file; under the portable name next, if the disk holds one."""
    portable = portable_name(name)
    candidates = [(name + PART_SUFFIX, False), (name, True)]
    if portable != name:
        candidates += [(portable + PART_SUFFIX, False), (portable, True)]
    for disk_name, complete in candidates:
        if disk_name in present and (
            point := _hash_held(folder, disk_name, size, complete)
        ) is not None:
            return point
    return None


def _hash_held(folder: Folder, disk_name: str, size: int, complete: bool) -> ResumePoint | None:
    """Hash one held file, if it can be resumed: a plain file with one link, not in use,
    no longer than ``size`` (a finished file exactly ``size``, a part not empty)."""
    try:
        fd = os.open(disk_name, _READ_HELD, dir_fd=folder.fd)
    except OSError:
        return None
    try:
        if not _OPEN_PARTS.released(identity(os.fstat(fd))):
            return None
        info = os.fstat(fd)  # again: the writer that held it may have written more
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_nlink != 1
            or info.st_size > size
            or (complete and info.st_size != size)
            or (not complete and info.st_size == 0)
        ):
            return None
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        position = 0
        while chunk := os.pread(fd, HASH_READ_SIZE, position):
            hasher.update(chunk)
            position += len(chunk)
        return ResumePoint(
            position, hasher, complete, folder.child_path(disk_name), identity(info)
        )
    finally:
        os.close(fd)


def _describe(relative: str, exc: OSError) -> str:
    """One line for a part that cannot be opened."""
    if exc.errno == errno.ELOOP:
        return f"{relative!r}: refusing to write through a symlink"
    if exc.errno == errno.ENXIO:
        return f"{relative!r}: its partial file is not a regular file"
    return describe_os_error(exc)
