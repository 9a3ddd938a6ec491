"""Row: raw iroh stream copy between two processes (the transport's ceiling)."""

from __future__ import annotations

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
