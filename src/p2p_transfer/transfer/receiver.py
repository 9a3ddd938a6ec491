"""The receiving side: verify the peer, ask the user, then take files in.

Bytes go to ``NAME.part`` while being hashed; only a file whose BLAKE3 matches
the sender's gets its final name. A peer that breaks the protocol loses its
connection, never the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from p2p_transfer.disk import TargetError, TargetFolder, describe_os_error
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import (
    CodeEvent,
    ConnectionEvent,
    DecisionEvent,
    DoneEvent,
    EventBus,
    OfferEvent,
    ResumeEvent,
    SessionState,
    TextEvent,
    VerifiedEvent,
    Via,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import (
    CLOSE_GRACE,
    CODE_ENTRY_TIMEOUT,
    DATA_STALL_TIMEOUT,
    DECISION_TIMEOUT,
    FIRST_MESSAGE_TIMEOUT,
    LARGE_MANIFEST_ENTRIES,
    MAX_PARALLEL_FILES,
    MAX_PENDING_OFFERS,
    MAX_WRONG_CODES,
    PART_RELEASE_WAIT,
    RETURN_MEMORY_DELAY,
    WRONG_CODE_DELAY,
)
from p2p_transfer.memory import return_free_memory
from p2p_transfer.net import (
    CloseCode,
    MessageReader,
    MessageWriter,
    NetError,
    PeerClose,
    PeerConnection,
    StreamEnded,
)
from p2p_transfer.net.tcp import DataListener
from p2p_transfer.protocol import (
    PROTOCOL_VERSION,
    Accept,
    Decline,
    Error,
    ErrorKind,
    FileResult,
    Hello,
    Manifest,
    ManifestAssembler,
    ManifestPage,
    ManifestSummary,
    Message,
    Offer,
    ProtocolError,
    ResumePage,
    Retry,
    Summary,
    TextAssembler,
    TextOffer,
    TextPage,
    Verified,
    Verify,
    Welcome,
    check_offer,
    check_text_offer,
    clean_device_name,
    encode,
    paginate,
    text_preview,
)
from p2p_transfer.transfer.admission import CountedSlots, ManifestBudget
from p2p_transfer.transfer.claims import ClaimOwner, FileClaims, FilesBusyError
from p2p_transfer.transfer.intake import FileIntake, PreparedOffer, Tally, room_shortage
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.transfer.session import (
    Cancelled,
    DataTransport,
    PeerError,
    TransferError,
    TransferResult,
    expect,
    raise_if_peer_stopped,
    reject_during_transfer,
)
from p2p_transfer.trust import (
    AttemptLimiter,
    PairingStore,
    VerificationSlots,
    address_group,
    generate_code,
)
from p2p_transfer.trust.pake import CodeExchange, PakeError
from p2p_transfer.trust.vouched import VouchedPeer

#: Time the sender has to send its offer after the handshake.
OFFER_TIMEOUT = 30.0
#: How long the receiver waits for the sender to close after the summary.
SUMMARY_CLOSE_WAIT = 5.0
#: How long a file's result may wait to share a network write with others (seconds).
RESULT_FLUSH_DELAY = 0.02
#: Example names shown with an offer.
OFFER_SAMPLE_SIZE = 5
#: Seconds a peer turned away because too many verifications wait is told to wait.
VERIFICATIONS_BUSY_RETRY = 5.0


@dataclass(frozen=True, slots=True)
class IncomingOffer:
    """What the receiving user decides on."""

    #: The receiving session's ID (the ``session`` of its events).
    session: str
    peer_id: str
    peer_name: str
    files: int
    folders: int
    total_bytes: int
    sample: list[str]
    #: Which protocol the offer came over; a LocalSend sender is never a paired device.
    via: Via = "p2p-transfer"
    #: The sender's device model, as a LocalSend sender states it.
    device_model: str = ""
    #: A text message (shown when accepted, not stored): ``total_bytes`` of UTF-8 whose
    #: first line is ``preview``.
    text: bool = False
    preview: str = ""
    #: Offered files already in the target: same name and size, or a partial ``.part``.
    already_there: int = 0
    partly_there: int = 0


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
    #: Set by a receive by code: only this peer is served, and without a 6-digit code.
    vouched: VouchedPeer | None = None


class Refused(P2PTransferError):
    """This receiver turns the peer away; the message (and its kind) is sent to it."""

    def __init__(
        self, message: str, kind: ErrorKind = "", attempts_left: int = 0, retry_after: float = 0.0
    ) -> None:
        super().__init__(message)
        self.error = Error(message, kind, attempts_left, retry_after)


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
    #: The sessions waiting for a code: one per endpoint (parallel connections cannot
    #: turn the last guess before a lock-out into several), a few per address.
    slots: VerificationSlots[ReceiveSession] = field(default_factory=VerificationSlots)
    claims: FileClaims = field(default_factory=FileClaims)
    pending_offers: CountedSlots = field(
        default_factory=lambda: CountedSlots(MAX_PENDING_OFFERS)
    )
    #: Manifest entries held by all sessions' offers, and by each peer's.
    manifests: ManifestBudget = field(default_factory=ManifestBudget)


class ReceiveSession(ClaimOwner):
    """One sender's connection, from hello to summary."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        connection: PeerConnection,
        services: ReceiverServices,
        options: ReceiveOptions,
        decide: Decider,
        remote_ip: str | None = None,
    ) -> None:
        self._lifecycle = lifecycle
        self.session = lifecycle.session
        self._connection = connection
        self._device_name = services.device_name
        self._own_id = services.endpoint_id
        self._events = services.events
        self._pairings = services.pairings
        self._slots = services.slots
        self._attempts = services.attempts
        #: What counts as the peer's address for the verification limits.
        self._address = address_group(remote_ip)
        self._pending_offers = services.pending_offers
        self._claims = services.claims
        self._manifests = services.manifests
        #: Manifest entries this session reserved (given back when it ends).
        self._manifest_entries = 0
        self._options = options
        self._decide = decide
        self.peer_id = connection.peer_id
        self.peer_name = self.peer_id[:10]
        self.offered = False
        self.said_hello = False
        #: Only waiting for the peer to hang up: the connection table may drop it.
        self.closing = False
        #: Where data streams go while an accepted transfer runs; None before and after.
        self._intake: Callable[[MessageReader], None] | None = None
        self._transfer_over = False
        #: The stream rule the peer broke, once it broke one (the connection is closed).
        self._violation: str | None = None
        self._guards: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._writer: MessageWriter | None = None
        self._results = bytearray()
        self._result_flush: asyncio.Task[None] | None = None
        self._data_path: Literal["tcp", "quic"] | None = None
        #: The LAN fast path's listener while it may still admit the sender.
        self._listener: DataListener | None = None
        self._data_host = services.data_host
        self._task: asyncio.Task[object] | None = None
        self._finished = asyncio.Event()
        #: How the connection closes if this session is stopped for another one.
        self._stop_code = CloseCode.CANCELLED
        #: A typed code is being checked (the session must not be dropped for another).
        self.checking = False

    async def run(self) -> TransferResult | None:
        """Serve the peer; None when it never got as far as an offer. Raises a
        TransferError (``Cancelled`` when the sender cancelled) when it fails."""
        self._task = asyncio.current_task()
        try:
            try:
                return await self._converse()
            except BaseException as exc:
                # The session is over: what its frames held (the manifest, the target)
                # goes now, not when the error that ended it (and its traceback) does.
                traceback.clear_frames(exc.__traceback__)
                raise
        except Refused as exc:
            await self._send_error(exc.error)
            await self._await_close()
            self._connection.close(CloseCode.REFUSED, str(exc))
            raise TransferError(f"{self.peer_name}: {exc}") from None
        except Cancelled:
            self._connection.close(CloseCode.DONE, "")
            raise
        except PeerError as exc:
            self._connection.close(CloseCode.DONE, "")
            raise TransferError(str(exc)) from None
        except (ProtocolError, StreamEnded) as exc:
            if isinstance(exc, StreamEnded) and (close := self._connection.peer_close()):
                raise _ended_by(close) from None  # the peer hung up, and said why
            # A stream that ends inside a message or before the data it announced
            # is the peer breaking the protocol, and told so, not "receiver stopped".
            reason = self._violation or str(exc)
            await self._send_error(Error(f"protocol error: {reason}"))
            self._connection.close(CloseCode.PROTOCOL_ERROR, f"protocol error: {reason}"
            )
            raise TransferError(f"protocol error from {self.peer_name}: {reason}") from None
        except NetError as exc:
            if self._violation is not None:  # we closed the connection for it
                raise TransferError(
                    f"protocol error from {self.peer_name}: {self._violation}"
                ) from None
            close = self._connection.peer_close()  # before our close replaces it
            self._connection.close(CloseCode.FAILED, "receiver stopped")
            raise (_ended_by(close) if close else TransferError(str(exc))) from None
        except (TargetError, OSError) as exc:
            # The target folder failed us outside a file (each file's own disk errors are
            # reported per file): the peer hears why instead of seeing a silent hang-up.
            reason = str(exc) if isinstance(exc, TargetError) else describe_os_error(exc)
            await self._send_error(Error(reason))
            self._connection.close(CloseCode.FAILED, reason)
            raise TransferError(f"{self.peer_name}: {reason}") from None
        except asyncio.CancelledError:
            reason = self._lifecycle.cancel_reason or f"{self._device_name} cancelled"
            self._connection.close(self._stop_code, reason)
            raise
        finally:
            for guard in self._guards:
                guard.cancel()
            self._claims.release(self)
            self._manifests.release(self.peer_id, self._manifest_entries)
            if self._manifest_entries >= LARGE_MANIFEST_ENTRIES:
                # What the offer held is freed: let the system have it, a little later.
                asyncio.get_running_loop().call_later(RETURN_MEMORY_DELAY, return_free_memory)
            self._finished.set()

    def evict(self, reason: str) -> None:
        """Drop this connection to make room for others."""
        self._connection.close(CloseCode.REFUSED, reason)

    async def stop(self) -> None:
        """End this session because the same device reconnected (for the same files, or
        for a new code)."""
        await self._end("replaced by a new connection from the same device", CloseCode.CANCELLED)

    async def make_room(self) -> None:
        """End this verification so that a newcomer's can wait in its place."""
        await self._end(
            "too many verifications waiting; this one made room for a newer one",
            CloseCode.REFUSED,
        )

    async def _end(self, reason: str, close_code: int) -> None:
        self._lifecycle.cancel_reason = reason
        self._stop_code = close_code
        if self._task is not None:
            self._task.cancel()
        await self._finished.wait()

    async def _send_error(self, error: Error) -> None:
        if self._writer is not None:
            with contextlib.suppress(NetError):
                async with self._lock:
                    await self._writer.send(error)

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
        self._connection.limit_streams(data=0, control=1)
        self._guard(self._take_data_streams())
        with self._connection.deadline(FIRST_MESSAGE_TIMEOUT, "no hello within 5 s") as deadline:
            reader, self._writer = await self._connection.accept_control()
            self._guard(self._refuse_more_control_streams())
            hello = await expect(reader, Hello)
        if deadline.expired:
            raise NetError("no hello within 5 s")
        self.said_hello = True
        self.peer_name = clean_device_name(hello.name) or self.peer_id[:10]
        self._lifecycle.peer_name = self.peer_name
        self._lifecycle.advance(SessionState.VERIFYING)
        if hello.version != PROTOCOL_VERSION:
            raise ProtocolError(f"unsupported protocol version {hello.version}")
        await self._verify(reader, hello)

        with self._connection.deadline(OFFER_TIMEOUT, "no offer in time"):
            offer = await _expect_offer(reader)
            if isinstance(offer, TextOffer):
                check_text_offer(offer)
                self.offered = True
            else:
                summary = check_offer(offer)
                self.offered = True
                refusal = self._manifests.reserve(self.peer_id, summary.entries)
                if refusal:
                    await _skip_manifest(reader, summary)  # read, not kept: the sender hears why
                    manifest = None
                else:
                    self._manifest_entries = summary.entries  # given back when the session ends
                    manifest = await _read_manifest(reader, summary)
        if isinstance(offer, TextOffer):
            return await self._take_text(offer, reader)
        if manifest is None:
            self._events.emit(DecisionEvent(self.session, False, refusal))
            return await self._decline(refusal, offer.total_bytes)
        prepared, refusal = await self._survey(manifest)
        whole, partial = prepared.held_counts() if prepared is not None else (0, 0)
        incoming = IncomingOffer(
            session=self.session,
            peer_id=self.peer_id,
            peer_name=self.peer_name,
            files=manifest.files,
            folders=len(manifest) - manifest.files,
            total_bytes=manifest.total_bytes,
            sample=[manifest.path(i) for i in islice(manifest.file_indexes(), OFFER_SAMPLE_SIZE)],
            already_there=whole,
            partly_there=partial,
        )
        self._events.emit(
            OfferEvent(
                self.session, incoming.files, incoming.total_bytes, self.peer_name,
                self.peer_id, incoming.folders, incoming.sample,
                already_there=whole, partly_there=partial,
            )
        )
        self._lifecycle.advance(SessionState.WAITING)
        decision = Decision(False, refusal) if prepared is None else (
            await self._consider(incoming, prepared)
        )
        self._events.emit(DecisionEvent(self.session, decision.accept, decision.reason))
        if prepared is None or not decision.accept:
            return await self._decline(decision.reason, offer.total_bytes)
        return await self._receive(incoming, prepared, reader)

    async def _take_text(self, offer: TextOffer, reader: MessageReader) -> TransferResult:
        """Ask about a text message by its first line; once accepted, read and show it."""
        preview = text_preview(offer.preview)
        incoming = IncomingOffer(
            session=self.session, peer_id=self.peer_id, peer_name=self.peer_name, files=0,
            folders=0, total_bytes=offer.bytes, sample=[], text=True, preview=preview,
        )
        self._events.emit(OfferEvent(
            self.session, 0, offer.bytes, self.peer_name, self.peer_id, text=True,
            preview=preview,
        ))
        self._lifecycle.advance(SessionState.WAITING)
        decision = await self._decide_offer(incoming)
        self._events.emit(DecisionEvent(self.session, decision.accept, decision.reason))
        if not decision.accept:
            return await self._decline(decision.reason, offer.bytes)
        await self._send(Accept(0))
        self._lifecycle.advance(SessionState.TRANSFERRING)
        started = asyncio.get_running_loop().time()
        text = TextAssembler(offer)
        with self._connection.deadline(OFFER_TIMEOUT, "no text in time"):
            while not text.complete:
                text.add((await expect(reader, TextPage)).text)
        seconds = asyncio.get_running_loop().time() - started
        self._events.emit(TextEvent(self.session, self.peer_name, text.text))
        await self._send(Summary(0, 0, offer.bytes))
        self._events.emit(DoneEvent(
            self.session, "receive", True, 0, 0, offer.bytes, offer.bytes, round(seconds, 3),
            text=True,
        ))
        await self._await_close()
        self._connection.close(CloseCode.DONE, "transfer complete")
        return TransferResult(
            SessionState.DONE, bytes_total=offer.bytes, bytes_transferred=offer.bytes,
            seconds=seconds,
        )

    async def _decline(self, reason: str, total_bytes: int) -> TransferResult:
        """Tell the sender no, and why; wait for it to hang up."""
        await self._send(Decline(reason))
        await self._await_close()
        self._connection.close(CloseCode.DONE, f"declined: {reason}")
        return TransferResult(SessionState.DECLINED, bytes_total=total_bytes, message=reason)

    async def _survey(self, manifest: Manifest) -> tuple[PreparedOffer | None, str]:
        """Reserve the offered files (no other session writes them) and find what the
        target holds of them, writing nothing: the prepared offer, or None and why the
        target cannot take it (a file where a folder must go, files being received)."""
        target: TargetFolder | None = None
        try:
            target = TargetFolder(self._options.target, self._options.umask)
            paths = (target.location_of(manifest.path(i)) for i in manifest.file_indexes())
            await self._claims.claim(self, await asyncio.to_thread(FileClaims.keys, paths))
            return await asyncio.to_thread(PreparedOffer.survey, target, manifest), ""
        except TimeoutError:  # before OSError: it is one
            reason = "an earlier transfer of these files is still stopping"
        except (FilesBusyError, TargetError) as exc:
            reason = str(exc)
        except OSError as exc:
            reason = describe_os_error(exc)
        if target is not None:
            target.close()
        return None, reason

    async def _consider(self, offer: IncomingOffer, prepared: PreparedOffer) -> Decision:
        """Decide on a surveyed offer by what it still needs, then make its folders; a
        declined offer lets go of its target."""
        accepted = False
        try:
            shortage = await asyncio.to_thread(prepared.shortage, self._options.max_size)
            decision = Decision(False, shortage) if shortage else await self._decide_offer(offer)
            if decision.accept and self._options.transport == "tcp" and (
                self._connection.path().kind != "direct"
            ):
                decision = Decision(False, "this receiver takes file data only over TCP "
                                           "(--transport tcp), and the path is not direct")
            if decision.accept:
                await asyncio.to_thread(prepared.make_folders)
                accepted = True
            return decision
        except TargetError as exc:
            return Decision(False, str(exc))
        except OSError as exc:
            return Decision(False, describe_os_error(exc))
        finally:
            if not accepted:
                prepared.target.close()

    async def _verify(self, reader: MessageReader, hello: Hello) -> None:
        if self._options.vouched is not None:  # a short code's PAKE already verified it
            await self._admit_vouched(self._options.vouched)
            return
        # Both sides must hold the pairing: a sender that lost or never had it
        # verifies again, so it always knows whom it sends to.
        if hello.paired and self._pairings.is_trusted(self.peer_id):
            await self._send(Welcome(PROTOCOL_VERSION, self._device_name, code_required=False))
            self._events.emit(VerifiedEvent(self.session, self.peer_id, self.peer_name, "pairing"))
            return
        try:
            attempt = await self._wait_for_code()
            exchange = await self._check_code(reader, attempt, hello.retries)
        finally:
            self._slots.release(self)
        self._attempts.succeed(self.peer_id, self._address)
        self._pairings.add(self.peer_id, self.peer_name)
        await self._send(Verified(exchange.receiver_proof()))
        self._events.emit(VerifiedEvent(self.session, self.peer_id, self.peer_name, "code"))

    async def _admit_vouched(self, vouched: VouchedPeer) -> None:
        """The device that used this receiver's short code, and nobody else, goes on
        without a 6-digit code (and without becoming a pairing)."""
        if not vouched.admits(self.peer_id):
            raise Refused("this receiver only takes files from the device that used its code")
        await self._send(Welcome(PROTOCOL_VERSION, self._device_name, code_required=False))
        self._events.emit(VerifiedEvent(self.session, self.peer_id, self.peer_name, "short-code"))

    async def _wait_for_code(self) -> int:
        """A place among the verifications waiting for a code, and the first attempt's
        number; Refused before any code exists (the user is not shown one) when the
        peer's key or address is locked out or over its share, or no place is free.

        A newcomer replaces its own key's waiting verification, so one endpoint never
        has two guesses pending, and may displace other idle ones (trust/verification.py).
        """
        self._refuse_if_over_limits()
        displaced = self._slots.take(self, self.peer_id, self._address)
        if displaced is None:
            raise Refused(
                "too many verifications in progress; try again shortly", "busy",
                retry_after=VERIFICATIONS_BUSY_RETRY,
            )
        attempt = self._attempts.begin(self.peer_id, self._address)
        for other in displaced:  # their codes go away before this one is shown
            await (other.stop() if other.peer_id == self.peer_id else other.make_room())
        return attempt

    def _refuse_if_over_limits(self) -> None:
        refusal = self._attempts.refusal(self.peer_id, self._address)
        if refusal is not None:
            raise Refused(refusal.message, refusal.kind, retry_after=refusal.retry_after)

    async def _check_code(
        self, reader: MessageReader, attempt: int, retries: bool
    ) -> CodeExchange:
        """Show a code and check the peer's guesses; Refused unless one is right and in time.

        Every guess is a fresh SPAKE2 exchange for the same code, counted as an attempt
        from the moment it is offered: a sender that can ask its user again (``retries``)
        gets a Retry after a wrong code, while attempts are left.
        """
        code = self._options.fixed_code or generate_code()
        challenge: type[Welcome] | type[Retry] = Welcome
        while True:
            exchange = CodeExchange(code, receiver_id=self._own_id, sender_id=self.peer_id)
            self._events.emit(
                CodeEvent(self.session, code, self.peer_id, self.peer_name, attempt,
                          MAX_WRONG_CODES)
            )
            self.checking = False
            await self._send(
                Welcome(PROTOCOL_VERSION, self._device_name, True, exchange.message, attempt,
                        MAX_WRONG_CODES)
                if challenge is Welcome else Retry(exchange.message, attempt, MAX_WRONG_CODES)
            )
            if await self._guessed_right(reader, exchange):
                return exchange
            self._attempts.fail(self.peer_id, self._address)
            await asyncio.sleep(WRONG_CODE_DELAY)
            attempts_left = self._attempts.attempts_left(self.peer_id)
            if not retries or attempts_left == 0:
                raise Refused(
                    "wrong verification code", "wrong_code", attempts_left=attempts_left
                )
            self._refuse_if_over_limits()
            attempt = self._attempts.begin(self.peer_id, self._address)
            challenge = Retry

    async def _guessed_right(self, reader: MessageReader, exchange: CodeExchange) -> bool:
        """Read one guess within the code's time and check it (in constant time)."""
        with self._connection.deadline(
            CODE_ENTRY_TIMEOUT, "verification code not entered in time"
        ) as deadline:
            guess = await expect(reader, Verify)
        if deadline.expired:  # read just as time ran out: too late, never compared
            raise NetError("verification code not entered in time")
        self.checking = True
        try:
            exchange.finish(guess.pake)
            return exchange.check_sender(guess.proof)
        except PakeError:
            return False  # a malformed message is a wrong guess, counted alike

    async def _decide_offer(self, offer: IncomingOffer) -> Decision:
        """The receiving user's answer (or ``--yes``), for an offer the target has room for."""
        return await ask_for_decision(offer, self._options, self._decide, self._pending_offers)

    async def _await_close(self) -> None:
        """Give the peer time to read our last message and close first."""
        self.closing = True
        await self._connection.wait_closed(SUMMARY_CLOSE_WAIT)

    async def _receive(
        self, offer: IncomingOffer, prepared: PreparedOffer, reader: MessageReader
    ) -> TransferResult:
        """Take the accepted offer's files in, then tell the sender how it went."""
        tracker = ProgressTracker(
            self.session, "receive", offer.total_bytes, prepared.manifest.files, self._events.emit
        )
        intake = FileIntake(self.session, prepared, tracker, self._events, self._queue_result)
        handlers = _StreamHandlers(intake.tally)
        try:
            try:
                await self._open_data_paths(prepared, intake, handlers)
                await self._until_settled(intake.tally, tracker, reader)
            finally:
                self._intake = None
                self._transfer_over = True
                if self._listener is not None:
                    self._listener.stop()
                    self._listener = None
                await handlers.stop()  # no part stays open behind the session's back
                intake.tally.close()
            return await self._summarize(offer, prepared, intake.tally, tracker)
        finally:
            prepared.target.close()

    async def _open_data_paths(
        self, prepared: PreparedOffer, intake: FileIntake, handlers: _StreamHandlers
    ) -> None:
        """Admit data streams (and the LAN fast path's listener), then answer Accept."""

        def take(stream: MessageReader) -> None:
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
            handlers.start(intake.receive_stream(stream))

        pages = list(paginate(prepared.resume_items))  # before a file can take its point
        self._intake = take  # open before Accept goes out: the sender may start at once
        self._connection.limit_streams(data=MAX_PARALLEL_FILES, control=1)
        listener = self._listener = await self._open_data_listener()
        info = listener.info if listener is not None else None
        self._announce_resume(prepared)
        await self._send(
            Accept(len(pages))
            if info is None
            else Accept(len(pages), info.port, info.fingerprint, info.token)
        )
        for page in pages:
            await self._send(ResumePage(page))
        self._lifecycle.advance(SessionState.TRANSFERRING)
        if listener is not None:
            handlers.start(self._receive_over_tcp(listener, intake))

    def _announce_resume(self, prepared: PreparedOffer) -> None:
        """Say what is already here, before data moves (the sender says it too)."""
        items = prepared.resume_items
        if items:
            whole = [
                item.offset for item in items if prepared.resume[item.index].complete_file
            ]
            self._events.emit(ResumeEvent(
                self.session, "receive", len(items), sum(item.offset for item in items),
                len(whole), sum(whole),
            ))

    async def _until_settled(
        self, tally: Tally, tracker: ProgressTracker, reader: MessageReader
    ) -> None:
        """Wait until every file is settled; raise a stream's, the control's or a stall's
        failure first if one comes."""
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
            for task in (control, settled, watchdog):
                task.cancel()

    async def _summarize(
        self, offer: IncomingOffer, prepared: PreparedOffer, tally: Tally,
        tracker: ProgressTracker,
    ) -> TransferResult:
        """Every file settled: flush results and data, send the Summary, report done."""
        tracker.flush()
        await self._flush_results()
        await asyncio.to_thread(prepared.target.sync)  # what the summary counts is on disk
        await self._send(Summary(tally.ok, tally.failed, tracker.bytes_transferred))
        ok = tally.failed == 0
        result = TransferResult(
            SessionState.DONE if ok else SessionState.FAILED, tally.ok, tally.failed,
            offer.total_bytes, tracker.bytes_transferred, tracker.seconds,
            "" if ok else f"{tally.failed} file(s) failed verification",
        )
        self._events.emit(
            DoneEvent(
                self.session, "receive", ok, tally.ok, tally.failed, offer.total_bytes,
                tracker.bytes_transferred, round(tracker.seconds, 3), str(prepared.target.root),
                files_identical=tally.identical,
            )
        )
        await self._await_close()
        self._connection.close(CloseCode.DONE, "transfer complete")
        return result

    def _guard(self, watcher: Awaitable[None]) -> None:
        """Run a stream watcher for the life of the session."""
        self._guards.append(asyncio.ensure_future(watcher))

    def _break_stream_rule(self, rule: str) -> None:
        """The peer opened a stream it must not: end the connection (and drop what it sent)."""
        if self._violation is None:
            self._violation = rule
            self._connection.close(CloseCode.PROTOCOL_ERROR, f"protocol error: {rule}")

    async def _take_data_streams(self) -> None:
        """Take each data stream as it arrives: into the transfer, or as a violation."""
        while (stream := await self._connection.accept_data()) is not None:
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
            await self._connection.accept_control()
        except NetError:
            return  # the connection ended
        self._break_stream_rule("only one control stream is allowed")

    async def _open_data_listener(self) -> DataListener | None:
        """A TLS listener for the LAN fast path, when allowed and the QUIC path is direct."""
        if self._options.transport == "quic" or self._connection.path().kind != "direct":
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
            if close := await self._connection.await_peer_close(CLOSE_GRACE):
                raise _ended_by(close) from None
            raise
        finally:
            channel.abort()

    def _report_data_path(self, data_path: Literal["tcp", "quic"]) -> None:
        """Say once which channel carries this transfer's data."""
        if self._data_path is not None:
            return
        self._data_path = data_path
        path = self._connection.path()
        self._events.emit(
            ConnectionEvent(
                self.session, self.peer_id, path.kind, path.rtt_ms, path.remote_addr, data_path
            )
        )

    async def _watch_for_stall(self, tracker: ProgressTracker) -> None:
        """End a transfer whose data stopped moving (a vanished or stalling sender)."""
        while True:
            await asyncio.sleep(DATA_STALL_TIMEOUT / 4)
            if tracker.idle_seconds >= DATA_STALL_TIMEOUT:
                reason = f"no data for {DATA_STALL_TIMEOUT:.0f} s"
                self._connection.close(CloseCode.TIMEOUT, reason)
                raise NetError(reason)

