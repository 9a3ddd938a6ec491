"""``python -m bench``: parse options, prepare data, run every row, write the report."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.config import (
    BIG_FILE_SIZE,
    DEFAULT_WORK_DIR,
    FIRST_BYTE_FILE_SIZE,
    FULL_RUN_REPEAT,
    LOGS_DIR,
    MB,
    MEDIUM_FILE_COUNT,
    MEDIUM_FILE_SIZE,
    PARTIAL_RESULTS_PATH,
    QUICK_BIG_FILE_SIZE,
    QUICK_MEDIUM_FILE_COUNT,
    QUICK_RESULTS_PATH,
    QUICK_SMALL_FILE_COUNT,
    QUICK_TINY_FILE_COUNT,
    QUICK_UPLOAD_SIZE,
    RESULTS_PATH,
    SMALL_FILE_COUNT,
    SMALL_FILE_SIZE,
    SMALL_FILES_PER_FOLDER,
    TINY_FILE_COUNT,
    TINY_FILE_SIZE,
    UPLOAD_CLIENTS,
    UPLOAD_SIZE,
    KiB,
)
from bench.data import (
    FIRST_BYTE_WORKLOAD,
    MANY_FILE_WORKLOADS,
    Workload,
    check_free_space,
    make_big,
    make_first_byte,
    make_small,
    make_uploads,
)
from bench.fresh_disk import fresh_disk
from bench.fresh_disk import unavailable_reason as fresh_disk_unavailable
from bench.isolation import ISOLATED_COMMAND, is_isolated, non_loopback_interfaces
from bench.report import RunInfo, render
from bench.results import RowResult, best, unavailable
from bench.rows import Row, RunContext, all_rows

#: Rows that may run outside an isolated namespace: they only touch 127.0.0.1.
LOOPBACK_ONLY_ROWS = frozenset({"tcp", "tls", "tar", "share"})
WORKLOAD_KEYS = ("big", *MANY_FILE_WORKLOADS, "uploads", FIRST_BYTE_WORKLOAD)
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
#: Name prefix of each run's own folder inside the work folder.
RUN_DIR_PREFIX = "run-"
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
        description="Compare p2p-transfer with magic-wormhole, raw iroh, raw TLS, plain TCP and "
        "tar on loopback, time its first byte to a paired device, and measure its HTTP share "
        "server under browser-like uploads."
        f" Run it isolated: {ISOLATED_COMMAND} (as make bench does).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_BIG_FILE_SIZE >> 20} MiB, "
        f"{QUICK_SMALL_FILE_COUNT:,} / {QUICK_MEDIUM_FILE_COUNT:,} / {QUICK_TINY_FILE_COUNT:,} "
        f"files and uploads of {QUICK_UPLOAD_SIZE >> 20} MiB; report to bench/results/quick.md",
    )
    parser.add_argument(
        "--only", default=",".join(keys), help=f"comma-separated rows to run, of: {', '.join(keys)}"
    )
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOAD_KEYS),
        help="comma-separated workloads: big (one file), small, medium, tiny (many files of "
        f"4 KiB, 64 KiB, 1 KiB), uploads ({UPLOAD_CLIENTS} uploads to the share server at once), "
        f"{FIRST_BYTE_WORKLOAD} (time to the first progress of a send to a paired device)",
    )
    parser.add_argument("--size", type=parse_size, help="size of the big file (e.g. 256MiB)")
    parser.add_argument("--files", type=int, help="number of small files")
    parser.add_argument(
        "--medium-files", type=int, help=f"number of medium files (default {MEDIUM_FILE_COUNT:,})"
    )
    parser.add_argument(
        "--tiny-files", type=int, help=f"number of tiny files (default {TINY_FILE_COUNT:,})"
    )
    parser.add_argument(
        "--upload-size",
        type=parse_size,
        help=f"size of each of the {UPLOAD_CLIENTS} concurrent uploads (default 200MiB)",
    )
    parser.add_argument(
        "--file-size",
        type=parse_size,
        default=SMALL_FILE_SIZE,
        help="size of each small file (default 4KiB)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help=f"runs per row and workload (default: {FULL_RUN_REPEAT} for a full run, else 1); "
        "the fastest verified one is reported",
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds one run may take (default: derived from the size)"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="folder in which each run makes (and then removes) its own data folder",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    parser.add_argument(
        "--same-disk", action="store_true",
        help="receive on the work folder's own disk, not a new file system per run",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the markdown report (default: bench/results.md for a full "
        "run, else bench/results/quick.md or partial.md)",
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
    if args.medium_files is None:
        args.medium_files = QUICK_MEDIUM_FILE_COUNT if args.quick else MEDIUM_FILE_COUNT
    if args.tiny_files is None:
        args.tiny_files = QUICK_TINY_FILE_COUNT if args.quick else TINY_FILE_COUNT
    if args.upload_size is None:
        args.upload_size = QUICK_UPLOAD_SIZE if args.quick else UPLOAD_SIZE
    args.mode = run_mode(args, keys)
    if args.repeat is None:
        args.repeat = FULL_RUN_REPEAT if args.mode == "full" else 1
    if args.output is None:
        args.output = {"quick": QUICK_RESULTS_PATH, "full": RESULTS_PATH}.get(
            args.mode, PARTIAL_RESULTS_PATH
        )
    counts = (args.repeat, args.files, args.medium_files, args.tiny_files)
    if min(*counts, args.size, args.upload_size) < 1:
        parser.error(
            "--repeat, --files, --medium-files, --tiny-files, --size and --upload-size "
            "must be positive"
        )
    return args


def run_mode(args: argparse.Namespace, keys: Sequence[str]) -> str:
    """``full`` (every row and workload, default sizes), ``quick``, or ``partial``."""
    if args.quick:
        return "quick"
    complete = set(args.only) == set(keys) and set(args.workloads) == set(WORKLOAD_KEYS)
    default_sizes = (
        args.size,
        args.files,
        args.file_size,
        args.medium_files,
        args.tiny_files,
        args.upload_size,
    ) == (
        BIG_FILE_SIZE,
        SMALL_FILE_COUNT,
        SMALL_FILE_SIZE,
        MEDIUM_FILE_COUNT,
        TINY_FILE_COUNT,
        UPLOAD_SIZE,
    )
    return "full" if complete and default_sizes else "partial"


def many_file_specs(args: argparse.Namespace) -> dict[str, tuple[int, int]]:
    """Count and size of the files of each many-file workload."""
    return {
        "small": (args.files, args.file_size),
        "medium": (args.medium_files, MEDIUM_FILE_SIZE),
        "tiny": (args.tiny_files, TINY_FILE_SIZE),
    }


def needed_space(args: argparse.Namespace, rows: Sequence[Row]) -> int:
    """Bytes a run writes at most: the source and one received copy of each workload.

    Every received copy of a many-file tree stays until the end (SET_ASIDE_FILES),
    as does a zip of it, which magic-wormhole's receiver spools (one such tree
    counted per workload); each file and folder takes at least a block. The
    uploads workload's source is one file, received once per client.
    """
    needed = 0
    if "big" in args.workloads:
        needed += 2 * args.size
    if FIRST_BYTE_WORKLOAD in args.workloads:
        needed += 2 * FIRST_BYTE_FILE_SIZE
    if "uploads" in args.workloads:
        needed += (1 + UPLOAD_CLIENTS) * args.upload_size
    for key, (count, size) in many_file_specs(args).items():
        if key not in args.workloads:
            continue
        folders = -(-count // SMALL_FILES_PER_FOLDER)
        tree = count * max(size, _FS_BLOCK) + folders * _FS_BLOCK
        receivers = sum(key in row.workloads for row in rows)
        needed += (2 + receivers * args.repeat) * tree
    return needed


def prepare_workloads(args: argparse.Namespace, run_dir: Path) -> list[Workload]:
    """Write the source data under ``run_dir``, in WORKLOAD_KEYS order."""
    source = run_dir / "source"
    workloads = []
    if "big" in args.workloads:
        log(f"writing one file of {args.size:,} bytes")
        workloads.append(make_big(source, args.size))
    for key, (count, size) in many_file_specs(args).items():
        if key in args.workloads:
            log(f"writing {count:,} files of {size:,} bytes ({key})")
            workloads.append(make_small(source, count, size, key))
    if "uploads" in args.workloads:
        log(f"writing one file of {args.upload_size:,} bytes for {UPLOAD_CLIENTS} uploads")
        workloads.append(make_uploads(source, UPLOAD_CLIENTS, args.upload_size))
    if FIRST_BYTE_WORKLOAD in args.workloads:
        log(f"writing one file of {FIRST_BYTE_FILE_SIZE:,} bytes to send to a paired device")
        workloads.append(make_first_byte(source, FIRST_BYTE_FILE_SIZE))
    return workloads


def make_run_dir(parent: Path) -> Path:
    """A new folder for this run's data under ``parent``; only it is ever deleted.

    Its own folder per run: two runs at once (several engineers share this
    machine) must not delete each other's data, and ``--work-dir /tmp`` is safe.
    """
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir=parent))


def log(message: str) -> None:
    """Progress goes to stderr; stdout gets the report."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def unavailable_reason(row: Row) -> str | None:
    """Why ``row`` cannot run in this process, or None."""
    reason = row.unavailable_reason()
    if reason is None and not is_isolated() and row.key not in LOOPBACK_ONLY_ROWS:
        reason = (
            f"not in an isolated network namespace (interfaces: "
            f"{', '.join(non_loopback_interfaces())}); run {ISOLATED_COMMAND}"
        )
    return reason


