"""A code's key as magic-wormhole agrees and uses it: SPAKE2, then one box per phase.

Both sides run symmetric SPAKE2 on the code (its ``pake`` message), and each message
after that is a NaCl SecretBox under a key derived for its sender's side and phase, so
a message cannot be replayed as another. The wormhole CLI derives exactly these, which
is what lets a code join ours to its clients. No I/O here.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from p2p_transfer.errors import PeerFault
from p2p_transfer.rendezvous.errors import BadRendezvousMessage
from p2p_transfer.trust.pake import Spake2Symmetric, hkdf_sha256

#: Purpose of the key both sides show as a verifier (``wormhole --verify``).
VERIFIER_PURPOSE = "wormhole:verifier"


class KeyMismatch(PeerFault):
    """A message that does not open under the agreed key: the two sides typed
    different codes (or someone tampered with it)."""


def start_pake(code: str, app_id: str) -> tuple[Spake2Symmetric, bytes]:
    """Our half of the exchange for ``code``, and the body of our ``pake`` message."""
    spake = Spake2Symmetric(_text_bytes(code), _text_bytes(app_id))
    return spake, json.dumps({"pake_v1": spake.message.hex()}).encode()


def finish_pake(spake: Spake2Symmetric, body: bytes) -> CodeKey:
    """The key from the other side's ``pake`` message (BadRendezvousMessage when it is
    not one; a wrong code still gives a key, which then opens nothing)."""
    try:
        message = bytes.fromhex(json.loads(body)["pake_v1"])
        return CodeKey(spake.finish(message))
    except (ValueError, KeyError, TypeError):
        raise BadRendezvousMessage("its half of the key exchange is malformed") from None


class CodeKey:
    """The key both sides agreed on the code."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def derive(self, purpose: str | bytes, length: int = SecretBox.KEY_SIZE) -> bytes:
        """A key of ``length`` bytes for one purpose (transit, the verifier...)."""
        info = purpose.encode() if isinstance(purpose, str) else purpose
        return hkdf_sha256(self._key, salt=b"", info=info, length=length)

    def seal(self, side: str, phase: str, plaintext: bytes) -> bytes:
        """``plaintext`` boxed for the mailbox as ``side``'s message of ``phase``."""
        box = SecretBox(self._phase_key(side, phase))
        return bytes(box.encrypt(plaintext, os.urandom(SecretBox.NONCE_SIZE)))

    def open(self, side: str, phase: str, boxed: bytes) -> bytes:
        """The plaintext of ``side``'s message of ``phase``; KeyMismatch when it does not
        open."""
        try:
            return bytes(SecretBox(self._phase_key(side, phase)).decrypt(boxed))
        except (CryptoError, ValueError, TypeError):
            raise KeyMismatch from None

    @property
    def verifier(self) -> bytes:
        """The same on both sides only when both typed the same code."""
        return self.derive(VERIFIER_PURPOSE, 32)

    def _phase_key(self, side: str, phase: str) -> bytes:
        side_digest = hashlib.sha256(side.encode("ascii")).digest()
        phase_digest = hashlib.sha256(phase.encode("ascii")).digest()
        return self.derive(b"wormhole:phase:" + side_digest + phase_digest)


def _text_bytes(text: str) -> bytes:
    """Text as the wormhole CLI hashes it: NFC-normalized UTF-8."""
    return unicodedata.normalize("NFC", text).encode("utf-8")
