"""Row: plain TCP ``sendfile`` copy between two processes (the practical limit)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.data import Workload
from bench.results import RowResult
from bench.rows.base import Row, RunContext, python_module, run_pair

_PEER = "bench.peers.tcp"

#: Name of the row in the table.
LABEL = "plain TCP sendfile"


@dataclass
class TcpRow(Row):
    """Kernel ``sendfile`` → ``recv_into`` → file write; no encryption, no hashing."""

    key: str = "tcp"
    label: str = LABEL

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        return run_pair(
            self,
            workload,
            ctx,
            receiver=lambda out: python_module(_PEER, "receive", str(out)),
            sender=lambda address: python_module(_PEER, "send", address, str(workload.path)),
            note="no encryption, no hashing",
        )
