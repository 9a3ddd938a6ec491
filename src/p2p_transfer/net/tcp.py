"""The LAN fast path: file data over TLS on TCP, bound to an authenticated QUIC session.

The receiver opens a one-use listener with a fresh self-signed certificate and
tells the sender, over the already authenticated QUIC control stream, the
certificate's SHA-256 and a single-use token. The sender pins the certificate
(no CA, no host name) and presents the token; anything else is closed at once.
QUIC keeps the conversation; TCP only carries bytes, which cost far less CPU
per byte from Python than QUIC does.

TLS runs on blocking sockets in worker threads (CPython's ``ssl`` releases the
GIL while it encrypts and moves bytes), not in asyncio's pure-Python TLS layer:
that halves the CPU the channel costs. The event loop sees only whole buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import queue
import secrets
import select
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from p2p_transfer.limits import (
    IO_BUFFER_SIZE,
    TCP_CONNECT_TIMEOUT,
    TCP_MAX_PENDING_CONNECTIONS,
    TCP_TOKEN_BYTES,
    TCP_TOKEN_TIMEOUT,
)
from p2p_transfer.net.errors import NetError

#: Lifetime of the throw-away certificate (the listener lives for one session).
_CERT_LIFETIME = datetime.timedelta(days=1)
#: Byte the listener answers a valid token with, so the sender knows it was accepted.
TOKEN_ACCEPTED = b"\x01"
#: Buffers read ahead of, or queued for writing behind, the event loop.
CHANNEL_BUFFERS = 4
#: How often a listening thread looks whether it was stopped (seconds).
_ACCEPT_POLL = 0.2
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TcpEndpointInfo:
    """What the sender needs to reach and trust a data listener."""

    port: int
    fingerprint: str  # SHA-256 of the certificate (DER), hex
    token: bytes


def _self_signed() -> tuple[bytes, bytes, str]:
    """A fresh EC key and certificate (PEM) and the certificate's SHA-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p2p-transfer data")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CERT_LIFETIME)
        .sign(key, hashes.SHA256())
    )
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, fingerprint


def _server_context() -> tuple[ssl.SSLContext, str]:
    cert_pem, key_pem, fingerprint = _self_signed()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # The end of the data is framed and hashed; a bare TCP close is no attack surface.
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    # load_cert_chain only reads files: a private temporary folder, removed at once.
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context, fingerprint


