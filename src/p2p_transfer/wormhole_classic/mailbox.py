"""The connected wormhole, as the classic transfer uses it: checked messages on asyncio.

The caller made the wormhole (``wormhole.create``), set or allocated its code, and
waited for the key and the peer's versions; it also closes it. This only sends and
receives the transfer's messages, turning the library's Deferreds into awaitables
and its errors into ours.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from wormhole.errors import WrongPasswordError

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
    """What is used of the library's wormhole (``wormhole.create``'s Deferred flavour)."""

    def get_message(self) -> Any: ...
    def send_message(self, message: bytes) -> None: ...
    def derive_key(self, purpose: str, length: int) -> bytes: ...
    def get_verifier(self) -> Any: ...


class Mailbox:
    """Send and receive JSON messages over an established wormhole."""

    def __init__(self, wormhole: Wormhole) -> None:
        self._wormhole = wormhole

    async def receive(self, timeout: float, waiting_for: str) -> dict[str, Any]:
        """The peer's next message, as an object; its ``error`` raises ``PeerError``."""
        try:
            async with asyncio.timeout(timeout):
                data = await _awaited(self._wormhole.get_message())
        except TimeoutError:
            raise TransferError(
                f"the other side sent no {waiting_for} within {timeout:g} s"
            ) from None
        body = decode_message(data if isinstance(data, bytes) else b"")
        if "error" in body:
            raise PeerError(f"the other side stopped: {read_error(body['error'])}")
        return body

    def send(self, body: dict[str, Any]) -> None:
        self._wormhole.send_message(encode_message(body))

    def refuse(self, error: ProtocolError | str) -> None:
        """Tell the peer why we stop (the wormhole CLI prints it); never fails."""
        try:
            self.send({"error": str(error)})
        except Exception:  # the wormhole may be gone already
            pass

    def transit_key(self) -> bytes:
        """The key both sides derive for transit."""
        return bytes(self._wormhole.derive_key(TRANSIT_KEY_PURPOSE, TRANSIT_KEY_SIZE))

    async def verifier(self) -> str:
        """The key's verifier in hex: the same on both sides (``wormhole --verify``)."""
        return bytes(await _awaited(self._wormhole.get_verifier())).hex()


async def _awaited(deferred: Any) -> Any:
    """A Deferred's result on the running asyncio loop; its failure as a TransferError."""
    try:
        return await deferred.asFuture(asyncio.get_running_loop())
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the library's own errors (server, key, lonely...)
        if isinstance(exc, WrongPasswordError):
            error = TransferError("the code was wrong: the two sides typed different codes")
        else:
            error = TransferError("the connection to the other side through the code server broke")
        error.detail = f"{type(exc).__name__}: {exc}"
        raise error from None