def run_all(
    rows: Sequence[Row], workloads: Sequence[Workload], run_dir: Path, args: argparse.Namespace
) -> list[RowResult]:
    """Every run, interleaved: round by round, workload by workload, row by row.

    Rows compared in a ratio run back to back, so a change in the load of
    this shared machine touches them alike; with ``--repeat`` the
    fastest verified run of each row is kept.
    """
    results: list[RowResult] = []
    runnable = []
    for row in rows:
        reason = unavailable_reason(row)
        if reason is None:
            runnable.append(row)
        else:
            log(f"{row.label}: unavailable: {reason}")
            results += [
                unavailable(row.label, w, reason) for w in workloads if w.key in row.workloads
            ]
    runs: dict[tuple[str, str], list[RowResult]] = {}
    started: list[Row] = []
    try:
        for row in runnable:
            row.setup(run_dir)
            started.append(row)
        run_index = 0
        for _ in range(args.repeat):
            for workload in workloads:
                for row in runnable:
                    if workload.key not in row.workloads:
                        continue
                    with _run_disk(run_dir, workload, args.fresh_disk) as disk:
                        ctx = RunContext(run_dir, run_index, args.timeout, disk)
                        run_index += 1
                        try:
                            result = row.run(workload, ctx)
                        finally:
                            ctx.clean()
                    log(f"{row.label}, {workload.title}: {summary(result)}")
                    runs.setdefault((row.key, workload.key), []).append(result)
    finally:
        for row in started:
            row.teardown()
    results += [best(found) for found in runs.values()]
    return results


