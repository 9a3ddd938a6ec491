"""The LAN fast path: file data over TLS on TCP, bound to an authenticated QUIC session.

The receiver opens a one-use listener with a fresh self-signed certificate and
tells the sender, over the already authenticated QUIC control stream, the
certificate's SHA-256 and a single-use token. The sender pins the certificate
(no CA, no host name) and presents the token; anything else is closed at once.
QUIC keeps the conversation; TCP only carries bytes, which cost far less CPU
per byte from Python than QUIC does.

TLS runs through memory BIOs on blocking sockets in the channel's own threads:
one socket call moves up to a megabyte of TLS records (Python's SSLSocket makes
one or two calls per 16 KiB record), and file bytes are pumped between disk and
socket in those threads, so the event loop sees each file only at its start
and end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import hashlib
import hmac
import queue
import secrets
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from p2p_transfer.limits import (
    PUMP_BUFFER_SIZE,
    PUMP_HANDOVER_SIZE,
    PUMP_HANDOVER_WAIT,
    TCP_ACCEPT_POLL,
    TCP_CERT_CLOCK_SKEW,
    TCP_CERT_LIFETIME,
    TCP_CHANNEL_BUFFERS,
    TCP_CONNECT_TIMEOUT,
    TCP_HANDSHAKE_READ_SIZE,
    TCP_MAX_PENDING_CONNECTIONS,
    TCP_TOKEN_BYTES,
    TCP_TOKEN_TIMEOUT,
)
from p2p_transfer.net.certificates import ed25519_self_signed
from p2p_transfer.net.errors import NetError
from p2p_transfer.net.streams import FileDrain, FileFeed, Progress, StreamEnded, page_aligned

#: Byte the listener answers a valid token with, so the sender knows it was accepted.
TOKEN_ACCEPTED = b"\x01"
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TcpEndpointInfo:
    """What the sender needs to reach and trust a data listener."""

    port: int
    fingerprint: str  # SHA-256 of the certificate (DER), hex
    token: bytes


def _server_context() -> tuple[ssl.SSLContext, str]:
    cert_pem, key_pem = ed25519_self_signed(
        "p2p-transfer data",
        datetime.timedelta(seconds=TCP_CERT_CLOCK_SKEW),
        datetime.timedelta(seconds=TCP_CERT_LIFETIME),
    )
    fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem.decode())).hexdigest()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # The end of the data is framed and hashed; a bare TCP close is no attack surface.
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    context.num_tickets = 0  # one connection per listener: nothing to resume
    # load_cert_chain only reads files: a private temporary folder, removed at once.
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context, fingerprint


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust comes from the pinned fingerprint
    return context


class TlsSocket:
    """TLS on a blocking TCP socket, through memory BIOs (see the module's docstring).

    One thread may read while another writes: the TLS state is touched under a
    lock, the socket calls happen outside it.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_side: bool) -> None:
        self.sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side)
        self._lock = threading.Lock()
        self._raw: bytearray | memoryview = bytearray(TCP_HANDSHAKE_READ_SIZE)
        #: Monotonic time by which every read must be done (the handshake and token),
        #: or None: then a read that finds nothing for the socket's timeout returns early.
        self.deadline: float | None = None
        #: The peer ended the stream (TCP end or TLS close).
        self.ended = False

    def bulk(self, patience: float | None) -> None:
        """From now on read in big pieces, handing over early after ``patience`` seconds."""
        self.deadline = None
        self._raw = page_aligned(PUMP_BUFFER_SIZE)
        self.sock.settimeout(patience)

    def handshake(self) -> None:
        """The TLS handshake (raises OSError, ssl.SSLError or TimeoutError)."""
        while True:
            with self._lock:
                try:
                    self._tls.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                out = self._outgoing.read()
            if out:
                self.sock.sendall(out)
            if done:
                return
            if self._receive_raw() is False:
                raise ConnectionError("connection closed during the TLS handshake")

    def peer_certificate(self) -> bytes:
        """The peer's certificate (DER)."""
        return self._tls.getpeercert(binary_form=True) or b""

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send all of ``data`` (one socket call for up to a megabyte)."""
        with self._lock:
            self._tls.write(data)
            out = self._outgoing.read()
        self.sock.sendall(out)

    def recv_into(self, view: memoryview, minimum: int = 1) -> int:
        """Decrypt into ``view``: at least ``minimum`` bytes, fewer only at the end of
        the stream or when the socket stayed quiet for its timeout with something in hand.
        """
        filled = 0
        while filled < len(view):
            with self._lock:
                try:
                    got: int | None = self._tls.read(len(view) - filled, view[filled:])
                except ssl.SSLWantReadError:
                    got = None
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    got = 0
            if got == 0:
                self.ended = True
                break
            if got is not None:
                filled += got
                continue
            if filled >= minimum or self.ended:
                break
            came = self._receive_raw()
            if came is False:
                self.ended = True
                break
            if came is None and filled:
                break  # a slow link: hand over what came
        return filled

    def recv_exactly(self, size: int) -> bytes:
        """``size`` bytes, or fewer if the stream ended."""
        buffer = bytearray(size)
        view = memoryview(buffer)
        filled = 0
        while filled < size and not self.ended:
            filled += self.recv_into(view[filled:], size - filled)
        return bytes(buffer[:filled])

    def _receive_raw(self) -> bool | None:
        """Pull what the socket has: True if bytes came, False at its end, None if none
        came within the socket's timeout (only without a deadline)."""
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the peer took too long")
            self.sock.settimeout(remaining)
        try:
            got = self.sock.recv_into(self._raw)
        except TimeoutError:
            if self.deadline is not None:
                raise
            return None
        if not got:
            return False
        with self._lock:
            self._incoming.write(memoryview(self._raw)[:got])
        return True


