"""A new file system for each run's receiver, so that no run pays for another's deletions.

ext4 without a journal (this machine's disk) passes over every inode freed in the last
minutes to create a file (``recently_deleted`` in ``find_inode_bit``): on a disk that
had just lost other trees, creating 1 KiB files cost ~500 µs each instead of ~50. So
each run's received tree, configs and spools go to a new ext4 image made like this
machine's disk (no journal), on a loop device mounted for that run only; dropping the
image frees blocks, not inodes, and the next run starts on a new one again. The loop
device does direct I/O to its image: a flush reaches the disk once, as on a real one
(buffered, every byte was cached twice and a durable write such as ours paid for it).

Without root, ``mkfs.ext4`` or a loop device, runs write into the work dir's own disk
(``SET_ASIDE_FILES`` then keeps their trees until the end), and the report says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bench.config import GiB, MiB

#: Room for what a run writes: its received copy, a spooled zip of it (magic-wormhole
#: receives a folder as a zip first), and configs; the image is sparse.
IMAGE_ROOM_FACTOR = 3
IMAGE_ROOM_EXTRA = 1 * GiB
#: Inodes beyond the workload's files and folders (configs, parts, spools).
EXTRA_INODES = 64 * 1024
#: What ``mkfs.ext4`` is given: the host disk's features less its journal, inode tables
#: written now (not by a kernel thread during the run), no reserved blocks.
MKFS_OPTIONS = ("-q", "-F", "-O", "^has_journal", "-m", "0",
                "-E", "lazy_itable_init=0,lazy_journal_init=0")


def unavailable_reason() -> str | None:
    """Why runs cannot have a fresh file system here, or None when they can."""
    if os.geteuid() != 0:
        return "not root (mounting a loop device needs it)"
    for tool in ("mkfs.ext4", "losetup", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (e2fsprogs, mount)"
    return None


@contextlib.contextmanager
def fresh_disk(folder: Path, total_bytes: int, files: int) -> Iterator[Path]:
    """A new, empty ext4 file system mounted at ``folder/mnt`` for one run, room for
    ``total_bytes`` in ``files`` files; unmounted and deleted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    image, mount_point = folder / "disk.img", folder / "mnt"
    mount_point.mkdir(exist_ok=True)
    size = IMAGE_ROOM_FACTOR * total_bytes + IMAGE_ROOM_EXTRA
    with open(image, "wb") as sparse:
        sparse.truncate(-(-size // MiB) * MiB)
    try:
        _run("mkfs.ext4", *MKFS_OPTIONS, "-N", str(2 * files + EXTRA_INODES), str(image))
        device = _run("losetup", "--find", "--show", "--direct-io=on", str(image))
        try:
            _run("mount", device, str(mount_point))
            try:
                yield mount_point
            finally:
                _run("umount", str(mount_point))
        finally:
            _run("losetup", "--detach", device)
    finally:
        image.unlink(missing_ok=True)


def _run(*command: str) -> str:
    """What ``command`` printed; OSError with its complaint when it failed."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OSError(f"{' '.join(command[:2])}: {(result.stderr or result.stdout).strip()}")
    return result.stdout.strip()
