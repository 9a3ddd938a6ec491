"""Row: ``tar c`` piped through a loopback TCP socket into ``tar x`` (a shell user's copy)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from bench.data import MANY_FILE_WORKLOADS
from bench.rows.base import PeerCopyRow

#: Name of the row in the table.
LABEL = "tar over TCP"


@dataclass
class TarRow(PeerCopyRow):
    """``tar -c`` → one loopback TCP connection → ``tar -x``; no encryption, no hashing.

    What a folder costs with no protocol at all, one file after another in a
    stream (the plain TCP row packs small files in 256 KiB sends itself, tar in
    its 10 KiB records). The big file too: tar's 10 KiB writes against sendfile.
    """

    key: str = "tar"
    label: str = LABEL
    peer: str = "bench.peers.tar"
    note: str = "no encryption, no hashing; tar's default 10 KiB records"
    check_digests: bool = False
    workloads: Sequence[str] = ("big", *MANY_FILE_WORKLOADS)

    def unavailable_reason(self) -> str | None:
        return None if shutil.which("tar") else "tar is not installed"
