"""The sending side of a transfer: offer, verify, then stream files in parallel.

At most ``parallel`` files are in flight, each worker owning one data stream
and taking the next file when it finishes the last, so many small files share
streams and pay no round trip each.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from p2p_transfer.events import (
    ConnectionEvent,
    DecisionEvent,
    DialingEvent,
    DoneEvent,
    EventBus,
    FileDoneEvent,
    FileFailedEvent,
    OfferSentEvent,
    ResumeEvent,
    SessionState,
    VerifiedEvent,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import (
    BATCH_WRITE_SIZE,
    CLOSE_GRACE,
    DEFAULT_PARALLEL_FILES,
    MAX_PARALLEL_FILES,
    MAX_TEXT_BYTES,
    SMALL_FILE_SIZE,
    SMALL_READ_AHEAD,
    SMALL_READ_AHEAD_FILES,
    TCP_CONNECT_TIMEOUT,
)
from p2p_transfer.net import (
    CloseCode,
    MessageReader,
    MessageWriter,
    NetError,
    PeerConnection,
    StreamEnded,
    Transport,
    Unreachable,
    ticket_addresses,
    ticket_endpoint_id,
)
from p2p_transfer.net.tcp import TcpEndpointInfo, TlsChannel, connect_data_channel
from p2p_transfer.protocol import (
    PROTOCOL_VERSION,
    Accept,
    DataHeader,
    DataTrailer,
    Decline,
    FileResult,
    Hello,
    Manifest,
    ManifestPage,
    Offer,
    ProtocolError,
    Resume,
    ResumePage,
    Retry,
    Summary,
    TextOffer,
    TextPage,
    Verified,
    Verify,
    Welcome,
    clean_device_name,
    encode,
    paginate,
    paginate_text,
    text_preview,
)
from p2p_transfer.transfer.local import (
    FileSource,
    SmallFile,
    SourceEntry,
    SourceError,
    Sources,
    read_small_files,
    scan_sources,
)
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.transfer.session import (
    Cancelled,
    DataTransport,
    Declined,
    PeerError,
    TransferError,
    TransferResult,
    expect,
    raise_if_peer_stopped,
    reject_during_transfer,
)
from p2p_transfer.trust import PairingStore, normalize_code
from p2p_transfer.trust.pake import CodeExchange, PakeError
from p2p_transfer.trust.vouched import VouchedPeer
from p2p_transfer.units import format_size


@dataclass(frozen=True, slots=True)
class CodeRequest:
    """The sending user is asked for the code that ``peer_name`` shows."""

    session: str
    peer_name: str
    #: Which of its allowed attempts this is, of ``max_attempts`` (0 and 0: not said).
    attempt: int = 0
    max_attempts: int = 0
    #: Asked again on the same connection: the code typed before was wrong.
    retry: bool = False


#: Asks the sending user for the code the receiver shows.
CodePrompt = Callable[[CodeRequest], Awaitable[str]]
#: A file to send: its index in the offer and where it comes from.
_Job = tuple[int, SourceEntry]
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


@dataclass(slots=True)
class _Outcome:
    """Per-file verdicts as the receiver reports them, one a file."""

    #: A byte per entry, set once its verdict came (a set of 100,000 indexes: ~5 MB).
    judged: bytearray
    ok: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    #: Of the ``ok`` ones, those the receiver already held, identical.
    identical: int = 0

    def judge(self, index: int) -> bool:
        """Note ``index``'s verdict; False when it had one already."""
        if self.judged[index]:
            return False
        self.judged[index] = 1
        return True


