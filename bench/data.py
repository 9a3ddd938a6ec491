"""Test data: generation, the tree digest used to verify a run, and disk checks.

Every file is pseudo-random (BLAKE3 in extendable-output mode from a fixed
seed): incompressible, so magic-wormhole's deflated zip gains nothing over the
others, and the same on every run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from bench.config import (
    DATA_SEED,
    DISK_RESERVE,
    GENERATE_BLOCK,
    SET_ASIDE_FILES,
    SMALL_FILES_PER_FOLDER,
    MiB,
)

#: Length prefix of a path in the digest, so ("ab","c") never equals ("a","bc").
_PATH_LENGTH_BYTES = 4
_SIZE_BYTES = 8
#: Workloads of many files: their tables also give files/s and CPU per file.
MANY_FILE_WORKLOADS = ("small", "medium", "tiny")
#: The workload timed to its first progress event, not to its end (no throughput table).
FIRST_BYTE_WORKLOAD = "first-byte"


@dataclass(frozen=True)
class Workload:
    """What one run sends: a single top-level entry inside ``source_dir``."""

    key: str  # "big", one of MANY_FILE_WORKLOADS, "uploads" or FIRST_BYTE_WORKLOAD
    title: str  # for the report, e.g. "1 file of 1 GiB"
    source_dir: Path  # holds only ``entry``; its digest is the expected one
    entry: str  # the file or folder given to the sender
    total_bytes: int
    file_count: int
    digest: str  # tree digest of ``source_dir``

    @property
    def path(self) -> Path:
        """The path the sender is given."""
        return self.source_dir / self.entry

    @property
    def many_files(self) -> bool:
        """True for the many-file workloads, whose tables also give files/s and CPU per file."""
        return self.key in MANY_FILE_WORKLOADS


def human_size(size: int) -> str:
    """``1073741824`` → ``1 GiB``; exact binary units where they fit."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def _random_blocks(label: bytes, size: int) -> Iterator[bytes]:
    """``size`` pseudo-random bytes in blocks, determined by ``label``."""
    stream = blake3(DATA_SEED + b"/" + label)
    offset = 0
    while offset < size:
        length = min(GENERATE_BLOCK, size - offset)
        yield stream.digest(length=length, seek=offset)
        offset += length


def _write_random(path: Path, seed: bytes, size: int) -> None:
    """A new folder holding one file of ``size`` pseudo-random bytes from ``seed``."""
    path.parent.mkdir(parents=True)
    with open(path, "wb") as out:
        for block in _random_blocks(seed, size):
            out.write(block)


def _make_one_file(root: Path, key: str, entry: str, size: int, title: str) -> Workload:
    """One file of ``size`` bytes in ``root/KEY/``, its data seeded by ``key``."""
    source = root / key
    _write_random(source / entry, key.encode(), size)
    return Workload(
        key=key,
        title=title,
        source_dir=source,
        entry=entry,
        total_bytes=size,
        file_count=1,
        digest=tree_digest(source),
    )


def make_big(root: Path, size: int) -> Workload:
    """One file of ``size`` bytes in ``root/big/``."""
    return _make_one_file(root, "big", "big.bin", size, f"1 file of {human_size(size)}")


def make_first_byte(root: Path, size: int) -> Workload:
    """The file sent to a paired device to time the first progress event, in its own folder."""
    title = f"1 file of {human_size(size)} to a paired device"
    return _make_one_file(root, FIRST_BYTE_WORKLOAD, "first-byte.bin", size, title)


