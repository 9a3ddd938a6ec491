"""The markdown report: context, one table per workload, and the acceptance ratios."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.config import MB, REPO_ROOT, SHARE_RSS_TARGET
from bench.data import Workload
from bench.results import RowResult
from bench.rows import iroh_raw, p2p, share, tls, wormhole

THROUGHPUT = "throughput"
CPU = "CPU seconds"


@dataclass(frozen=True)
class Ratio:
    """One line of the ratio table: ``top`` over ``bottom`` in ``measure``."""

    top: str  # row label
    bottom: str  # row label
    measure: str  # THROUGHPUT or CPU


#: The ratios the acceptance needs (issue 7: the default path against
#: magic-wormhole, the QUIC path against raw iroh), and how close the default
#: (TCP) path gets to raw TLS, its ceiling.
RATIOS = tuple(
    Ratio(top, bottom, measure)
    for top, bottom in (
        (p2p.LABEL, wormhole.LABEL),
        (p2p.QUIC_LABEL, iroh_raw.LABEL),
        (p2p.LABEL, tls.LABEL),
    )
    for measure in (THROUGHPUT, CPU)
)
#: Issue 7's bar for one 1 GiB file, p2p-transfer (default path) over magic-wormhole.
TARGET_NOTE = (
    "Target (issue 7, one 1 GiB file): p2p-transfer / magic-wormhole throughput ≥ 1.50× "
    "and CPU seconds ≤ 0.60×."
)
_NO_FIGURE = "—"
_VERSIONED_PACKAGES = ("iroh", "blake3", "magic-wormhole")


@dataclass(frozen=True)
class RunInfo:
    """How the figures were obtained, for the header."""

    mode: str  # "full", "quick" or "partial"
    repeat: int
    isolated: bool
    load_before: float  # 1-minute load average when the runs began
    load_after: float  # and when they ended: others share this machine


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cell(text: str) -> str:
    """Table-safe text, without this machine's paths (the report is committed)."""
    text = text.replace(str(REPO_ROOT), "<repo>").replace(str(Path.home()), "~")
    return text.replace("|", "\\|").replace("\n", " ")


def _mb(size: int) -> str:
    return f"{size / MB:,.0f}" if size else _NO_FIGURE


def _row_cells(result: RowResult, many_files: bool) -> list[str]:
    if not result.ok:
        blanks = 8 if many_files else 6
        return [result.tool, _cell(result.status), *[_NO_FIGURE] * blanks, _cell(result.note)]
    speed = (
        [f"{result.files_per_second:,.0f}", f"{result.megabytes_per_second:,.1f}"]
        if many_files
        else [f"{result.megabytes_per_second:,.0f}"]
    )
    cpu = [f"{result.cpu_seconds:.2f}"]
    if many_files:
        cpu.append(f"{result.cpu_ms_per_file:.3f}")
    cpu.append(f"{result.cpu_seconds_per_gib:.1f}")
    return [
        result.tool,
        "verified",
        *speed,
        f"{result.wall_seconds:.2f}",
        *cpu,
        _mb(result.sender_rss_bytes),
        _mb(result.receiver_rss_bytes),
        _cell(result.note),
    ]


def workload_table(workload: Workload, results: Sequence[RowResult]) -> list[str]:
    """Markdown lines of one workload's table."""
    many_files = workload.many_files
    speed = ["files/s", "MB/s"] if many_files else ["MB/s"]
    cpu = ["CPU s", "CPU ms/file", "CPU s/GiB"] if many_files else ["CPU s", "CPU s/GiB"]
    header = [
        "tool",
        "result",
        *speed,
        "wall s",
        *cpu,
        "peak RSS sender MB",
        "peak RSS receiver MB",
        "notes",
    ]
    lines = [f"### {workload.title} ({workload.total_bytes / MB:,.1f} MB)", ""]
    if workload.key == "uploads":
        lines += [
            "Only the share server takes this workload: its clients upload one file "
            f"{workload.file_count} times at once, so MB/s is their aggregate.",
            "",
        ]
    lines.append("| " + " | ".join(header) + " |")
    aligns = ["---", "---"] + ["---:"] * (len(header) - 3) + ["---"]
    lines.append("|" + "|".join(aligns) + "|")
    for result in results:
        lines.append("| " + " | ".join(_row_cells(result, many_files)) + " |")
    return lines


