"""The LAN fast path: file data over TLS on TCP, bound to an authenticated QUIC session.

The receiver opens a one-use listener with a fresh self-signed certificate and
tells the sender, over the already authenticated QUIC control stream, the
certificate's SHA-256 and a single-use token. The sender pins the certificate
(no CA, no host name) and presents the token; anything else is closed at once.
QUIC keeps the conversation; TCP only carries bytes, which cost far less CPU
per byte from Python than QUIC does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import secrets
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
    # load_cert_chain only reads files: a private temporary folder, removed at once.
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context, fingerprint


class TlsChannel:
    """One TLS connection as a ByteSource and ByteSink (see net.streams)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, limit: int) -> bytes:
        try:
            return await self._reader.read(limit)
        except (OSError, ssl.SSLError) as exc:
            raise NetError(f"data connection failed: {exc}") from None

    async def write_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (OSError, ssl.SSLError) as exc:
            raise NetError(f"data connection failed: {exc}") from None

    async def finish(self) -> None:
        """Close cleanly; the peer reads the end of the stream."""
        with contextlib.suppress(OSError, ssl.SSLError):
            await self._writer.drain()
        self.close()

    async def reset(self, code: int) -> None:
        self.abort()

    def close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        transport = self._writer.transport
        if transport is not None:
            transport.abort()


class _PlainUntilTls(asyncio.StreamReaderProtocol):
    """A server-side stream protocol that reads nothing before TLS takes the socket.

    The listener counts and limits connections before spending a TLS handshake on
    them, so it starts TLS itself (``StreamWriter.start_tls``). Reading stays paused
    from the first moment: a ClientHello read by the plain protocol would be lost
    to the TLS layer. ``start_tls`` resumes reading under TLS.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        transport.pause_reading()
        super().connection_made(transport)


class DataListener:
    """A TLS listener that admits exactly one connection: the one with the token.

    Every other connection is a stranger who found the port (the token is 256
    bits): it gets TCP_CONNECT_TIMEOUT for the TLS handshake and
    TCP_TOKEN_TIMEOUT for the token, and at most TCP_MAX_PENDING_CONNECTIONS
    of them are held at once.
    """

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._context: ssl.SSLContext | None = None
        self._token = secrets.token_bytes(TCP_TOKEN_BYTES)
        self._accepted: asyncio.Future[TlsChannel] = asyncio.get_running_loop().create_future()
        self._pending = 0
        self.info: TcpEndpointInfo | None = None
        #: Connections refused: wrong, late, partial or reused token, failed TLS, or over
        #: the cap of pending connections.
        self.refused = 0

    @classmethod
    async def open(cls, host: str) -> DataListener:
        """Listen on ``host`` at a free port with a fresh certificate."""
        listener = cls()
        listener._context, fingerprint = await asyncio.to_thread(_server_context)
        loop = asyncio.get_running_loop()

        def protocol() -> _PlainUntilTls:
            reader = asyncio.StreamReader(limit=IO_BUFFER_SIZE * 2)
            return _PlainUntilTls(reader, listener._on_connection)

        listener._server = await loop.create_server(protocol, host, 0)
        port = listener._server.sockets[0].getsockname()[1]
        listener.info = TcpEndpointInfo(port, fingerprint, listener._token)
        return listener

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        channel = TlsChannel(reader, writer)
        if self._accepted.done() or self._pending >= TCP_MAX_PENDING_CONNECTIONS:
            self.refused += 1
            channel.abort()  # taken, closed, or too many strangers at once: no TLS work
            return
        self._pending += 1
        try:
            token = await self._read_token(reader, writer)
        finally:
            self._pending -= 1
        if (
            token is None
            or self._accepted.done()
            or not hmac.compare_digest(token, self._token)
        ):
            self.refused += 1
            channel.abort()  # wrong, late or already used token: no second chance
            return
        self._accepted.set_result(channel)
        with contextlib.suppress(OSError):
            writer.write(TOKEN_ACCEPTED)
        if self._server is not None:
            self._server.close()  # single use: nobody else gets in

    async def _read_token(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes | None:
        """TLS, then the token, each within its deadline; None when either fails."""
        assert self._context is not None
        try:
            await writer.start_tls(self._context, ssl_handshake_timeout=TCP_CONNECT_TIMEOUT)
            async with asyncio.timeout(TCP_TOKEN_TIMEOUT):
                return await reader.readexactly(TCP_TOKEN_BYTES)
        except (TimeoutError, asyncio.IncompleteReadError, OSError, ssl.SSLError):
            return None

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
        if self._server is not None:
            self._server.close()
        if not self._accepted.done():
            self._accepted.cancel()

    async def close(self) -> None:
        """``stop``, for callers that close things with ``await``."""
        self.stop()


async def connect_data_channel(
    host: str, info: TcpEndpointInfo, timeout: float = TCP_CONNECT_TIMEOUT
) -> TlsChannel:
    """Connect, check the pinned certificate and present the token; NetError otherwise.

    A connection that fails half-way (late, wrong certificate, refused) is aborted
    here, not left for the garbage collector: the caller goes on without it.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust comes from the pinned fingerprint below
    channel: TlsChannel | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, info.port, ssl=context, server_hostname=None, limit=IO_BUFFER_SIZE * 2
            )
            channel = TlsChannel(reader, writer)
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            seen = hashlib.sha256(der or b"").hexdigest()
            if not hmac.compare_digest(seen, info.fingerprint):
                raise NetError("data connection refused: the receiver's certificate does not "
                               "match the one it announced (man in the middle?)")
            writer.write(info.token)
            await writer.drain()
            if await reader.read(len(TOKEN_ACCEPTED)) != TOKEN_ACCEPTED:
                raise NetError("data connection refused by the receiver")
            return channel
    except BaseException as exc:
        if channel is not None:
            channel.abort()
        if isinstance(exc, TimeoutError):
            raise NetError(f"no TCP data connection within {timeout:.0f} s") from None
        if isinstance(exc, OSError | ssl.SSLError):
            raise NetError(f"TCP data connection failed: {exc}") from None
        raise
