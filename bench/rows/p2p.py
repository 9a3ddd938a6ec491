"""Rows: p2p-transfer itself, two CLI processes, as a user runs them.

Each run uses fresh config folders, so it is a first contact: the receiver's
fixed ``--code`` is typed by the sender, as a user does the first time. Two
rows: the default (``--transport auto``, which on loopback's direct path puts
the file data on TLS over TCP) and ``--transport quic`` on both sides (data on
QUIC streams, as across NAT). A run counts only when both sides' ``connection``
events name the data path the row claims.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.config import P2P_CODE, STARTUP_TIMEOUT
from bench.data import Workload
from bench.results import RowResult
from bench.rows.base import ExtraCheck, Row, RunContext, run_pair
from bench.runner import Child, peer_env

_COMMANDS_NEEDED = ("receive", "send")

#: Names of the rows in the table.
LABEL = "p2p-transfer"
QUIC_LABEL = "p2p-transfer (QUIC)"

DataPath = Literal["tcp", "quic"]


def cli_path() -> Path:
    """The ``p2p-transfer`` script installed beside this interpreter."""
    return Path(sys.executable).parent / "p2p-transfer"


def _receiver_done(receiver: Child) -> str | None:
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


def _checked(expected: DataPath) -> ExtraCheck:
    """The row's check: the receiver finished, and both sides used ``expected``."""

    def check(sender: Child, receiver: Child) -> str | None:
        return (
            _receiver_done(receiver)
            or data_path_problem(sender, expected)
            or data_path_problem(receiver, expected)
        )

    return check


@dataclass
class P2PRow(Row):
    """``p2p-transfer receive --once --yes`` and ``p2p-transfer send`` on loopback."""

    key: str = "p2p"
    label: str = LABEL
    #: ``--transport`` of both sides; None leaves the default (auto).
    transport: str | None = None
    #: The data path both sides' ``connection`` events must name.
    data_path: DataPath = "tcp"
    note: str = "first contact (code entered), fresh config; TCP data path (auto)"

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

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        cli = str(cli_path())
        rx_home = ctx.scratch(f"{self.key}-rx")
        tx_home = ctx.scratch(f"{self.key}-tx")
        transport = ["--transport", self.transport] if self.transport else []
        return run_pair(
            self,
            workload,
            ctx,
            receiver=lambda out: [
                cli,
                "--config-dir",
                str(rx_home),
                "--name",
                "bench-rx",
                "receive",
                "--dir",
                str(out),
                "--once",
                "--yes",
                "--code",
                P2P_CODE,
                "--bind",
                "127.0.0.1:0",
                *transport,
                "--json",
            ],
            sender=lambda ticket: [
                cli,
                "--config-dir",
                str(tx_home),
                "--name",
                "bench-tx",
                "send",
                "--to",
                ticket,
                "--code",
                P2P_CODE,
                *transport,
                "--json",
                str(workload.path),
            ],
            extra_check=_checked(self.data_path),
            note=self.note,
        )


@dataclass
class P2PQuicRow(P2PRow):
    """The same with ``--transport quic`` on both sides: file data on QUIC streams."""

    key: str = "p2p-quic"
    label: str = QUIC_LABEL
    transport: str | None = "quic"
    data_path: DataPath = "quic"
    note: str = "first contact (code entered), fresh config; QUIC data path (--transport quic)"
