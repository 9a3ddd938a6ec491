"""Deadlines enforced by closing the connection, never by abandoning a read.

Cancelling an iroh read that Rust already completed loses its data, so a peer
that is too slow is cut off as a whole instead.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from iroh import iroh_ffi

from p2p_transfer.net.transport import CloseCode


class ConnectionDeadline:
    """Close ``connection`` with ``reason`` unless cancelled within ``seconds``."""

    def __init__(self, connection: iroh_ffi.Connection, seconds: float, reason: str) -> None:
        self.reason = reason
        self.expired = False
        self._connection = connection
        self._handle = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        close_connection(self._connection, CloseCode.TIMEOUT, self.reason)

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


def close_connection(connection: iroh_ffi.Connection, code: int, reason: str) -> None:
    """Close with an application code and a reason the peer will see."""
    try:
        connection.close(code, reason.encode()[:200])
    except iroh_ffi.IrohError:
        pass
