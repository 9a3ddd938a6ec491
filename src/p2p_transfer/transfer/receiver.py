"""The receiving side: verify the peer, ask the user, then take files in.

Bytes go to ``NAME.part`` while being hashed; only a file whose BLAKE3 matches
the sender's gets its final name. A peer that breaks the protocol loses its
connection, never the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from iroh import iroh_ffi

from p2p_transfer.disk import TargetError, TargetFolder, describe_os_error, free_space
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import (
    CodeEvent,
    ConnectionEvent,
    DecisionEvent,
    DoneEvent,
    EventBus,
    OfferEvent,
    VerifiedEvent,
)
from p2p_transfer.limits import (
    CLOSE_GRACE,
    CODE_ENTRY_TIMEOUT,
    DATA_STALL_TIMEOUT,
    DECISION_TIMEOUT,
    FIRST_MESSAGE_TIMEOUT,
    MAX_PARALLEL_FILES,
    MAX_PENDING_OFFERS,
    WRONG_CODE_DELAY,
)
from p2p_transfer.net import (
    CloseCode,
    MessageReader,
    MessageWriter,
    NetError,
    StreamEnded,
    await_peer_close_reason,
    describe_iroh_error,
    path_info,
    peer_close_reason,
)
from p2p_transfer.net.deadline import ConnectionDeadline, close_connection
from p2p_transfer.net.tcp import DataListener
from p2p_transfer.protocol import (
    PROTOCOL_VERSION,
    Accept,
    Decline,
    Entry,
    Error,
    FileResult,
    Hello,
    ManifestAssembler,
    ManifestPage,
    Message,
    Offer,
    ProtocolError,
    ResumePage,
    Summary,
    Verified,
    Verify,
    Welcome,
    check_offer,
    encode,
    paginate,
)
from p2p_transfer.transfer.claims import ClaimOwner, FileClaims, FilesBusyError
from p2p_transfer.transfer.intake import FileIntake, PreparedOffer
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.transfer.session import (
    DataTransport,
    PeerError,
    TransferError,
    TransferResult,
    expect,
    reject_during_transfer,
)
from p2p_transfer.trust import (
    AttemptLimiter,
    PairingStore,
    VerificationSlots,
    generate_code,
)
from p2p_transfer.trust.pake import CodeExchange, PakeError

#: Time the sender has to send its offer after the handshake.
OFFER_TIMEOUT = 30.0
#: How long the receiver waits for the sender to close after the summary.
SUMMARY_CLOSE_WAIT = 5.0
#: How long a file's result may wait to share a network write with others (seconds).
RESULT_FLUSH_DELAY = 0.02
#: Example names shown with an offer.
OFFER_SAMPLE_SIZE = 5


@dataclass(frozen=True, slots=True)
class IncomingOffer:
    """What the receiving user decides on."""

    transfer_id: str
    peer_id: str
    peer_name: str
    files: int
    folders: int
    total_bytes: int
    sample: list[str]


@dataclass(frozen=True, slots=True)
class Decision:
    """Accept, or decline with a reason the sender will see."""

    accept: bool
    reason: str = ""


Decider = Callable[[IncomingOffer], Awaitable[Decision]]


@dataclass(slots=True)
class ReceiveOptions:
    """How to receive."""

    target: Path
    auto_accept: bool = False
    fixed_code: str | None = None
    max_size: int | None = None
    umask: int = 0o022
    transport: DataTransport = "auto"


class Refused(P2PTransferError):
    """This receiver turns the peer away; the message is sent to it."""


@dataclass(frozen=True, slots=True)
class ReceiverServices:
    """What every receiving session of a node shares."""

    device_name: str
    endpoint_id: str
    events: EventBus
    pairings: PairingStore
    attempts: AttemptLimiter
    #: Address the LAN fast path's TCP listeners bind (the QUIC socket's host).
    data_host: str = "0.0.0.0"
    slots: VerificationSlots = field(default_factory=VerificationSlots)
    claims: FileClaims = field(default_factory=FileClaims)
    pending_offers: VerificationSlots = field(
        default_factory=lambda: VerificationSlots(MAX_PENDING_OFFERS)
    )
    #: The session waiting for each endpoint's code: one at a time per endpoint, so
    #: parallel connections cannot turn the last guess before a lock-out into several.
    verifying: dict[str, ReceiveSession] = field(default_factory=dict)


class ReceiveSession(ClaimOwner):
    """One sender's connection, from hello to summary."""

    def __init__(
        self,
        connection: iroh_ffi.Connection,
        services: ReceiverServices,
        options: ReceiveOptions,
        decide: Decider,
    ) -> None:
        self._connection = connection
        self._device_name = services.device_name
        self._own_id = services.endpoint_id
        self._events = services.events
        self._pairings = services.pairings
        self._slots = services.slots
        self._attempts = services.attempts
        self._verifying = services.verifying
        self._pending_offers = services.pending_offers
        self._claims = services.claims
        self._options = options
        self._decide = decide
        self.peer_id = str(connection.remote_id())
        self.peer_name = self.peer_id[:10]
        self.offered = False
        self.said_hello = False
        #: Only waiting for the peer to hang up: the connection table may drop it.
        self.closing = False
        #: Where data streams go while an accepted transfer runs; None before and after.
        self._intake: Callable[[iroh_ffi.RecvStream], None] | None = None
        self._transfer_over = False
        #: The stream rule the peer broke, once it broke one (the connection is closed).
        self._violation: str | None = None
        self._guards: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._writer: MessageWriter | None = None
        self._results = bytearray()
        self._result_flush: asyncio.Task[None] | None = None
        self._transfer_id = ""
        self._data_path: Literal["tcp", "quic"] | None = None
        #: The LAN fast path's listener while it may still admit the sender.
        self._listener: DataListener | None = None
        self._data_host = services.data_host
        self._task: asyncio.Task[object] | None = None
        self._finished = asyncio.Event()

    async def run(self) -> TransferResult | None:
        """Serve the peer; None when it never got as far as an offer."""
        self._task = asyncio.current_task()
        try:
            return await self._converse()
        except Refused as exc:
            await self._send_error(str(exc))
            await self._await_close()
            close_connection(self._connection, CloseCode.REFUSED, str(exc))
            raise TransferError(f"{self.peer_name}: {exc}") from None
        except PeerError as exc:
            close_connection(self._connection, CloseCode.DONE, "")
            raise TransferError(str(exc)) from None
        except (ProtocolError, StreamEnded) as exc:
            if isinstance(exc, StreamEnded) and (said := self._closed_reason()):
                raise TransferError(said) from None  # the peer hung up, and said why
            # A stream that ends inside a message or before the data it announced
            # is the peer breaking the protocol, and told so, not "receiver stopped".
            reason = self._violation or str(exc)
            await self._send_error(f"protocol error: {reason}")
            close_connection(
                self._connection, CloseCode.PROTOCOL_ERROR, f"protocol error: {reason}"
            )
            raise TransferError(f"protocol error from {self.peer_name}: {reason}") from None
        except NetError as exc:
            if self._violation is not None:  # we closed the connection for it
                raise TransferError(
                    f"protocol error from {self.peer_name}: {self._violation}"
                ) from None
            close_connection(self._connection, CloseCode.CANCELLED, "receiver stopped")
            raise TransferError(self._closed_reason() or str(exc)) from None
        except (TargetError, OSError) as exc:
            # The target folder failed us outside a file (each file's own disk errors are
            # reported per file): the peer hears why instead of seeing a silent hang-up.
            reason = str(exc) if isinstance(exc, TargetError) else describe_os_error(exc)
            await self._send_error(reason)
            close_connection(self._connection, CloseCode.CANCELLED, reason)
            raise TransferError(f"{self.peer_name}: {reason}") from None
        except asyncio.CancelledError:
            close_connection(self._connection, CloseCode.CANCELLED, "cancelled by peer")
            raise
        finally:
            for guard in self._guards:
                guard.cancel()
            self._claims.release(self)
            self._finished.set()

    def evict(self, reason: str) -> None:
        """Drop this connection to make room for others."""
        close_connection(self._connection, CloseCode.REFUSED, reason)

    async def stop(self) -> None:
        """End this session because the same device reconnected for the same files."""
        close_connection(self._connection, CloseCode.CANCELLED, "superseded by a new connection")
        if self._task is not None:
            self._task.cancel()
        await self._finished.wait()

    def _closed_reason(self) -> str:
        return peer_close_reason(self._connection)

    async def _send_error(self, message: str) -> None:
        if self._writer is not None:
            with contextlib.suppress(NetError):
                async with self._lock:
                    await self._writer.send(Error(message))

    async def _send(self, message: Message) -> None:
        assert self._writer is not None
        async with self._lock:
            await self._writer.send(message)

    def _queue_result(self, message: FileResult) -> None:
        """Results go out in batches: one network write per RESULT_FLUSH_DELAY, not per file."""
        self._results += encode(message)
        if self._result_flush is None or self._result_flush.done():
            self._result_flush = asyncio.create_task(self._flush_results(RESULT_FLUSH_DELAY))

    async def _flush_results(self, delay: float = 0.0) -> None:
        """Write the queued results (after ``delay``, so more can join the batch)."""
        if delay:
            await asyncio.sleep(delay)
        assert self._writer is not None
        async with self._lock:
            batch, self._results = self._results, bytearray()
            if batch:
                await self._writer.write(batch)

    async def _converse(self) -> TransferResult | None:
        # No data streams until an offer is accepted, and one control stream. These
        # limits only stop new grants: iroh already gave the peer 100 streams of each
        # kind with the handshake. So every stream is taken the moment it arrives, and
        # one the peer had no business opening ends the connection before data piles up.
        self._connection.set_max_concurrent_uni_streams(0)
        self._connection.set_max_concurrent_bi_streams(1)
        self._guard(self._take_data_streams())
        with ConnectionDeadline(
            self._connection, FIRST_MESSAGE_TIMEOUT, "no hello within 5 s"
        ) as deadline:
            try:
                stream = await self._connection.accept_bi()
            except iroh_ffi.IrohError as exc:
                raise NetError(describe_iroh_error(exc)) from None
            self._guard(self._refuse_more_control_streams())
            reader = MessageReader(stream.recv())
            self._writer = MessageWriter(stream.send())
            hello = await expect(reader, Hello)
        if deadline.expired:
            raise NetError("no hello within 5 s")
        assert isinstance(hello, Hello)
        self.said_hello = True
        self.peer_name = hello.name[:64] or self.peer_id[:10]
        if hello.version != PROTOCOL_VERSION:
            raise ProtocolError(f"unsupported protocol version {hello.version}")
        await self._verify(reader, hello)

        with ConnectionDeadline(self._connection, OFFER_TIMEOUT, "no offer in time"):
            offer = await expect(reader, Offer)
            assert isinstance(offer, Offer)
            assembler = ManifestAssembler(check_offer(offer))
            while not assembler.complete:
                page = await expect(reader, ManifestPage)
                assert isinstance(page, ManifestPage)
                assembler.add_page(page.entries)
        self.offered = True
        self._transfer_id = offer.transfer_id[:32]
        entries = assembler.entries
        incoming = IncomingOffer(
            transfer_id=self._transfer_id,
            peer_id=self.peer_id,
            peer_name=self.peer_name,
            files=offer.files,
            folders=offer.entries - offer.files,
            total_bytes=offer.total_bytes,
            sample=[e.path for e in entries if e.kind == "file"][:OFFER_SAMPLE_SIZE],
        )
        self._events.emit(
            OfferEvent(
                incoming.transfer_id, incoming.files, incoming.total_bytes, self.peer_name,
                self.peer_id, incoming.folders, incoming.sample,
            )
        )
        decision = await self._decide_offer(incoming)
        self._events.emit(DecisionEvent(incoming.transfer_id, decision.accept, decision.reason))
        prepared = None
        if decision.accept and self._options.transport == "tcp" and (
            path_info(self._connection).kind != "direct"
        ):
            decision = Decision(False, "this receiver takes file data only over TCP "
                                       "(--transport tcp), and the path is not direct")
        if decision.accept:
            decision, prepared = await self._claim(entries)
        if not decision.accept or prepared is None:
            await self._send(Decline(decision.reason))
            await self._await_close()
            close_connection(self._connection, CloseCode.DONE, f"declined: {decision.reason}")
            return TransferResult(False, 0, 0, offer.total_bytes, 0, 0.0, decision.reason)
        return await self._receive(incoming, prepared, reader)

    async def _claim(self, entries: list[Entry]) -> tuple[Decision, PreparedOffer | None]:
        """Reserve the offered files in the target so no other session writes them, then
        make the folders and find what is already there.

        A target that cannot take the offer (a file where a folder must go, a folder
        that cannot be created) declines it with the reason, before anything is sent.
        """
        try:
            target = TargetFolder(self._options.target, self._options.umask)
            paths = [target.location_of(e.path) for e in entries if e.kind == "file"]
            await self._claims.claim(self, paths)
            prepared = await asyncio.to_thread(PreparedOffer.prepare, target, entries)
        except TimeoutError:  # before OSError: it is one
            return Decision(False, "an earlier transfer of these files is still stopping"), None
        except (FilesBusyError, TargetError) as exc:
            return Decision(False, str(exc)), None
        except OSError as exc:
            return Decision(False, describe_os_error(exc)), None
        return Decision(True), prepared

    async def _verify(self, reader: MessageReader, hello: Hello) -> None:
        # Both sides must hold the pairing: a sender that lost or never had it
        # verifies again, so it always knows whom it sends to.
        if hello.paired and self._pairings.is_trusted(self.peer_id):
            await self._send(Welcome(PROTOCOL_VERSION, self._device_name, code_required=False))
            self._events.emit(VerifiedEvent(self.peer_id, self.peer_name, "pairing"))
            return
        # A new connection of an endpoint replaces its verification still waiting, so
        # one endpoint never has two guesses pending (and a restarted sender is not
        # refused while its old connection lingers).
        while (previous := self._verifying.get(self.peer_id)) not in (None, self):
            assert previous is not None
            await previous.stop()
            if self._verifying.get(self.peer_id) is previous:
                del self._verifying[self.peer_id]
        self._verifying[self.peer_id] = self
        try:
            exchange = await self._check_code(reader)
        finally:
            if self._verifying.get(self.peer_id) is self:
                del self._verifying[self.peer_id]
        self._attempts.record_success(self.peer_id)
        self._pairings.add(self.peer_id, self.peer_name)
        await self._send(Verified(exchange.receiver_proof()))
        self._events.emit(VerifiedEvent(self.peer_id, self.peer_name, "code"))

    async def _check_code(self, reader: MessageReader) -> CodeExchange:
        """Show a code and check the peer's proof; Refused unless it is right and in time.

        A locked-out endpoint, or one over the global attempt cap, is refused before a
        code exists: the receiving user is not prompted for it.
        """
        locked_for = self._attempts.locked_for(self.peer_id)
        if locked_for > 0:
            minutes = math.ceil(locked_for / 60)
            raise Refused(f"too many attempts, try again in {minutes} min")
        if not self._attempts.begin_attempt():
            raise Refused("too many verification attempts right now; try again in a minute")
        if not self._slots.try_acquire():
            raise Refused("too many verifications in progress; try again shortly")
        try:
            code = self._options.fixed_code or generate_code()
            exchange = CodeExchange(code, receiver_id=self._own_id, sender_id=self.peer_id)
            self._events.emit(CodeEvent(code, self.peer_id, self.peer_name))
            await self._send(
                Welcome(PROTOCOL_VERSION, self._device_name, True, exchange.message)
            )
            with ConnectionDeadline(
                self._connection, CODE_ENTRY_TIMEOUT, "verification code not entered in time"
            ) as deadline:
                attempt = await expect(reader, Verify)
            if deadline.expired:  # read just as time ran out: too late, never compared
                raise NetError("verification code not entered in time")
            assert isinstance(attempt, Verify)
            try:
                exchange.finish(attempt.pake)
                right = exchange.check_sender(attempt.proof)
            except PakeError:
                right = False  # a malformed message is a wrong guess, counted alike
            if not right:
                self._attempts.record_failure(self.peer_id)
                await asyncio.sleep(WRONG_CODE_DELAY)
                raise Refused("wrong verification code")
            return exchange
        finally:
            self._slots.release()

    async def _decide_offer(self, offer: IncomingOffer) -> Decision:
        max_size = self._options.max_size
        if max_size is not None and offer.total_bytes > max_size:
            return Decision(False, f"offer of {offer.total_bytes} bytes exceeds the receiver's "
                                   f"limit of {max_size} bytes")
        free = await asyncio.to_thread(free_space, self._options.target)
        if free is not None and offer.total_bytes > free:  # None: the disk does not say
            return Decision(False, f"not enough disk space on the receiver "
                                   f"({offer.total_bytes} bytes offered, {free} free)")
        if self._options.auto_accept:
            return Decision(True)
        if not self._pending_offers.try_acquire():
            return Decision(False, "the receiver has too many offers waiting; try again later")
        try:
            return await asyncio.wait_for(self._decide(offer), DECISION_TIMEOUT)
        except TimeoutError:
            return Decision(False, "the receiver did not answer in time")
        finally:
            self._pending_offers.release()

    async def _await_close(self) -> None:
        """Give the peer time to read our last message and close first."""
        self.closing = True
        with contextlib.suppress(TimeoutError, iroh_ffi.IrohError):
            await asyncio.wait_for(self._connection.closed(), SUMMARY_CLOSE_WAIT)

    async def _receive(
        self, offer: IncomingOffer, prepared: PreparedOffer, reader: MessageReader
    ) -> TransferResult:
        pages = list(paginate(prepared.resume_items))
        tracker = ProgressTracker(
            offer.transfer_id, "receive", offer.total_bytes, len(prepared.files),
            self._events.emit,
        )
        intake = FileIntake(
            offer.transfer_id, prepared, tracker, self._events, self._queue_result
        )
        tally = intake.tally
        handlers: set[asyncio.Task[None]] = set()

        def take(stream: iroh_ffi.RecvStream) -> None:
            if len(handlers) >= MAX_PARALLEL_FILES:
                self._break_stream_rule(f"more than {MAX_PARALLEL_FILES} data streams at once")
                return
            if self._options.transport == "tcp":
                self._break_stream_rule(
                    "file data over QUIC, but this receiver takes it only over TCP "
                    "(--transport tcp)"
                )
                return
            self._report_data_path("quic")
            if self._listener is not None:
                # The sender chose QUIC: no TCP port stays open for the rest of the transfer.
                self._listener.stop()
            task = asyncio.create_task(intake.receive_stream(MessageReader(stream)))
            handlers.add(task)
            task.add_done_callback(handlers.discard)
            task.add_done_callback(tally.fail)

        self._intake = take  # open before Accept goes out: the sender may start at once
        self._connection.set_max_concurrent_uni_streams(MAX_PARALLEL_FILES)
        listener = self._listener = await self._open_data_listener()
        info = listener.info if listener is not None else None
        await self._send(
            Accept(len(pages))
            if info is None
            else Accept(len(pages), info.port, info.fingerprint, info.token)
        )
        for page in pages:
            await self._send(ResumePage(page))
        if listener is not None:
            tcp = asyncio.create_task(self._receive_over_tcp(listener, intake))
            handlers.add(tcp)
            tcp.add_done_callback(handlers.discard)
            tcp.add_done_callback(tally.fail)

        control = asyncio.create_task(_watch_control(reader))
        settled = asyncio.create_task(tally.settled.wait())
        watchdog = asyncio.create_task(self._watch_for_stall(tracker))
        try:
            done, _ = await asyncio.wait(
                {control, settled, watchdog, tally.failure},
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                task.result()  # raises a stream, control or stall failure
        finally:
            self._intake = None
            self._transfer_over = True
            for task in (*handlers, control, settled, watchdog):
                task.cancel()
            if listener is not None:
                listener.stop()
                self._listener = None
        tracker.flush()
        await self._flush_results()
        await asyncio.to_thread(prepared.target.sync)  # what the summary counts is on disk
        await self._send(Summary(tally.ok, tally.failed, tracker.bytes_transferred))
        ok = tally.failed == 0
        result = TransferResult(
            ok, tally.ok, tally.failed, offer.total_bytes, tracker.bytes_transferred,
            tracker.seconds, "" if ok else f"{tally.failed} file(s) failed verification",
        )
        self._events.emit(
            DoneEvent(
                offer.transfer_id, "receive", ok, tally.ok, tally.failed, offer.total_bytes,
                tracker.bytes_transferred, round(tracker.seconds, 3), str(prepared.target.root),
            )
        )
        await self._await_close()
        close_connection(self._connection, CloseCode.DONE, "transfer complete")
        return result

    def _guard(self, watcher: Awaitable[None]) -> None:
        """Run a stream watcher for the life of the session."""
        self._guards.append(asyncio.ensure_future(watcher))

    def _break_stream_rule(self, rule: str) -> None:
        """The peer opened a stream it must not: end the connection (and drop what it sent)."""
        if self._violation is None:
            self._violation = rule
            close_connection(self._connection, CloseCode.PROTOCOL_ERROR, f"protocol error: {rule}")

    async def _take_data_streams(self) -> None:
        """Take each data stream as it arrives: into the transfer, or as a violation."""
        while True:
            try:
                stream = await self._connection.accept_uni()
            except iroh_ffi.IrohError:
                return  # the connection ended; the conversation notices on its own
            if self._intake is None:
                self._break_stream_rule(
                    "data stream after the transfer ended" if self._transfer_over
                    else "data stream before the offer was accepted"
                )
                return
            self._intake(stream)

    async def _refuse_more_control_streams(self) -> None:
        """A second bidirectional stream ends the connection."""
        try:
            await self._connection.accept_bi()
        except iroh_ffi.IrohError:
            return
        self._break_stream_rule("only one control stream is allowed")

    async def _open_data_listener(self) -> DataListener | None:
        """A TLS listener for the LAN fast path, when allowed and the QUIC path is direct."""
        if self._options.transport == "quic" or path_info(self._connection).kind != "direct":
            return None
        try:
            return await DataListener.open(self._data_host)
        except OSError:
            return None  # no TCP here: the sender uses QUIC

    async def _receive_over_tcp(self, listener: DataListener, intake: FileIntake) -> None:
        """Take files from the one TCP connection that presents this session's token.

        A sender that stops (Ctrl-C, an error) closes QUIC with its reason and drops
        the TCP connection; the TCP end can arrive first. The broken channel then
        waits a moment for that reason, so the user reads "cancelled by peer", not
        a protocol error.
        """
        channel = await listener.accepted()
        self._report_data_path("tcp")
        try:
            await intake.receive_stream(MessageReader(channel))
        except NetError:  # StreamEnded included: cut inside a message or a file
            if said := await await_peer_close_reason(self._connection, CLOSE_GRACE):
                raise PeerError(said) from None
            raise
        finally:
            channel.abort()

    def _report_data_path(self, data_path: Literal["tcp", "quic"]) -> None:
        """Say once which channel carries this transfer's data."""
        if self._data_path is not None:
            return
        self._data_path = data_path
        path = path_info(self._connection)
        self._events.emit(
            ConnectionEvent(
                self._transfer_id, self.peer_id, path.kind, path.rtt_ms, path.remote_addr,
                data_path,
            )
        )

    async def _watch_for_stall(self, tracker: ProgressTracker) -> None:
        """End a transfer whose data stopped moving (a vanished or stalling sender)."""
        while True:
            await asyncio.sleep(DATA_STALL_TIMEOUT / 4)
            if tracker.idle_seconds >= DATA_STALL_TIMEOUT:
                reason = f"no data for {DATA_STALL_TIMEOUT:.0f} s"
                close_connection(self._connection, CloseCode.TIMEOUT, reason)
                raise NetError(reason)

async def _watch_control(reader: MessageReader) -> None:
    """During data transfer the sender may only cancel."""
    message = await reader.read_message()
    if message is None:
        raise PeerError("sender ended the transfer early")
    reject_during_transfer(message)