class TlsChannel:
    """One TLS connection as a ByteSource and ByteSink (see net.streams).

    A reader thread keeps up to CHANNEL_BUFFERS buffers ready; a writer thread
    sends queued buffers; both hand results to the loop with call_soon_threadsafe.
    """

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._incoming: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._read_credits = threading.Semaphore(CHANNEL_BUFFERS)
        self._reader: threading.Thread | None = None
        self._leftover = b""
        self._outgoing: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._write_credits = asyncio.Semaphore(CHANNEL_BUFFERS)
        self._writer: threading.Thread | None = None
        self._written: asyncio.Future[None] = self._loop.create_future()
        self._closed = False

    # --- reading ---------------------------------------------------------------

    async def read(self, limit: int) -> bytes:
        if self._leftover:
            data, self._leftover = self._leftover[:limit], self._leftover[limit:]
            return data
        if self._reader is None:
            self._reader = threading.Thread(target=self._read_loop, daemon=True)
            self._reader.start()
        item = await self._incoming.get()
        self._read_credits.release()
        if isinstance(item, BaseException):
            self._incoming.put_nowait(item)  # every later read fails the same way
            self._read_credits.acquire(blocking=False)
            raise NetError(f"data connection failed: {item}")
        data, self._leftover = item[:limit], item[limit:]
        return data

    def _read_loop(self) -> None:
        """Fill buffers from the socket: one blocking read, then whatever is already there."""
        buffer = bytearray(IO_BUFFER_SIZE)
        view = memoryview(buffer)
        while True:
            self._read_credits.acquire()
            try:
                got = self._sock.recv_into(view)
                while got and got < IO_BUFFER_SIZE and self._readable_now():
                    more = self._sock.recv_into(view[got:])
                    if not more:
                        break
                    got += more
            except (OSError, ValueError) as exc:
                self._deliver(exc if not self._closed else ConnectionError("closed"))
                return
            self._deliver(bytes(view[:got]))
            if not got:
                return

    def _readable_now(self) -> bool:
        if self._sock.pending():
            return True
        ready, _, _ = select.select([self._sock], [], [], 0)
        return bool(ready)

    def _deliver(self, item: bytes | BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is reading
            self._loop.call_soon_threadsafe(self._incoming.put_nowait, item)

    # --- writing ---------------------------------------------------------------

    async def write_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._written.done():
            self._written.result()  # raises the writer's failure
            raise NetError("data connection closed")
        await self._write_credits.acquire()
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, daemon=True)
            self._writer.start()
        self._outgoing.put(data if isinstance(data, bytes) else bytes(data))

    def _write_loop(self) -> None:
        try:
            while (data := self._outgoing.get()) is not None:
                self._sock.sendall(data)
                self._loop.call_soon_threadsafe(self._write_credits.release)
            self._sock.shutdown(socket.SHUT_WR)
        except (OSError, ValueError) as exc:
            self._settle_writes(NetError(f"data connection failed: {exc}"))
            return
        self._settle_writes(None)

    def _settle_writes(self, error: NetError | None) -> None:
        def settle() -> None:
            if self._written.done():
                return
            if error is None:
                self._written.set_result(None)
            else:
                self._written.set_exception(error)
            self._write_credits.release()  # wake a writer waiting for a credit

        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(settle)

    async def finish(self) -> None:
        """Send what is queued, then end the stream; the peer reads its end."""
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, daemon=True)
            self._writer.start()
        self._outgoing.put(None)
        await asyncio.shield(self._written)

    async def reset(self, code: int) -> None:
        self.abort()

    def close(self) -> None:
        """Close the socket (threads blocked on it wake with an error and end)."""
        self.abort()

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._outgoing.put(None)


def _read_exactly(sock: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


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
        sock.settimeout(_ACCEPT_POLL)
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
        """TLS and the token within TCP_TOKEN_TIMEOUT, else the connection is cut."""
        assert self._context is not None
        tls: ssl.SSLSocket | None = None
        token = b""
        try:
            conn.settimeout(TCP_TOKEN_TIMEOUT)
            tls = self._context.wrap_socket(conn, server_side=True)
            token = _read_exactly(tls, TCP_TOKEN_BYTES)
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
            _drop(tls or conn)  # wrong, late or already used token: no second chance
            return
        assert tls is not None
        try:
            tls.settimeout(None)
            tls.sendall(TOKEN_ACCEPTED)
        except OSError:
            _drop(tls)
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._hand_over, tls)

    def _hand_over(self, tls: ssl.SSLSocket) -> None:
        if self._accepted.done():
            _drop(tls)  # stopped meanwhile
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


def _drop(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _connect(host: str, info: TcpEndpointInfo, timeout: float) -> ssl.SSLSocket:
    """The blocking half of connect_data_channel (runs in a worker thread)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust comes from the pinned fingerprint below
    raw = socket.create_connection((host, info.port), timeout=timeout)
    try:
        tls = context.wrap_socket(raw, server_hostname=None)
    except BaseException:
        _drop(raw)
        raise
    try:
        seen = hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()
        if not hmac.compare_digest(seen, info.fingerprint):
            raise NetError("data connection refused: the receiver's certificate does not "
                           "match the one it announced (man in the middle?)")
        tls.sendall(info.token)
        if _read_exactly(tls, len(TOKEN_ACCEPTED)) != TOKEN_ACCEPTED:
            raise NetError("data connection refused by the receiver")
        tls.settimeout(None)
        return tls
    except BaseException:
        _drop(tls)
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