def _ratio(ratio: Ratio, top: RowResult, bottom: RowResult) -> float:
    """Above 1 in throughput, below 1 in CPU, means ``top`` is better."""
    if ratio.measure == THROUGHPUT:
        return bottom.wall_seconds / top.wall_seconds  # same bytes: throughput is 1/wall
    return top.cpu_seconds / bottom.cpu_seconds


def ratio_lines(workloads: Sequence[Workload], results: Sequence[RowResult]) -> list[str]:
    """The throughput and CPU ratios the acceptance needs, per workload."""
    by_key = {(r.tool, r.workload.key): r for r in results}
    workloads = [w for w in workloads if w.key != "uploads"]  # no rival row to compare with
    lines = [
        "### Ratios (same run)",
        "",
        "Throughput above 1 and CPU seconds below 1 mean the first row does better. "
        + TARGET_NOTE,
        "",
        "| ratio | " + " | ".join(w.title for w in workloads) + " |",
        "|---|" + "---:|" * len(workloads),
    ]
    for ratio in RATIOS:
        cells = []
        for workload in workloads:
            a = by_key.get((ratio.top, workload.key))
            b = by_key.get((ratio.bottom, workload.key))
            if a is not None and b is not None and a.ok and b.ok:
                cells.append(f"{_ratio(ratio, a, b):.2f}×")
            else:
                cells.append("n/a")
        name = f"{ratio.top} / {ratio.bottom}, {ratio.measure}"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def share_rss_lines(results: Sequence[RowResult]) -> list[str]:
    """Issue 5's figure: the share server's peak RSS during the concurrent uploads."""
    found = [r for r in results if r.tool == share.LABEL and r.workload.key == "uploads"]
    if not found:
        return []
    result = found[0]
    lines = ["### Share server memory", ""]
    if not result.ok:
        return [*lines, f"Peak RSS of the share server: no figure ({_cell(result.status)})."]
    peak = result.receiver_rss_bytes
    verdict = "met" if peak < SHARE_RSS_TARGET else "NOT met"
    return [
        *lines,
        f"Peak RSS of the share server while {result.workload.title.replace(' at once', '')} "
        f"ran at once: {peak / MB:,.1f} MB (issue 5's target: under "
        f"{SHARE_RSS_TARGET / MB:,.0f} MB; {verdict}); aggregate "
        f"{result.megabytes_per_second:,.0f} MB/s.",
    ]


def render(info: RunInfo, workloads: Sequence[Workload], results: Sequence[RowResult]) -> str:
    """The whole report as markdown."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(f"{name} {_version(name)}" for name in _VERSIONED_PACKAGES)
    sizes = "; ".join(w.title for w in workloads)
    lines = [
        "# Benchmark: p2p-transfer and its peers on loopback",
        "",
        f"- Date: {now}; mode: {info.mode} (best of {info.repeat} run(s) per row)",
        f"- Machine: {os.cpu_count()} cores ({_cpu_model()}), {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}; {versions}",
        f"- Load average (1 min), shared machine: {info.load_before:.2f} before the runs, "
        f"{info.load_after:.2f} after",
        f"- Workloads: {sizes}; pseudo-random (incompressible) data",
        "- Network: "
        + ("a network namespace with only loopback" if info.isolated else "host (loopback)"),
        "- Wall time: first process started → last process exited (setup included, "
        "as a user sees it); MB = 10^6 bytes",
        "- CPU: user + system seconds of sender and receiver, from `wait4` rusage "
        "(each process with the children it reaped); peak RSS: `ru_maxrss` of each side",
        "- A row is *verified* only when both processes exited 0 and the received tree "
        "is byte-identical (BLAKE3) to the source; otherwise it shows why, and no figures",
        "",
    ]
    for workload in workloads:
        lines += workload_table(workload, [r for r in results if r.workload.key == workload.key])
        lines.append("")
    lines += ratio_lines(workloads, results)
    lines.append("")
    memory = share_rss_lines(results)
    if memory:
        lines += [*memory, ""]
    return "\n".join(lines)