def make_small(root: Path, count: int, size: int, key: str = "small") -> Workload:
    """``count`` files of ``size`` bytes in folders under ``root/KEY/KEY/``.

    ``key`` names the workload (one of MANY_FILE_WORKLOADS) and seeds its data.
    """
    source = root / key
    folder = source / key
    data = b"".join(_random_blocks(key.encode(), count * size))
    for index in range(count):
        sub = folder / f"d{index // SMALL_FILES_PER_FOLDER:04d}"
        if index % SMALL_FILES_PER_FOLDER == 0:
            sub.mkdir(parents=True)
        (sub / f"f{index:06d}.bin").write_bytes(data[index * size : (index + 1) * size])
    return Workload(
        key=key,
        title=f"{count:,} files of {human_size(size)}",
        source_dir=source,
        entry=key,
        total_bytes=count * size,
        file_count=count,
        digest=tree_digest(source),
    )


def make_uploads(root: Path, count: int, size: int) -> Workload:
    """One file of ``size`` bytes in ``root/uploads/``, which ``count`` clients upload at once.

    ``total_bytes`` and ``file_count`` count every upload; the digest is the
    source tree's (one file), so a row checks each received copy against it.
    """
    source = root / "uploads"
    _write_random(source / "upload.bin", b"uploads", size)
    return Workload(
        key="uploads",
        title=f"{count} uploads of {human_size(size)} at once",
        source_dir=source,
        entry="upload.bin",
        total_bytes=count * size,
        file_count=count,
        digest=tree_digest(source),
    )


def iter_files(entry: Path) -> list[tuple[str, Path]]:
    """Files of ``entry`` (a file or a folder) as (relative POSIX path, path), sorted.

    Relative paths start with ``entry``'s own name, as every tool lays them
    out in its output folder.
    """
    if entry.is_file():
        return [(entry.name, entry)]
    if not entry.is_dir():
        raise FileNotFoundError(f"nothing to send at {entry}")
    found = [
        (path.relative_to(entry.parent).as_posix(), path)
        for path in entry.rglob("*")
        if path.is_file()
    ]
    return sorted(found)


def file_hash(path: Path) -> bytes:
    """BLAKE3 of one file (memory-mapped, multi-threaded: verification is not timed)."""
    hasher = blake3(max_threads=blake3.AUTO)
    if path.stat().st_size:
        hasher.update_mmap(path)
    return hasher.digest()


def digest_entries(entries: Iterable[tuple[str, int, bytes]]) -> str:
    """Digest of (relative path, size, BLAKE3) triples, in the order given (sorted)."""
    total = blake3()
    for relpath, size, content_hash in entries:
        name = relpath.encode()
        total.update(len(name).to_bytes(_PATH_LENGTH_BYTES, "big"))
        total.update(name)
        total.update(size.to_bytes(_SIZE_BYTES, "big"))
        total.update(content_hash)
    return total.hexdigest()


def tree_digest(root: Path) -> str:
    """Digest of every file under ``root`` (paths relative to ``root``)."""
    entries = []
    for child in sorted(root.iterdir()):
        for relpath, path in iter_files(child):
            entries.append((relpath, path.stat().st_size, file_hash(path)))
    entries.sort()
    return digest_entries(entries)


def check_free_space(folder: Path, needed: int) -> None:
    """Fail before writing anything when ``folder``'s disk lacks ``needed`` bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed + DISK_RESERVE:
        raise SystemExit(
            f"not enough free disk for the benchmark: {free // MiB} MiB free, "
            f"{(needed + DISK_RESERVE) // MiB} MiB needed (try --quick or a smaller --size)"
        )


def discard_tree(path: Path, set_aside: Path) -> None:
    """Delete ``path`` if it exists (or move it into ``set_aside``, see
    SET_ASIDE_FILES), then flush the page cache's dirty pages.

    The sync makes every run start with no write-back of a previous run
    still going on behind it.
    """
    if path.exists():
        if _holds_more_files(path, SET_ASIDE_FILES):
            set_aside.mkdir(parents=True, exist_ok=True)
            path.rename(set_aside / str(len(os.listdir(set_aside))))
        else:
            shutil.rmtree(path)
    os.sync()


def _holds_more_files(path: Path, limit: int) -> bool:
    count = 0
    for _, _, files in os.walk(path):
        count += len(files)
        if count > limit:
            return True
    return False
