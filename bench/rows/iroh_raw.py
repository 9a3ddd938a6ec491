"""Row: raw iroh stream copy between two processes (the transport's ceiling)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.rows.base import PeerCopyRow

#: Name of the row in the table.
LABEL = "raw iroh stream"


@dataclass
class IrohRawRow(PeerCopyRow):
    """One bi stream, 256 KiB reads and writes, BLAKE3 on both sides, no protocol."""

    key: str = "iroh"
    label: str = LABEL
    peer: str = "bench.peers.iroh_raw"
    note: str = "BLAKE3 both sides, one stream, no protocol"
    #: Not ``tiny``: there this peer's own per-file Python loop, not the transport, sets
    #: the pace (100,000 files of 1 KiB took 34 s, p2p-transfer's QUIC path 16 s), so it
    #: is no ceiling and would only add minutes to a full run.
    workloads: Sequence[str] = ("big", "small", "medium")
