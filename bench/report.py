"""The markdown report: context, one table per workload, and the acceptance ratios."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.config import FIRST_BYTE_TARGET, MB, REPO_ROOT, SHARE_RSS_TARGET
from bench.data import FIRST_BYTE_WORKLOAD, Workload
from bench.results import RowResult
from bench.rows import code, iroh_raw, p2p, share, tar, tls, wormhole

THROUGHPUT = "throughput"
CPU = "CPU seconds"


@dataclass(frozen=True)
class Ratio:
    """One line of the ratio table: ``top`` over ``bottom`` in ``measure``."""

    top: str  # row label
    bottom: str  # row label
    measure: str  # THROUGHPUT or CPU


#: The ratios the acceptance needs (issue 7: the default path against
#: magic-wormhole, the QUIC path against raw iroh), how close the default
#: (TCP) path gets to raw TLS, its ceiling, and to tar over TCP (issue 16: what
#: a folder costs with no protocol and no crypto); and issue 25's two code rows
#: against magic-wormhole, which users of a code compare us with.
RATIOS = tuple(
    Ratio(top, bottom, measure)
    for top, bottom in (
        (p2p.LABEL, wormhole.LABEL),
        (code.CODE_LABEL, wormhole.LABEL),
        (code.WORMHOLE_TO_P2P_LABEL, wormhole.LABEL),
        (p2p.QUIC_LABEL, iroh_raw.LABEL),
        (p2p.LABEL, tls.LABEL),
        (p2p.LABEL, tar.LABEL),
    )
    for measure in (THROUGHPUT, CPU)
)
#: Issue 7's bar for one 1 GiB file, p2p-transfer (default path) over magic-wormhole.
TARGET_NOTE = (
    "Target (issue 7, one 1 GiB file): p2p-transfer / magic-wormhole throughput ≥ 1.50× "
    "and CPU seconds ≤ 0.60×."
)
#: Issue 16's bar, and how the figure relates to it (see bench/rows/p2p.py).
FIRST_BYTE_NOTE = (
    f"Target (issue 16): the first byte of file data on the wire ≤ {FIRST_BYTE_TARGET} s "
    "after `send` starts, for a paired device on loopback. Measured from the spawn of "
    "`send --json` (no code: the config folders paired once before) to the moment its first "
    "`progress` event with bytes moved was read; a fresh `receive` waits, ready at its ticket "
    "line. That first event is never throttled and follows the first piece of the file handed "
    "to the socket (up to 1 MiB on TCP, 256 KiB on QUIC), so it comes a few ms after the first "
    "byte: the figure bounds the target's time from above. Both sides run with the default "
    "relay setting (relays tried in the background; issue 25: a LAN with no internet, as "
    "this namespace is, must not get slower)."
)
#: Why the reference rows are missing from the tiny-file table (their ``workloads``).
TINY_NOTE = (
    f"{iroh_raw.LABEL} and {tls.LABEL} do not take this workload: on it their peers' own "
    "per-file Python loop, not the transport, sets the pace (slower than p2p-transfer), so "
    "they are no ceiling."
)
#: Workloads without a throughput table.
_UNTABLED = ("uploads", FIRST_BYTE_WORKLOAD)
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
    fresh_disk: bool = False  # each run received into a new file system (bench.fresh_disk)


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
    if workload.key == "tiny":
        lines += [TINY_NOTE, ""]
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
    workloads = [w for w in workloads if w.key not in _UNTABLED]  # no rival row / no throughput
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


def first_byte_lines(results: Sequence[RowResult]) -> list[str]:
    """Issue 16's figure: time to the first progress of a send to a paired device."""
    found = [r for r in results if r.workload.key == FIRST_BYTE_WORKLOAD]
    if not found:
        return []
    lines = [
        "### Time to first byte, paired device",
        "",
        f"{found[0].workload.title}. {FIRST_BYTE_NOTE}",
        "",
        "| tool | result | sends | best s | median s | median ≤ target | notes |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for result in found:
        if not result.ok:
            cells = [_cell(result.status), *[_NO_FIGURE] * 4]
        else:
            median = result.first_progress_median
            cells = [
                "verified",
                str(len(result.first_progress)),
                f"{result.first_progress_best:.3f}",
                f"{median:.3f}",
                "yes" if median <= FIRST_BYTE_TARGET else "NO",
            ]
        lines.append("| " + " | ".join([result.tool, *cells, _cell(result.note)]) + " |")
    return lines


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
        "- Disk: "
        + ("each run receives into a new ext4 file system (loop device, no journal, like "
           "this machine's disk), so no run's creates pay for another run's deletions"
           if info.fresh_disk else "the work folder's own disk"),
        "- Wall time: first process started → last process exited (setup included, "
        "as a user sees it); MB = 10^6 bytes",
        "- CPU: user + system seconds of sender and receiver, from `wait4` rusage "
        "(each process with the children it reaped); peak RSS: `ru_maxrss` of each side",
        "- A row is *verified* only when both processes exited 0 and the received tree "
        "is byte-identical (BLAKE3) to the source; otherwise it shows why, and no figures",
        "",
    ]
    for workload in workloads:
        if workload.key == FIRST_BYTE_WORKLOAD:
            continue
        lines += workload_table(workload, [r for r in results if r.workload.key == workload.key])
        lines.append("")
    lines += ratio_lines(workloads, results)
    lines.append("")
    for section in (first_byte_lines(results), share_rss_lines(results)):
        if section:
            lines += [*section, ""]
    return "\n".join(lines)
