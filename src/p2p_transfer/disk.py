"""Disk facts that both ways of receiving (peer transfers and browser uploads) check."""

from __future__ import annotations

import shutil
from pathlib import Path


def free_space(folder: Path) -> int:
    """Bytes this user may write in ``folder``'s file system (its nearest existing parent's,
    when the folder is yet to be created)."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free
