"""Row: raw iroh stream copy between two processes (the transport's ceiling)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.data import Workload
from bench.results import RowResult
from bench.rows.base import Row, RunContext, python_module, run_pair, same_digests

_PEER = "bench.peers.iroh_raw"

#: Name of the row in the table.
LABEL = "raw iroh stream"


@dataclass
class IrohRawRow(Row):
    """One bi stream, 256 KiB reads and writes, BLAKE3 on both sides, no protocol."""

    key: str = "iroh"
    label: str = LABEL

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        return run_pair(
            self,
            workload,
            ctx,
            receiver=lambda out: python_module(_PEER, "receive", str(out)),
            sender=lambda ticket: python_module(_PEER, "send", ticket, str(workload.path)),
            extra_check=same_digests,
            note="BLAKE3 both sides, one stream, no protocol",
        )
