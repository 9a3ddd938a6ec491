"""A hostile peer built on the same ``net`` layer as the real sender.

It speaks the protocol only as far as a test wants, and then does the bad
thing: raw bytes, messages out of order, streams it should not open, lies.
Every iroh object it creates is kept referenced: dropping a Connection or a
stream object closes or resets it, which would hide what a test means to do.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from iroh import iroh_ffi

from p2p_transfer.net import (
    MessageReader,
    MessageWriter,
    NetError,
    Transport,
    describe_iroh_error,
    parse_ticket,
)
from p2p_transfer.protocol import (
    PROTOCOL_VERSION,
    Accept,
    AnyMessage,
    Entry,
    Hello,
    ManifestPage,
    Message,
    Offer,
    Resume,
    ResumePage,
    Verify,
    Welcome,
    paginate,
)
from p2p_transfer.trust import load_or_create_secret_key
from p2p_transfer.trust.pake import CodeExchange, PakeError

#: Seconds a hostile client waits for something it expects from the receiver.
REPLY_TIMEOUT = 10.0


class HostileClient:
    """An endpoint (one identity, one bind address) that can open many connections."""

    def __init__(self, transport: Transport, home: Path, key: bytes, bind: str) -> None:
        self.transport = transport
        self.home = home
        self.key = key
        self.bind = bind
        self.conversations: list[Conversation] = []
        self._own_endpoints: list[Transport] = []  # see connect_from_bind

    @classmethod
    async def start(cls, home: Path, bind: str = "127.0.0.1") -> HostileClient:
        """Bind a new identity (created in ``home``) on ``bind``."""
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = await asyncio.to_thread(load_or_create_secret_key, home)
        return cls(await Transport.bind(key, bind), home, key, bind)

    @property
    def endpoint_id(self) -> str:
        return self.transport.endpoint_id

    async def connect(self, ticket: str, timeout: float = REPLY_TIMEOUT) -> Conversation:
        """A new connection to ``ticket`` (no stream opened yet)."""
        connection = (await self.transport.connect(ticket, timeout)).raw
        conversation = Conversation(connection, self.endpoint_id)
        self.conversations.append(conversation)
        return conversation

    async def connect_from_bind(
        self, ticket: str, timeout: float = REPLY_TIMEOUT
    ) -> Conversation:
        """A new connection the receiver counts under this client's bind address.

        iroh binds an IPv6 socket beside an IPv4 bind, and an endpoint that met the
        receiver before starts a new connection on any path it validated (on loopback
        often ``::1``, which the receiver counts as another address). A fresh endpoint
        of the same identity that knows only the ticket's addresses of the bind's
        family can start on that family alone.
        """
        transport = await Transport.bind(self.key, self.bind)
        self._own_endpoints.append(transport)
        connection = (await transport.connect(same_family(ticket, self.bind), timeout)).raw
        conversation = Conversation(connection, self.endpoint_id)
        self.conversations.append(conversation)
        return conversation

    async def close(self) -> None:
        await asyncio.gather(
            *(t.close() for t in (self.transport, *self._own_endpoints)),
            return_exceptions=True,
        )


def same_family(ticket: str, host: str) -> str:
    """``ticket`` with only its addresses of ``host``'s family (IPv4 or IPv6), so that
    an endpoint dialing it cannot start on the other one."""
    addr = parse_ticket(ticket)
    ipv6 = ":" in host
    addresses = [a for a in addr.direct_addresses() if a.startswith("[") == ipv6]
    return str(iroh_ffi.EndpointTicket.from_addr(
        iroh_ffi.EndpointAddr(addr.id(), addr.relay_url(), addresses)
    ))


class HostileWriter(MessageWriter):
    """A data stream writer that carries on when the receiver cuts it off.

    Being cut off is what the tests expect of a good receiver; whether the cut
    lands before or after the last write is a race, so writes after it are
    dropped (``cut_off`` tells) and the test checks the receiver's close reason.
    """

    cut_off = False

    async def _quietly(self, write: Awaitable[None]) -> None:
        if self.cut_off:
            write.close()  # type: ignore[attr-defined]
            return
        try:
            await write
        except NetError:
            self.cut_off = True

    async def send(self, message: Message) -> None:
        await self._quietly(super().send(message))

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self._quietly(super().write(data))

    async def finish(self) -> None:
        await self._quietly(super().finish())


class Conversation:
    """One connection of a hostile client, with its control stream once opened."""

    def __init__(self, connection: iroh_ffi.Connection, own_id: str) -> None:
        self.connection = connection
        self.own_id = own_id
        self.welcome: Welcome | None = None  # the last Welcome, for code answers
        self.keep: list[Any] = []  # every stream object, kept alive on purpose
        self._writer: MessageWriter | None = None
        self._reader: MessageReader | None = None

    # --- the control stream -----------------------------------------------------

    async def open_control(self) -> None:
        """Open the bidirectional control stream (sends nothing yet)."""
        stream = await _opened(self.connection.open_bi())
        self.keep.append(stream)
        self._writer = MessageWriter(stream.send())
        self._reader = MessageReader(stream.recv())

    async def _control(self) -> tuple[MessageWriter, MessageReader]:
        if self._writer is None or self._reader is None:
            await self.open_control()
        assert self._writer is not None and self._reader is not None
        return self._writer, self._reader

    async def send(self, *messages: Message) -> None:
        """Send well-framed control messages."""
        writer, _ = await self._control()
        for message in messages:
            await writer.send(message)

    async def send_raw(self, data: bytes) -> None:
        """Send arbitrary bytes on the control stream."""
        writer, _ = await self._control()
        await writer.write(data)

    async def finish_control(self) -> None:
        """End the control stream (a clean FIN, possibly in the middle of a frame)."""
        writer, _ = await self._control()
        await writer.finish()

    async def read(self, timeout: float = REPLY_TIMEOUT) -> AnyMessage | None:
        """The receiver's next control message; None when it ended the stream."""
        _, reader = await self._control()
        try:
            # Safe to time out here: a test that times out abandons this connection.
            return await asyncio.wait_for(reader.read_message(), timeout)
        except NetError:
            return None

    # --- steps of the real conversation -------------------------------------------

    async def hello(
        self, name: str = "hostile", paired: bool = True, retries: bool = False
    ) -> AnyMessage | None:
        """Hello (claiming a pairing, so only the receiver's decides); returns its answer.
        With ``retries`` it says it can type another code after a wrong one."""
        await self.send(Hello(PROTOCOL_VERSION, name, paired, retries))
        answer = await self.read()
        if isinstance(answer, Welcome):
            self.welcome = answer
        return answer

    def answer_code(self, code: str, pake: bytes | None = None) -> Verify:
        """The Verify message a sender who typed ``code`` sends (SPAKE2, as the real one),
        answering the Welcome's exchange or the given one (a Retry's)."""
        assert self.welcome is not None, "hello() first"
        receiver_id = str(self.connection.remote_id())
        exchange = CodeExchange(code, receiver_id=receiver_id, sender_id=self.own_id)
        try:
            exchange.finish(self.welcome.pake if pake is None else pake)
        except PakeError:
            return Verify(exchange.message, b"")
        return Verify(exchange.message, exchange.sender_proof())

    async def verify(self, code: str) -> AnyMessage | None:
        """Hello then, if asked, the code; returns Verified/Welcome(no code)/Error."""
        welcome = await self.hello()
        if not isinstance(welcome, Welcome) or not welcome.code_required:
            return welcome
        await self.send(self.answer_code(code))
        return await self.read()

    async def offer(
        self, entries: list[Entry], transfer_id: str = "hostile"
    ) -> tuple[AnyMessage | None, dict[int, Resume]]:
        """Offer ``entries`` (with honest totals); returns the answer and any resume points."""
        files = [e for e in entries if e.kind == "file"]
        pages = list(paginate(entries))
        total = sum(e.size for e in files)
        await self.send(Offer(transfer_id, len(entries), len(files), total, len(pages)))
        for page in pages:
            await self.send(ManifestPage(page))
        answer = await self.read()
        resume: dict[int, Resume] = {}
        if isinstance(answer, Accept):
            for _ in range(answer.pages):
                page = await self.read()
                assert isinstance(page, ResumePage), page
                resume.update((item.index, item) for item in page.items)
        return answer, resume

    # --- data streams ------------------------------------------------------------

    async def open_data(self) -> HostileWriter:
        """Open a unidirectional data stream."""
        stream = await _opened(self.connection.open_uni())
        self.keep.append(stream)
        return HostileWriter(stream)

    async def open_extra_bi(self) -> HostileWriter:
        """Open another bidirectional stream (the protocol allows only one)."""
        stream = await _opened(self.connection.open_bi())
        self.keep.append(stream)
        return HostileWriter(stream.send())

    # --- the end -------------------------------------------------------------------

    async def closed(self, timeout: float = REPLY_TIMEOUT) -> str:
        """Wait until the receiver closes this connection; returns iroh's reason text."""
        return await asyncio.wait_for(self.connection.closed(), timeout)

    def close(self) -> None:
        try:
            self.connection.close(0, b"bye")
        except iroh_ffi.IrohError:
            pass


async def _opened(opening: Awaitable[Any]) -> Any:
    """A newly opened stream; NetError (as from the writers) when the connection is gone."""
    try:
        return await opening
    except iroh_ffi.IrohError as exc:
        raise NetError(describe_iroh_error(exc)) from None


def file_entry(path: str, size: int, mode: int = 0o644, mtime: float = 0.0) -> Entry:
    """A manifest entry for a file."""
    return Entry(path, "file", size, mode, mtime)


def dir_entry(path: str) -> Entry:
    """A manifest entry for a folder."""
    return Entry(path, "dir", 0, 0o755, 0.0)


def files_in(folder: Path) -> list[str]:
    """Every file and symlink under ``folder`` (relative, POSIX), sorted; [] if it is missing."""
    if not folder.exists():
        return []
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()
    )


def rss_bytes() -> int:
    """This process's resident memory now."""
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")
