"""Counting TCP connections per IP and in total, and keeping the share reachable
when slow connections take every place.

aiohttp has no connection limit of its own, so the listening socket's protocol
factory is wrapped: each accepted connection takes a slot, its end frees it.

A connection is *proven* once it asked for the share's token (a browser does at
once): only then is its slot safe. When the slots are full, a newcomer is held
(not yet given to aiohttp) until its request head is complete. A request for the
token then takes the slot of the oldest connection that has not proven itself;
anything else, or a full table of proven connections, gets a plain ``503``. While
newcomers press like this, unproven connections get SHARE_PRESSED_HEAD_TIMEOUT
instead of the handshake timeout to prove themselves. So connections that trickle
a byte now and then, from many addresses, cannot keep a browser with the link out.

A TLS site (LocalSend) counts a connection from its TCP accept, before any TLS
work (a handshake costs ~300 KB): a newcomer that finds the slots full takes the
slot of the oldest unproven connection at once (one of its own address when that
address is full), and only when every such slot is proven is it held and answered
``503``. Proof there can also be given back (``unprove``): a LocalSend connection is
proven only while it does something worth keeping.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import Counter
from collections.abc import Callable, Set
from typing import Any

from aiohttp import web

from p2p_transfer.limits import (
    SHARE_PRESSED_HEAD_TIMEOUT,
    SHARE_REFUSED_HEAD_BYTES,
    SHARE_RETRY_AFTER,
)

#: Ends a request head.
_HEAD_END = b"\r\n\r\n"


#: What a refused browser of the share reads (its 503's text).
SHARE_FULL = "This share has too many connections right now; try again shortly."
SHARE_IP_FULL = "Too many connections from your address; close other tabs or try again."


class ConnectionLimiter:
    """Slots for connections: at most ``total`` at once and ``per_ip`` from one address."""

    def __init__(
        self,
        total: int,
        per_ip: int,
        *,
        full: str = SHARE_FULL,
        ip_full: str = SHARE_IP_FULL,
    ) -> None:
        """``full`` / ``ip_full``: why a newcomer is refused, in the site's own words."""
        self.total = total
        self.per_ip = per_ip
        self.full_message = full
        self.ip_full_message = ip_full
        self._by_ip: Counter[str] = Counter()
        self._count = 0

    @property
    def count(self) -> int:
        """Slots in use."""
        return self._count

    def refusal(self, ip: str, *, count_ip: bool = True) -> str | None:
        """Why a new connection from ``ip`` has no slot now (a sentence for the client)."""
        if count_ip and self._by_ip[ip] >= self.per_ip:
            return self.ip_full_message
        if self._count >= self.total:
            return self.full_message
        return None

    def try_acquire(self, ip: str, *, count_ip: bool = True) -> str | None:
        """Take a slot, or return why not."""
        if (refusal := self.refusal(ip, count_ip=count_ip)) is not None:
            return refusal
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

    def ip_full(self, ip: str) -> bool:
        """Whether ``ip`` has all its slots."""
        return self._by_ip[ip] >= self.per_ip


def refusal_response(reason: str) -> bytes:
    """A complete ``503`` HTTP response saying ``reason``, for a refused connection."""
    body = (reason + "\n").encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n"
        f"Retry-After: {SHARE_RETRY_AFTER}\r\n"
        "Connection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def request_target(head: bytes) -> str:
    """The target of a request head's first line (``/token/...``), '' if there is none."""
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    return parts[1].decode("latin-1") if len(parts) == 3 else ""


