"""Which files each receiving session is writing, so two never write one ``.part``.

When a sender is killed and runs ``send`` again, the receiver may not yet have
noticed the old connection died (QUIC takes ~35 s). The new session from the
same device supersedes the old one for the files they share; another device
asking for the same files is told they are busy.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Iterable

from p2p_transfer.errors import LocalFault
from p2p_transfer.limits import SUPERSEDE_TIMEOUT


class FilesBusyError(LocalFault):
    """Another device is sending the same files into the same folder right now."""


class ClaimOwner:
    """A session that can hold claims; ``stop`` ends it and waits for it to let go."""

    peer_id: str

    async def stop(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class FileClaims:
    """Paths (absolute, normalized) currently being written, and by whom.

    Each owner's paths are kept by their hash, in one array: an offer may name
    200,000 files, and a small object for each would outlive the offer in a fragmented
    heap. Two paths with one hash could only make a session wrongly busy, never let
    two write one file.
    """

    def __init__(self) -> None:
        self._owners: dict[ClaimOwner, array[int]] = {}

    @staticmethod
    def keys(paths: Iterable[str]) -> array[int]:
        """What ``claim`` takes for these paths (worth a thread for a large offer)."""
        return array("q", (hash(path) for path in paths))

    async def claim(self, owner: ClaimOwner, wanted: array[int]) -> None:
        """Claim every path (by its ``keys``) for ``owner``, stopping an older session of
        the same peer."""
        wanted_set = set(wanted)
        conflicts = [
            other for other, held in self._owners.items()
            if other is not owner and not wanted_set.isdisjoint(held)
        ]
        del wanted_set
        if any(other.peer_id != owner.peer_id for other in conflicts):
            raise FilesBusyError("these files are being received from another device right now")
        for other in conflicts:
            await asyncio.wait_for(other.stop(), SUPERSEDE_TIMEOUT)
            self.release(other)
        self._owners[owner] = wanted

    def release(self, owner: ClaimOwner) -> None:
        """Drop every claim of ``owner``."""
        self._owners.pop(owner, None)
