"""Rows: p2p-transfer itself, two CLI processes, as a user runs them.

Each run uses fresh config folders, so it is a first contact: the receiver's
fixed ``--code`` is typed by the sender, as a user does the first time. Two
rows: the default (``--transport auto``, which on loopback's direct path puts
the file data on TLS over TCP) and ``--transport quic`` on both sides (data on
QUIC streams, as across NAT). A run counts only when both sides' ``connection``
events name the data path the row claims.

The same rows time issue 16's start-up figure on the first-byte workload: the
two config folders pair once (a first send with the code stores the trust), then
each timed send starts a fresh ``receive`` (without a code), waits for its ticket
line, spawns ``send`` (without a code: the sender must say it was verified by
the pairing) and reads the sender's JSON lines until its first ``progress``
event that counts moved bytes. The figure runs from the launcher's spawn of
``send`` to the moment the harness read that line, on the shared monotonic
clock. The sender emits at most PROGRESS_EVENTS_PER_SECOND progress events, but
the first is never held back (its throttle starts at minus infinity); on the TCP
path it follows the pump's first piece (up to 1 MiB) handed to the TLS socket,
on the QUIC path the first 256 KiB written to the stream; JSON lines are flushed
once per turn of the event loop. So the event comes a few milliseconds after the
first byte of file data went on the wire: the figure is an upper bound on that
time. (Files of up to 256 KiB are counted when they join a batch, before it is
written: hence a file larger than that, see FIRST_BYTE_FILE_SIZE.)

Neither side is given ``--relay``: the default (iroh's public relays, tried in
the background) is what users run, and issue 25 asks that it cost nothing on a
LAN with no internet, which the benchmark's namespace (only loopback) is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from bench.config import FIRST_BYTE_SENDS, P2P_CODE, STARTUP_TIMEOUT
from bench.data import FIRST_BYTE_WORKLOAD, MANY_FILE_WORKLOADS, Workload
from bench.results import FAILED, RowResult, failed
from bench.rows.base import ExtraCheck, Row, RunContext, finish_pair, run_pair
from bench.runner import Child, ChildError, Children, monotonic, peer_env

_COMMANDS_NEEDED = ("receive", "send")

#: Names of the rows in the table.
LABEL = "p2p-transfer"
QUIC_LABEL = "p2p-transfer (QUIC)"

DataPath = Literal["tcp", "quic"]
VerifiedBy = Literal["code", "pairing"]

#: Folder of the work dir holding each row's two paired config folders; unlike a
#: run's scratch, it lasts for the whole benchmark, so the rows pair only once.
PAIRED_DIR = "paired"


def cli_path() -> Path:
    """The ``p2p-transfer`` script installed beside this interpreter."""
    return Path(sys.executable).parent / "p2p-transfer"


def receiver_done(receiver: Child) -> str | None:
    """The receiver must have said the session is done (it verified every file)."""
    if not any(event.get("event") == "done" for event in receiver.events()):
        return "receiver exited 0 but printed no 'done' event"
    return None


def data_path_problem(child: Child, expected: DataPath) -> str | None:
    """None when ``child``'s connection events say ``expected`` carried the data."""
    paths = {
        event.get("data_path")
        for event in child.events()
        if event.get("event") == "connection" and event.get("data_path")
    }
    if paths != {expected}:
        seen = ", ".join(sorted(paths)) or "none"
        return f"{child.name} reported data path {seen}, not {expected}"
    return None


def verified_by_problem(child: Child, expected: VerifiedBy) -> str | None:
    """None when ``child``'s ``verified`` events say the peer was verified by ``expected``."""
    ways = {event.get("by") for event in child.events() if event.get("event") == "verified"}
    if ways != {expected}:
        seen = ", ".join(sorted(str(way) for way in ways)) or "none"
        return f"{child.name} reported verification by {seen}, not {expected}"
    return None


def _checked(expected: DataPath, verified: VerifiedBy | None = None) -> ExtraCheck:
    """The row's check: the receiver finished, both sides used ``expected``, and (when
    given) the sender says how the receiver was verified."""

    def check(sender: Child, receiver: Child) -> str | None:
        return (
            receiver_done(receiver)
            or data_path_problem(sender, expected)
            or data_path_problem(receiver, expected)
            or (verified_by_problem(sender, verified) if verified else None)
        )

    return check


def first_progress_read(sender: Child, deadline: float) -> float:
    """``monotonic()`` when the harness read the sender's first progress event that
    counts moved bytes (a transfer's end forces one that may count none)."""
    while True:
        event = sender.wait_for_event("progress", deadline - monotonic())
        if int(event.get("bytes_done") or 0) > 0:
            return monotonic()


