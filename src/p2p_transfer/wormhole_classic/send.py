"""Sending to a plain magic-wormhole receiver (``wormhole receive``): the classic protocol.

A text goes in the offer itself; a file as its bytes; a folder as a zip streamed
while it is read (stored entries, as the wormhole CLI makes it: its size is known
before the first byte, and nothing is held in memory). The receiver's ack carries
the SHA-256 of everything it got, checked here against what was sent: the one end
to end check this protocol has.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from zipstream.ng import ZipStream

from p2p_transfer.events import (
    ConnectionEvent,
    DoneEvent,
    EventBus,
    FileDoneEvent,
    OfferSentEvent,
    SessionState,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import (
    IO_BUFFER_SIZE,
    MAX_TEXT_BYTES,
    WORMHOLE_ACK_TIMEOUT,
    WORMHOLE_ANSWER_TIMEOUT,
    WORMHOLE_MAX_MESSAGES_BEFORE_OFFER,
    WORMHOLE_SEND_RECORD_SIZE,
)
from p2p_transfer.protocol import ProtocolError
from p2p_transfer.transfer import Declined, PeerError, TransferError, TransferResult
from p2p_transfer.transfer.local import SourceError, Sources, scan_sources
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.units import format_size
from p2p_transfer.wormhole_classic.mailbox import Mailbox, Wormhole
from p2p_transfer.wormhole_classic.messages import (
    FileOffer,
    FolderOffer,
    Offer,
    TextOffer,
    encode_hints,
    offer_message,
    read_ack,
    read_answer,
    read_hints,
)
from p2p_transfer.wormhole_classic.receive import VIA
from p2p_transfer.wormhole_classic.transit import (
    DEFAULT_TRANSIT_RELAY,
    RecordPipe,
    Transit,
    parse_relay,
)

#: The peer's name in events: a wormhole client does not say one.
PEER_NAME = "magic-wormhole receiver"


@dataclass(slots=True)
class ClassicSend:
    """What to send to a magic-wormhole receiver: one file or folder, or a text."""

    paths: list[Path] = field(default_factory=list)
    text: str | None = None
    follow_symlinks: bool = False
    #: The transit relay (``tcp:HOST:PORT`` or ``HOST:PORT``); None for none.
    transit_relay: str | None = DEFAULT_TRANSIT_RELAY
    #: Listen for the receiver's direct connection (and offer our addresses).
    listen: bool = True


async def send_classic(
    wormhole: Wormhole, setup: ClassicSend, lifecycle: Lifecycle, events: EventBus
) -> TransferResult:
    """Offer, wait for the answer, send, check the ack; the caller closes the wormhole.

    Raises ``Declined`` when the receiver says no, ``TransferError`` (or a subclass)
    when the transfer fails; a result when it is done.
    """
    mailbox = Mailbox(wormhole)
    lifecycle.peer_name = PEER_NAME
    try:
        what = await asyncio.to_thread(_prepare, setup)
    except SourceError:
        mailbox.refuse("the sender cannot read what it was to send")
        raise
    try:
        return await _send(mailbox, what, setup, lifecycle, events)
    except ProtocolError as exc:
        mailbox.refuse(exc)
        raise
    finally:
        what.close()


async def _send(
    mailbox: Mailbox, what: _Prepared, setup: ClassicSend, lifecycle: Lifecycle,
    events: EventBus,
) -> TransferResult:
    if isinstance(what.offer, TextOffer):
        return await _send_text(mailbox, what.offer, lifecycle, events)
    relays = [parse_relay(setup.transit_relay)] if setup.transit_relay else []
    transit = Transit("sender", mailbox.transit_key(), relays, setup.listen)
    try:
        direct, ours = await transit.start()
        mailbox.send(encode_hints(direct, ours))
        _announce(mailbox, what.offer, lifecycle, events)
        await _wait_for_yes(mailbox, transit, text=False)
        lifecycle.advance(SessionState.TRANSFERRING)
        pipe = await transit.connect()
        try:
            return await _Upload(what, lifecycle, events, mailbox.verifier()).run(pipe)
        finally:
            await pipe.close()
    finally:
        await transit.close()


@dataclass(slots=True)
class _Prepared:
    """The offer, and where its bytes come from."""

    offer: Offer
    source: BinaryIO | None = None
    archive: ZipStream | None = None
    sources: Sources | None = None

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


def _prepare(setup: ClassicSend) -> _Prepared:
    """The offer for a text, one file or one folder (magic-wormhole takes one at a time)."""
    if setup.text is not None:
        if len(setup.text.encode()) > MAX_TEXT_BYTES:
            raise SourceError(
                f"the text is over {format_size(MAX_TEXT_BYTES)}; send it as a file instead"
            )
        return _Prepared(TextOffer(setup.text))
    if len(setup.paths) != 1:
        raise SourceError("a magic-wormhole receiver takes one file or folder at a time")
    sources = scan_sources(setup.paths, setup.follow_symlinks)
    top = sources[0].entry
    if top.kind == "file":
        try:
            source = open(sources.source(0), "rb")  # noqa: SIM115 - closed by _Prepared.close
        except OSError as exc:
            raise SourceError(f"cannot read {setup.paths[0]}: {exc.strerror}") from None
        return _Prepared(FileOffer(top.path, top.size), source=source)
    archive = ZipStream(sized=True)
    cut = len(top.path) + 1
    for index in range(1, len(sources)):
        item = sources[index]
        archive.add_path(item.source, item.entry.path[cut:], recurse=False)
    offer = FolderOffer(top.path, len(archive), sources.entries.files, sources.entries.total_bytes)
    return _Prepared(offer, archive=archive, sources=sources)


async def _send_text(
    mailbox: Mailbox, offer: TextOffer, lifecycle: Lifecycle, events: EventBus
) -> TransferResult:
    size = len(offer.text.encode())
    mailbox.send(offer_message(offer))
    events.emit(OfferSentEvent(lifecycle.session, PEER_NAME, 0, size, text=True))
    lifecycle.advance(SessionState.WAITING)
    await _wait_for_yes(mailbox, None, text=True)
    events.emit(DoneEvent(lifecycle.session, "send", True, 0, 0, size, size, 0.0, via=VIA,
                          text=True))
    return TransferResult(SessionState.DONE, bytes_total=size, bytes_transferred=size)


def _announce(mailbox: Mailbox, offer: Offer, lifecycle: Lifecycle, events: EventBus) -> None:
    mailbox.send(offer_message(offer))
    files = offer.files if isinstance(offer, FolderOffer) else 1
    size = offer.size if isinstance(offer, FileOffer | FolderOffer) else 0
    folders = int(isinstance(offer, FolderOffer))
    events.emit(OfferSentEvent(lifecycle.session, PEER_NAME, files, size, folders))
    lifecycle.advance(SessionState.WAITING)


async def _wait_for_yes(mailbox: Mailbox, transit: Transit | None, text: bool) -> None:
    """The receiver's answer (its transit hints may come first); a no raises ``Declined``."""
    for _ in range(WORMHOLE_MAX_MESSAGES_BEFORE_OFFER):
        try:
            body = await mailbox.receive(WORMHOLE_ANSWER_TIMEOUT, "answer")
        except PeerError as exc:  # the wormhole CLI says no with an error
            raise Declined(str(exc).removeprefix("the other side stopped: ")) from None
        if "transit" in body and transit is not None:
            transit.add_peer_hints(read_hints(body["transit"]))
        if "answer" in body:
            read_answer(body["answer"], text)
            return
    raise ProtocolError("the receiver sent no answer to the offer")