class _Worker:
    """A thread that runs one direction's blocking calls in order, for the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self._loop = loop
        self._jobs: queue.SimpleQueue[tuple[asyncio.Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._stopped = False

    def submit(self, job: Callable[[], _T]) -> asyncio.Future[_T]:
        """Run ``job`` after the ones before it; its result or exception ends up in the future."""
        future: asyncio.Future[_T] = self._loop.create_future()
        if self._stopped:
            future.set_exception(NetError("data connection closed"))
        else:
            if not self._started:
                self._started = True
                self._thread.start()
            self._jobs.put((future, job))
        future.add_done_callback(_retrieve)
        return future

    def stop(self) -> None:
        """End the thread after the jobs already queued (which then fail fast)."""
        if not self._stopped:
            self._stopped = True
            self._jobs.put(None)

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, job = item
            try:
                result = job()
            except BaseException as exc:
                self._settle(future, None, exc)
            else:
                self._settle(future, result, None)

    def _settle(
        self, future: asyncio.Future[Any], result: Any, error: BaseException | None
    ) -> None:
        def settle() -> None:
            if future.done():
                return
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            self._loop.call_soon_threadsafe(settle)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a job's failure as seen: a closed channel fails every queued job alike."""
    if not future.cancelled():
        future.exception()


class TlsChannel:
    """One TLS connection as a ByteSource and ByteSink (see net.streams), that also
    pumps whole files: ``pump_out`` and ``pump_in`` move a file's bytes between disk
    and socket in the channel's threads.

    Each direction has its own thread; the sender only writes, the receiver only reads.
    """

    def __init__(self, tls: TlsSocket) -> None:
        self._tls = tls
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._reader = _Worker(loop, "tls-reader")
        self._writer = _Worker(loop, "tls-writer")
        self._writes: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    # --- reading ---------------------------------------------------------------

    async def read(self, limit: int) -> bytes:
        """What has arrived, up to ``limit`` bytes; b"" at the end of the stream."""
        return await self._reader.submit(lambda: self._read_some(limit))

    def _read_some(self, limit: int) -> bytes:
        buffer = bytearray(limit)
        got = self._guarded(self._tls.recv_into, memoryview(buffer))
        del buffer[got:]
        return bytes(buffer)

    async def pump_in(
        self, length: int, first: bytes, drain: FileDrain, progress: Progress
    ) -> None:
        """Take a file's ``length`` bytes (after ``first``, already read) into ``drain``."""
        done = self._reader.submit(lambda: self._receive_file(length, first, drain, progress))
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            self.abort()  # the thread's read fails at once; wait so the file is let go
            with contextlib.suppress(NetError):
                await done
            raise

    def _receive_file(
        self, length: int, first: bytes, drain: FileDrain, progress: Progress
    ) -> None:
        if first:
            drain.take(memoryview(first))
            self._report(progress, len(first))
        buffer = page_aligned(min(PUMP_BUFFER_SIZE, length))
        remaining = length
        while remaining:
            want = min(len(buffer), remaining)
            piece = buffer[:want]
            got = self._guarded(self._tls.recv_into, piece, min(want, PUMP_HANDOVER_SIZE))
            if not got:
                raise StreamEnded("stream ended early")
            drain.take(buffer[:got])
            self._report(progress, got)
            remaining -= got

    # --- writing ---------------------------------------------------------------

    async def write_all(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; waits only when TCP_CHANNEL_BUFFERS writes are already queued."""
        if self._closed:
            raise NetError("data connection closed")
        while len(self._writes) >= TCP_CHANNEL_BUFFERS or (self._writes and self._writes[0].done()):
            await self._writes.popleft()  # raises the first failure
        owned = bytes(data)  # the caller may reuse its buffer
        self._writes.append(self._writer.submit(lambda: self._guarded(self._tls.send, owned)))

    async def pump_out(self, length: int, feed: FileFeed, progress: Progress) -> None:
        """Send a file's ``length`` bytes, read from ``feed``, after what is queued."""
        await self._writer.submit(lambda: self._send_file(length, feed, progress))

    def _send_file(self, length: int, feed: FileFeed, progress: Progress) -> None:
        buffer = page_aligned(min(PUMP_BUFFER_SIZE, length))
        remaining = length
        while remaining:
            piece = buffer[: min(len(buffer), remaining)]
            feed.fill(piece)
            self._guarded(self._tls.send, piece)
            self._report(progress, len(piece))
            remaining -= len(piece)

    async def finish(self) -> None:
        """Send what is queued, then end the stream; the peer reads its end."""
        await self._writer.submit(
            lambda: self._guarded(self._tls.sock.shutdown, socket.SHUT_WR)
        )
        while self._writes:
            await self._writes.popleft()

    async def reset(self, code: int) -> None:
        self.abort()

    # --- both ----------------------------------------------------------------

    def _guarded(self, call: Callable[..., _T], *args: Any) -> _T:
        """Make a socket call in a channel thread; its failures become NetError."""
        try:
            return call(*args)
        except (OSError, ValueError, ssl.SSLError) as exc:
            reason = "closed" if self._closed else str(exc) or type(exc).__name__
            raise NetError(f"data connection failed: {reason}") from None

    def _report(self, progress: Progress, count: int) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is counting
            self._loop.call_soon_threadsafe(progress, count)

    def close(self) -> None:
        """Close the socket (threads blocked on it wake with an error and end)."""
        self.abort()

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        _drop(self._tls.sock)
        self._reader.stop()
        self._writer.stop()


class DataListener:
    """A TLS listener that admits exactly one connection: the one with the token.

    Every other connection is a stranger who found the port (the token is 256
    bits): it gets TCP_TOKEN_TIMEOUT for the TLS handshake and the token, and
    at most TCP_MAX_PENDING_CONNECTIONS of them are held at once.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._socket: socket.socket | None = None
        self._context: ssl.SSLContext | None = None
        self._token = secrets.token_bytes(TCP_TOKEN_BYTES)
        self._accepted: asyncio.Future[TlsChannel] = self._loop.create_future()
        self._lock = threading.Lock()
        self._pending = 0
        self._stopped = threading.Event()
        self.info: TcpEndpointInfo | None = None
        #: Connections refused: wrong, late, partial or reused token, failed TLS, or over
        #: the cap of pending connections.
        self.refused = 0

    @classmethod
    async def open(cls, host: str) -> DataListener:
        """Listen on ``host`` at a free port with a fresh certificate."""
        listener = cls()
        listener._context, fingerprint = await asyncio.to_thread(_server_context)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((host, 0))
            sock.listen()
        except OSError:
            sock.close()
            raise
        sock.settimeout(TCP_ACCEPT_POLL)
        listener._socket = sock
        listener.info = TcpEndpointInfo(sock.getsockname()[1], fingerprint, listener._token)
        threading.Thread(target=listener._accept_loop, daemon=True).start()
        return listener

    def _accept_loop(self) -> None:
        assert self._socket is not None
        while not self._stopped.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            with self._lock:
                admit = not self._stopped.is_set() and self._pending < TCP_MAX_PENDING_CONNECTIONS
                if admit:
                    self._pending += 1
                else:
                    self.refused += 1
            if not admit:
                _drop(conn)  # taken, closed, or too many strangers at once: no TLS work
                continue
            threading.Thread(target=self._admit, args=(conn,), daemon=True).start()
        self._socket.close()

    def _admit(self, conn: socket.socket) -> None:
        """TLS and the token within TCP_TOKEN_TIMEOUT in all, else the connection is cut."""
        assert self._context is not None
        _no_delay(conn)
        tls = TlsSocket(conn, self._context, server_side=True)
        tls.deadline = time.monotonic() + TCP_TOKEN_TIMEOUT
        try:
            tls.handshake()
            token = tls.recv_exactly(TCP_TOKEN_BYTES)
        except (OSError, ssl.SSLError):
            token = b""
        with self._lock:
            self._pending -= 1
            won = (
                len(token) == TCP_TOKEN_BYTES
                and hmac.compare_digest(token, self._token)
                and not self._stopped.is_set()
            )
            if won:
                self._stopped.set()  # single use: nobody else gets in
                if self._socket is not None:
                    _drop(self._socket)
            else:
                self.refused += 1
        if not won:
            _drop(conn)  # wrong, late or already used token: no second chance
            return
        try:
            tls.send(TOKEN_ACCEPTED)
            tls.bulk(patience=PUMP_HANDOVER_WAIT)
        except (OSError, ssl.SSLError):
            _drop(conn)
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._hand_over, tls)

    def _hand_over(self, tls: TlsSocket) -> None:
        if self._accepted.done():
            _drop(tls.sock)  # stopped meanwhile
        else:
            self._accepted.set_result(TlsChannel(tls))

    @property
    def pending(self) -> int:
        """Connections held now that have not presented the token yet."""
        return self._pending

    @property
    def has_accepted(self) -> bool:
        """True once a connection presented the token."""
        return self._accepted.done() and not self._accepted.cancelled()

    async def accepted(self) -> TlsChannel:
        """The sender's connection, once it has presented the token."""
        return await self._accepted

    def stop(self) -> None:
        """Stop listening (an accepted channel stays open); the token is dead from now on."""
        self._stopped.set()
        if self._socket is not None:
            _drop(self._socket)  # shutdown first: it ends a blocked accept() at once
        if not self._accepted.done():
            self._accepted.cancel()

    async def close(self) -> None:
        """``stop``, for callers that close things with ``await``."""
        self.stop()


def _no_delay(sock: socket.socket) -> None:
    """Small writes go out at once. The token follows the handshake's last record, and
    Nagle held it for the receiver's delayed ACK: 40 ms on every transfer's start.
    The data itself is written in large buffers either way."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _drop(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _connect(host: str, info: TcpEndpointInfo, timeout: float) -> TlsSocket:
    """The blocking half of connect_data_channel (runs in a worker thread)."""
    deadline = time.monotonic() + timeout
    raw = socket.create_connection((host, info.port), timeout=timeout)
    _no_delay(raw)
    tls = TlsSocket(raw, _client_context(), server_side=False)
    tls.deadline = deadline
    try:
        tls.handshake()
        seen = hashlib.sha256(tls.peer_certificate()).hexdigest()
        if not hmac.compare_digest(seen, info.fingerprint):
            raise NetError("data connection refused: the receiver's certificate does not "
                           "match the one it announced (man in the middle?)")
        tls.send(info.token)
        if tls.recv_exactly(len(TOKEN_ACCEPTED)) != TOKEN_ACCEPTED:
            raise NetError("data connection refused by the receiver")
        tls.bulk(patience=None)
        return tls
    except BaseException:
        _drop(raw)
        raise


async def connect_data_channel(
    host: str, info: TcpEndpointInfo, timeout: float = TCP_CONNECT_TIMEOUT
) -> TlsChannel:
    """Connect, check the pinned certificate and present the token; NetError otherwise.

    A connection that fails half-way (late, wrong certificate, refused) is closed
    here: the caller goes on without it.
    """
    try:
        return TlsChannel(await asyncio.to_thread(_connect, host, info, timeout))
    except TimeoutError:
        raise NetError(f"no TCP data connection within {timeout:.0f} s") from None
    except (OSError, ssl.SSLError) as exc:
        raise NetError(f"TCP data connection failed: {exc}") from None
