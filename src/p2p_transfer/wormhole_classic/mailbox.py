"""The connected code channel, as the classic transfer uses it: checked JSON messages.

The caller opened the channel (rendezvous.mailbox), set or allocated its code, and
waited for the key and the peer's versions; it also closes it. This only sends and
receives the transfer's messages, its failures as the transfer's errors.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from p2p_transfer.protocol import ProtocolError
from p2p_transfer.transfer import PeerError, TransferError
from p2p_transfer.wormhole_classic.messages import (
    TRANSIT_KEY_PURPOSE,
    decode_message,
    encode_message,
    read_error,
)
from p2p_transfer.wormhole_classic.transit import TRANSIT_KEY_SIZE


class Wormhole(Protocol):
    """What is used of a code's channel (``rendezvous.mailbox.CodeChannel``)."""

    def send(self, data: bytes) -> None: ...
    async def receive(self, timeout: float | None) -> bytes: ...
    def derive_key(self, purpose: str, length: int) -> bytes: ...
    def verifier(self) -> bytes: ...


class Mailbox:
    """Send and receive JSON messages over an established wormhole."""

    def __init__(self, wormhole: Wormhole) -> None:
        self._wormhole = wormhole

    async def receive(self, timeout: float, waiting_for: str) -> dict[str, Any]:
        """The peer's next message, as an object; its ``error`` raises ``PeerError``. The
        channel's own failures (a wrong code, the server gone) are TransferErrors that
        say so."""
        try:
            async with asyncio.timeout(timeout):
                data = await self._wormhole.receive(None)
        except TimeoutError:
            raise TransferError(
                f"the other side sent no {waiting_for} within {timeout:g} s"
            ) from None
        body = decode_message(data)
        if "error" in body:
            raise PeerError(f"the other side stopped: {read_error(body['error'])}")
        return body

    def send(self, body: dict[str, Any]) -> None:
        self._wormhole.send(encode_message(body))

    def refuse(self, error: ProtocolError | str) -> None:
        """Tell the peer why we stop (the wormhole CLI prints it); never fails."""
        try:
            self.send({"error": str(error)})
        except Exception:  # the wormhole may be gone already
            pass

    def transit_key(self) -> bytes:
        """The key both sides derive for transit."""
        return self._wormhole.derive_key(TRANSIT_KEY_PURPOSE, TRANSIT_KEY_SIZE)

    def verifier(self) -> str:
        """The key's verifier in hex: the same on both sides (``wormhole --verify``)."""
        return self._wormhole.verifier().hex()
