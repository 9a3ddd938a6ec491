"""Row: raw TLS over TCP between two processes (the LAN fast path's ceiling)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.data import Workload
from bench.results import RowResult
from bench.rows.base import Row, RunContext, python_module, run_pair, same_digests

_PEER = "bench.peers.tls"

#: Name of the row in the table.
LABEL = "raw TLS over TCP"


@dataclass
class TlsRow(Row):
    """p2p-transfer's pinned TLS channel from asyncio, 256 KiB pieces, BLAKE3 both sides."""

    key: str = "tls"
    label: str = LABEL

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        return run_pair(
            self,
            workload,
            ctx,
            receiver=lambda out: python_module(_PEER, "receive", str(out)),
            sender=lambda ticket: python_module(_PEER, "send", ticket, str(workload.path)),
            extra_check=same_digests,
            note="BLAKE3 both sides, one connection, no protocol",
        )
