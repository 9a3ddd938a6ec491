"""Row: raw TLS over TCP between two processes (the LAN fast path's ceiling)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.rows.base import PeerCopyRow

#: Name of the row in the table.
LABEL = "raw TLS over TCP"


@dataclass
class TlsRow(PeerCopyRow):
    """p2p-transfer's pinned TLS channel and its pumps, BLAKE3 both sides, no protocol."""

    key: str = "tls"
    label: str = LABEL
    peer: str = "bench.peers.tls"
    note: str = "BLAKE3 both sides, one connection, no protocol"
    #: Not ``tiny``: there this peer's own per-file Python loop, not the transport, sets
    #: the pace (100,000 files of 1 KiB took 43 s, p2p-transfer's TCP path 12 s), so it
    #: is no ceiling and would only add minutes to a full run.
    workloads: Sequence[str] = ("big", "small", "medium")
