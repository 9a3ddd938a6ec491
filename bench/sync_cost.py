"""``python -m bench.sync_cost``: what the file writer's sync policy costs.

Writes the benchmark's two workloads (10,000 files of 4 KiB in folders of 100,
one file of 1 GiB) through ``p2p_transfer.disk.TargetFolder`` as the receiver
does (part, write, finish, then one ``sync``), as shipped and with every flush
turned into a no-op, alternately, and prints the best time of each. Each run
starts with ``sync`` so it flushes only its own data; trees stay until the end
(deleting many files slows the next creates on ext4).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.config import (
    BIG_FILE_SIZE,
    DEFAULT_WORK_DIR,
    SMALL_FILE_COUNT,
    SMALL_FILE_SIZE,
    SMALL_FILES_PER_FOLDER,
    MiB,
)
from p2p_transfer.disk import TargetFolder, durability
from p2p_transfer.disk import target as writer

WRITE_SIZE = 1 * MiB
RUNS = 3
#: Every flush of the writer, by module and name.
FLUSHES = (
    (writer, "flush_data"),
    (writer, "start_writeback"),
    (durability, "sync_file_system"),
    (durability, "_sync_folder"),
)


@contextmanager
def flushes_off() -> Iterator[None]:
    """The writer with its flushes made no-ops: what the policy is measured against."""
    saved = [(module, name, getattr(module, name)) for module, name in FLUSHES]
    for module, name in FLUSHES:
        setattr(module, name, lambda *args: None)
    try:
        yield
    finally:
        for module, name, function in saved:
            setattr(module, name, function)


def small_files(root: Path, count: int) -> float:
    """Seconds to receive ``count`` files of 4 KiB and sync them."""
    data = os.urandom(SMALL_FILE_SIZE)
    target = TargetFolder(root)
    started = time.perf_counter()
    for index in range(count):
        part = target.open_part(f"d{index // SMALL_FILES_PER_FOLDER:03}/{index:05}.bin", None)
        part.write(data)
        target.finish(part, 0o644, None)
    target.sync()
    target.close()
    return time.perf_counter() - started


def big_file(root: Path, size: int) -> float:
    """Seconds to receive one file of ``size`` bytes and sync it."""
    data = os.urandom(WRITE_SIZE)
    target = TargetFolder(root)
    started = time.perf_counter()
    part = target.open_part("big.bin", None)
    for _ in range(size // WRITE_SIZE):
        part.write(data)
    target.finish(part, 0o644, None)
    target.sync()
    target.close()
    return time.perf_counter() - started


def best_of(runs: int, work: Path, measure: Callable[[Path], float]) -> tuple[float, float]:
    """Best seconds with the policy and without any flush, runs alternating."""
    with_policy, without = [], []
    for run in range(runs):
        for times, label in ((with_policy, "policy"), (without, "none")):
            os.sync()
            folder = work / f"{measure.__name__}-{label}-{run}"
            if label == "policy":
                times.append(measure(folder))
            else:
                with flushes_off():
                    times.append(measure(folder))
    return min(with_policy), min(without)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_cost", description=__doc__)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR / "sync-cost")
    parser.add_argument("--files", type=int, default=SMALL_FILE_COUNT)
    parser.add_argument("--size", type=int, default=BIG_FILE_SIZE, help="big file, bytes")
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        rows = [
            (f"{args.files:,} files of 4 KiB",
             best_of(args.runs, args.work_dir, lambda r: small_files(r, args.files))),
            (f"1 file of {args.size / MiB:,.0f} MiB",
             best_of(args.runs, args.work_dir, lambda r: big_file(r, args.size))),
        ]
    finally:
        shutil.rmtree(args.work_dir, ignore_errors=True)
    print("| workload | sync policy s | no flush s | cost |")
    print("|---|---:|---:|---:|")
    for title, (policy, none) in rows:
        print(f"| {title} | {policy:.3f} | {none:.3f} | {policy - none:+.3f} s "
              f"({(policy / none - 1) * 100:+.0f} %) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
