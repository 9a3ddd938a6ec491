"""Counting TCP connections per IP and in total, refusing the excess with a plain 503.

aiohttp has no connection limit of its own, so the listening socket's protocol
factory is wrapped: each accepted connection takes a slot, its end frees it,
and a connection over the limit never reaches aiohttp at all. With
``evict_silent``, a full limiter first drops its oldest connection that has not
sent a byte yet, so a flood of idle sockets cannot lock out an honest client.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Callable, Set
from typing import Protocol

from aiohttp import web

from p2p_transfer.limits import SHARE_REFUSED_HEAD_BYTES


class Silent(Protocol):
    """A connection that has not sent a byte yet, and can be dropped for another."""

    def evict(self) -> None:
        """Give back the slot at once and drop the connection."""


class ConnectionLimiter:
    """Slots for connections: at most ``total`` at once and ``per_ip`` from one address;
    with ``evict_silent``, a full limiter makes room by dropping a silent connection."""

    def __init__(self, total: int, per_ip: int, *, evict_silent: bool = False) -> None:
        self.total = total
        self.per_ip = per_ip
        self._by_ip: Counter[str] = Counter()
        self._count = 0
        self._evict_silent = evict_silent
        #: Connections that have not spoken yet, oldest first, with their address.
        self._silent: dict[Silent, str] = {}

    @property
    def count(self) -> int:
        """Slots in use."""
        return self._count

    def try_acquire(self, ip: str, *, count_ip: bool = True) -> str | None:
        """Take a slot, or return why not (a sentence for the refused client)."""
        if self._count >= self.total and not self._make_room(None):
            return "This share has too many connections right now; try again shortly."
        if count_ip and self._by_ip[ip] >= self.per_ip and not self._make_room(ip):
            return "Too many connections from your address; close other tabs or try again."
        self._count += 1
        if count_ip:
            self._by_ip[ip] += 1
        return None

    def release(self, ip: str, *, count_ip: bool = True) -> None:
        """Give back a slot taken by ``try_acquire``."""
        self._count -= 1
        if count_ip:
            self._by_ip[ip] -= 1
            if self._by_ip[ip] <= 0:
                del self._by_ip[ip]

    def track_silent(self, holder: Silent, ip: str) -> None:
        """``holder`` holds a slot and has not sent a byte yet."""
        self._silent[holder] = ip

    def spoke(self, holder: Silent) -> None:
        """``holder`` sent something (or ended): it is no longer a candidate for eviction."""
        self._silent.pop(holder, None)

    def _make_room(self, ip: str | None) -> bool:
        """Drop the oldest silent connection (from ``ip``, if given); False if none."""
        if not self._evict_silent:
            return False
        for holder, holder_ip in self._silent.items():
            if ip is None or holder_ip == ip:
                holder.evict()
                return True
        return False


def refusal_response(reason: str) -> bytes:
    """A complete ``503`` HTTP response saying ``reason``, for a refused connection."""
    body = (reason + "\n").encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n"
        "Retry-After: 5\r\n"
        "Connection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _RefusedProtocol(asyncio.Protocol):
    """Reads the request head (so the client sees the answer, not a reset), answers 503."""

    def __init__(self, reason: str, timeout: float) -> None:
        self._reason = reason
        self._timeout = timeout
        self._head = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(self._timeout, transport.abort)

    def data_received(self, data: bytes) -> None:
        self._head += data
        if b"\r\n\r\n" in self._head or len(self._head) >= SHARE_REFUSED_HEAD_BYTES:
            self._answer()

    def eof_received(self) -> bool:
        self._answer()
        return False

    def _answer(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(refusal_response(self._reason))
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _CountedProtocol(asyncio.Protocol):
    """Stands in front of aiohttp's handler for one connection, holding its slot."""

    def __init__(
        self,
        make_handler: Callable[[], asyncio.Protocol],
        limiter: ConnectionLimiter,
        trusted_proxies: Set[str],
        first_data_timeout: float,
    ) -> None:
        self._make_handler = make_handler
        self._limiter = limiter
        self._trusted = trusted_proxies
        self._first_data_timeout = first_data_timeout
        self._inner: asyncio.Protocol | None = None
        self._slot: tuple[str, bool] | None = None
        self._silence: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A connection that never sends a byte would hold its slot forever.
        assert isinstance(transport, asyncio.Transport)
        self._silence = asyncio.get_running_loop().call_later(
            self._first_data_timeout, transport.abort
        )
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        # A trusted proxy carries many clients; those are counted per request instead.
        count_ip = ip not in self._trusted
        refusal = self._limiter.try_acquire(ip, count_ip=count_ip)
        if refusal is None:
            self._slot = (ip, count_ip)
            self._transport = transport
            self._limiter.track_silent(self, ip)
            self._inner = self._make_handler()
        else:
            self._inner = _RefusedProtocol(refusal, self._first_data_timeout)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        assert self._inner is not None
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None
            self._limiter.spoke(self)
        self._inner.data_received(data)

    def evict(self) -> None:
        """Dropped to make room (see ``ConnectionLimiter``): the slot is free at once."""
        self._free_slot()
        if self._transport is not None:
            self._transport.abort()

    def eof_received(self) -> bool | None:
        assert self._inner is not None
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        assert self._inner is not None
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        assert self._inner is not None
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None
        self._free_slot()
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def _free_slot(self) -> None:
        self._limiter.spoke(self)
        if self._slot is not None:
            ip, count_ip = self._slot
            self._limiter.release(ip, count_ip=count_ip)
            self._slot = None


class LimitedSite(web.BaseSite):
    """A TCP site whose every connection passes through a ``ConnectionLimiter``."""

    __slots__ = (
        "_bound", "_first_data_timeout", "_host", "_limiter", "_port", "_tls", "_trusted"
    )

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        limiter: ConnectionLimiter,
        *,
        trusted_proxies: Set[str] = frozenset(),
        first_data_timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: serve HTTPS; a handshake gets ``first_data_timeout`` too, and a
        connection takes its slot once the handshake is done."""
        super().__init__(runner)
        self._host = host
        self._port = port
        self._limiter = limiter
        self._trusted = trusted_proxies
        self._first_data_timeout = first_data_timeout
        self._tls = tls
        self._bound: tuple[str, int] | None = None

    @property
    def name(self) -> str:
        """The listening address, for aiohttp's logs."""
        host, port = self._bound or (self._host, self._port)
        return f"{'https' if self._tls else 'http'}://{host}:{port}"

    @property
    def bound(self) -> tuple[str, int]:
        """The address and port actually listened on (after ``start``)."""
        assert self._bound is not None, "site not started"
        return self._bound

    async def start(self) -> None:
        """Listen, wrapping aiohttp's protocol factory with the connection count."""
        await super().start()
        make_handler = self._runner.server
        assert make_handler is not None

        def factory() -> asyncio.Protocol:
            return _CountedProtocol(
                make_handler, self._limiter, self._trusted, self._first_data_timeout
            )

        loop = asyncio.get_running_loop()
        if self._tls is None:
            self._server = await loop.create_server(factory, self._host, self._port)
        else:
            self._server = await loop.create_server(
                factory, self._host, self._port, ssl=self._tls,
                ssl_handshake_timeout=self._first_data_timeout,
            )
        sockname = self._server.sockets[0].getsockname()
        self._bound = (str(sockname[0]), int(sockname[1]))
