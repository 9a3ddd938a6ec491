"""What every row shares: its interface, the run context, and the two-peer run."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import (
    LOGS_DIR,
    RUN_TIMEOUT_BASE,
    SET_ASIDE_DIR,
    SLOWEST_FILE_RATE,
    SLOWEST_RATE,
    STARTUP_TIMEOUT,
)
from bench.data import MANY_FILE_WORKLOADS, Workload, discard_tree, tree_digest
from bench.results import OK, RowResult, failed
from bench.runner import Child, ChildError, Children, wait_all

#: Checks a row adds after the tree comparison: (sender, receiver) → problem or None.
ExtraCheck = Callable[[Child, Child], "str | None"]


@dataclass
class RunContext:
    """Where and under which number one run of one row happens."""

    work_dir: Path
    run_index: int = 0
    timeout: float | None = None  # None: derived from the workload
    #: A new file system for this run's output and scratch (bench.fresh_disk), else
    #: None: they go to the work dir's disk.
    disk: Path | None = None

    def out_dir(self, tool_key: str) -> Path:
        """A fresh, empty folder for the receiver's output."""
        path = self._written / "out" / tool_key
        self._discard(path)
        path.mkdir(parents=True)
        return path

    def log_dir(self, tool_key: str, workload: Workload) -> Path:
        """Folder for the children's stderr of this run."""
        return self.work_dir / LOGS_DIR / f"{tool_key}-{workload.key}-{self.run_index}"

    def scratch(self, tool_key: str) -> Path:
        """A fresh folder for a tool's config or temporary files."""
        path = self._written / "scratch" / tool_key
        self._discard(path)
        path.mkdir(parents=True)
        return path

    def clean(self) -> None:
        """Remove what a run received or wrote besides its logs (keeps the disk need low);
        a fresh disk goes whole instead."""
        if self.disk is None:
            for name in ("out", "scratch"):
                self._discard(self.work_dir / name)

    @property
    def _written(self) -> Path:
        """Where the run's output and scratch go."""
        return self.disk or self.work_dir

    def _discard(self, path: Path) -> None:
        discard_tree(path, self.work_dir / SET_ASIDE_DIR)

    def run_timeout(self, workload: Workload) -> float:
        """Time a run may take before it is stopped and marked failed."""
        if self.timeout is not None:
            return self.timeout
        return (
            RUN_TIMEOUT_BASE
            + workload.total_bytes / SLOWEST_RATE
            + workload.file_count / SLOWEST_FILE_RATE
        )


@dataclass
class Row:
    """One tool of the table. Subclasses fill in ``run``."""

    key: str  # name on the command line (--only)
    label: str  # name in the table
    workloads: Sequence[str] = ("big", *MANY_FILE_WORKLOADS)

    def unavailable_reason(self) -> str | None:
        """Why this row cannot run here, or None when it can."""
        return None

    def setup(self, work_dir: Path) -> None:
        """Start what the row needs across runs (servers); nothing by default."""

    def teardown(self) -> None:
        """Stop what ``setup`` started."""

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        """Send ``workload`` once and measure it."""
        raise NotImplementedError


def python_module(module: str, *args: str) -> list[str]:
    """argv running one of the benchmark's peer modules with this interpreter."""
    return [sys.executable, "-m", module, *args]


def run_pair(
    row: Row,
    workload: Workload,
    ctx: RunContext,
    *,
    receiver: Callable[[Path], Sequence[str]],
    sender: Callable[[str], Sequence[str]],
    ready_event: str = "ticket",
    ready_field: str = "ticket",
    extra_check: ExtraCheck | None = None,
    note: str = "",
) -> RowResult:
    """Receiver first, then the sender once the receiver printed its address.

    ``receiver(out_dir)`` gives the receiver's argv; it must print a JSON line
    ``{"event": ready_event, ready_field: ADDRESS}``; ``sender(ADDRESS)`` gives
    the sender's argv. Wall time runs from the receiver's start to the last
    exit, as a user starting both would see it.
    """
    out = ctx.out_dir(row.key)
    with Children(ctx.log_dir(row.key, workload)) as children:
        rx = children.start("receiver", receiver(out))
        try:
            ready: dict[str, Any] = rx.wait_for_event(ready_event, STARTUP_TIMEOUT)
        except ChildError as error:
            return failed(row.label, workload, str(error), note)
        tx = children.start("sender", sender(str(ready[ready_field])))
        return finish_pair(
            row, workload, ctx, out, sender=tx, receiver=rx, extra_check=extra_check, note=note
        )


def finish_pair(
    row: Row,
    workload: Workload,
    ctx: RunContext,
    out: Path,
    *,
    sender: Child,
    receiver: Child,
    extra_check: ExtraCheck | None = None,
    note: str = "",
) -> RowResult:
    """Wait for both started peers, verify ``out`` and build the row's result.

    Wall time runs from the first of the two starts to the last exit.
    """
    deadline = min(sender.started, receiver.started) + ctx.run_timeout(workload)
    try:
        tx_usage, rx_usage = wait_all([sender, receiver], deadline)
    except ChildError as error:
        return failed(row.label, workload, str(error), note)
    problem = verify_output(out, workload)
    if problem is None and extra_check is not None:
        problem = extra_check(sender, receiver)
    if problem is not None:
        return failed(row.label, workload, problem, note)
    return RowResult(
        tool=row.label,
        workload=workload,
        status=OK,
        wall_seconds=max(tx_usage.ended, rx_usage.ended) - min(tx_usage.started, rx_usage.started),
        cpu_seconds=tx_usage.cpu_seconds + rx_usage.cpu_seconds,
        sender_rss_bytes=tx_usage.max_rss_bytes,
        receiver_rss_bytes=rx_usage.max_rss_bytes,
        note=note,
    )


def verify_output(out: Path, workload: Workload) -> str | None:
    """None when ``out`` holds exactly the source tree, byte for byte; else why not."""
    if tree_digest(out) == workload.digest:
        return None
    files = [path for path in out.rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in files)
    return (
        f"received tree differs from the source: {len(files):,} files, {size:,} bytes "
        f"(sent {workload.file_count:,} files, {workload.total_bytes:,} bytes)"
    )


def same_digests(sender: Child, receiver: Child) -> str | None:
    """The raw peers hashed what they saw: the sender's and receiver's tree digests agree."""
    digests = []
    for child in (sender, receiver):
        done = [event for event in child.events() if event.get("event") == "done"]
        if not done:
            return f"{child.name} printed no 'done' line"
        digests.append(done[-1].get("digest"))
    if digests[0] != digests[1]:
        return "sender's and receiver's BLAKE3 digests differ"
    return None


@dataclass
class PeerCopyRow(Row):
    """Two processes of one ``bench.peers`` module: ``receive OUT`` prints its
    address, ``send ADDRESS PATH`` copies the workload to it."""

    peer: str = ""  # the module, e.g. "bench.peers.tls"
    note: str = ""
    #: Whether both sides report a BLAKE3 of what they moved, to compare.
    check_digests: bool = True

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        return run_pair(
            self,
            workload,
            ctx,
            receiver=lambda out: python_module(self.peer, "receive", str(out)),
            sender=lambda address: python_module(self.peer, "send", address, str(workload.path)),
            extra_check=same_digests if self.check_digests else None,
            note=self.note,
        )