class SendSession:
    """Sends one set of paths to one receiver."""

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
        self._ask_code = ask_code
        #: The offer's ID on the wire (the receiver's own session ID is its own).
        self._transfer_id = secrets.token_hex(8)
        self._ticket_addresses: list[str] = []

    async def run(self, ticket: str, paths: list[Path], peer_name: str = "") -> TransferResult:
        """Send ``paths`` to the receiver a ticket names (``peer_name`` when known); returns
        the result or raises a TransferError (Declined, Cancelled, WrongCode, ...) or
        NetError."""
        if not 1 <= self._options.parallel <= MAX_PARALLEL_FILES:
            raise TransferError(f"--parallel must be between 1 and {MAX_PARALLEL_FILES}")
        sources = Sources()
        if self._options.text is not None:
            check_text(self._options.text, paths)
        else:
            try:
                sources = await asyncio.to_thread(
                    scan_sources, paths, self._options.follow_symlinks
                )
            except SourceError as exc:
                raise TransferError(str(exc)) from None
        connection = await self._dial(ticket, peer_name)
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
            raise NetError(close.reason if close and close.reason else str(exc)) from None
        except TransferError as exc:
            connection.close(CloseCode.FAILED, f"sender stopped: {exc}")
            raise
        connection.close(CloseCode.DONE, "transfer complete")
        return result

    async def _dial(self, ticket: str, peer_name: str) -> PeerConnection:
        """Connect, saying whom we try to reach, and why that may fail when it does."""
        peer_id = ticket_endpoint_id(ticket)
        self._ticket_addresses = ticket_addresses(ticket)
        peer_name = peer_name or next(
            (p.name for p in self._pairings.list() if p.endpoint_id == peer_id), ""
        )
        self._events.emit(
            DialingEvent(self.session, peer_id, peer_name, list(self._ticket_addresses))
        )
        try:
            return await self._transport.connect(ticket)
        except Unreachable as exc:
            who = peer_name or f"{peer_id[:10]}…"
            raise Unreachable(
                f"cannot reach {who} ({exc}): {UNREACHABLE_CAUSES}", exc.detail
            ) from None

    async def _converse(
        self, connection: PeerConnection, sources: Sources
    ) -> TransferResult:
        path = connection.path()
        peer_id = connection.peer_id
        self._events.emit(
            ConnectionEvent(self.session, peer_id, path.kind, path.rtt_ms, path.remote_addr)
        )
        reader, writer = await connection.open_control()
        paired = self._pairings.is_trusted(peer_id)
        # A user who can be asked again may retry a wrong code on this connection.
        retries = self._ask_code is not None
        await writer.send(Hello(PROTOCOL_VERSION, self._device_name, paired, retries))
        welcome = await expect(reader, Welcome)
        # The receiver's name is shown and stored: nothing in it may hide or reorder text.
        welcome = msgspec.structs.replace(
            welcome, name=clean_device_name(welcome.name) or peer_id[:10]
        )
        if welcome.version != PROTOCOL_VERSION:
            raise TransferError(
                f"receiver speaks protocol {welcome.version}, not {PROTOCOL_VERSION}"
            )
        self._lifecycle.peer_name = welcome.name
        self._lifecycle.advance(SessionState.VERIFYING)
        await self._verify(welcome, peer_id, reader, writer)
        if self._options.text is not None:
            return await self._send_text(self._options.text, welcome.name, reader, writer)

        entries = sources.entries
        files, total = entries.files, entries.total_bytes
        # Kept encoded until sent: ~5 MB for 100,000 entries, where Entry objects took ~25 MB.
        pages = [encode(ManifestPage(page)) for page in paginate(entries)]
        await writer.send(Offer(self._transfer_id, len(entries), files, total, len(pages)))
        for page in pages:
            await writer.write(page)
        del pages
        self._events.emit(
            OfferSentEvent(self.session, welcome.name, files, total, len(entries) - files)
        )
        answer = await self._await_answer(reader)
        resume: dict[int, Resume] = {}
        for _ in range(answer.pages):
            page = await expect(reader, ResumePage)
            resume.update((item.index, item) for item in page.items)
        self._announce_resume(resume, entries)

        tracker = ProgressTracker(self.session, "send", total, files, self._events.emit)
        outcome = _Outcome(bytearray(len(entries)))
        jobs = ((index, sources[index]) for index in entries.file_indexes())
        channel = await self._open_tcp(connection, answer)
        self._events.emit(
            ConnectionEvent(
                self.session, peer_id, path.kind, path.rtt_ms, path.remote_addr,
                data_path="tcp" if channel is not None else "quic",
            )
        )
        if channel is not None:
            # One TLS connection carries every file, one after another.
            openers = [_fixed_writer(MessageWriter(channel))]
        else:
            count = min(self._options.parallel, max(1, files))
            openers = [connection.open_data] * count
        workers = [
            asyncio.create_task(self._worker(open_writer, jobs, resume, tracker))
            for open_writer in openers
        ]
        results = asyncio.create_task(self._collect_results(reader, entries, tracker, outcome))
        try:
            await asyncio.gather(*workers)
            summary = await results
        except BaseException:
            if channel is not None:
                channel.abort()  # a failed or cancelled transfer leaves no TLS socket behind
            raise
        finally:
            for task in (*workers, results):
                task.cancel()
            if channel is not None:
                channel.close()  # no-op after the worker's finish; closes it when no file used it
        tracker.flush()
        ok = not outcome.failed and outcome.ok == files
        result = TransferResult(
            state=SessionState.DONE if ok else SessionState.FAILED,
            files=outcome.ok,
            files_failed=files - outcome.ok,
            bytes_total=total,
            bytes_transferred=tracker.bytes_transferred,
            seconds=tracker.seconds,
            message="" if ok else _failure_message(outcome, summary),
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
                files_identical=outcome.identical,
            )
        )
        return result

    async def _await_answer(self, reader: MessageReader) -> Accept:
        """The receiving user's answer to the offer just sent: Accept, or Declined raised."""
        self._lifecycle.advance(SessionState.WAITING)
        answer = await reader.read_message()
        if isinstance(answer, Decline):
            self._events.emit(DecisionEvent(self.session, False, answer.reason))
            raise Declined(answer.reason)
        if not isinstance(answer, Accept):
            raise_if_peer_stopped(answer)
            return_kind = type(answer).__name__ if answer else "nothing"
            raise ProtocolError(f"expected accept or decline, got {return_kind}")
        self._events.emit(DecisionEvent(self.session, True))
        self._lifecycle.advance(SessionState.TRANSFERRING)
        return answer

    async def _send_text(
        self, text: str, peer_name: str, reader: MessageReader, writer: MessageWriter
    ) -> TransferResult:
        """Offer a text message with its first line; send the rest only once accepted."""
        size = len(text.encode())
        pages = paginate_text(text)
        await writer.send(TextOffer(self._transfer_id, size, len(pages), text_preview(text)))
        self._events.emit(OfferSentEvent(self.session, peer_name, 0, size, text=True))
        answer = await self._await_answer(reader)
        if answer.pages:
            raise ProtocolError("resume points for a text message")
        started = asyncio.get_running_loop().time()
        for page in pages:
            await writer.send(TextPage(page))
        summary = await expect(reader, Summary)
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

    async def _verify(
        self, welcome: Welcome, peer_id: str, reader: MessageReader, writer: MessageWriter
    ) -> None:
        if not welcome.code_required:
            vouched = self._options.vouched
            if vouched is not None and vouched.admits(peer_id):
                self._events.emit(VerifiedEvent(self.session, peer_id, welcome.name, "short-code"))
                return
            if not self._pairings.is_trusted(peer_id):
                # Only a pairing this device holds may skip the code: a receiver's word
                # is not enough (it could be an impostor answering for a name).
                raise TransferError(
                    "the receiver skipped verification, but this device never paired "
                    "with it; not sending"
                )
            self._events.emit(VerifiedEvent(self.session, peer_id, welcome.name, "pairing"))
            return
        challenge: Welcome | Retry = welcome
        while True:
            code = await self._code_for(welcome.name, challenge)
            exchange = CodeExchange(
                code, receiver_id=peer_id, sender_id=self._transport.endpoint_id
            )
            try:
                exchange.finish(challenge.pake)
            except PakeError as exc:
                raise ProtocolError(str(exc)) from None
            await writer.send(Verify(exchange.message, exchange.sender_proof()))
            answer = await reader.read_message()
            if not isinstance(answer, Retry) or self._ask_code is None:
                break
            challenge = answer  # a wrong code: the receiver offers a fresh exchange
        if answer is None:
            raise StreamEnded("peer closed the conversation")
        raise_if_peer_stopped(answer)
        if not isinstance(answer, Verified):
            raise ProtocolError(f"expected Verified, got {type(answer).__name__}")
        if not exchange.check_receiver(answer.proof):
            raise TransferError(
                "the receiver could not prove it shows this code; not sending "
                "(is it the device you think?)"
            )
        self._pairings.add(peer_id, welcome.name)
        self._events.emit(VerifiedEvent(self.session, peer_id, welcome.name, "code"))

    async def _code_for(self, peer_name: str, challenge: Welcome | Retry) -> str:
        """The code to try: ``--code`` first, then what the user types (again)."""
        retry = isinstance(challenge, Retry)
        typed = None if retry else self._options.code
        if typed is None:
            if self._ask_code is None:
                raise TransferError("the receiver asks for a verification code; pass --code")
            typed = await self._ask_code(CodeRequest(
                self.session, peer_name, challenge.attempt, challenge.max_attempts, retry
            ))
        code = normalize_code(typed)
        if code is None:
            raise TransferError(f"a verification code is 6 digits, not {typed.strip()!r}")
        return code

    async def _open_tcp(
        self, connection: PeerConnection, answer: Accept
    ) -> TlsChannel | None:
        """The LAN fast path when the receiver offers it and it connects in time, else None."""
        wanted = self._options.transport
        if wanted == "quic":
            return None
        if not answer.tcp_port:
            if wanted == "tcp":
                raise TransferError("the receiver offers no TCP data path (relayed or disabled)")
            return None
        info = TcpEndpointInfo(answer.tcp_port, answer.tcp_fingerprint, answer.tcp_token)
        # The host QUIC reached first, then the ticket's other addresses, IPv4 first.
        candidates = [connection.path().remote_addr, *sorted(
            self._ticket_addresses, key=lambda address: address.startswith("[")
        )]
        hosts = list(dict.fromkeys(h for h in map(_host_of, candidates) if h is not None))
        deadline = asyncio.get_running_loop().time() + TCP_CONNECT_TIMEOUT
        error = "no address to try"
        for host in hosts:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                return await connect_data_channel(host, info, remaining)
            except NetError as exc:
                error = str(exc)
        if wanted == "tcp":
            raise TransferError(f"no TCP data path to the receiver (--transport tcp): {error}")
        return None  # firewalled, NATed or IPv6 only: QUIC carries the data instead

    async def _worker(
        self,
        open_writer: Callable[[], Awaitable[MessageWriter]],
        jobs: Iterator[_Job],
        resume: dict[int, Resume],
        tracker: ProgressTracker,
    ) -> None:
        """Send files one after another on one data channel."""
        writer: MessageWriter | None = None
        batch = bytearray()
        for job in jobs:
            if writer is None:
                writer = await open_writer()
            if job[1].entry.size <= SMALL_FILE_SIZE:
                small_files, job_after = _small_run(job, jobs)
                batch = await self._send_small_files(writer, batch, small_files, resume, tracker)
                if job_after is None:
                    continue
                job = job_after
            index, source = job
            batch = await self._send_file(writer, batch, index, source, resume.get(index), tracker)
        if writer is not None:
            if batch:
                await writer.write(batch)
            await writer.finish()

    async def _send_file(
        self,
        writer: MessageWriter,
        batch: bytearray,
        index: int,
        source: SourceEntry,
        resume: Resume | None,
        tracker: ProgressTracker,
    ) -> bytearray:
        """Append one file to the stream; returns the unflushed batch."""
        size = source.entry.size
        reader: FileSource | None = None
        try:
            reader = await asyncio.to_thread(FileSource, source.source)
            produce = reader.fill
        except OSError as exc:
            produce = _failing(exc)  # zeros in its place, and the reason
        try:
            offset = 0
            if reader is not None and resume is not None and 0 < resume.offset <= size:
                digest = await asyncio.to_thread(reader.hash_prefix, resume.offset)
                if secrets.compare_digest(digest, resume.blake3):
                    offset = resume.offset
                else:
                    reader.restart()
            tracker.skip(offset)
            tracker.start_file(index, source.entry.path, size, offset)
            batch += encode(DataHeader(index, offset, size - offset))
            await writer.write(batch)
            failure = await writer.pump(
                size - offset, produce, lambda count: tracker.advance(index, count)
            )
            if failure is None:
                assert reader is not None  # without one, every byte fails
                digest = reader.hasher.hexdigest()
            else:
                # The pump sent zeros in place of the file, so the stream stays in
                # step; no hash, so the receiver discards this file and goes on.
                self._events.emit(FileFailedEvent(
                    self.session, "send", source.entry.path, _describe(failure)
                ))
                digest = ""
            return bytearray(encode(DataTrailer(index, digest)))
        finally:
            if reader is not None:
                await asyncio.to_thread(reader.close)

    async def _send_small_files(
        self,
        writer: MessageWriter,
        batch: bytearray,
        jobs: list[_Job],
        resume: dict[int, Resume],
        tracker: ProgressTracker,
    ) -> bytearray:
        """Files that fit one buffer: read, hash and resume-check them in one thread hop."""
        wanted = [(source.source, source.entry.size, resume.get(index)) for index, source in jobs]
        for (index, source), small in zip(
            jobs, await asyncio.to_thread(read_small_files, wanted), strict=True
        ):
            entry = source.entry
            if not isinstance(small, SmallFile):
                self._events.emit(
                    FileFailedEvent(self.session, "send", entry.path, _describe(small))
                )
                small = SmallFile(0, bytes(entry.size), "")  # in step; the receiver drops it
            tracker.skip(small.offset)
            tracker.start_file(index, entry.path, entry.size, small.offset)
            batch += encode(DataHeader(index, small.offset, entry.size - small.offset))
            batch += small.data
            batch += encode(DataTrailer(index, small.digest))
            tracker.advance(index, len(small.data))
            if len(batch) >= BATCH_WRITE_SIZE:
                await writer.write(batch)
                batch = bytearray()
        return batch

    async def _collect_results(
        self,
        reader: MessageReader,
        entries: Manifest,
        tracker: ProgressTracker,
        outcome: _Outcome,
    ) -> Summary:
        """Read the receiver's verdicts until its Summary."""
        while True:
            message = await reader.read_message()
            if message is None:
                raise TransferError("receiver ended the transfer early")
            if isinstance(message, Summary):
                return message
            if isinstance(message, FileResult):
                index = message.index
                if not (0 <= index < len(entries) and entries.is_file(index)):
                    raise ProtocolError(f"result for unknown file {index}")
                if not outcome.judge(index):
                    raise ProtocolError(f"a second result for file {index}")
                tracker.finish_file(index)
                path = entries.path(index)
                if message.ok:
                    outcome.ok += 1
                    outcome.identical += message.identical
                    self._events.emit(FileDoneEvent(
                        self.session, "send", path, entries.size(index), message.blake3,
                        saved_as=message.saved_as,
                    ))
                else:
                    outcome.failed[index] = message.error
                    self._events.emit(FileFailedEvent(self.session, "send", path, message.error))
                continue
            reject_during_transfer(message)


