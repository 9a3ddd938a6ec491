"""Verification codes that prove knowledge both ways without ever being sent.

The receiver shows a 6-digit code; the sending user types it. Both sides run
SPAKE2 with the code, bound to both authenticated endpoint IDs, and each
proves it derived the same key. The code never crosses the wire, so a peer
that is not the device showing it, including one that merely claims to be it,
learns nothing it could brute-force offline, and the sender knows it reached
the device whose screen the user read.

SPAKE2 here is the symmetric variant over Ed25519 exactly as the ``spake2``
package (python-spake2) defines it: the same password scalar, blinding point,
messages and transcript, so peers running either interoperate (a test proves
it against that package). The group arithmetic is libsodium's (PyNaCl): the
pure-Python version took ~0.3 s of CPU per exchange on each side, in the middle
of every first contact.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumError

from p2p_transfer.errors import PeerFault

_CONTEXT = b"p2p-transfer/1 verification"
_SENDER_PROOF = b"sender"
_RECEIVER_PROOF = b"receiver"

#: The order of Ed25519's prime subgroup.
_L = 2**252 + 27742317777372353535851937790883648493
#: python-spake2's blinding point for the symmetric variant: its ``arbitrary_element``
#: of the seed ``b"symmetric"`` (a point nobody knows the discrete log of).
_S = bytes.fromhex("6f00dae87c1be1a73b5922ef431cd8f57879569c222d22b1cd71e8546ab8e6f1")
#: The side byte of a symmetric SPAKE2 message.
_SIDE = b"S"
_POINT_BYTES = 32
_SHA256_BYTES = 32


class PakeError(PeerFault):
    """The other side did not prove it knows the code."""


def _binding(receiver_id: str, sender_id: str) -> bytes:
    """Both endpoint IDs, in role order: the exchange is valid only between these two."""
    return b"|".join((_CONTEXT, receiver_id.encode(), sender_id.encode()))


def hkdf_sha256(key: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869) on the standard library: ``cryptography``'s would cost every
    sender its ~6 MB Rust module for this one derivation."""
    if not 0 <= length <= 255 * _SHA256_BYTES:
        raise ValueError(f"HKDF-SHA256 cannot give {length} bytes")
    prk = hmac.digest(salt or bytes(_SHA256_BYTES), key, "sha256")
    okm, block, counter = b"", b"", 0
    while len(okm) < length:
        counter += 1
        block = hmac.digest(prk, block + info + bytes((counter,)), "sha256")
        okm += block
    return okm[:length]


def _password_scalar(password: bytes) -> bytes:
    """python-spake2's ``password_to_scalar``: HKDF-SHA256 to 48 bytes, big-endian, mod L
    (as the 32 little-endian bytes libsodium takes)."""
    oversized = hkdf_sha256(password, salt=b"", info=b"SPAKE2 pw", length=48)
    return (int.from_bytes(oversized, "big") % _L).to_bytes(32, "little")


class Spake2Symmetric:
    """One side of symmetric SPAKE2 (both sides run the same steps)."""

    def __init__(self, password: bytes, id_symmetric: bytes) -> None:
        self._password = password
        self._id = id_symmetric
        self._blind = sodium.crypto_scalarmult_ed25519_noclamp(_password_scalar(password), _S)
        self._secret = sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
        public = sodium.crypto_scalarmult_ed25519_base_noclamp(self._secret)
        self._outbound = sodium.crypto_core_ed25519_add(public, self._blind)

    @property
    def message(self) -> bytes:
        return _SIDE + self._outbound

    def finish(self, message: bytes) -> bytes:
        """The shared key; ValueError for a message that is not a fair one."""
        side, inbound = message[:1], message[1:]
        if side != _SIDE or len(inbound) != _POINT_BYTES:
            raise ValueError("not a symmetric SPAKE2 message")
        if not sodium.crypto_core_ed25519_is_valid_point(inbound):
            raise ValueError("not a point of the group")
        if inbound == self._outbound:
            raise ValueError("our own message reflected")
        try:
            unblinded = sodium.crypto_core_ed25519_sub(inbound, self._blind)
            shared = sodium.crypto_scalarmult_ed25519_noclamp(self._secret, unblinded)
        except SodiumError as exc:  # the identity: a message built to cancel the blinding
            raise ValueError("degenerate message") from exc
        first, second = sorted((inbound, self._outbound))
        transcript = b"".join((
            hashlib.sha256(self._password).digest(), hashlib.sha256(self._id).digest(),
            first, second, shared,
        ))
        return hashlib.sha256(transcript).digest()


class CodeExchange:
    """One side's half of the exchange for one code."""

    def __init__(self, code: str, receiver_id: str, sender_id: str) -> None:
        self._spake = Spake2Symmetric(code.strip().encode(), _binding(receiver_id, sender_id))
        self.message = self._spake.message
        self._key: bytes | None = None

    def finish(self, peer_message: bytes) -> None:
        """Derive the shared key from the peer's message."""
        try:
            self._key = self._spake.finish(peer_message)
        except ValueError as exc:
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
