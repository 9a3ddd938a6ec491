"""Row: raw iroh stream copy between two processes (the transport's ceiling)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.data import Workload
from bench.results import RowResult
from bench.rows.base import Row, RunContext, python_module, run_pair
from bench.runner import Child

_PEER = "bench.peers.iroh_raw"

#: Name of the row in the table.
LABEL = "raw iroh stream"


def _same_digests(sender: Child, receiver: Child) -> str | None:
    """Both peers hashed what they saw; their tree digests must agree."""
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
            extra_check=_same_digests,
            note="BLAKE3 both sides, one stream, no protocol",
        )
