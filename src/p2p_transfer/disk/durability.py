"""The sync policy: what finished files still need before they are on disk, and the
cheapest way to get it there.

Data: a file of ``SYNC_EACH_FILE_FROM`` bytes or more (or a file arriving alone,
an upload) is flushed (``fdatasync``) before it gets its name; smaller files are
left to one ``syncfs`` of the target's file system at ``sync``, since an fsync
each would cost ~18× their write. Names: the folders that got new names are
fsynced one by one at ``sync``, unless that ``syncfs`` covers them anyway, or
more than ``SYNC_FOLDERS_ONE_BY_ONE`` wait. ``syncfs`` also flushes what other
programs wrote to that file system, which is why it is kept for small files.
"""

from __future__ import annotations

import errno
import os
import threading

from p2p_transfer.disk.folders import Folder, FolderHandles
from p2p_transfer.disk.syscalls import sync_file_system
from p2p_transfer.limits import SYNC_FOLDERS_ONE_BY_ONE

#: How file systems say a folder cannot be fsynced (then ``syncfs`` does it).
_NO_FOLDER_FSYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


class PendingSync:
    """What one target's finished files still need; ``sync`` makes them durable."""

    def __init__(self, handles: FolderHandles) -> None:
        self._handles = handles
        self._lock = threading.Lock()
        self._unflushed = False  # small files whose data only a syncfs flushes
        self._folders: set[Folder] = set()  # pinned until synced

    def named(self, folder: Folder, flushed: bool) -> None:
        """A file got its name in ``folder``; ``flushed``: its data is on disk already."""
        with self._lock:
            if self._unflushed or folder in self._folders:
                return  # a syncfs is due anyway, or this folder is waiting already
            if flushed and len(self._folders) < SYNC_FOLDERS_ONE_BY_ONE:
                self._handles.pin(folder)
                self._folders.add(folder)
                return
            self._unflushed = True  # one syncfs will cover every folder: let them go
            for waiting in self._folders:
                self._handles.release(waiting)
            self._folders = set()

    def drop(self) -> None:
        """Let go of the folders waiting for ``sync`` without flushing them."""
        with self._lock:
            folders, self._folders = self._folders, set()
        for folder in folders:
            self._handles.release(folder)

    def sync(self, root: Folder) -> None:
        """Flush what is pending: one ``syncfs``, or the folders' entries one by one."""
        with self._lock:
            unflushed, folders = self._unflushed, self._folders
            self._unflushed, self._folders = False, set()
        try:
            if unflushed:
                sync_file_system(root.fd)
            else:
                for folder in folders:
                    _sync_folder(folder.fd)
        except BaseException:
            with self._lock:
                self._unflushed = True  # the next sync tries again, with syncfs
            raise
        finally:
            for folder in folders:
                self._handles.release(folder)


def _sync_folder(fd: int) -> None:
    """Flush a folder's entries (its new names); ``syncfs`` where folders cannot be fsynced."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_FOLDER_FSYNC:
            raise
        sync_file_system(fd)
