"""Row: p2p-transfer itself, two CLI processes, as a user runs them.

Each run uses fresh config folders, so it is a first contact: the receiver's
fixed ``--code`` is typed by the sender, as a user does the first time.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.config import P2P_CODE, STARTUP_TIMEOUT
from bench.data import Workload
from bench.results import RowResult
from bench.rows.base import Row, RunContext, run_pair
from bench.runner import Child, peer_env

_COMMANDS_NEEDED = ("receive", "send")

#: Name of the row in the table.
LABEL = "p2p-transfer"


def cli_path() -> Path:
    """The ``p2p-transfer`` script installed beside this interpreter."""
    return Path(sys.executable).parent / "p2p-transfer"


def _receiver_done(sender: Child, receiver: Child) -> str | None:
    """The receiver must have said the session is done (it verified every file)."""
    if not any(event.get("event") == "done" for event in receiver.events()):
        return "receiver exited 0 but printed no 'done' event"
    return None


@dataclass
class P2PRow(Row):
    """``p2p-transfer receive --once --yes`` and ``p2p-transfer send`` on loopback."""

    key: str = "p2p"
    label: str = LABEL

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
        rx_home = ctx.scratch("p2p-rx")
        tx_home = ctx.scratch("p2p-tx")
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
                "--json",
                str(workload.path),
            ],
            extra_check=_receiver_done,
            note="first contact (code entered), fresh config",
        )
