"""The sender's transfer phase: files streamed over the data channels, and the
receiver's verdicts on them.

At most ``parallel`` files are in flight, each worker owning one data channel and
taking the next file when it finishes the last, so many small files share a channel
and pay no round trip each.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterator

from p2p_transfer.events import EventBus, FileDoneEvent, FileFailedEvent
from p2p_transfer.limits import (
    BATCH_WRITE_SIZE,
    SMALL_FILE_SIZE,
    SMALL_READ_AHEAD,
    SMALL_READ_AHEAD_FILES,
    TCP_CONNECT_TIMEOUT,
)
from p2p_transfer.net import MessageWriter, NetError, PeerConnection
from p2p_transfer.net.tcp import TcpEndpointInfo, TlsChannel, connect_data_channel
from p2p_transfer.protocol import (
    Accept,
    DataHeader,
    DataTrailer,
    FileResult,
    Manifest,
    ProtocolError,
    Resume,
    Summary,
    encode,
)
from p2p_transfer.transfer.control import ControlStream
from p2p_transfer.transfer.local import FileSource, SmallFile, SourceEntry, read_small_files
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.transfer.session import DataTransport, TransferError, reject_during_transfer

#: A file to send: its index in the offer and where it comes from.
Job = tuple[int, SourceEntry]
#: Hands a worker its data channel (a new QUIC stream, or the one TCP channel).
WriterOpener = Callable[[], Awaitable[MessageWriter]]


class FileSender:
    """Streams files to the receiver, one worker per data channel."""

    def __init__(
        self,
        session: str,
        events: EventBus,
        resume: dict[int, Resume],
        tracker: ProgressTracker,
    ) -> None:
        self._session = session
        self._events = events
        #: What the receiver already holds of each file (checked here before it is trusted).
        self._resume = resume
        self._tracker = tracker

    async def send_all(self, openers: list[WriterOpener], jobs: Iterator[Job]) -> None:
        """Send every job, each worker on its own channel, until none is left; the first
        failure stops them all."""
        workers = [asyncio.create_task(self._worker(opener, jobs)) for opener in openers]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()

    async def _worker(self, open_writer: WriterOpener, jobs: Iterator[Job]) -> None:
        """Send files one after another on one data channel."""
        writer: MessageWriter | None = None
        batch = bytearray()
        for job in jobs:
            if writer is None:
                writer = await open_writer()
            if job[1].entry.size <= SMALL_FILE_SIZE:
                small_files, job_after = _small_run(job, jobs)
                batch = await self._send_small_files(writer, batch, small_files)
                if job_after is None:
                    continue
                job = job_after
            batch = await self._send_file(writer, batch, *job)
        if writer is not None:
            if batch:
                await writer.write(batch)
            await writer.finish()

    async def _send_file(
        self, writer: MessageWriter, batch: bytearray, index: int, source: SourceEntry
    ) -> bytearray:
        """Append one file to the stream; returns the unflushed batch."""
        size, tracker, resume = source.entry.size, self._tracker, self._resume.get(index)
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
                    self._session, "send", source.entry.path, _describe(failure)
                ))
                digest = ""
            return bytearray(encode(DataTrailer(index, digest)))
        finally:
            if reader is not None:
                await asyncio.to_thread(reader.close)

    async def _send_small_files(
        self, writer: MessageWriter, batch: bytearray, jobs: list[Job]
    ) -> bytearray:
        """Files that fit one buffer: read, hash and resume-check them in one thread hop."""
        tracker = self._tracker
        wanted = [
            (source.source, source.entry.size, self._resume.get(index)) for index, source in jobs
        ]
        for (index, source), small in zip(
            jobs, await asyncio.to_thread(read_small_files, wanted), strict=True
        ):
            entry = source.entry
            if not isinstance(small, SmallFile):
                self._events.emit(
                    FileFailedEvent(self._session, "send", entry.path, _describe(small))
                )
                small = SmallFile(0, bytes(entry.size), "")  # in step; the receiver drops it
            batch += encode(DataHeader(index, small.offset, entry.size - small.offset))
            batch += small.data
            batch += encode(DataTrailer(index, small.digest))
            tracker.moved_whole(index, entry.path, entry.size, small.offset)
            if len(batch) >= BATCH_WRITE_SIZE:
                await writer.write(batch)
                batch = bytearray()
        return batch


class Verdicts:
    """Per-file verdicts as the receiver reports them, one a file."""

    def __init__(
        self, session: str, events: EventBus, entries: Manifest, tracker: ProgressTracker
    ) -> None:
        self._session = session
        self._events = events
        self._entries = entries
        self._tracker = tracker
        #: A byte per entry, set once its verdict came (a set of 100,000 indexes: ~5 MB).
        self._judged = bytearray(len(entries))
        self.ok = 0
        self.failed: dict[int, str] = {}
        #: Of the ``ok`` ones, those the receiver already held, identical.
        self.identical = 0

    async def collect(self, control: ControlStream) -> Summary:
        """Read the receiver's verdicts until its Summary."""
        while True:
            message = await control.read()
            if message is None:
                raise TransferError("receiver ended the transfer early")
            if isinstance(message, Summary):
                return message
            if not isinstance(message, FileResult):
                reject_during_transfer(message)  # a late resume page, or the peer stopping
            self._judge(message)

    def _judge(self, result: FileResult) -> None:
        index, entries = result.index, self._entries
        if not (0 <= index < len(entries) and entries.is_file(index)):
            raise ProtocolError(f"result for unknown file {index}")
        if self._judged[index]:
            raise ProtocolError(f"a second result for file {index}")
        self._judged[index] = 1
        self._tracker.finish_file(index)
        path = entries.path(index)
        if result.ok:
            self.ok += 1
            self.identical += result.identical
            self._events.emit(FileDoneEvent(
                self._session, "send", path, entries.size(index), result.blake3,
                saved_as=result.saved_as,
            ))
        else:
            self.failed[index] = result.error
            self._events.emit(FileFailedEvent(self._session, "send", path, result.error))

    def failure_message(self, summary: Summary) -> str:
        """One line for a transfer that did not deliver every file."""
        if self.failed:
            first = next(iter(self.failed.values()))
            return f"{len(self.failed)} file(s) failed: {first}"
        return f"receiver verified {summary.files_ok} file(s), {summary.files_failed} failed"


async def open_tcp(
    connection: PeerConnection, answer: Accept, wanted: DataTransport, addresses: list[str]
) -> TlsChannel | None:
    """The LAN fast path when the receiver offers it and it connects in time, else None
    (``addresses``: the ticket's, tried after the host QUIC reached)."""
    if wanted == "quic":
        return None
    if not answer.tcp_port:
        if wanted == "tcp":
            raise TransferError("the receiver offers no TCP data path (relayed or disabled)")
        return None
    info = TcpEndpointInfo(answer.tcp_port, answer.tcp_fingerprint, answer.tcp_token)
    # The host QUIC reached first, then the ticket's other addresses, IPv4 first.
    candidates = [connection.path().remote_addr, *sorted(
        addresses, key=lambda address: address.startswith("[")
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


def fixed_writer(writer: MessageWriter) -> WriterOpener:
    """Hands out the one TCP data channel."""

    async def open_writer() -> MessageWriter:
        return writer

    return open_writer


def _small_run(first: Job, jobs: Iterator[Job]) -> tuple[list[Job], Job | None]:
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
