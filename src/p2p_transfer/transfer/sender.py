"""The sending side of a transfer: greet, verify, offer, then stream the files.

``SendSession`` reads as the conversation goes; the code is entered and proved in
code_check.py, the files are streamed and their verdicts collected in
file_sender.py, and every control message passes the protocol's conversation
table (control.py).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import (
    ConnectionEvent,
    DecisionEvent,
    DialingEvent,
    DoneEvent,
    EventBus,
    OfferSentEvent,
    ReconnectedEvent,
    ReconnectingEvent,
    ResumeEvent,
    SessionState,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import (
    CLOSE_GRACE,
    DEFAULT_PARALLEL_FILES,
    MAX_PARALLEL_FILES,
    MAX_TEXT_BYTES,
    RETRY_CONNECT_TIMEOUT,
    RETRY_FIRST_PAUSE,
    RETRY_LONGEST_PAUSE,
    SEND_STALL_TIMEOUT,
)
from p2p_transfer.net import (
    CloseCode,
    MessageWriter,
    NetError,
    PeerClose,
    PeerConnection,
    Transport,
    Unreachable,
    ticket_addresses,
    ticket_endpoint_id,
)
from p2p_transfer.net.tcp import TlsChannel
from p2p_transfer.protocol import (
    PROTOCOL_VERSION,
    Accept,
    Continue,
    Decline,
    Hello,
    Manifest,
    ManifestPage,
    Offer,
    ProtocolError,
    Resume,
    ResumePage,
    Summary,
    TextOffer,
    TextPage,
    Welcome,
    clean_device_name,
    encode,
    paginate_text,
    text_preview,
)
from p2p_transfer.protocol.conversation import Conversation, Side
from p2p_transfer.transfer.code_check import CodeEntry, CodePrompt
from p2p_transfer.transfer.code_check import CodeRequest as CodeRequest  # re-exported
from p2p_transfer.transfer.control import ControlStream
from p2p_transfer.transfer.file_sender import FileSender, Verdicts, fixed_writer, open_tcp
from p2p_transfer.transfer.local import SourceError, Sources, scan_sources
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.transfer.session import (
    Cancelled,
    DataTransport,
    Declined,
    PeerError,
    TransferError,
    TransferResult,
    raise_if_peer_stopped,
)
from p2p_transfer.trust import PairingStore
from p2p_transfer.trust.vouched import VouchedPeer
from p2p_transfer.units import format_size

#: Where to reach the receiver again after a broken path: a fresh ticket (a LAN name is
#: looked up again; the receiver may have restarted on another address).
Redial = Callable[[], Awaitable[str]]

#: Why a receiver does not answer, said with "cannot reach NAME".
UNREACHABLE_CAUSES = (
    "the receiver may have stopped; a ticket's addresses change when the receiver "
    "restarts (copy its new ticket); or it is on another network (then both sides "
    "need a relay)"
)


@dataclass(slots=True)
class SendOptions:
    """How to send."""

    parallel: int = DEFAULT_PARALLEL_FILES
    follow_symlinks: bool = False
    code: str | None = None
    transport: DataTransport = "auto"
    #: Send this text message instead of files (at most MAX_TEXT_BYTES of UTF-8).
    text: str | None = None
    #: Set by a send by code: this receiver may skip the 6-digit code (its ID came
    #: under the code's PAKE).
    vouched: VouchedPeer | None = None
    #: Seconds to keep trying to reach the receiver again when the path under an accepted
    #: transfer breaks (``--retry-for``); 0 fails at once.
    retry_for: float = 0.0
    #: Seconds to wait for a receiver that cannot be reached yet (``--wait``); 0 fails at once.
    wait: float = 0.0


class _PathBroke(Exception):
    """The connection under an accepted transfer broke in a way worth continuing (not a
    cancel, a refusal or a protocol error)."""


async def _settle(sending: asyncio.Task[None], results: asyncio.Task[Summary]) -> Summary:
    """Every file sent, then the receiver's Summary."""
    await sending
    return await results


async def _first_failure_or(
    settled: asyncio.Future[Summary], *watched: asyncio.Future[object]
) -> Summary:
    """What ``settled`` gives, unless one of ``watched`` fails first: a connection that
    dies under a blocked write shows first in the results, a silent path as a stall."""
    waiting: set[asyncio.Future[object]] = {settled, *watched}
    while not settled.done():
        done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                await task  # raises what ended it
    return settled.result()


