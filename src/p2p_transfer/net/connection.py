"""One authenticated connection to a peer: the part of iroh the transfer layer uses.

Streams come out as ``MessageReader``/``MessageWriter``, failures as ``NetError``,
and deadlines close the whole connection (a cancelled iroh read loses data,
see ``streams``). Nothing above ``net`` touches an iroh object.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, TypeVar

from iroh import iroh_ffi

from p2p_transfer.limits import CLOSE_REASON_BYTES
from p2p_transfer.net.errors import NetError, describe_iroh_error
from p2p_transfer.net.streams import MessageReader, MessageWriter

T = TypeVar("T")
PathKind = Literal["direct", "relay", "unknown"]


class CloseCode:
    """Application close codes; the reason string travels with them."""

    DONE = 0
    #: The user (or the program, on their behalf) stopped the transfer.
    CANCELLED = 1
    PROTOCOL_ERROR = 2
    REFUSED = 3
    TIMEOUT = 4
    #: This side could not go on (its disk, its files, its network); the reason says why.
    FAILED = 5


@dataclass(frozen=True, slots=True)
class PathInfo:
    """How a connection reaches its peer right now."""

    kind: PathKind
    rtt_ms: float | None
    remote_addr: str | None


@dataclass(frozen=True, slots=True)
class PeerClose:
    """How the peer closed a connection: its application code and its words."""

    code: int
    reason: str

    @property
    def cancelled(self) -> bool:
        """The peer's user (or program) cancelled, as opposed to failing."""
        return self.code == CloseCode.CANCELLED


_PEER_CLOSE = re.compile(r"closed by peer: (.*) \(code (\d+)\)", re.S)


class PeerConnection:
    """A QUIC connection to one authenticated peer."""

    def __init__(self, connection: iroh_ffi.Connection) -> None:
        self._connection = connection
        #: The peer's endpoint ID (its public key), proven by the TLS handshake.
        self.peer_id = str(connection.remote_id())

    @property
    def raw(self) -> iroh_ffi.Connection:
        """The iroh connection itself, for tests that play a misbehaving peer."""
        return self._connection

    # --- streams -------------------------------------------------------------------

    async def open_control(self) -> tuple[MessageReader, MessageWriter]:
        """Open the bidirectional control stream (the sender does)."""
        stream = await self._call(self._connection.open_bi())
        return MessageReader(stream.recv()), MessageWriter(stream.send())

    async def accept_control(self) -> tuple[MessageReader, MessageWriter]:
        """The next bidirectional stream the peer opens; NetError once the connection ends."""
        stream = await self._call(self._connection.accept_bi())
        return MessageReader(stream.recv()), MessageWriter(stream.send())

    async def open_data(self) -> MessageWriter:
        """Open a unidirectional data stream."""
        return MessageWriter(await self._call(self._connection.open_uni()))

    async def accept_data(self) -> MessageReader | None:
        """The next unidirectional stream the peer opens; None once the connection ends."""
        try:
            return MessageReader(await self._connection.accept_uni())
        except iroh_ffi.IrohError:
            return None

    def limit_streams(self, *, data: int, control: int) -> None:
        """How many more streams of each kind the peer may open (iroh grants 100 at first,
        so this only stops new grants: every stream must still be taken as it comes)."""
        self._connection.set_max_concurrent_uni_streams(data)
        self._connection.set_max_concurrent_bi_streams(control)

    @staticmethod
    async def _call(pending: Awaitable[T]) -> T:
        try:
            return await pending
        except iroh_ffi.IrohError as exc:
            raise NetError(describe_iroh_error(exc)) from None

    # --- the path --------------------------------------------------------------------

    def path(self) -> PathInfo:
        """The selected path: direct or relay, and its RTT."""
        try:
            paths = self._connection.paths()
        except iroh_ffi.IrohError:
            paths = []
        selected = next((p for p in paths if p.is_selected), paths[0] if paths else None)
        if selected is None:
            return PathInfo("unknown", None, None)
        kind: PathKind = "relay" if selected.is_relay else "direct"
        return PathInfo(kind, float(selected.rtt_ms), str(selected.remote_addr))

    # --- the end ---------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Close with an application code and a reason the peer will see."""
        try:
            self._connection.close(code, reason.encode()[:CLOSE_REASON_BYTES])
        except iroh_ffi.IrohError:
            pass

    def deadline(self, seconds: float, reason: str) -> ConnectionDeadline:
        """Close this connection with ``reason`` unless the deadline is cancelled in time."""
        return ConnectionDeadline(self, seconds, reason)

    def peer_close(self) -> PeerClose | None:
        """How the peer closed the connection; None if it did not (yet)."""
        match = _PEER_CLOSE.search(self._connection.close_reason() or "")
        return PeerClose(int(match.group(2)), match.group(1).strip()) if match else None

    async def await_peer_close(self, wait: float) -> PeerClose | None:
        """The peer's close, waiting up to ``wait`` s for a close already on its way.

        A TCP data channel can fail a moment before the QUIC close that explains
        why arrives; the explanation is what the user should see.
        """
        if (close := self.peer_close()) is None:
            await self.wait_closed(wait)
            close = self.peer_close()
        return close

    async def wait_closed(self, wait: float) -> None:
        """Wait up to ``wait`` s for the connection to close (safe to time out: waiting for
        the close moves no stream data)."""
        with contextlib.suppress(TimeoutError, iroh_ffi.IrohError):
            await asyncio.wait_for(self._connection.closed(), wait)


class ConnectionDeadline:
    """Close a connection with ``reason`` unless cancelled within ``seconds``.

    Deadlines are enforced by closing the connection, never by abandoning a
    read: cancelling an iroh read that Rust already completed loses its data,
    so a peer that is too slow is cut off as a whole instead.
    """

    def __init__(self, connection: PeerConnection, seconds: float, reason: str) -> None:
        self.reason = reason
        self.expired = False
        self._connection = connection
        self._handle = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        self._connection.close(CloseCode.TIMEOUT, self.reason)

    def cancel(self) -> None:
        """The awaited thing happened in time."""
        self._handle.cancel()

    def __enter__(self) -> ConnectionDeadline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()
