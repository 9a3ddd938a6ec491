"""Disk facts and writes that both ways of receiving (peer transfers and browser uploads) share."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def free_space(folder: Path) -> int:
    """Bytes this user may write in ``folder``'s file system (its nearest existing parent's,
    when the folder is yet to be created)."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (one ``os.write`` may take only part)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