class _StreamHandlers:
    """The tasks taking data streams in: counted, their first failure kept (``Tally``),
    and stopped together."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._tally.fail)

    async def stop(self) -> None:
        """Cancel them and wait (a bounded while) until each has let go of its file."""
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=PART_RELEASE_WAIT)


def _ended_by(close: PeerClose) -> TransferError:
    """The outcome of a connection the sender closed: cancelled, or failed in its words."""
    if close.cancelled:
        return Cancelled(close.reason or "the sender cancelled", "peer")
    return PeerError(close.reason or "the sender closed the connection")


async def _expect_offer(reader: MessageReader) -> Offer | TextOffer:
    """The sender's offer: of files, or of a text message."""
    message = await reader.read_message()
    if message is None:
        raise StreamEnded("peer closed the conversation")
    raise_if_peer_stopped(message)
    if not isinstance(message, Offer | TextOffer):
        raise ProtocolError(f"expected Offer, got {type(message).__name__}")
    return message


async def _read_manifest(reader: MessageReader, summary: ManifestSummary) -> Manifest:
    """The offer's entries, page by page, checked (what finds duplicates goes after)."""
    assembler = ManifestAssembler(summary)
    while not assembler.complete:
        page = await expect(reader, ManifestPage)
        assembler.add_page(page.entries)
    return assembler.entries


