"""A real exFAT file system for tests: an image, a loop device, mounted with exfat-fuse.

exFAT is what USB sticks and SD cards carry: no hard links, no Unix permissions,
names without ``< > : " | ? * \\``, case-blind. The kernel here has no exfat
module, so Debian's exfat-fuse mounts it (scripts/install-system-deps installs
it with exfatprogs). Needs root (losetup, mount).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from waiting import wait_until_blocking

#: Size of the image: room for a 64 MiB file, a few hundred small ones and their copies.
IMAGE_SIZE = "256M"
#: Where Debian puts the tools (root's PATH has it; other PATHs may not).
_TOOL_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
_TOOLS = ("truncate", "mkfs.exfat", "losetup", "mount.exfat-fuse", "umount")
#: Tries (a second apart) at unmounting while the FUSE daemon still has files open.
_UMOUNT_TRIES = 10


def exfat_missing() -> str:
    """Why an exFAT mount cannot be made here ('' when it can)."""
    if os.geteuid() != 0:
        return "needs root (losetup and mount)"
    missing = [tool for tool in _TOOLS if shutil.which(tool, path=_TOOL_PATH) is None]
    if missing:
        return f"needs {', '.join(missing)} (scripts/install-system-deps installs them)"
    if not os.path.exists("/dev/fuse") or not os.path.exists("/dev/loop-control"):
        return "needs /dev/fuse and /dev/loop-control"
    return ""


def _run(*command: str | Path) -> str:
    done = subprocess.run(
        [str(part) for part in command], check=True, capture_output=True, text=True,
        env={**os.environ, "PATH": _TOOL_PATH},
    )
    return done.stdout.strip()


@contextmanager
def mounted_exfat(workdir: Path) -> Iterator[Path]:
    """A freshly made exFAT file system mounted in ``workdir``; always unmounted and
    detached again, whatever happens in between."""
    image, mount = workdir / "exfat.img", workdir / "exfat"
    _run("truncate", "-s", IMAGE_SIZE, image)
    _run("mkfs.exfat", "-L", "TESTSTICK", image)
    device = _run("losetup", "-f", "--show", image)
    try:
        mount.mkdir()
        _run("mount.exfat-fuse", device, mount)
        try:
            yield mount
        finally:
            _unmount(mount)
    finally:
        _run("losetup", "-d", device)


def _unmount(mount: Path) -> None:
    """Unmount, waiting a little for files still open; lazily as a last resort."""

    def unmounted() -> bool:
        try:
            _run("umount", mount)
        except subprocess.CalledProcessError:
            return False
        return True

    try:
        wait_until_blocking(
            unmounted, _UMOUNT_TRIES - 1, every=1.0, what=f"{mount} to be unmounted"
        )
    except AssertionError:
        _run("umount", "-l", mount)
