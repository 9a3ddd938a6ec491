"""The target's folders, opened once by handle and never through a symlink.

Each folder is reached from the root's descriptor one component at a time with
``O_DIRECTORY | O_NOFOLLOW``, and files are then opened relative to its handle.
A handle keeps meaning the folder it was opened as: a folder renamed away or
swapped for a symlink meanwhile cannot redirect a write, and a walk (again) meets
the symlink and stops. A bounded cache keeps the handles of recently used folders
(a tree may have 10,000 folders, a process ~1024 descriptors); a handle in use is
never closed under its user.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from p2p_transfer.disk.errors import TargetError
from p2p_transfer.disk.names import DiskNames
from p2p_transfer.limits import FOLDER_HANDLE_CACHE
from p2p_transfer.protocol.paths import portable_name

#: Permissions of folders the writer creates (the umask applies).
FOLDER_MODE = 0o777
_OPEN_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: What opening a symlink or a file as a folder with O_NOFOLLOW says (Linux: ENOTDIR or ELOOP).
_NOT_A_FOLDER = frozenset({errno.ENOTDIR, errno.ELOOP})


@dataclass(slots=True, eq=False)
class Folder:
    """An open folder of the target: its descriptor and its path as the disk spells it."""

    fd: int
    disk_path: str  # relative to the root; names as the file system took them ('' = root)
    users: int = 0
    cached: bool = True

    def child_path(self, name: str) -> str:
        """The relative path of ``name`` in this folder."""
        return f"{self.disk_path}/{name}" if self.disk_path else name


class FolderHandles:
    """Handles of one target's folders, keyed by the relative path asked for."""

    def __init__(self, root: str, names: DiskNames, limit: int = FOLDER_HANDLE_CACHE) -> None:
        self._names = names
        self._limit = limit
        self._lock = threading.Lock()
        self._root = Folder(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), "")
        self._cache: OrderedDict[str, Folder] = OrderedDict()
        self._closed = False

    @contextmanager
    def folder(self, relative: str, create: bool) -> Iterator[Folder]:
        """The open folder ``relative`` ('' = the root) while the block runs.

        ``create`` makes missing folders; without it a missing one raises
        FileNotFoundError. A symlink or file on the way raises TargetError.
        """
        held = self.hold(relative, create)
        try:
            yield held
        finally:
            self.release(held)

    def hold(self, relative: str, create: bool) -> Folder:
        """Open (or find) ``relative`` and keep its handle open until ``release``."""
        with self._lock:
            if self._closed:
                raise TargetError("the target folder was closed")
            if not relative:
                found = self._root
            elif (found := self._cache.get(relative)) is not None:
                self._cache.move_to_end(relative)
            else:
                found = self._walk(relative, create)
            found.users += 1
            self._evict()
            return found

    def pin(self, folder: Folder) -> None:
        """Keep a handle that is held already open until one more ``release``."""
        with self._lock:
            folder.users += 1

    def release(self, folder: Folder) -> None:
        """Let go of a handle from ``hold``; closed once unused and out of the cache."""
        with self._lock:
            folder.users -= 1
            if folder.users == 0 and not folder.cached:
                os.close(folder.fd)

    def forget(self, relative: str) -> None:
        """Drop the handles of ``relative``, its parents and the folders below it: after
        a create in it found no folder, any of them may be the one that was removed."""
        with self._lock:
            for key in [k for k in self._cache if _related(k, relative)]:
                self._uncache(key)

    def close(self) -> None:
        """Close every handle (those in use once they are released)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for key in list(self._cache):
                self._uncache(key)
            self._root.cached = False
            if self._root.users == 0:
                os.close(self._root.fd)

    def _uncache(self, key: str) -> None:
        folder = self._cache.pop(key)
        folder.cached = False
        if folder.users == 0:
            os.close(folder.fd)

    def _evict(self) -> None:
        """Close the least recently used unused handles beyond the limit."""
        excess = len(self._cache) - self._limit
        if excess <= 0:  # the usual case: no walk through the cache on every hold
            return
        for key in [k for k, f in self._cache.items() if f.users == 0][:excess]:
            self._uncache(key)

    def _walk(self, relative: str, create: bool) -> Folder:
        """Open ``relative`` from its nearest open ancestor, component by component."""
        components = relative.split("/")
        if any(part in ("", ".", "..") for part in components):
            raise TargetError(f"path {relative!r} is not a plain relative path")
        depth = len(components) - 1
        while depth > 0 and "/".join(components[:depth]) not in self._cache:
            depth -= 1
        parent = self._cache["/".join(components[:depth])] if depth else self._root
        for index in range(depth, len(components)):
            child = self._open_child(parent, components[index], create, relative)
            self._cache["/".join(components[: index + 1])] = child
            parent = child
        return parent

    def _open_child(self, parent: Folder, name: str, create: bool, relative: str) -> Folder:
        """Open folder ``name`` in ``parent``: as it is, else its portable form if that
        exists (a name mapped before), else made (portable only if refused)."""
        for candidate in dict.fromkeys((self._names.first_choice(name), portable_name(name))):
            fd = self._open_existing(parent, candidate, relative)
            if fd is not None:
                return Folder(fd, parent.child_path(candidate))
        if not create:
            raise FileNotFoundError(errno.ENOENT, "no such folder", relative)
        _, made = self._names.attempt(name, lambda n: _make_folder(parent.fd, n))
        fd = self._open_existing(parent, made, relative)
        if fd is None:  # removed as soon as it was made
            raise FileNotFoundError(errno.ENOENT, "folder vanished", relative)
        return Folder(fd, parent.child_path(made))

    @staticmethod
    def _open_existing(parent: Folder, name: str, relative: str) -> int | None:
        """A handle of folder ``name`` in ``parent``; None if absent; TargetError if it is
        a symlink or not a folder."""
        try:
            return os.open(name, _OPEN_FOLDER, dir_fd=parent.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in _NOT_A_FOLDER:
                raise TargetError(f"{relative!r}: {name!r} exists and is not a folder") from None
            raise


def _related(one: str, other: str) -> bool:
    """True when one folder path is the other or lies above or below it."""
    return one == other or one.startswith(other + "/") or other.startswith(one + "/")


def _make_folder(parent_fd: int, name: str) -> None:
    """Create folder ``name`` unless something by that name is there already."""
    try:
        os.mkdir(name, FOLDER_MODE, dir_fd=parent_fd)
    except FileExistsError:
        pass