async def _skip_manifest(reader: MessageReader, summary: ManifestSummary) -> None:
    """Read an offer's pages without keeping them, so the sender gets to read our answer."""
    for _ in range(summary.pages):
        await expect(reader, ManifestPage)


async def _watch_control(reader: MessageReader) -> None:
    """During data transfer the sender may only cancel."""
    message = await reader.read_message()
    if message is None:
        raise PeerError("sender ended the transfer early")
    reject_during_transfer(message)


async def decide_offer(
    offer: IncomingOffer, options: ReceiveOptions, decide: Decider, pending: CountedSlots
) -> Decision:
    """The answer to an offer that holds nothing of what is already here (LocalSend): the
    target's room for all of it first, then ``ask_for_decision``."""
    target = options.target
    shortage = await asyncio.to_thread(
        room_shortage, target, offer.total_bytes, offer.files + offer.folders, options.max_size
    )
    if shortage:
        return Decision(False, shortage)
    return await ask_for_decision(offer, options, decide, pending)


async def ask_for_decision(
    offer: IncomingOffer, options: ReceiveOptions, decide: Decider, pending: CountedSlots
) -> Decision:
    """``--yes``, or the user's answer within DECISION_TIMEOUT, with a bounded number of
    offers waiting. Every offer takes this path, whatever protocol it came over."""
    if options.auto_accept:
        return Decision(True)
    if not pending.try_acquire():
        return Decision(False, "the receiver has too many offers waiting; try again later")
    try:
        return await asyncio.wait_for(decide(offer), DECISION_TIMEOUT)
    except TimeoutError:
        return Decision(False, "the receiver did not answer in time")
    finally:
        pending.release()