@contextlib.contextmanager
def _run_disk(run_dir: Path, workload: Workload, fresh: bool) -> Iterator[Path | None]:
    """A new file system for one run (bench.fresh_disk) when ``fresh``, else None."""
    if not fresh:
        yield None
        return
    folders = -(-workload.file_count // SMALL_FILES_PER_FOLDER)
    with fresh_disk(run_dir / "disk", workload.total_bytes, workload.file_count + folders) as disk:
        yield disk


def summary(result: RowResult) -> str:
    """One line for the progress log."""
    if not result.ok:
        return result.status
    if result.first_progress:
        return (
            f"first progress {result.first_progress_best:.3f} s best, "
            f"{result.first_progress_median:.3f} s median of {len(result.first_progress)}"
        )
    files = f", {result.files_per_second:,.0f} files/s" if result.workload.many_files else ""
    return (
        f"{result.megabytes_per_second:,.1f} MB/s{files}, "
        f"{result.wall_seconds:.2f} s, CPU {result.cpu_seconds:.2f} s, "
        f"peak RSS {result.sender_rss_bytes / MB:,.0f} / {result.receiver_rss_bytes / MB:,.0f} MB"
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
    # Write only the data some selected row takes (the uploads are the share row's alone).
    args.workloads = [k for k in args.workloads if any(k in row.workloads for row in selected)]
    check_free_space(args.work_dir, needed_space(args, selected))
    disk_problem = "--same-disk" if args.same_disk else fresh_disk_unavailable()
    args.fresh_disk = disk_problem is None
    if disk_problem is not None:
        log(f"runs write to the work folder's own disk: no fresh file system ({disk_problem})")
    run_dir = make_run_dir(args.work_dir)
    results: list[RowResult] = []
    try:
        workloads = prepare_workloads(args, run_dir)
        load_before = os.getloadavg()[0]
        results = run_all(selected, workloads, run_dir, args)
        load_after = os.getloadavg()[0]
    finally:
        if args.keep:
            log(f"work folder kept: {run_dir}")
        else:
            clean_work_dir(run_dir, keep_logs=any(r.failed for r in results))
    info = RunInfo(
        mode=args.mode,
        repeat=args.repeat,
        isolated=is_isolated(),
        fresh_disk=args.fresh_disk,
        load_before=load_before,
        load_after=load_after,
    )
    keys = [workload.key for workload in workloads]
    order = {row.label: index for index, row in enumerate(selected)}
    ordered = sorted(results, key=lambda r: (keys.index(r.workload.key), order[r.tool]))
    report = render(info, workloads, ordered)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    log(f"report written to {args.output}")
    return 1 if any(r.failed for r in results) else 0
