"""Verification codes that prove knowledge both ways without ever being sent.

The receiver shows a 6-digit code; the sending user types it. Both sides run
SPAKE2 with the code, bound to both authenticated endpoint IDs, and each
proves it derived the same key. The code never crosses the wire, so a peer
that is not the device showing it, including one that merely claims to be it,
learns nothing it could brute-force offline, and the sender knows it reached
the device whose screen the user read.
"""

from __future__ import annotations

import hashlib
import hmac

from p2p_transfer.errors import P2PTransferError

_CONTEXT = b"p2p-transfer/1 verification"
_SENDER_PROOF = b"sender"
_RECEIVER_PROOF = b"receiver"


class PakeError(P2PTransferError):
    """The other side did not prove it knows the code."""


def _binding(receiver_id: str, sender_id: str) -> bytes:
    """Both endpoint IDs, in role order: the exchange is valid only between these two."""
    return b"|".join((_CONTEXT, receiver_id.encode(), sender_id.encode()))


class CodeExchange:
    """One side's half of the exchange for one code."""

    def __init__(self, code: str, receiver_id: str, sender_id: str) -> None:
        # Loaded here, not at import: pure-Python SPAKE2 takes ~0.1 s and ~8 MB to
        # load, which a transfer between paired devices never needs.
        from spake2 import SPAKE2_Symmetric

        self._spake = SPAKE2_Symmetric(
            code.strip().encode(), idSymmetric=_binding(receiver_id, sender_id)
        )
        self.message = self._spake.start()
        self._key: bytes | None = None

    def finish(self, peer_message: bytes) -> None:
        """Derive the shared key from the peer's message."""
        # Checked here: the library only asserts the side byte and length.
        if len(peer_message) != len(self.message) or peer_message[:1] != self.message[:1]:
            raise PakeError("malformed verification message")
        from spake2.spake2 import SPAKEError

        try:
            self._key = self._spake.finish(peer_message)
        except (SPAKEError, ValueError, AssertionError) as exc:
            raise PakeError(f"malformed verification message: {exc}") from None

    def _proof(self, role: bytes) -> bytes:
        assert self._key is not None, "finish() first"
        return hmac.new(self._key, role, hashlib.sha256).digest()

    def sender_proof(self) -> bytes:
        """What the sender sends to show it typed the right code."""
        return self._proof(_SENDER_PROOF)

    def receiver_proof(self) -> bytes:
        """What the receiver answers to show it holds the code the user read."""
        return self._proof(_RECEIVER_PROOF)

    def check_sender(self, proof: bytes) -> bool:
        """Constant-time check of the sender's proof."""
        return hmac.compare_digest(proof, self.sender_proof())

    def check_receiver(self, proof: bytes) -> bool:
        """Constant-time check of the receiver's proof."""
        return hmac.compare_digest(proof, self.receiver_proof())