class _Upload:
    """The accepted file's or zip's bytes as records, then the receiver's ack."""

    def __init__(
        self, what: _Prepared, lifecycle: Lifecycle, events: EventBus, peer_id: str
    ) -> None:
        self._what = what
        self._lifecycle = lifecycle
        self._events = events
        self._peer_id = peer_id
        offer = what.offer
        assert isinstance(offer, FileOffer | FolderOffer)
        self._offer = offer
        self._wire_size = offer.zip_size if isinstance(offer, FolderOffer) else offer.size
        self._tracker = ProgressTracker(
            lifecycle.session, "send", self._wire_size,
            offer.files if isinstance(offer, FolderOffer) else 1, events.emit,
        )

    async def run(self, pipe: RecordPipe) -> TransferResult:
        session = self._lifecycle.session
        self._events.emit(ConnectionEvent(
            session, self._peer_id, "relay" if pipe.relayed else "direct", None, pipe.remote,
            "tcp",
        ))
        started = time.monotonic()
        sent = await self._pump(pipe)
        try:
            async with asyncio.timeout(WORMHOLE_ACK_TIMEOUT):
                record = await pipe.receive()
        except TimeoutError:
            raise TransferError(
                f"the receiver did not confirm the data within {WORMHOLE_ACK_TIMEOUT:g} s"
            ) from None
        if record is None:
            raise TransferError("the receiver closed the connection without confirming the data")
        theirs = read_ack(record)
        if theirs is not None and not hmac.compare_digest(theirs, sent):
            raise TransferError("the receiver got different data (its SHA-256 does not match)")
        self._settle_files()
        self._tracker.files_done = self._tracker.files_total
        self._tracker.flush()
        seconds = round(time.monotonic() - started, 3)
        files = self._offer.files if isinstance(self._offer, FolderOffer) else 1
        size = self._offer.size
        self._events.emit(DoneEvent(
            session, "send", True, files, 0, size, self._tracker.bytes_transferred, seconds,
            via=VIA,
        ))
        note = "the receiver's SHA-256 matched" if theirs else "acknowledged without a hash"
        return TransferResult(
            SessionState.DONE, files, 0, size, self._tracker.bytes_transferred, seconds,
            f"via magic-wormhole: {note}",
        )

    async def _pump(self, pipe: RecordPipe) -> str:
        """Every byte as records of the reference size; the SHA-256 of all of them."""
        checksum = hashlib.sha256()
        chunks = self._chunks()
        self._tracker.start_file(0, self._offer.name, self._wire_size)
        sent = 0
        try:
            while data := await asyncio.to_thread(next, chunks, b""):
                checksum.update(data)
                view = memoryview(data)
                for start in range(0, len(view), WORMHOLE_SEND_RECORD_SIZE):
                    await pipe.send(bytes(view[start:start + WORMHOLE_SEND_RECORD_SIZE]))
                sent += len(data)
                self._tracker.advance(0, len(data))
        finally:
            with contextlib.suppress(Exception):
                chunks.close()
        if sent != self._wire_size:
            raise TransferError(
                f"{self._offer.name} changed while it was sent ({format_size(sent)} read, "
                f"{format_size(self._wire_size)} offered)"
            )
        self._tracker.finish_file(0)
        return checksum.hexdigest()

    def _chunks(self) -> Iterator[bytes]:
        """The bytes to send, IO_BUFFER_SIZE at a time (each read in a worker thread)."""
        if self._what.source is not None:
            return _file_chunks(self._what.source)
        assert self._what.archive is not None
        return _gathered(iter(self._what.archive))

    def _settle_files(self) -> None:
        """A file event per file the receiver now holds (checked by its ack, not BLAKE3)."""
        session, what = self._lifecycle.session, self._what
        if what.sources is None:
            self._events.emit(FileDoneEvent(
                session, "send", self._offer.name, self._offer.size, "", via=VIA
            ))
            return
        for entry in what.sources.entries:
            if entry.kind == "file":
                self._events.emit(FileDoneEvent(
                    session, "send", entry.path, entry.size, "", via=VIA
                ))


def _file_chunks(source: BinaryIO) -> Iterator[bytes]:
    while data := source.read(IO_BUFFER_SIZE):
        yield data


def _gathered(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Small pieces (zip headers, 64 KiB reads) joined up to IO_BUFFER_SIZE: one thread
    hop per buffer, not per piece."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= IO_BUFFER_SIZE:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)

