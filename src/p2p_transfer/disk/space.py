"""How much room a folder's file system has left, in bytes and in files.

Some file systems (FUSE drivers, btrfs for inodes) report 0 totals: that means
"unknown", and callers skip their check instead of treating the disk as full.
"""

from __future__ import annotations

import os
from pathlib import Path


def _statvfs(folder: Path) -> os.statvfs_result:
    """``statvfs`` of ``folder``, or of its nearest existing parent when it is yet to be made."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return os.statvfs(probe)


def free_space(folder: Path) -> int | None:
    """Bytes this user may write in ``folder``'s file system; None when it does not say."""
    info = _statvfs(folder)
    if info.f_blocks == 0:
        return None
    return info.f_bavail * info.f_frsize


def free_inodes(folder: Path) -> int | None:
    """Files this user may still create in ``folder``'s file system; None when it does not say."""
    info = _statvfs(folder)
    if info.f_files == 0:
        return None
    return info.f_favail
