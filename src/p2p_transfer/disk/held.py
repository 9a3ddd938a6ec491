"""What of an offer a target folder already holds: a quick look for the offer's prompt.

Only names and sizes, read before the user decides, so nothing is opened,
hashed or created; the writer checks for real (by hash) once the offer is
accepted (``TargetFolder.find_resume_points``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from p2p_transfer.protocol.paths import PART_SUFFIX, portable_name


@dataclass(frozen=True, slots=True)
class Held:
    """Offered files already here: whole (same name and size) or in part (a ``.part``)."""

    whole: int = 0
    partial: int = 0


def look_for_held(root: Path, files: Iterable[tuple[str, int]]) -> Held:
    """Count the ``(relative path, size)`` files ``root`` holds already; each folder is
    listed once, and a folder that does not exist (a fresh target) costs one failed call."""
    by_folder: dict[str, list[tuple[str, int]]] = {}
    for relative, size in files:
        folder, _, name = relative.rpartition("/")
        by_folder.setdefault(folder, []).append((name, size))
    whole = partial = 0
    for folder, wanted in by_folder.items():
        path = os.path.join(root, *folder.split("/")) if folder else str(root)
        try:
            present = set(os.listdir(path))
        except OSError:
            continue
        for name, size in wanted:
            names = dict.fromkeys((name, portable_name(name)))
            if any(_same_size(path, n, size) for n in names if n in present):
                whole += 1
            elif any(n + PART_SUFFIX in present for n in names):
                partial += 1
    return Held(whole, partial)


def _same_size(folder: str, name: str, size: int) -> bool:
    try:
        info = os.lstat(os.path.join(folder, name))
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == size
