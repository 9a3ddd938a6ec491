"""Row: plain TCP ``sendfile`` copy between two processes (the practical limit)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.rows.base import PeerCopyRow

#: Name of the row in the table.
LABEL = "plain TCP sendfile"


@dataclass
class TcpRow(PeerCopyRow):
    """Kernel ``sendfile`` → ``recv_into`` → file write; no encryption, no hashing."""

    key: str = "tcp"
    label: str = LABEL
    peer: str = "bench.peers.tcp"
    note: str = "no encryption, no hashing"
    check_digests: bool = False