class ConnectionTable:
    """Every connection of a site: admitted ones (with their slots), and newcomers held
    while the slots are full. Insertion order is age: the oldest go first."""

    def __init__(self, limiter: ConnectionLimiter, head_timeout: float) -> None:
        self.limiter = limiter
        self.head_timeout = head_timeout
        self._unproven: dict[_CountedProtocol, None] = {}
        self._waiting: dict[_CountedProtocol, None] = {}
        self._by_transport: dict[asyncio.BaseTransport, _CountedProtocol] = {}
        self._pressed_until = 0.0

    @property
    def pressed(self) -> bool:
        """Whether newcomers found the slots full within the last head timeout."""
        return asyncio.get_running_loop().time() < self._pressed_until

    def track(self, transport: asyncio.BaseTransport, connection: _CountedProtocol) -> None:
        self._by_transport[transport] = connection

    def untrack(self, transport: asyncio.BaseTransport) -> None:
        self._by_transport.pop(transport, None)

    def prove(self, transport: asyncio.BaseTransport | None) -> None:
        """The connection of ``transport`` asked for the token: it keeps its slot."""
        if transport is not None and (connection := self._by_transport.get(transport)):
            connection.prove()

    def mute(self, transport: asyncio.BaseTransport | None) -> None:
        """Stop handing what ``transport``'s client sends to aiohttp (``_CountedProtocol.mute``)."""
        if transport is not None and (connection := self._by_transport.get(transport)):
            connection.mute()

    def admit(self, connection: _CountedProtocol) -> bool:
        """Give ``connection`` a slot if one is free (it stops waiting, if it was)."""
        if self.limiter.try_acquire(connection.ip, count_ip=connection.count_ip) is not None:
            return False
        self._waiting.pop(connection, None)
        self._unproven[connection] = None
        return True

    def hold(self, connection: _CountedProtocol) -> None:
        """Keep a newcomer until its head is complete; the oldest newcomer goes when too
        many wait (from its address, or in all)."""
        self._press()
        same_ip = [c for c in self._waiting if c.ip == connection.ip]
        if len(same_ip) >= self.limiter.per_ip:
            same_ip[0].drop()
        elif len(self._waiting) >= self.limiter.total:
            next(iter(self._waiting)).drop()
        self._waiting[connection] = None

    def make_room(self, connection: _CountedProtocol) -> bool:
        """Evict the oldest unproven connection whose slot ``connection`` needs (one of
        its address when that address is full); then take the slot. False when every
        such slot is proven."""
        if connection.count_ip and self.limiter.ip_full(connection.ip):
            candidates = [c for c in self._unproven if c.ip == connection.ip]
        else:
            candidates = list(self._unproven)
        if candidates and self.limiter.refusal(connection.ip, count_ip=connection.count_ip):
            candidates[0].drop()
        return self.admit(connection)

    def unprove(self, transport: asyncio.BaseTransport | None) -> None:
        """The connection of ``transport`` no longer does anything worth its slot."""
        if transport is not None and (connection := self._by_transport.get(transport)):
            connection.unprove()

    def proven(self, connection: _CountedProtocol) -> None:
        self._unproven.pop(connection, None)

    def unproven(self, connection: _CountedProtocol) -> None:
        """``connection`` may be evicted again, as the youngest."""
        self._unproven[connection] = None

    def forget(self, connection: _CountedProtocol, had_slot: bool) -> None:
        """A connection ended (or was dropped): its slot, if any, is free."""
        self._waiting.pop(connection, None)
        self._unproven.pop(connection, None)
        if had_slot:
            self.limiter.release(connection.ip, count_ip=connection.count_ip)

    def _press(self) -> None:
        """Newcomers find the slots full: unproven connections get the shorter deadline."""
        self._pressed_until = asyncio.get_running_loop().time() + self.head_timeout
        for connection in list(self._unproven):
            connection.hurry()