def _small_run(first: _Job, jobs: Iterator[_Job]) -> tuple[list[_Job], _Job | None]:
    """``first`` (a small file) and the small files after it, up to the read-ahead
    limits; and the big file that ended the run early, if one did."""
    run, size = [first], first[1].entry.size
    while size < SMALL_READ_AHEAD and len(run) < SMALL_READ_AHEAD_FILES:
        job = next(jobs, None)
        if job is None:
            break
        if job[1].entry.size > SMALL_FILE_SIZE:
            return run, job
        run.append(job)
        size += job[1].entry.size
    return run, None


def _fixed_writer(writer: MessageWriter) -> Callable[[], Awaitable[MessageWriter]]:
    """Hands out the one TCP data channel."""

    async def open_writer() -> MessageWriter:
        return writer

    return open_writer


def _host_of(socket_addr: str | None) -> str | None:
    """'10.0.0.2:4000' -> '10.0.0.2'; '[fe80::1]:4000' -> 'fe80::1'."""
    if not socket_addr or ":" not in socket_addr:
        return None
    return socket_addr.rsplit(":", 1)[0].strip("[]")


def _failing(error: OSError) -> Callable[[memoryview], None]:
    """A source for a file that could not even be opened."""

    def produce(view: memoryview) -> None:
        raise error

    return produce


def _describe(failure: Exception) -> str:
    """One line for a file that could not be read while being sent."""
    if isinstance(failure, OSError):
        return f"cannot read: {failure.strerror or failure}"
    return str(failure)


def _failure_message(outcome: _Outcome, summary: Summary) -> str:
    if outcome.failed:
        first = next(iter(outcome.failed.values()))
        return f"{len(outcome.failed)} file(s) failed: {first}"
    return f"receiver verified {summary.files_ok} file(s), {summary.files_failed} failed"
