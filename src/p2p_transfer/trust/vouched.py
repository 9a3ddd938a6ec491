"""A peer another channel already authenticated: the PAKE of a one-use short code.

A send by code agrees a key on the code (SPAKE2) and exchanges both endpoint
tickets under it; the iroh connection that follows is checked against the
endpoint ID received that way. That contact needs no 6-digit code, and does not
become a trusted pairing (docs/SECURITY.md: the code is one-use, so is the trust).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VouchedPeer:
    """The one endpoint a short code's PAKE vouched for, in one session."""

    endpoint_id: str

    def admits(self, peer_id: str) -> bool:
        """True for the vouched endpoint only (endpoint IDs are public: no secret here)."""
        return peer_id == self.endpoint_id
