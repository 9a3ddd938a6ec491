"""Which files each receiving session is writing, so two never write one ``.part``.

When a sender is killed and runs ``send`` again, the receiver may not yet have
noticed the old connection died (QUIC takes ~35 s). The new session from the
same device supersedes the old one for the files they share; another device
asking for the same files is told they are busy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from p2p_transfer.errors import P2PTransferError

#: How long a superseded session gets to let go of its files.
SUPERSEDE_TIMEOUT = 10.0


class FilesBusyError(P2PTransferError):
    """Another device is sending the same files into the same folder right now."""


class ClaimOwner:
    """A session that can hold claims; ``stop`` ends it and waits for it to let go."""

    peer_id: str

    async def stop(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class FileClaims:
    """Paths (absolute, normalized) currently being written, and by whom."""

    def __init__(self) -> None:
        self._owners: dict[str, ClaimOwner] = {}

    async def claim(self, owner: ClaimOwner, paths: Iterable[str]) -> None:
        """Claim every path for ``owner``, stopping an older session of the same peer."""
        wanted = list(paths)
        conflicts = {self._owners[p] for p in wanted if self._owners.get(p, owner) is not owner}
        if any(other.peer_id != owner.peer_id for other in conflicts):
            raise FilesBusyError("these files are being received from another device right now")
        for other in conflicts:
            await asyncio.wait_for(other.stop(), SUPERSEDE_TIMEOUT)
            self.release(other)
        for path in wanted:
            self._owners[path] = owner

    def release(self, owner: ClaimOwner) -> None:
        """Drop every claim of ``owner``."""
        for path in [p for p, o in self._owners.items() if o is owner]:
            del self._owners[path]
