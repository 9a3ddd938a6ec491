"""``python -m bench``: parse options, prepare data, run every row, write the report."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.config import (
    BIG_FILE_SIZE,
    DEFAULT_WORK_DIR,
    LOGS_DIR,
    QUICK_BIG_FILE_SIZE,
    QUICK_RESULTS_PATH,
    QUICK_SMALL_FILE_COUNT,
    RESULTS_PATH,
    SMALL_FILE_COUNT,
    SMALL_FILE_SIZE,
    KiB,
)
from bench.data import Workload, check_free_space, make_big, make_small, remove_tree
from bench.isolation import ISOLATED_COMMAND, is_isolated, non_loopback_interfaces
from bench.report import RunInfo, render
from bench.results import RowResult, best, unavailable
from bench.rows import Row, RunContext, all_rows

#: Rows that may run outside an isolated namespace: they only touch 127.0.0.1.
LOOPBACK_ONLY_ROWS = frozenset({"tcp"})
WORKLOAD_KEYS = ("big", "small")
_UNITS = {
    "": 1,
    "b": 1,
    "k": KiB,
    "kib": KiB,
    "m": KiB**2,
    "mib": KiB**2,
    "g": KiB**3,
    "gib": KiB**3,
}
#: File that marks a folder as the benchmark's own, safe to empty.
WORK_DIR_MARKER = ".p2p-transfer-bench"
#: Files of a small-file workload take at least one filesystem block each.
_FS_BLOCK = 4 * KiB


def parse_size(text: str) -> int:
    """``64MiB``, ``1G``, ``4096`` → bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64MiB, 1GiB)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_args(argv: Sequence[str] | None, rows: Sequence[Row]) -> argparse.Namespace:
    """Options; --only and --workloads are checked against what exists."""
    keys = [row.key for row in rows]
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Compare p2p-transfer with magic-wormhole, plain TCP and raw iroh "
        f"on loopback. Run it isolated: {ISOLATED_COMMAND} (as make bench does).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_BIG_FILE_SIZE >> 20} MiB and "
        f"{QUICK_SMALL_FILE_COUNT:,} files; report to bench/results/quick.md",
    )
    parser.add_argument(
        "--only", default=",".join(keys), help=f"comma-separated rows to run, of: {', '.join(keys)}"
    )
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOAD_KEYS),
        help="comma-separated workloads: big (one file), small (many files)",
    )
    parser.add_argument("--size", type=parse_size, help="size of the big file (e.g. 256MiB)")
    parser.add_argument("--files", type=int, help="number of small files")
    parser.add_argument(
        "--file-size",
        type=parse_size,
        default=SMALL_FILE_SIZE,
        help="size of each small file (default 4KiB)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per row and workload; the fastest verified one is reported",
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds one run may take (default: derived from the size)"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="folder for generated and received data (emptied, then removed)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    parser.add_argument("--output", type=Path, help="where to write the markdown report")
    parser.add_argument(
        "--allow-host-network",
        action="store_true",
        help="run iroh/wormhole rows even outside an isolated namespace",
    )
    args = parser.parse_args(argv)
    args.only = [key.strip() for key in args.only.split(",") if key.strip()]
    args.workloads = [key.strip() for key in args.workloads.split(",") if key.strip()]
    for key in args.only:
        if key not in keys:
            parser.error(f"unknown row {key!r}; rows: {', '.join(keys)}")
    for key in args.workloads:
        if key not in WORKLOAD_KEYS:
            parser.error(f"unknown workload {key!r}; workloads: {', '.join(WORKLOAD_KEYS)}")
    if args.size is None:
        args.size = QUICK_BIG_FILE_SIZE if args.quick else BIG_FILE_SIZE
    if args.files is None:
        args.files = QUICK_SMALL_FILE_COUNT if args.quick else SMALL_FILE_COUNT
    if args.output is None:
        args.output = QUICK_RESULTS_PATH if args.quick else RESULTS_PATH
    if args.repeat < 1 or args.files < 1 or args.size < 1:
        parser.error("--repeat, --files and --size must be positive")
    return args


def prepare_workloads(args: argparse.Namespace) -> list[Workload]:
    """Check the disk, then write the source data under the work folder."""
    big = args.size if "big" in args.workloads else 0
    small = args.files * max(args.file_size, _FS_BLOCK) if "small" in args.workloads else 0
    # Source and one received copy of each; wormhole also spools a zip of the folder.
    check_free_space(args.work_dir, 2 * big + 3 * small)
    claim_work_dir(args.work_dir)
    source = args.work_dir / "source"
    workloads = []
    if big:
        log(f"writing one file of {args.size:,} bytes")
        workloads.append(make_big(source, args.size))
    if small:
        log(f"writing {args.files:,} files of {args.file_size:,} bytes")
        workloads.append(make_small(source, args.files, args.file_size))
    return workloads


def claim_work_dir(work_dir: Path) -> None:
    """Empty ``work_dir`` for this run; refuse a non-empty folder the benchmark did not make.

    The whole folder is deleted afterwards, so ``--work-dir /tmp`` must not be
    taken literally.
    """
    marker = work_dir / WORK_DIR_MARKER
    if work_dir.exists() and any(work_dir.iterdir()) and not marker.exists():
        raise SystemExit(f"{work_dir} is not empty and not a benchmark work folder; pick another")
    remove_tree(work_dir)
    work_dir.mkdir(parents=True)
    marker.touch()


def log(message: str) -> None:
    """Progress goes to stderr; stdout gets the report."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run_row(row: Row, workloads: Sequence[Workload], args: argparse.Namespace) -> list[RowResult]:
    """Every run of one row; servers it needs are up for exactly that long."""
    chosen = [w for w in workloads if w.key in row.workloads]
    reason = row.unavailable_reason()
    exposed = not (is_isolated() or args.allow_host_network)
    if reason is None and exposed and row.key not in LOOPBACK_ONLY_ROWS:
        reason = (
            f"not in an isolated network namespace (interfaces: "
            f"{', '.join(non_loopback_interfaces())}); run {ISOLATED_COMMAND}"
        )
    if reason is not None:
        log(f"{row.label}: unavailable: {reason}")
        return [unavailable(row.label, w, reason) for w in chosen]
    results = []
    row.setup(args.work_dir)
    try:
        run_index = 0
        for workload in chosen:
            runs = []
            for _ in range(args.repeat):
                ctx = RunContext(work_dir=args.work_dir, run_index=run_index, timeout=args.timeout)
                run_index += 1
                try:
                    result = row.run(workload, ctx)
                finally:
                    ctx.clean()
                log(f"{row.label}, {workload.title}: {summary(result)}")
                runs.append(result)
            results.append(best(runs))
    finally:
        row.teardown()
    return results


def summary(result: RowResult) -> str:
    """One line for the progress log."""
    if not result.ok:
        return result.status
    files = f", {result.files_per_second:,.0f} files/s" if result.workload.file_count > 1 else ""
    return (
        f"{result.megabytes_per_second:,.1f} MB/s{files}, "
        f"{result.wall_seconds:.2f} s, CPU {result.cpu_seconds:.2f} s"
    )


def clean_work_dir(work_dir: Path, keep_logs: bool) -> None:
    """Remove the work folder; with ``keep_logs`` only its data, so failures can be read."""
    if not keep_logs:
        shutil.rmtree(work_dir, ignore_errors=True)
        return
    for child in work_dir.iterdir():
        if child.name != LOGS_DIR:
            shutil.rmtree(child, ignore_errors=True)
    log(f"a row failed: its processes' output is in {work_dir / LOGS_DIR}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when a row that could run failed."""
    rows = all_rows()
    args = parse_args(argv, rows)
    selected = [row for row in rows if row.key in args.only]
    workloads = prepare_workloads(args)
    results: list[RowResult] = []
    try:
        for row in selected:
            results += run_row(row, workloads, args)
    finally:
        if args.keep:
            log(f"work folder kept: {args.work_dir}")
        else:
            clean_work_dir(args.work_dir, keep_logs=any(r.failed for r in results))
    info = RunInfo(
        mode="quick" if args.quick else "full", repeat=args.repeat, isolated=is_isolated()
    )
    ordered = [r for w in workloads for r in results if r.workload.key == w.key]
    report = render(info, workloads, ordered)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    log(f"report written to {args.output}")
    return 1 if any(r.failed for r in results) else 0
