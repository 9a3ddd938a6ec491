"""Where received files go, and the config dir: writable, space, what kind of disk."""

from __future__ import annotations

import contextlib
import shutil
import stat
import subprocess
from pathlib import Path

from p2p_transfer.disk import free_space
from p2p_transfer.disk.writable import write_problem
from p2p_transfer.events import CheckEvent
from p2p_transfer.trust.files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE
from p2p_transfer.trust.identity import KEY_FILE_NAME
from p2p_transfer.units import format_size

#: File systems without hard links or POSIX names, as mount tables name them.
_FAT_LIKE = {"exfat", "vfat", "msdos", "fat", "ntfs", "ntfs3"}
_MIB = 1024 * 1024


def mount_of(path: Path) -> tuple[str, str, str]:
    """(mount point, file system type, source) of the mount holding ``path``."""
    best = ("/", "", "")
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return best
    target = str(path)
    for line in lines:
        left, _, right = line.partition(" - ")
        point = left.split()[4].replace("\\040", " ")
        fstype, source = [*right.split(), "", ""][:2]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fstype, source)
    return best


def file_system_type(path: Path) -> str:
    """The file system under ``path``; FUSE mounts are looked up by their device (blkid)."""
    _, fstype, source = mount_of(path)
    if fstype.startswith("fuse") and source.startswith("/dev/") and shutil.which("blkid"):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            found = subprocess.run(["blkid", "-o", "value", "-s", "TYPE", source],
                                   capture_output=True, text=True, timeout=2, check=False)
            if found.stdout.strip():
                return found.stdout.strip()
    return fstype or "unknown"


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_download_folder(folder: Path) -> CheckEvent:
    """Writable (a file is created and removed), free space, file system type."""
    probe_at = _existing(folder)
    if problem := write_problem(folder):
        return CheckEvent(
            "download folder", "fail", f"{folder}: cannot write ({problem})",
            "choose another folder (`receive --dir`, the app's settings) or fix its "
            "permissions (and `chattr -i`, or a mount that is not read-only)",
        )
    free = free_space(folder)
    space = "free space unknown" if free is None else f"{format_size(free)} free"
    fstype = file_system_type(probe_at)
    detail = f"{folder}: writable, {space}, {fstype}"
    if fstype.lower() in _FAT_LIKE:
        return CheckEvent(
            "download folder", "ok",
            f"{detail} (no hard links or POSIX names there: files are finished by rename, "
            "and names it refuses get _)",
        )
    if free is not None and free < 100 * _MIB:
        return CheckEvent("download folder", "warn", detail,
                          "free some space: offers bigger than the free space are declined")
    return CheckEvent("download folder", "ok", detail)


def check_config_dir(config_dir: Path) -> CheckEvent:
    """The identity key and pairings: private to this user."""
    if not config_dir.exists():
        return CheckEvent("config", "ok", f"{config_dir}: not created yet (made on first use)")
    problems = []
    mode = stat.S_IMODE(config_dir.stat().st_mode)
    if mode & ~PRIVATE_DIR_MODE:
        problems.append(f"the folder is {oct(mode)}, readable by others")
    key = config_dir / KEY_FILE_NAME
    if key.exists() and stat.S_IMODE(key.stat().st_mode) & ~PRIVATE_FILE_MODE:
        problems.append(f"{KEY_FILE_NAME} is readable by others (it will be refused)")
    if problems:
        return CheckEvent("config", "warn", f"{config_dir}: " + "; ".join(problems),
                          f"chmod 700 {config_dir}; chmod 600 {key}")
    return CheckEvent("config", "ok", f"{config_dir}: private to this user")