def check_text(text: str, paths: list[Path]) -> None:
    """Refuse a text message that cannot be sent (before anyone is dialed)."""
    if paths:
        raise TransferError("send either a text or files, not both")
    if not text.strip():
        raise TransferError("nothing to send: the text is empty")
    size = len(text.encode())
    if size > MAX_TEXT_BYTES:
        raise TransferError(
            f"the text is {size:,} bytes, over the {MAX_TEXT_BYTES:,} "
            f"({format_size(MAX_TEXT_BYTES)}) a text message holds; send it as a file"
        )


class SendSession:
    """Sends one set of paths (or a text) to one receiver."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        transport: Transport,
        device_name: str,
        events: EventBus,
        pairings: PairingStore,
        options: SendOptions,
        ask_code: CodePrompt | None = None,
    ) -> None:
        self._lifecycle = lifecycle
        self.session = lifecycle.session
        self._transport = transport
        self._device_name = device_name
        self._events = events
        self._pairings = pairings
        self._options = options
        self._code = CodeEntry(
            self.session, transport.endpoint_id, pairings, events, options.code, ask_code,
            options.vouched,
        )
        #: The offer's ID on the wire (the receiver's own session ID is its own).
        self._transfer_id = secrets.token_hex(8)
        self._ticket_addresses: list[str] = []
        #: The receiver's session and secret from its Accept: what continues the transfer.
        self._continuation: tuple[str, bytes] | None = None
        #: Bytes sent and seconds spent over connections that broke (for the result).
        self._carried = (0, 0.0)
        self._tracker: ProgressTracker | None = None
        self._peer_name = ""

    async def run(
        self, ticket: str, paths: list[Path], peer_name: str = "", redial: Redial | None = None
    ) -> TransferResult:
        """Send ``paths`` to the receiver a ticket names (``peer_name`` when known); returns
        the result or raises a TransferError (Declined, Cancelled, WrongCode, ...) or
        NetError. A path that breaks under an accepted transfer is reached again (through
        ``redial`` when given) for ``retry_for`` seconds, and the same session goes on."""
        if not 1 <= self._options.parallel <= MAX_PARALLEL_FILES:
            raise TransferError(f"--parallel must be between 1 and {MAX_PARALLEL_FILES}")
        if self._options.text is not None:
            check_text(self._options.text, paths)
        listing = asyncio.create_task(_list(paths, self._options))
        try:
            connection = await self._dial(ticket, peer_name)
        except BaseException:
            listing.cancel()
            if listing.done() and not listing.cancelled():
                listing.exception()  # seen: the dial's failure is the one to tell
            raise
        try:
            sources = await listing
        except TransferError as exc:
            connection.close(CloseCode.FAILED, f"sender stopped: {exc}")
            raise
        while True:
            try:
                return await self._attempt(connection, sources)
            except _PathBroke as broke:
                connection = await self._reconnect(redial, ticket, str(broke))

    async def _attempt(self, connection: PeerConnection, sources: Sources) -> TransferResult:
        """One connection's part of the session; _PathBroke when it broke under an accepted
        transfer that may be continued."""
        try:
            result = await self._converse(connection, sources)
        except asyncio.CancelledError:
            connection.close(CloseCode.CANCELLED, f"{self._device_name} cancelled")
            raise
        except (PeerError, Cancelled, Declined):
            connection.close(CloseCode.DONE, "")
            raise
        except ProtocolError as exc:
            connection.close(CloseCode.PROTOCOL_ERROR, f"protocol error: {exc}")
            raise TransferError(f"protocol error: {exc}") from None
        except NetError as exc:
            close = await connection.await_peer_close(CLOSE_GRACE)
            connection.close(CloseCode.FAILED, "sender stopped")
            if close is not None and close.cancelled:
                raise Cancelled(close.reason or "cancelled by the receiver", "peer") from None
            if self._may_continue(close):
                self._carry()
                raise _PathBroke(str(exc)) from None
            raise NetError(close.reason if close and close.reason else str(exc)) from None
        except TransferError as exc:
            connection.close(CloseCode.FAILED, f"sender stopped: {exc}")
            raise
        connection.close(CloseCode.DONE, "transfer complete")
        return result

    def _may_continue(self, close: PeerClose | None) -> bool:
        """A broken path is worth reaching again: the receiver gave a continuation, the
        user allows retries, and the receiver did not end it on purpose."""
        if self._continuation is None or self._options.retry_for <= 0:
            return False
        return close is None or close.code in (CloseCode.FAILED, CloseCode.TIMEOUT)

    def _carry(self) -> None:
        """Keep what the broken connection moved, for the result's totals."""
        if self._tracker is not None:
            sent, seconds = self._carried
            self._carried = (
                sent + self._tracker.bytes_transferred, seconds + self._tracker.seconds
            )
            self._tracker = None

    async def _reconnect(self, redial: Redial | None, ticket: str, reason: str) -> PeerConnection:
        """Reach the same receiver again, trying its addresses (a fresh lookup when
        ``redial``) with growing pauses, for up to ``retry_for`` s; Unreachable after."""
        self._lifecycle.advance(SessionState.RECONNECTING, reason)
        loop = asyncio.get_running_loop()
        retry_for = self._options.retry_for
        started = loop.time()
        pause = RETRY_FIRST_PAUSE
        while (waited := loop.time() - started) < retry_for:
            self._events.emit(ReconnectingEvent(
                self.session, self._peer_name, round(waited, 1), retry_for, reason
            ))
            timeout = min(RETRY_CONNECT_TIMEOUT, max(0.1, retry_for - waited))
            try:
                connection = await asyncio.wait_for(self._connect_again(redial, ticket), timeout)
            except (P2PTransferError, TimeoutError):
                await asyncio.sleep(min(pause, max(0.0, retry_for - (loop.time() - started))))
                pause = min(pause * 2, RETRY_LONGEST_PAUSE)
                continue
            path = connection.path()
            self._events.emit(ReconnectedEvent(
                self.session, self._peer_name, path.kind, path.remote_addr,
                round(loop.time() - started, 1),
            ))
            return connection
        who = self._peer_name or "the receiver"
        raise Unreachable(
            f"{who} did not come back within {retry_for:.0f} s ({reason}); what arrived is "
            "kept: run the same command to continue"
        )

    async def _connect_again(self, redial: Redial | None, ticket: str) -> PeerConnection:
        """A new connection to the receiver this session was accepted by, and no other
        (its continuation's secret is for that endpoint only)."""
        target = await redial() if redial is not None else ticket
        if ticket_endpoint_id(target) != ticket_endpoint_id(ticket):
            raise Unreachable("another device answers at the receiver's name or address")
        return await self._transport.connect(target)

    async def _dial(self, ticket: str, peer_name: str) -> PeerConnection:
        """Connect, saying whom we try to reach, and why that may fail when it does."""
        peer_id = ticket_endpoint_id(ticket)
        self._ticket_addresses = ticket_addresses(ticket)
        peer_name = peer_name or next(
            (p.name for p in self._pairings.list() if p.endpoint_id == peer_id), ""
        )
        self._peer_name = peer_name or f"{peer_id[:10]}…"
        self._events.emit(
            DialingEvent(self.session, peer_id, peer_name, list(self._ticket_addresses))
        )
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._options.wait
        pause = RETRY_FIRST_PAUSE
        while True:
            try:
                return await self._transport.connect(ticket)
            except Unreachable as exc:
                if loop.time() + pause >= give_up:  # --wait: tried until its end
                    who = peer_name or f"{peer_id[:10]}…"
                    raise Unreachable(
                        f"cannot reach {who} ({exc}): {UNREACHABLE_CAUSES}", exc.detail
                    ) from None
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_LONGEST_PAUSE)

    async def _converse(self, connection: PeerConnection, sources: Sources) -> TransferResult:
        path = connection.path()
        self._events.emit(
            ConnectionEvent(
                self.session, connection.peer_id, path.kind, path.rtt_ms, path.remote_addr
            )
        )
        control, welcome = await self._greet(connection)
        if self._continuation is None:
            await self._code.prove(control, welcome, connection.peer_id)
        if self._options.text is not None:
            return await self._send_text(control, self._options.text, welcome.name)
        answer, resume = await self._offer(control, sources.entries, welcome.name)
        channel = await open_tcp(
            connection, answer, self._options.transport, self._ticket_addresses
        )
        self._events.emit(
            ConnectionEvent(
                self.session, connection.peer_id, path.kind, path.rtt_ms, path.remote_addr,
                data_path="tcp" if channel is not None else "quic",
            )
        )
        return await self._transfer(connection, control, sources, resume, channel)

    async def _greet(self, connection: PeerConnection) -> tuple[ControlStream, Welcome]:
        """Open the control stream, say Hello and read the receiver's Welcome."""
        peer_id = connection.peer_id
        reader, writer = await connection.open_control()
        control = ControlStream(reader, writer, Conversation(Side.SENDER))
        if self._continuation is not None:
            session, secret = self._continuation
            await control.send(Continue(PROTOCOL_VERSION, self._device_name, session, secret))
        else:
            paired = self._pairings.is_trusted(peer_id)
            await control.send(
                Hello(PROTOCOL_VERSION, self._device_name, paired, self._code.retries)
            )
        welcome = await control.expect(Welcome)
        # The receiver's name is shown and stored: nothing in it may hide or reorder text.
        welcome = msgspec.structs.replace(
            welcome, name=clean_device_name(welcome.name) or peer_id[:10]
        )
        if welcome.version != PROTOCOL_VERSION:
            raise TransferError(
                f"receiver speaks protocol {welcome.version}, not {PROTOCOL_VERSION}"
            )
        self._lifecycle.peer_name = self._peer_name = welcome.name
        self._lifecycle.advance(SessionState.VERIFYING)
        return control, welcome

    async def _offer(
        self, control: ControlStream, entries: Manifest, peer_name: str
    ) -> tuple[Accept, dict[int, Resume]]:
        """Offer the files; the receiver's Accept and what it already holds of them (or
        Declined raised)."""
        files, total = entries.files, entries.total_bytes
        # Kept encoded until sent: ~5 MB for 100,000 entries, where Entry objects took ~25 MB.
        pages = [encode(ManifestPage(page)) for page in entries.pages()]
        await control.send(Offer(self._transfer_id, len(entries), files, total, len(pages)))
        for page in pages:
            await control.send_encoded(ManifestPage, page)
        del pages
        if self._continuation is None:  # a continued offer was answered before
            self._events.emit(
                OfferSentEvent(self.session, peer_name, files, total, len(entries) - files)
            )
        answer = await self._await_answer(control)
        resume: dict[int, Resume] = {}
        for _ in range(answer.pages):
            page = await control.expect(ResumePage)
            resume.update((item.index, item) for item in page.items)
        self._announce_resume(resume, entries)
        return answer, resume

    async def _await_answer(self, control: ControlStream) -> Accept:
        """The receiving user's answer to the offer just sent: Accept, or Declined raised."""
        self._lifecycle.advance(SessionState.WAITING)
        answer = await control.read()
        if isinstance(answer, Decline):
            self._events.emit(DecisionEvent(self.session, False, answer.reason))
            raise Declined(answer.reason)
        if not isinstance(answer, Accept):
            if answer is not None:
                raise_if_peer_stopped(answer)
            return_kind = type(answer).__name__ if answer else "nothing"
            raise ProtocolError(f"expected accept or decline, got {return_kind}")
        if self._continuation is None:
            self._events.emit(DecisionEvent(self.session, True))
            if answer.session and answer.continuation:
                self._continuation = (answer.session, answer.continuation)
        self._lifecycle.advance(SessionState.TRANSFERRING)
        return answer

    async def _transfer(
        self,
        connection: PeerConnection,
        control: ControlStream,
        sources: Sources,
        resume: dict[int, Resume],
        channel: TlsChannel | None,
    ) -> TransferResult:
        """Stream the files over ``channel`` (TCP) or QUIC data streams while the
        receiver's verdicts come in; the result once its Summary is here."""
        entries = sources.entries
        tracker = self._tracker = ProgressTracker(
            self.session, "send", entries.total_bytes, entries.files, self._events.emit
        )
        if channel is not None:
            # One TLS connection carries every file, one after another.
            openers = [fixed_writer(MessageWriter(channel))]
        else:
            count = min(self._options.parallel, max(1, entries.files))
            openers = [connection.open_data] * count
        jobs = ((index, sources[index]) for index in entries.file_indexes())
        verdicts = Verdicts(self.session, self._events, entries, tracker)
        sender = FileSender(self.session, self._events, resume, tracker)
        sending = asyncio.create_task(sender.send_all(openers, jobs))
        results = asyncio.create_task(verdicts.collect(control))
        # Only a send that may reach its receiver again gives up on a silent path early.
        watch = self._watch_stall(tracker) if self._options.retry_for > 0 else asyncio.Future()
        stalled = asyncio.ensure_future(watch)
        settled = asyncio.ensure_future(_settle(sending, results))
        try:
            summary = await _first_failure_or(settled, results, stalled)
        except BaseException:
            if channel is not None:
                channel.abort()  # a failed or cancelled transfer leaves no TLS socket behind
            raise
        finally:
            for task in (sending, results, stalled, settled):
                task.cancel()
            if channel is not None:
                channel.close()  # no-op after the worker's finish; closes it when no file used it
        tracker.flush()
        return self._report(entries, tracker, verdicts, summary)

    @staticmethod
    async def _watch_stall(tracker: ProgressTracker) -> None:
        """NetError once data that began to move, with bytes still to send, moved not one
        byte for SEND_STALL_TIMEOUT (the path under it went silent)."""
        while True:
            await asyncio.sleep(SEND_STALL_TIMEOUT / 5)
            if (
                tracker.bytes_transferred > 0  # not while resume points are hashed first
                and tracker.bytes_done < tracker.bytes_total
                and tracker.idle_seconds >= SEND_STALL_TIMEOUT
            ):
                raise NetError(f"no data moved for {SEND_STALL_TIMEOUT:.0f} s")

    def _report(
        self, entries: Manifest, tracker: ProgressTracker, verdicts: Verdicts, summary: Summary
    ) -> TransferResult:
        """How the transfer went, as a result and a done event."""
        files = entries.files
        ok = not verdicts.failed and verdicts.ok == files
        sent_before, seconds_before = self._carried
        result = TransferResult(
            state=SessionState.DONE if ok else SessionState.FAILED,
            files=verdicts.ok,
            files_failed=files - verdicts.ok,
            bytes_total=entries.total_bytes,
            bytes_transferred=sent_before + tracker.bytes_transferred,
            seconds=seconds_before + tracker.seconds,
            message="" if ok else verdicts.failure_message(summary),
        )
        self._events.emit(
            DoneEvent(
                self.session,
                "send",
                result.ok,
                result.files,
                result.files_failed,
                result.bytes_total,
                result.bytes_transferred,
                round(result.seconds, 3),
                files_identical=verdicts.identical,
            )
        )
        return result

    async def _send_text(
        self, control: ControlStream, text: str, peer_name: str
    ) -> TransferResult:
        """Offer a text message with its first line; send the rest only once accepted."""
        size = len(text.encode())
        pages = paginate_text(text)
        await control.send(TextOffer(self._transfer_id, size, len(pages), text_preview(text)))
        self._events.emit(OfferSentEvent(self.session, peer_name, 0, size, text=True))
        answer = await self._await_answer(control)
        if answer.pages:
            raise ProtocolError("resume points for a text message")
        started = asyncio.get_running_loop().time()
        for page in pages:
            await control.send(TextPage(page))
        summary = await control.expect(Summary)
        if summary.bytes_received != size:
            raise TransferError(
                f"the receiver got {summary.bytes_received} of the text's {size} bytes"
            )
        seconds = asyncio.get_running_loop().time() - started
        self._events.emit(
            DoneEvent(self.session, "send", True, 0, 0, size, size, round(seconds, 3), text=True)
        )
        return TransferResult(SessionState.DONE, 0, 0, size, size, seconds)

    def _announce_resume(self, resume: dict[int, Resume], entries: Manifest) -> None:
        """Say what the receiver already holds, before data moves (each part is still
        checked against this file before it is trusted)."""
        held = [
            (item, size) for index, item in resume.items()
            if 0 <= index < len(entries) and entries.is_file(index)
            and 0 <= item.offset <= (size := entries.size(index))
        ]
        if held:
            whole = [size for item, size in held if item.offset == size]
            self._events.emit(ResumeEvent(
                self.session, "send", len(held), sum(item.offset for item, _ in held),
                len(whole), sum(whole),
            ))


async def _list(paths: list[Path], options: SendOptions) -> Sources:
    """What ``paths`` hold (nothing for a text), listed while the receiver is dialed:
    10,000 files take ~40 ms, a dial on a LAN 30-150."""
    if options.text is not None:
        return Sources()
    try:
        return await asyncio.to_thread(scan_sources, paths, options.follow_symlinks)
    except SourceError as exc:
        raise TransferError(str(exc)) from None
