"""Receiving from a plain magic-wormhole sender (``wormhole send``): the classic protocol.

Its offer goes through the receiver's usual question (``decide_offer``: limits,
``--yes`` or the user), its bytes through the one file writer. What is verified is
what the protocol has: every transit record is authenticated with the code's key,
and the SHA-256 of the whole transfer goes back to the sender, which checks it
(there is no per-file BLAKE3 from such a sender).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO

from p2p_transfer.disk import PartFile, TargetError, TargetFolder, free_space
from p2p_transfer.events import (
    ConnectionEvent,
    DecisionEvent,
    DoneEvent,
    EventBus,
    FileDoneEvent,
    OfferEvent,
    SessionState,
    TextEvent,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import (
    IO_BUFFER_SIZE,
    MAX_PENDING_OFFERS,
    WORMHOLE_MAX_MESSAGES_BEFORE_OFFER,
    WORMHOLE_OFFER_TIMEOUT,
)
from p2p_transfer.protocol import ProtocolError, text_preview
from p2p_transfer.transfer import (
    Decider,
    Decision,
    IncomingOffer,
    ReceiveOptions,
    TransferError,
    TransferResult,
    decide_offer,
)
from p2p_transfer.transfer.admission import CountedSlots
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.units import format_size
from p2p_transfer.wormhole_classic.mailbox import Mailbox, Wormhole
from p2p_transfer.wormhole_classic.messages import (
    FileOffer,
    FolderOffer,
    Offer,
    TextOffer,
    TransitHints,
    encode_hints,
    encode_message,
    read_hints,
    read_offer,
)
from p2p_transfer.wormhole_classic.transit import (
    DEFAULT_TRANSIT_RELAY,
    RecordPipe,
    Transit,
    parse_relay,
)
from p2p_transfer.wormhole_classic.unzip import Unpacked, check_zip, open_zip, unpack

#: How this path is named in events (``via``) and messages.
VIA = "magic-wormhole"
#: The peer's name in events: a wormhole client does not say one.
PEER_NAME = "magic-wormhole sender"
#: Said with the final state: what was checked, since it is not per-file BLAKE3.
VERIFIED_NOTE = (
    "via magic-wormhole: records authenticated with the code's key; the SHA-256 of the "
    "whole transfer sent back to the sender to check"
)


@dataclass(slots=True)
class ClassicReceive:
    """How to receive from a magic-wormhole sender: where to, who decides, which relay."""

    options: ReceiveOptions
    decide: Decider
    #: The transit relay (``tcp:HOST:PORT`` or ``HOST:PORT``); None for none.
    transit_relay: str | None = DEFAULT_TRANSIT_RELAY
    #: Listen for the sender's direct connection (and offer our addresses).
    listen: bool = True
    #: Offers waiting for the user's answer at once (the node's, shared with others).
    pending_offers: CountedSlots = field(
        default_factory=lambda: CountedSlots(MAX_PENDING_OFFERS)
    )


async def receive_classic(
    wormhole: Wormhole, setup: ClassicReceive, lifecycle: Lifecycle, events: EventBus
) -> TransferResult:
    """Receive what the sender offers over an established wormhole; the caller closes it.

    Ends in a result (done, declined) or raises: ``ProtocolError`` for a peer that
    broke the rules (it is told why), ``TransferError`` for a failed connection.
    """
    mailbox = Mailbox(wormhole)
    lifecycle.peer_name = PEER_NAME
    try:
        offer, hints = await _read_offer(mailbox)
    except ProtocolError as exc:
        mailbox.refuse(exc)
        raise
    peer_id = mailbox.verifier()
    decision = await _decide(offer, setup, lifecycle, events, peer_id)
    events.emit(DecisionEvent(lifecycle.session, decision.accept, decision.reason))
    if not decision.accept:
        mailbox.refuse(decision.reason or "declined")
        return TransferResult(
            SessionState.DECLINED, bytes_total=_size(offer), message=decision.reason
        )
    if isinstance(offer, TextOffer):
        mailbox.send({"answer": {"message_ack": "ok"}})
        events.emit(TextEvent(lifecycle.session, PEER_NAME, offer.text, VIA))
        size = _size(offer)
        events.emit(DoneEvent(
            lifecycle.session, "receive", True, 0, 0, size, size, 0.0, via=VIA, text=True
        ))
        return TransferResult(SessionState.DONE, bytes_total=size, bytes_transferred=size)
    if hints is None:
        error = ProtocolError("the sender offered data but no way to connect for it")
        mailbox.refuse(error)
        raise error
    return await _FileIntake(offer, setup, lifecycle, events, peer_id).run(mailbox, hints)


async def _read_offer(mailbox: Mailbox) -> tuple[Offer, TransitHints | None]:
    """Messages until the offer: transit hints may come first (the CLI sends them)."""
    hints: TransitHints | None = None
    for _ in range(WORMHOLE_MAX_MESSAGES_BEFORE_OFFER):
        body = await mailbox.receive(WORMHOLE_OFFER_TIMEOUT, "offer")
        if "transit" in body:
            hints = read_hints(body["transit"]) + (hints or TransitHints())
        if "offer" in body:
            return read_offer(body["offer"]), hints
    raise ProtocolError(
        f"the sender sent {WORMHOLE_MAX_MESSAGES_BEFORE_OFFER} messages and no offer"
    )


async def _decide(
    offer: Offer, setup: ClassicReceive, lifecycle: Lifecycle, events: EventBus, peer_id: str
) -> Decision:
    """The usual question (with a folder's zip counted against the free space)."""
    is_text = isinstance(offer, TextOffer)
    incoming = IncomingOffer(
        session=lifecycle.session, peer_id=peer_id, peer_name=PEER_NAME,
        files=offer.files if isinstance(offer, FolderOffer) else int(not is_text),
        folders=int(isinstance(offer, FolderOffer)), total_bytes=_size(offer),
        sample=[] if isinstance(offer, TextOffer) else [offer.name], via=VIA, text=is_text,
        preview=text_preview(offer.text) if isinstance(offer, TextOffer) else "",
    )
    events.emit(OfferEvent(
        lifecycle.session, incoming.files, incoming.total_bytes, incoming.peer_name,
        incoming.peer_id, incoming.folders, incoming.sample, VIA, "", incoming.text,
        incoming.preview,
    ))
    lifecycle.advance(SessionState.WAITING)
    if isinstance(offer, FolderOffer):
        free = await asyncio.to_thread(free_space, setup.options.target)
        needed = offer.zip_size + offer.size
        if free is not None and needed > free:
            return Decision(False, (
                f"not enough disk space on the receiver for the zip and its files "
                f"({format_size(needed)}; {format_size(free)} free)"
            ))
    return await decide_offer(incoming, setup.options, setup.decide, setup.pending_offers)


def _size(offer: Offer) -> int:
    if isinstance(offer, TextOffer):
        return len(offer.text.encode("utf-8", errors="surrogatepass"))
    return offer.size


class _FileIntake:
    """An accepted file or folder: transit, the bytes to the writer, the ack, the events."""

    def __init__(
        self, offer: FileOffer | FolderOffer, setup: ClassicReceive, lifecycle: Lifecycle,
        events: EventBus, peer_id: str,
    ) -> None:
        self._offer = offer
        self._setup = setup
        self._lifecycle = lifecycle
        self._events = events
        self._peer_id = peer_id
        self._wire_size = offer.zip_size if isinstance(offer, FolderOffer) else offer.size
        self._tracker = ProgressTracker(
            lifecycle.session, "receive", self._wire_size,
            offer.files if isinstance(offer, FolderOffer) else 1, events.emit,
        )
        self._started = time.monotonic()

    async def run(self, mailbox: Mailbox, hints: TransitHints) -> TransferResult:
        options = self._setup.options
        try:
            target = await asyncio.to_thread(TargetFolder, options.target, options.umask)
        except (OSError, TargetError) as exc:
            mailbox.refuse("the receiver cannot write to its folder")
            raise TransferError(f"cannot write to {options.target}: {exc}") from None
        relays = [parse_relay(self._setup.transit_relay)] if self._setup.transit_relay else []
        transit = Transit("receiver", mailbox.transit_key(), relays, self._setup.listen)
        sink: _Sink | None = None
        try:
            try:
                sink = await asyncio.to_thread(_Sink.open, self._offer, target)
            except (OSError, TargetError) as exc:
                mailbox.refuse("the receiver cannot write to its folder")
                raise TransferError(f"cannot write to {options.target}: {exc}") from None
            transit.add_peer_hints(hints)
            direct, ours = await transit.start()
            mailbox.send(encode_hints(direct, ours))
            mailbox.send({"answer": {"file_ack": "ok"}})
            self._lifecycle.advance(SessionState.TRANSFERRING)
            pipe = await transit.connect()
            try:
                return await self._transfer(pipe, sink, target)
            finally:
                await pipe.close()
        finally:
            await transit.close()
            if sink is not None:
                await asyncio.to_thread(sink.close, target)
            target.close()

    async def _transfer(
        self, pipe: RecordPipe, sink: _Sink, target: TargetFolder
    ) -> TransferResult:
        session = self._lifecycle.session
        self._events.emit(ConnectionEvent(
            session, self._peer_id, "relay" if pipe.relayed else "direct", None, pipe.remote,
            "tcp",
        ))
        try:
            digest = await self._receive_bytes(pipe, sink)
            files = await asyncio.to_thread(sink.complete, self._offer, target)
        except (ProtocolError, TargetError) as exc:  # the sender hears why, in its ack
            with contextlib.suppress(OSError, TransferError):
                await pipe.send(encode_message({"ack": "error", "error": str(exc)}))
            raise
        await pipe.send(encode_message({"ack": "ok", "sha256": digest}))
        for file in files:
            self._events.emit(FileDoneEvent(
                session, "receive", file.path, file.size, "", via=VIA,
                saved_as=file.saved_as if file.saved_as != file.path else "",
            ))
        self._tracker.files_done = len(files)
        self._tracker.flush()
        seconds = round(time.monotonic() - self._started, 3)
        size = self._offer.size
        self._events.emit(DoneEvent(
            session, "receive", True, len(files), 0, size, self._tracker.bytes_transferred,
            seconds, str(target.root), VIA,
        ))
        return TransferResult(
            SessionState.DONE, len(files), 0, size, self._tracker.bytes_transferred, seconds,
            VERIFIED_NOTE,
        )

    async def _receive_bytes(self, pipe: RecordPipe, sink: _Sink) -> str:
        """Records until the offered size, written in IO_BUFFER_SIZE batches; the SHA-256."""
        expected, received = self._wire_size, 0
        checksum = hashlib.sha256()
        batch = bytearray()
        self._tracker.start_file(0, self._offer.name, expected)
        while received < expected:
            record = await pipe.receive()
            if record is None:
                raise TransferError(
                    f"the sender closed the connection after {format_size(received)} of "
                    f"{format_size(expected)}"
                )
            if received + len(record) > expected:
                raise ProtocolError(
                    f"refused: the sender sent more than the {format_size(expected)} it offered"
                )
            received += len(record)
            checksum.update(record)
            batch += record
            if len(batch) >= IO_BUFFER_SIZE or received == expected:
                await asyncio.to_thread(sink.write, bytes(batch))
                self._tracker.advance(0, len(batch))
                batch.clear()
        self._tracker.finish_file(0)
        return checksum.hexdigest()


class _Sink:
    """Where the bytes go: a file's own part, or an unnamed spool for a folder's zip."""

    def __init__(self, part: PartFile | None, spool: IO[bytes] | None) -> None:
        self._part = part
        self._spool = spool
        self._finished = False

    @classmethod
    def open(cls, offer: FileOffer | FolderOffer, target: TargetFolder) -> _Sink:
        if isinstance(offer, FileOffer):
            return cls(target.new_part(offer.name), None)
        # Unnamed (O_TMPFILE) on the target's own disk: never seen, gone when closed.
        return cls(None, tempfile.TemporaryFile(dir=target.root))

    def write(self, data: bytes) -> None:
        if self._part is not None:
            self._part.write(data)
        else:
            assert self._spool is not None
            self._spool.write(data)

    def complete(self, offer: FileOffer | FolderOffer, target: TargetFolder) -> list[Unpacked]:
        """Name the file, or check and unpack the zip; flush what was written."""
        unpacked: list[Unpacked] = []
        if isinstance(offer, FileOffer):
            assert self._part is not None
            saved = target.finish(self._part, 0o666, None, flush=True)
            unpacked.append(Unpacked(offer.name, offer.size, saved))
        else:
            assert self._spool is not None
            self._spool.seek(0)
            with open_zip(self._spool) as archive:
                planned = check_zip(archive.infolist(), offer)
                unpack(archive, planned, target, offer.name, unpacked.append)
        self._finished = True
        target.sync()
        return unpacked

    def close(self, target: TargetFolder) -> None:
        """A file that did not finish leaves nothing; the spool goes in any case."""
        if self._part is not None and not self._finished:
            target.discard(self._part)
        if self._spool is not None:
            self._spool.close()