class _CountedProtocol(asyncio.Protocol):
    """Stands in front of aiohttp's handler for one connection, holding its slot."""

    def __init__(
        self,
        make_handler: Callable[[], asyncio.Protocol],
        table: ConnectionTable,
        trusted_proxies: Set[str],
        has_token: Callable[[str], bool],
    ) -> None:
        self._make_handler = make_handler
        self._table = table
        self._trusted = trusted_proxies
        self._has_token = has_token
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()  # a held newcomer's request head, so far
        self._has_slot = False
        self._proven = False
        self._muted = False
        self._started = 0.0
        self._deadline: asyncio.TimerHandle | None = None
        self.ip = "unknown"
        self.count_ip = True

    # --- the table's view ------------------------------------------------------------

    def drop(self) -> None:
        """Close at once, freeing the slot now (the close comes later)."""
        self._table.forget(self, self._has_slot)
        self._has_slot = False
        if self._transport is not None:
            self._transport.abort()

    def hurry(self) -> None:
        """Shorten the time left to prove itself to the pressed deadline."""
        self._set_deadline(SHARE_PRESSED_HEAD_TIMEOUT)

    def prove(self) -> None:
        """It asked for the token: its slot is safe, and no deadline hangs over it."""
        if not self._proven:
            self._proven = True
            self._table.proven(self)
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

    def unprove(self) -> None:
        """Its slot may be taken again (as the youngest), and it has the head timeout
        from now to prove itself once more."""
        if self._proven and self._has_slot:
            self._proven = False
            self._table.unproven(self)
            self._started = asyncio.get_running_loop().time()
            self._set_deadline(
                SHARE_PRESSED_HEAD_TIMEOUT if self._table.pressed else self._table.head_timeout
            )

    def mute(self) -> None:
        """From now on what the client sends is not read (and dropped if aiohttp reads
        on), never parsed: the server is closing this connection (the client broke
        the protocol, or took too long), and a client that floods tiny frames must not
        keep the server busy."""
        self._muted = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._table.track(transport, self)
        self._started = asyncio.get_running_loop().time()
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        # A trusted proxy carries many clients; those are counted per request instead.
        self.count_ip = self.ip not in self._trusted
        if self._table.admit(self):
            self._has_slot = True
            self._serve()
            self._set_deadline(
                SHARE_PRESSED_HEAD_TIMEOUT if self._table.pressed else self._table.head_timeout
            )
        else:
            self._table.hold(self)
            self._set_deadline(SHARE_PRESSED_HEAD_TIMEOUT)

    def data_received(self, data: bytes) -> None:
        if self._muted:  # aiohttp resumed reading (its own flow control): pause again
            assert self._transport is not None
            self._transport.pause_reading()
            return
        if self._inner is not None:
            self._inner.data_received(data)
            return
        self._head += data
        if _HEAD_END in self._head or len(self._head) >= SHARE_REFUSED_HEAD_BYTES:
            self._judge_held()

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return self._inner.eof_received()
        self._refuse()
        return False

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self._transport is not None:
            self._table.untrack(self._transport)
        self._table.forget(self, self._has_slot)
        self._has_slot = False
        if self._inner is not None:
            self._inner.connection_lost(exc)

    # --- the steps ---------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._transport is not None
        self._inner = self._make_handler()
        self._inner.connection_made(self._transport)

    def _judge_held(self) -> None:
        """A held newcomer's head is here: a slot if one is free by now, or if it asks
        for the token and an unproven connection can make room; else 503."""
        complete = _HEAD_END in self._head
        with_token = complete and self._has_token(request_target(bytes(self._head)))
        if complete and (self._table.admit(self) or (with_token and self._table.make_room(self))):
            self._has_slot = True
            if with_token:
                self.prove()
            self._serve()
            assert self._inner is not None
            head, self._head = bytes(self._head), bytearray()
            self._inner.data_received(head)
            return
        self._refuse()

    def _refuse(self) -> None:
        """Answer a held newcomer ``503`` (so it reads why, not a reset) and close."""
        if self._transport is None or self._transport.is_closing():
            return
        limiter = self._table.limiter
        reason = limiter.refusal(self.ip, count_ip=self.count_ip) or limiter.full_message
        self._table.forget(self, False)
        self._transport.write(refusal_response(reason))
        self._transport.close()

    def _set_deadline(self, seconds: float) -> None:
        """Abort unless proven (or, held, answered) ``seconds`` after connecting; only
        ever brings the deadline closer."""
        if self._proven or self._transport is None:
            return
        loop = asyncio.get_running_loop()
        when = self._started + seconds
        if self._deadline is not None:
            if self._deadline.when() <= when:
                return
            self._deadline.cancel()
        self._deadline = loop.call_at(when, self.drop)


