"""The receiving side: verify the peer, ask the user, then take files in.

Bytes go to ``NAME.part`` while being hashed; only a file whose BLAKE3 matches
the sender's gets its final name. A peer that breaks the protocol loses its
connection, never the process.

``ReceiveSession`` reads as the conversation goes (hello, code, offer, decision,
data, summary); each phase's work has its own home: the code check in code_check.py,
the decision in offers.py, the data paths in data_paths.py, and the control stream,
refereed by the protocol's conversation table, in control.py.
"""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import dataclass, field
from itertools import islice

import msgspec

from p2p_transfer.disk import TargetError, describe_os_error
from p2p_transfer.events import (
    DecisionEvent,
    DoneEvent,
    EventBus,
    SessionState,
    TextEvent,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import (
    FIRST_MESSAGE_TIMEOUT,
    LARGE_MANIFEST_ENTRIES,
    MAX_PENDING_OFFERS,
    RETURN_MEMORY_DELAY,
)
from p2p_transfer.memory import return_free_memory
from p2p_transfer.net import CloseCode, NetError, PeerConnection, StreamEnded
from p2p_transfer.net.tcp import TcpEndpointInfo
from p2p_transfer.protocol import (
    PROTOCOL_VERSION,
    Accept,
    Continue,
    Decline,
    Error,
    Hello,
    Manifest,
    ManifestAssembler,
    ManifestPage,
    Offer,
    ProtocolError,
    ResumePage,
    Summary,
    TextAssembler,
    TextOffer,
    TextPage,
    Welcome,
    check_offer,
    check_text_offer,
    clean_device_name,
    paginate,
    text_preview,
)
from p2p_transfer.protocol.conversation import Conversation, Side
from p2p_transfer.transfer.admission import CountedSlots, ManifestBudget
from p2p_transfer.transfer.claims import ClaimOwner, FileClaims
from p2p_transfer.transfer.code_check import CodeCheck
from p2p_transfer.transfer.continuations import (
    REFUSAL,
    Continuation,
    ContinuationStore,
    folder_key,
    manifest_digest,
)
from p2p_transfer.transfer.control import ControlStream
from p2p_transfer.transfer.data_paths import DataPaths, sender_closed
from p2p_transfer.transfer.intake import FileIntake, PreparedOffer, Tally
from p2p_transfer.transfer.offers import (
    Decider,
    Decision,
    IncomingOffer,
    ReceiveOptions,
    Refused,
    ask_for_decision,
    consider,
    survey,
)
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.transfer.session import (
    Cancelled,
    PeerError,
    TransferError,
    TransferResult,
    reject_during_transfer,
)
from p2p_transfer.trust import AttemptLimiter, PairingStore, VerificationSlots

#: Time the sender has to send its offer after the handshake.
OFFER_TIMEOUT = 30.0
#: How long the receiver waits for the sender to close after the summary.
SUMMARY_CLOSE_WAIT = 5.0
#: Example names shown with an offer.
OFFER_SAMPLE_SIZE = 5


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
    #: Accepted transfers their senders may continue after a broken path.
    continuations: ContinuationStore = field(default_factory=ContinuationStore)


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
        self._services = services
        self._events = services.events
        self._options = options
        self._decide = decide
        self.peer_id = connection.peer_id
        self.peer_name = self.peer_id[:10]
        self.offered = False
        self.said_hello = False
        #: Only waiting for the peer to hang up: the connection table may drop it.
        self.closing = False
        self._conversation = Conversation(Side.RECEIVER)
        self._control: ControlStream | None = None
        self._code = CodeCheck(
            services, connection, self, remote_ip, options.fixed_code, options.vouched
        )
        self._data = DataPaths(
            self.session, connection, services.events, options.transport, services.data_host
        )
        #: Manifest entries this session reserved (given back when it ends).
        self._manifest_entries = 0
        self._task: asyncio.Task[object] | None = None
        self._finished = asyncio.Event()
        #: How the connection closes if this session is stopped for another one.
        self._stop_code = CloseCode.CANCELLED
        #: The accepted transfer this connection continues (a sender's ``Continue``).
        self._continued: Continuation | None = None
        #: The continuation this session's transfer holds, once accepted or continued.
        self._continuation_key = ""

    @property
    def checking(self) -> bool:
        """A typed code is being checked (the session must not be dropped for another)."""
        return self._code.checking

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
            self._end_continuation()
            self._connection.close(CloseCode.DONE, "")
            raise
        except PeerError as exc:
            self._connection.close(CloseCode.DONE, "")
            raise TransferError(str(exc)) from None
        except (ProtocolError, NetError) as exc:
            raise await self._broken(exc) from None
        except (TargetError, OSError) as exc:
            # The target folder failed us outside a file (each file's own disk errors are
            # reported per file): the peer hears why instead of seeing a silent hang-up.
            reason = str(exc) if isinstance(exc, TargetError) else describe_os_error(exc)
            await self._send_error(Error(reason))
            self._connection.close(CloseCode.FAILED, reason)
            raise TransferError(f"{self.peer_name}: {reason}") from None
        except asyncio.CancelledError:
            if not self._lifecycle.cancel_reason:  # this user's cancel, not a newer session's
                self._end_continuation()
            reason = self._lifecycle.cancel_reason or f"{self._services.device_name} cancelled"
            self._connection.close(self._stop_code, reason)
            raise
        finally:
            self._let_go()

    async def _broken(self, exc: ProtocolError | NetError) -> TransferError:
        """The outcome of a peer that broke the protocol, or of a connection that failed;
        the peer is told why when it still can be."""
        violation = self._data.violation
        if isinstance(exc, StreamEnded) and (close := self._connection.peer_close()):
            return sender_closed(close)  # the peer hung up, and said why
        if isinstance(exc, ProtocolError | StreamEnded):
            # A stream that ends inside a message or before the data it announced
            # is the peer breaking the protocol, and told so, not "receiver stopped".
            reason = violation or str(exc)
            await self._send_error(Error(f"protocol error: {reason}"))
            self._connection.close(CloseCode.PROTOCOL_ERROR, f"protocol error: {reason}")
            return TransferError(f"protocol error from {self.peer_name}: {reason}")
        if violation is not None:  # we closed the connection for it
            return TransferError(f"protocol error from {self.peer_name}: {violation}")
        close = self._connection.peer_close()  # before our close replaces it
        self._connection.close(CloseCode.FAILED, "receiver stopped")
        return sender_closed(close) if close else TransferError(str(exc))

    def _let_go(self) -> None:
        """The session ended: its stream watchers, files and manifest entries go."""
        self._data.stop_policing()
        self._services.claims.release(self)
        self._services.manifests.release(self.peer_id, self._manifest_entries)
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
        if self._control is not None:
            await self._control.send_error(error)

    async def _await_close(self) -> None:
        """Give the peer time to read our last message and close first."""
        self.closing = True
        await self._connection.wait_closed(SUMMARY_CLOSE_WAIT)

    # --- the conversation, in its order ----------------------------------------------------

    def _end_continuation(self) -> None:
        """This session's transfer ended for good: it can no longer be continued."""
        if self._continuation_key:
            self._services.continuations.end(self._continuation_key)

    async def _converse(self) -> TransferResult | None:
        control, hello = await self._greet()
        if isinstance(hello, Continue):
            # Verified when it began; the Continue proved it is that transfer's sender.
            await control.send(Welcome(PROTOCOL_VERSION, self._services.device_name, False))
        else:
            await self._code.verify(control, hello)
        with self._connection.deadline(OFFER_TIMEOUT, "no offer in time"):
            offer = await control.expect(Offer, TextOffer)
            if self._continued is not None and isinstance(offer, TextOffer):
                raise Refused(REFUSAL)
            if isinstance(offer, TextOffer):
                check_text_offer(offer)
                self.offered = True
                manifest, refusal = None, ""
            else:
                manifest, refusal = await self._take_manifest(control, offer)
        if isinstance(offer, TextOffer):
            return await self._take_text(control, offer)
        if manifest is None:
            self._events.emit(DecisionEvent(self.session, False, refusal))
            return await self._decline(control, refusal, offer.total_bytes)
        return await self._take_files(control, manifest)

    async def _greet(self) -> tuple[ControlStream, Hello | Continue]:
        """The control stream and the sender's Hello (or Continue of a transfer this
        receiver accepted), within FIRST_MESSAGE_TIMEOUT."""
        self._data.police_data_streams(self._conversation)
        with self._connection.deadline(FIRST_MESSAGE_TIMEOUT, "no hello within 5 s") as deadline:
            reader, writer = await self._connection.accept_control()
            control = self._control = ControlStream(reader, writer, self._conversation)
            self._data.police_control_streams()
            hello = await control.expect(Hello, Continue)
        if deadline.expired:
            raise NetError("no hello within 5 s")
        if isinstance(hello, Continue):
            self._continued = self._services.continuations.find(
                hello.session, self.peer_id, hello.secret
            )
            if self._continued is None:
                raise Refused(REFUSAL)
            self._continuation_key = self._continued.session
        self.said_hello = True
        self.peer_name = clean_device_name(hello.name) or self.peer_id[:10]
        self._lifecycle.peer_name = self.peer_name
        self._lifecycle.advance(SessionState.VERIFYING)
        if hello.version != PROTOCOL_VERSION:
            raise ProtocolError(f"unsupported protocol version {hello.version}")
        return control, hello

    async def _take_manifest(
        self, control: ControlStream, offer: Offer
    ) -> tuple[Manifest | None, str]:
        """The offer's entries, page by page, checked (what finds duplicates goes after);
        or None and why, when the manifest budget has no room for them: the pages are then
        read without being kept, so the sender gets to read the answer."""
        summary = check_offer(offer)
        self.offered = True
        refusal = self._services.manifests.reserve(self.peer_id, summary.entries)
        if refusal:
            for _ in range(summary.pages):
                await control.expect(ManifestPage)
            return None, refusal
        self._manifest_entries = summary.entries  # given back when the session ends
        assembler = ManifestAssembler(summary)
        while not assembler.complete:
            assembler.add_page((await control.expect(ManifestPage)).entries)
        return assembler.entries, ""

    async def _take_files(self, control: ControlStream, manifest: Manifest) -> TransferResult:
        """Ask about a file offer the target can take, then receive it or decline."""
        services = self._services
        continued = self._continued
        if continued is not None and (
            continued.manifest_digest != manifest_digest(manifest)
            or continued.folder != folder_key(self._options.target)
        ):
            raise Refused(REFUSAL)  # not the files (or the folder) that were accepted
        prepared, refusal = await survey(manifest, self._options, services.claims, self)
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
        self._events.emit(incoming.event())
        self._lifecycle.advance(SessionState.WAITING)
        ask = self._ask_for_files if continued is None else _accepted_before
        decision = Decision(False, refusal) if prepared is None else await consider(
            prepared, self._options.max_size, lambda: ask(incoming)
        )
        self._events.emit(DecisionEvent(self.session, decision.accept, decision.reason))
        if prepared is None or not decision.accept:
            return await self._decline(control, decision.reason, manifest.total_bytes)
        return await self._receive(control, incoming, prepared)

    async def _take_text(self, control: ControlStream, offer: TextOffer) -> TransferResult:
        """Ask about a text message by its first line; once accepted, read and show it."""
        preview = text_preview(offer.preview)
        incoming = IncomingOffer(
            session=self.session, peer_id=self.peer_id, peer_name=self.peer_name, files=0,
            folders=0, total_bytes=offer.bytes, sample=[], text=True, preview=preview,
        )
        self._events.emit(incoming.event())
        self._lifecycle.advance(SessionState.WAITING)
        decision = await self._ask(incoming)
        self._events.emit(DecisionEvent(self.session, decision.accept, decision.reason))
        if not decision.accept:
            return await self._decline(control, decision.reason, offer.bytes)
        await control.send(Accept(0))
        self._lifecycle.advance(SessionState.TRANSFERRING)
        started = asyncio.get_running_loop().time()
        text = TextAssembler(offer)
        with self._connection.deadline(OFFER_TIMEOUT, "no text in time"):
            while not text.complete:
                text.add((await control.expect(TextPage)).text)
        seconds = asyncio.get_running_loop().time() - started
        self._events.emit(TextEvent(self.session, self.peer_name, text.text))
        await control.send(Summary(0, 0, offer.bytes))
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

    async def _decline(
        self, control: ControlStream, reason: str, total_bytes: int
    ) -> TransferResult:
        """Tell the sender no, and why; wait for it to hang up."""
        await control.send(Decline(reason))
        await self._await_close()
        self._connection.close(CloseCode.DONE, f"declined: {reason}")
        return TransferResult(SessionState.DECLINED, bytes_total=total_bytes, message=reason)

    async def _ask(self, offer: IncomingOffer) -> Decision:
        """The receiving user's answer (or ``--yes``), for an offer the target has room for."""
        return await ask_for_decision(
            offer, self._options, self._decide, self._services.pending_offers
        )

    async def _ask_for_files(self, offer: IncomingOffer) -> Decision:
        """The answer to a file offer, which also needs a data path this receiver takes."""
        decision = await self._ask(offer)
        if decision.accept and self._options.transport == "tcp" and (
            self._connection.path().kind != "direct"
        ):
            return Decision(False, "this receiver takes file data only over TCP "
                                   "(--transport tcp), and the path is not direct")
        return decision

    async def _receive(
        self, control: ControlStream, offer: IncomingOffer, prepared: PreparedOffer
    ) -> TransferResult:
        """Take the accepted offer's files in, then tell the sender how it went."""
        tracker = ProgressTracker(
            self.session, "receive", offer.total_bytes, prepared.manifest.files, self._events.emit
        )
        intake = FileIntake(self.session, prepared, tracker, self._events, control.queue_result)
        try:
            try:
                pages = list(paginate(prepared.resume_items))  # before a file can take its point
                if (held := prepared.resume_event(self.session)) is not None:
                    self._events.emit(held)
                tcp = await self._data.admit(intake)
                accept = self._with_continuation(_accept(len(pages), tcp), prepared)
                await control.send(accept, *map(ResumePage, pages))
                self._lifecycle.advance(SessionState.TRANSFERRING)
                self._data.start()
                await self._data.until_settled(tracker, _watch_control(control))
            finally:
                await self._data.close()  # no part stays open behind the session's back
            return await self._summarize(control, offer, prepared, intake.tally, tracker)
        finally:
            prepared.target.close()

    def _with_continuation(self, accept: Accept, prepared: PreparedOffer) -> Accept:
        """The Accept with what lets its sender continue after a broken path: a fresh
        continuation, or the one this connection continues (its secret stays the same)."""
        if self._continued is not None:
            return msgspec.structs.replace(accept, session=self._continued.session)
        secret = self._services.continuations.grant(
            self.session, self.peer_id, prepared.manifest, self._options.target
        )
        self._continuation_key = self.session
        return msgspec.structs.replace(accept, session=self.session, continuation=secret)

    async def _summarize(
        self, control: ControlStream, offer: IncomingOffer, prepared: PreparedOffer,
        tally: Tally, tracker: ProgressTracker,
    ) -> TransferResult:
        """Every file settled: flush results and data, send the Summary, report done."""
        tracker.flush()
        await control.flush_results()
        await asyncio.to_thread(prepared.target.sync)  # what the summary counts is on disk
        await control.send(Summary(tally.ok, tally.failed, tracker.bytes_transferred))
        self._end_continuation()
        ok = tally.failed == 0
        result = TransferResult(
            SessionState.DONE if ok else SessionState.FAILED, tally.ok, tally.failed,
            offer.total_bytes, tracker.bytes_transferred, tracker.seconds,
            "" if ok else f"{tally.failed} file(s) did not arrive (each one's line says why)",
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


def _accept(pages: int, tcp: TcpEndpointInfo | None) -> Accept:
    """The answer to an accepted offer: its resume pages' count, and the LAN fast path."""
    if tcp is None:
        return Accept(pages)
    return Accept(pages, tcp.port, tcp.fingerprint, tcp.token)


async def _accepted_before(offer: IncomingOffer) -> Decision:
    """A continued transfer's answer: the receiving user accepted it when it began."""
    return Decision(True)


async def _watch_control(control: ControlStream) -> None:
    """During data transfer the sender may only cancel."""
    message = await control.read()
    if message is None:
        raise PeerError("sender ended the transfer early")
    reject_during_transfer(message)
