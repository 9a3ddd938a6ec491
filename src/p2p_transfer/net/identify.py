"""``send --to HOST:PORT``: learn a receiver's ticket from its address alone.

A QUIC connection needs the peer's endpoint ID. When discovery is blocked
(no multicast) the receiver's TCP port with the same number as its QUIC port
answers every connection with its ticket and closes. Like a LAN announcement
this is unauthenticated, so it only tells the sender whom to dial: the QUIC
handshake still proves the ID, and first contact still needs the code.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from p2p_transfer.limits import IDENTIFY_TIMEOUT, MAX_IDENTIFY_REPLY
from p2p_transfer.net.errors import NetError, describe_connect_error

#: First line of the reply, naming the protocol.
IDENTIFY_GREETING = b"p2p-transfer/1 ticket\n"
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:\[\]]+)):(?P<port>\d{1,5})")


def parse_host_port(text: str) -> tuple[str, int] | None:
    """``192.168.1.5:4000`` or ``[fe80::1]:4000`` -> (host, port); None for anything else."""
    match = _HOST_PORT.fullmatch(text.strip())
    if match is None:
        return None
    port = int(match["port"])
    if not 0 < port < 1 << 16:
        return None
    return match["v6"] or match["host"], port


class IdentityResponder:
    """A TCP listener that hands out this node's ticket."""

    def __init__(self, server: asyncio.Server) -> None:
        self._server = server

    @classmethod
    async def start(cls, host: str, port: int, ticket: str) -> IdentityResponder:
        """Listen on ``host:port`` (TCP); raises OSError when the port is taken."""
        reply = IDENTIFY_GREETING + ticket.encode() + b"\n"

        async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                writer.write(reply)
                await writer.drain()
            writer.close()

        return cls(await asyncio.start_server(answer, host, port))

    async def close(self) -> None:
        """Stop listening."""
        self._server.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()


async def fetch_ticket(host: str, port: int, timeout: float = IDENTIFY_TIMEOUT) -> str:
    """Ask ``host:port`` for its ticket, or fail with a clear NetError."""
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                reply = await reader.read(MAX_IDENTIFY_REPLY)
            finally:
                writer.close()
    except TimeoutError:
        raise NetError(f"no answer from {where} within {timeout:.0f} s") from None
    except OSError as exc:
        raise NetError(f"cannot reach {where}: {describe_connect_error(exc)}") from None
    if not reply.startswith(IDENTIFY_GREETING):
        raise NetError(f"{where} is not a p2p-transfer receiver")
    return reply[len(IDENTIFY_GREETING):].decode(errors="replace").strip()
