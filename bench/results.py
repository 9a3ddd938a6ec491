"""One measured row of the table, and the figures derived from it."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from bench.config import MB, GiB
from bench.data import Workload

OK = "ok"
FAILED = "FAILED"


@dataclass
class RowResult:
    """The outcome of one tool on one workload.

    ``status`` is ``"ok"`` only when both processes exited 0 and the received
    tree is byte-identical to the source; otherwise it says what went wrong,
    and the report prints no figures for the row.
    """

    tool: str
    workload: Workload
    status: str
    wall_seconds: float = 0.0  # first process started → last process exited
    cpu_seconds: float = 0.0  # user + system of sender and receiver
    sender_rss_bytes: int = 0
    receiver_rss_bytes: int = 0
    note: str = ""
    #: The first-byte workload's figure, one per timed send: seconds from the
    #: sender's spawn to its first progress event (empty for every other workload).
    first_progress: tuple[float, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the run finished and its output was verified."""
        return self.status == OK

    @property
    def failed(self) -> bool:
        """True when the tool could run but the run went wrong (not merely unavailable)."""
        return self.status.startswith(FAILED)

    @property
    def first_progress_best(self) -> float:
        """The quickest of the timed sends' first progress."""
        return min(self.first_progress)

    @property
    def first_progress_median(self) -> float:
        """The median of the timed sends' first progress."""
        return statistics.median(self.first_progress)

    @property
    def megabytes_per_second(self) -> float:
        """Payload bytes over wall time, in MB/s (10^6 B)."""
        return self.workload.total_bytes / MB / self.wall_seconds

    @property
    def files_per_second(self) -> float:
        """Files over wall time."""
        return self.workload.file_count / self.wall_seconds

    @property
    def cpu_seconds_per_gib(self) -> float:
        """CPU seconds of both sides per GiB of payload."""
        return self.cpu_seconds * GiB / self.workload.total_bytes

    @property
    def cpu_ms_per_file(self) -> float:
        """CPU milliseconds of both sides per file."""
        return self.cpu_seconds * 1000 / self.workload.file_count


def failed(tool: str, workload: Workload, reason: str, note: str = "") -> RowResult:
    """A row that produced no trustworthy figure."""
    return RowResult(tool=tool, workload=workload, status=f"{FAILED}: {reason}", note=note)


def unavailable(tool: str, workload: Workload, reason: str) -> RowResult:
    """A row whose tool cannot run here (yet)."""
    return RowResult(tool=tool, workload=workload, status=f"unavailable: {reason}")


def best(results: list[RowResult]) -> RowResult:
    """The fastest verified run of several, else the last failure.

    On a shared machine the fastest run is the one least disturbed by others.
    First-byte results carry the first-progress times of every verified run.
    """
    verified = [result for result in results if result.ok]
    if not verified:
        return results[-1]
    fastest = min(verified, key=lambda result: result.wall_seconds)
    if fastest.first_progress:
        # A start-up time is summed up by best and median of every send, not one round's.
        samples = tuple(time for result in verified for time in result.first_progress)
        return replace(fastest, first_progress=samples)
    return fastest