class _TlsCountedProtocol(_CountedProtocol):
    """A connection of a TLS site: it meets the table at its TCP accept, and its TLS
    handshake (within the head timeout) only starts once it has a slot or is held."""

    def __init__(self, tls: ssl.SSLContext, *args: Any) -> None:
        super().__init__(*args)
        self._tls = tls
        self._handshake: asyncio.Task[None] | None = None
        #: Decrypted bytes (or the end) that came before ``_secure`` went on after the
        #: handshake: the TLS layer hands them over at once.
        self._early = bytearray()
        self._early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the first bytes are the TLS layer's, not ours
        self._transport = transport
        self._started = asyncio.get_running_loop().time()
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        self.count_ip = self.ip not in self._trusted
        table = self._table
        if table.admit(self) or table.make_room(self):
            self._has_slot = True
            self._set_deadline(
                SHARE_PRESSED_HEAD_TIMEOUT if table.pressed else table.head_timeout
            )
        else:  # every slot it could take is proven: hear its head, answer 503
            table.hold(self)
            self._set_deadline(SHARE_PRESSED_HEAD_TIMEOUT)
        self._handshake = asyncio.ensure_future(self._secure(transport))

    async def _secure(self, raw: asyncio.Transport) -> None:
        """The TLS handshake; then serve (or, held, wait for the head)."""
        loop = asyncio.get_running_loop()
        try:
            secured = await loop.start_tls(
                raw, self, self._tls, server_side=True,
                ssl_handshake_timeout=self._table.head_timeout,
            )
        except asyncio.CancelledError:
            self._ended_in_handshake(raw)
            raise
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError):
            secured = None
        if secured is None or secured.is_closing() or raw.is_closing():
            self._ended_in_handshake(raw)  # failed, timed out, or dropped meanwhile
            return
        self._transport = secured
        self._table.track(secured, self)
        if self._has_slot:
            self._serve()
        early, self._early = bytes(self._early), bytearray()
        self._handshake = None
        if early:
            self.data_received(early)
        if self._early_eof:
            self.eof_received()

    def data_received(self, data: bytes) -> None:
        if self._handshake is not None:
            self._early += data
        else:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        if self._handshake is not None:
            self._early_eof = True
            return True
        return super().eof_received()

    def _ended_in_handshake(self, raw: asyncio.Transport) -> None:
        """No TLS: the slot (or the place among the held) is free, the socket closed."""
        if self._deadline is not None:
            self._deadline.cancel()
        self._table.forget(self, self._has_slot)
        self._has_slot = False
        raw.abort()


class LimitedSite(web.BaseSite):
    """A TCP site whose every connection passes through a ``ConnectionTable``."""

    __slots__ = ("_bound", "_has_token", "_host", "_port", "_sock", "_table", "_tls", "_trusted")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        limiter: ConnectionLimiter,
        *,
        has_token: Callable[[str], bool],
        trusted_proxies: Set[str] = frozenset(),
        head_timeout: float,
        tls: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
        backlog: int = 128,
    ) -> None:
        """``tls``: serve HTTPS; a connection meets the table at its TCP accept, before
        its handshake (which has ``head_timeout``). ``sock``: a socket already
        listening, served instead of ``host`` and ``port``. ``backlog``: connections the
        system queues until they are accepted."""
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._sock = sock
        self._table = ConnectionTable(limiter, head_timeout)
        self._has_token = has_token
        self._trusted = trusted_proxies
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

    def prove(self, request: web.BaseRequest) -> None:
        """``request`` asked for the token: its connection keeps its slot."""
        self._table.prove(request.transport)

    def unprove(self, request: web.BaseRequest) -> None:
        """``request``'s connection is back to proving itself (see ``ConnectionTable``)."""
        self._table.unprove(request.transport)

    def mute(self, request: web.BaseRequest) -> None:
        """The server is ending ``request``'s connection: what it still sends is dropped."""
        self._table.mute(request.transport)

    async def start(self) -> None:
        """Listen, wrapping aiohttp's protocol factory with the connection table."""
        await super().start()
        make_handler = self._runner.server
        assert make_handler is not None

        tls = self._tls

        def factory() -> asyncio.Protocol:
            parts = (make_handler, self._table, self._trusted, self._has_token)
            return _CountedProtocol(*parts) if tls is None else _TlsCountedProtocol(tls, *parts)

        loop = asyncio.get_running_loop()
        where: dict[str, Any] = (
            {"sock": self._sock} if self._sock is not None
            else {"host": self._host, "port": self._port}
        )
        # A TLS site takes one connection from the system's queue per loop tick (asyncio
        # takes up to its backlog), so the table sees each before the next comes in: a
        # flood never holds many more descriptors than the cap. The queue stays as long.
        burst = 1 if tls is not None else self._backlog
        self._server = await loop.create_server(factory, **where, backlog=burst)
        if burst != self._backlog:
            for listening in self._server.sockets:
                with socket.fromfd(listening.fileno(), listening.family, listening.type) as it:
                    it.listen(self._backlog)
        sockname = self._server.sockets[0].getsockname()
        self._bound = (str(sockname[0]), int(sockname[1]))