@dataclass
class P2PRow(Row):
    """``p2p-transfer receive --once --yes`` and ``p2p-transfer send`` on loopback."""

    key: str = "p2p"
    label: str = LABEL
    #: ``--transport`` of both sides; None leaves the default (auto).
    transport: str | None = None
    #: The data path both sides' ``connection`` events must name.
    data_path: DataPath = "tcp"
    note: str = "first contact (code entered), fresh config; TCP data path (auto); relay default"
    workloads: Sequence[str] = ("big", *MANY_FILE_WORKLOADS, FIRST_BYTE_WORKLOAD)
    #: Where this row's config folders were paired (None: not yet in this work dir).
    _paired: Path | None = field(default=None, repr=False)

    def unavailable_reason(self) -> str | None:
        cli = cli_path()
        if not cli.exists():
            return "the p2p-transfer command is not installed"
        try:
            shown = subprocess.run(
                [str(cli), "--help"],
                capture_output=True,
                text=True,
                timeout=STARTUP_TIMEOUT,
                env=peer_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            return "p2p-transfer --help did not answer"
        if shown.returncode != 0:
            last = (shown.stderr.strip().splitlines() or ["no output"])[-1]
            return f"p2p-transfer --help failed ({last.strip()[:120]})"
        missing = [name for name in _COMMANDS_NEEDED if name not in shown.stdout]
        if missing:
            return f"p2p-transfer has no {'/'.join(missing)} command yet"
        return None

    def receiver_argv(self, home: Path, out: Path, code: str | None) -> list[str]:
        """``receive --once --yes`` on loopback; ``code`` fixes the code it shows."""
        return [
            str(cli_path()), "--config-dir", str(home), "--name", "bench-rx",
            "receive", "--dir", str(out), "--once", "--yes",
            *(["--code", code] if code else []),
            "--bind", "127.0.0.1:0", *self._transport(), "--json",
        ]  # fmt: skip

    def sender_argv(self, home: Path, ticket: str, path: Path, code: str | None) -> list[str]:
        """``send --to TICKET``; ``code`` is the one typed (None: a paired receiver)."""
        return [
            str(cli_path()), "--config-dir", str(home), "--name", "bench-tx",
            "send", "--to", ticket, *(["--code", code] if code else []),
            *self._transport(), "--json", str(path),
        ]  # fmt: skip

    def _transport(self) -> list[str]:
        return ["--transport", self.transport] if self.transport else []

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        if workload.key == FIRST_BYTE_WORKLOAD:
            return self.run_first_byte(workload, ctx)
        rx_home = ctx.scratch(f"{self.key}-rx")
        tx_home = ctx.scratch(f"{self.key}-tx")
        return run_pair(
            self,
            workload,
            ctx,
            receiver=lambda out: self.receiver_argv(rx_home, out, P2P_CODE),
            sender=lambda ticket: self.sender_argv(tx_home, ticket, workload.path, P2P_CODE),
            extra_check=_checked(self.data_path),
            note=self.note,
        )

    def run_first_byte(self, workload: Workload, ctx: RunContext) -> RowResult:
        """FIRST_BYTE_SENDS timed sends to a paired receiver (pairing first if needed).

        The result's ``first_progress`` holds one time per send; its other
        figures are the last send's.
        """
        note = (
            f"paired config, fresh receiver each send; {self.data_path.upper()} data path; "
            "default relay setting (no internet: the relay never answers)"
        )
        homes = ctx.work_dir / PAIRED_DIR / self.key
        logs = ctx.log_dir(self.key, workload)
        if self._paired != homes:
            shutil.rmtree(homes, ignore_errors=True)
            pairing = self._send_once(workload, ctx, homes, logs / "pairing", timed=False)
            if not pairing.ok:
                reason = pairing.status.removeprefix(f"{FAILED}: ")
                return failed(self.label, workload, f"pairing: {reason}", note)
            self._paired = homes
        times: list[float] = []
        for index in range(FIRST_BYTE_SENDS):
            result = self._send_once(workload, ctx, homes, logs / f"send-{index + 1}", timed=True)
            if not result.ok:
                return replace(result, note=note)
            times += result.first_progress
        return replace(result, first_progress=tuple(times), note=note)

    def _send_once(
        self, workload: Workload, ctx: RunContext, homes: Path, logs: Path, *, timed: bool
    ) -> RowResult:
        """One send between the config folders under ``homes``: the pairing one (with
        the code) or, with ``timed``, one without a code, timed to its first progress."""
        code = None if timed else P2P_CODE
        rx_home, tx_home = homes / "rx", homes / "tx"
        out = ctx.out_dir(self.key)
        check = _checked(self.data_path, "pairing" if timed else "code")
        with Children(logs) as children:
            rx = children.start("receiver", self.receiver_argv(rx_home, out, code))
            try:
                ticket = str(rx.wait_for_event("ticket", STARTUP_TIMEOUT)["ticket"])
                sender = self.sender_argv(tx_home, ticket, workload.path, code)
                tx = children.start("sender", sender)
                deadline = tx.started + ctx.run_timeout(workload)
                seen = first_progress_read(tx, deadline) if timed else 0.0
            except ChildError as error:
                return failed(self.label, workload, str(error))
            result = finish_pair(
                self, workload, ctx, out, sender=tx, receiver=rx, extra_check=check
            )
        if timed and result.ok and tx.usage is not None:
            # From the program's spawn (the launcher's clock reading), not the launcher's.
            result.first_progress = (seen - tx.usage.started,)
        return result


@dataclass
class P2PQuicRow(P2PRow):
    """The same with ``--transport quic`` on both sides: file data on QUIC streams."""

    key: str = "p2p-quic"
    label: str = QUIC_LABEL
    transport: str | None = "quic"
    data_path: DataPath = "quic"
    note: str = (
        "first contact (code entered), fresh config; QUIC data path (--transport quic); "
        "relay default"
    )
