"""Framed messages and raw bytes over a byte stream: an iroh stream or a TLS socket.

One task owns each reader: a pending iroh ``read`` that is cancelled after Rust
completed it loses data, so deadlines are enforced by closing the connection,
never by abandoning a read.
"""

from __future__ import annotations

import asyncio
import functools
import mmap
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from iroh import iroh_ffi

from p2p_transfer.errors import LocalFault, PeerFault
from p2p_transfer.limits import (
    FRAME_HEADER_SIZE,
    INLINE_DISK_BUDGET,
    IO_BUFFER_SIZE,
    MESSAGE_READ_SIZE,
    PUMP_BUFFER_SIZE,
    PUMP_HANDOVER_WAIT,
)
from p2p_transfer.net.errors import NetError, describe_iroh_error
from p2p_transfer.pace import Pace
from p2p_transfer.protocol import AnyMessage, Message, body_length, decode_body
from p2p_transfer.protocol import encode as encode_message
from p2p_transfer.tasks import run_to_the_end


class StreamEnded(NetError, PeerFault):
    """The peer finished the stream where more data was expected."""


class ByteSource(Protocol):
    """Where a reader's bytes come from; ``read`` returns b"" at the end, raises NetError."""

    async def read(self, limit: int) -> bytes: ...


class ByteSink(Protocol):
    """Where a writer's bytes go; every method raises NetError on failure."""

    async def write_all(self, data: bytes | bytearray | memoryview) -> None: ...

    async def finish(self) -> None: ...

    async def reset(self, code: int) -> None: ...


#: Fills a buffer, all of it, with a file's next bytes (runs in a worker thread).
Produce = Callable[[memoryview], None]
#: Stores a file's next bytes (runs in a worker thread).
Consume = Callable[[memoryview], None]
#: Told on the event loop how many more bytes of a file went by.
Progress = Callable[[int], None]


def page_aligned(size: int) -> memoryview:
    """A zeroed buffer that starts on a page boundary.

    A big bytearray starts 16 bytes past one (malloc's header), and on some CPUs
    the kernel then copies file data into or out of it several times slower.
    """
    return memoryview(mmap.mmap(-1, max(size, 1)))[:size]


class LocalFileError(LocalFault):
    """This side's file could not be read or stored; the stream itself is fine."""


class FileFeed:
    """Where a pumped file's bytes come from: ``produce`` until it fails, then zeros.

    The zeros keep the stream in step for the files behind this one; ``error``
    tells the sender not to vouch for the file (it sends no hash).
    """

    def __init__(self, produce: Produce) -> None:
        self._produce = produce
        self.error: LocalFileError | OSError | None = None

    def fill(self, view: memoryview) -> None:
        if self.error is None:
            try:
                self._produce(view)
                return
            except (LocalFileError, OSError) as exc:
                self.error = exc
        view[:] = bytes(len(view))


class FileDrain:
    """Where a pumped file's bytes go: ``consume`` until it fails, then nowhere.

    The stream is still read to the file's end, so the files behind it arrive.
    """

    def __init__(self, consume: Consume | None) -> None:
        self._consume = consume
        self.error: LocalFileError | OSError | None = None

    def take(self, view: memoryview) -> None:
        if self._consume is not None and self.error is None:
            try:
                self._consume(view)
            except (LocalFileError, OSError) as exc:
                self.error = exc

    def take_all(self, buffers: list[bytes]) -> None:
        for data in buffers:
            self.take(memoryview(data))

    @property
    def storing(self) -> bool:
        """False once there is nowhere for the bytes to go."""
        return self._consume is not None and self.error is None


@runtime_checkable
class PumpingSink(Protocol):
    """A ByteSink that moves a whole file itself, off the event loop."""

    async def pump_out(self, length: int, feed: FileFeed, progress: Progress) -> None: ...


@runtime_checkable
class PumpingSource(Protocol):
    """A ByteSource that moves a whole file itself, off the event loop."""

    async def pump_in(
        self, length: int, first: bytes, drain: FileDrain, progress: Progress
    ) -> None: ...


def _filled(feed: FileFeed, batch: memoryview) -> memoryview:
    feed.fill(batch)
    return batch


class _IrohSource:
    """An iroh RecvStream as a ByteSource."""

    def __init__(self, stream: iroh_ffi.RecvStream) -> None:
        self._stream = stream

    async def read(self, limit: int) -> bytes:
        try:
            return await self._stream.read(limit)
        except iroh_ffi.IrohError as exc:
            raise NetError(describe_iroh_error(exc)) from None


class _IrohSink:
    """An iroh SendStream as a ByteSink."""

    def __init__(self, stream: iroh_ffi.SendStream) -> None:
        self._stream = stream

    async def write_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._stream.write_all(data)
        except iroh_ffi.IrohError as exc:
            raise NetError(describe_iroh_error(exc)) from None

    async def finish(self) -> None:
        try:
            await self._stream.finish()
        except iroh_ffi.IrohError as exc:
            raise NetError(describe_iroh_error(exc)) from None

    async def reset(self, code: int) -> None:
        try:
            await self._stream.reset(code)
        except iroh_ffi.IrohError:
            pass


class _WriteBehind:
    """A receiving pump's writes, one batch behind the reads: on the loop while the
    disk keeps up, else in a worker thread.

    A batch is PUMP_BUFFER_SIZE, as the sender reads: a hop per network read
    (256 KiB) cost the receiver ~7 % more CPU on 1 GiB over QUIC. A batch that
    ``pace`` (the reader's, kept across its files) says fits INLINE_DISK_BUDGET is
    written on the loop, as the raw iroh peer writes: the hop cost ~5 % more
    receiver CPU again. When the stream pauses for PUMP_HANDOVER_WAIT, what is held
    is written then (in a thread), as the TCP path's pump does, so what arrived is on
    disk while the sender is away.
    """

    def __init__(self, drain: FileDrain, pace: Pace) -> None:
        self._drain = drain
        self._pace = pace
        self._loop = asyncio.get_running_loop()
        self._buffers: list[bytes] = []
        self.held = 0  # bytes in ``_buffers``
        self._pending: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def hold(self, data: bytes) -> None:
        self._buffers.append(data)
        self.held += len(data)

    async def hand_over(self) -> None:
        """Wait for the write in flight, then write what is held (or start to)."""
        if self._pending is not None:
            await asyncio.shield(self._pending)  # a cancel leaves the write to end
            self._pending = None
        self._start(on_loop=True)

    def arm(self) -> None:
        """Write what is held if nothing more comes for PUMP_HANDOVER_WAIT."""
        if self._buffers:
            self._timer = self._loop.call_later(PUMP_HANDOVER_WAIT, self._paused)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _paused(self) -> None:
        pending = self._pending
        if pending is not None and not pending.done():
            self.arm()  # the disk is busy: look again later
            return
        if pending is None or pending.exception() is None:  # else hand_over raises it
            self._pending = None
            self._start(on_loop=False)  # a timer's failure would have no one to raise to

    def _start(self, on_loop: bool) -> None:
        """Write what is held: here when ``on_loop`` and the pace allows, else in a thread."""
        if not self._buffers:
            return
        buffers, self._buffers, self.held = self._buffers, [], 0
        # Paced by the batch, not the byte: a file's few last bytes cost a call.
        write = functools.partial(self._pace.timed, lambda: self._drain.take_all(buffers), 1)
        if on_loop and self._pace.fits(1):
            write()
        else:
            self._pending = self._loop.run_in_executor(None, write)

    async def finish(self) -> None:
        """Until every byte held or in flight is written, even when cancelled meanwhile
        (then cancelled after it): what arrived is where a resume starts."""
        self.disarm()
        await run_to_the_end(self._write_out())

    async def _write_out(self) -> None:
        await self.hand_over()
        if self._pending is not None:
            await self._pending


#: A read asks room for this many items of the size being read (within its bounds):
#: reading files of 64 KiB one read each, every read joined to what was left, took the
#: receiver ~18 % more CPU (1,000 such files, 4 pairs).
_ITEMS_PER_READ = 4


class MessageReader:
    """Buffered reads from a stream: whole messages or raw byte runs."""

    def __init__(
        self, stream: iroh_ffi.RecvStream | ByteSource, read_size: int = IO_BUFFER_SIZE
    ) -> None:
        self._stream: ByteSource = (
            _IrohSource(stream) if isinstance(stream, iroh_ffi.RecvStream) else stream
        )
        self._read_size = read_size
        # Unread bytes are self._buffer[self._position:]; the buffer is replaced only
        # when used up, so taking small pieces never copies what remains.
        self._buffer = b""
        self._position = 0
        self._eof = False
        #: How fast this stream's files were written lately (``pump`` on the loop).
        self._write_pace = Pace(INLINE_DISK_BUDGET)

    @property
    def _available(self) -> int:
        return len(self._buffer) - self._position

    async def _fill(self, item: int) -> bool:
        """Read more bytes into the buffer for an item (a message, a whole small file, a
        piece of a run) of ``item`` bytes: room for several such, at least
        MESSAGE_READ_SIZE and at most the read size. False at the end of the stream."""
        if self._eof:
            return False
        wanted = min(self._read_size, max(MESSAGE_READ_SIZE, _ITEMS_PER_READ * item))
        chunk = await self._stream.read(wanted)
        if not chunk:
            self._eof = True
            return False
        if self._available:
            self._buffer = self._buffer[self._position :] + chunk
        else:
            self._buffer = chunk
        self._position = 0
        return True

    def _take(self, size: int) -> bytes:
        start = self._position
        self._position += size
        if start == 0 and size == len(self._buffer):
            data, self._buffer, self._position = self._buffer, b"", 0  # no copy
            return data
        return self._buffer[start : start + size]

    async def read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or StreamEnded."""
        while self._available < size:
            if not await self._fill(size):
                raise StreamEnded("stream ended early")
        return self._take(size)

    async def read_some(self, limit: int) -> bytes:
        """Between 1 and ``limit`` bytes (no copy when a whole buffer fits), or StreamEnded."""
        if not self._available and not await self._fill(limit):
            raise StreamEnded("stream ended early")
        return self._take(min(limit, self._available))

    async def read_message(self) -> AnyMessage | None:
        """The next framed message; None if the stream ended cleanly between messages."""
        buffer, start = self._buffer, self._position
        body_start = start + FRAME_HEADER_SIZE
        if len(buffer) >= body_start:  # a message per file: whole in the buffer, mostly
            end = body_start + body_length(buffer[start:body_start])
            if len(buffer) >= end:
                self._position = end
                return decode_body(buffer[body_start:end])
        if not self._available and not await self._fill(FRAME_HEADER_SIZE):
            return None
        header = await self.read_exact(FRAME_HEADER_SIZE)
        length = body_length(header)
        return decode_body(await self.read_exact(length))

    async def pump(
        self, length: int, consume: Consume | None, progress: Progress
    ) -> LocalFileError | OSError | None:
        """Move the next ``length`` bytes, a file's, to ``consume`` (None: drop them).

        Returns why ``consume`` failed, if it did (the rest was read and dropped);
        raises StreamEnded or NetError if the stream did. When it returns or raises,
        ``consume`` is no longer running.
        """
        drain = FileDrain(consume)
        first = self._take(min(self._available, length))
        if isinstance(self._stream, PumpingSource):
            await self._stream.pump_in(length - len(first), first, drain, progress)
        else:
            await self._pump_on_loop(length - len(first), first, drain, progress)
        return drain.error

    async def _pump_on_loop(
        self, length: int, first: bytes, drain: FileDrain, progress: Progress
    ) -> None:
        """Network reads on the loop, writes one batch behind (see ``_WriteBehind``)."""
        writes = _WriteBehind(drain, self._write_pace)
        if first:
            progress(len(first))
            writes.hold(first)
        remaining = length
        try:
            while remaining:
                writes.arm()  # a pause in the stream writes what is held
                try:
                    data = await self.read_some(min(self._read_size, remaining))
                finally:
                    writes.disarm()
                remaining -= len(data)
                progress(len(data))
                if drain.storing:
                    writes.hold(data)
                if writes.held >= PUMP_BUFFER_SIZE:
                    await writes.hand_over()
            await writes.hand_over()
        finally:
            await writes.finish()


class MessageWriter:
    """Writes framed messages and raw bytes to a stream."""

    def __init__(self, stream: iroh_ffi.SendStream | ByteSink) -> None:
        self._stream: ByteSink = (
            _IrohSink(stream) if isinstance(stream, iroh_ffi.SendStream) else stream
        )
        #: How fast this stream's files were read lately (``pump`` on the loop).
        self._read_pace = Pace(INLINE_DISK_BUDGET)

    async def send(self, message: Message) -> None:
        """Write one framed message."""
        await self._stream.write_all(encode_message(message))

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write raw bytes."""
        await self._stream.write_all(data)

    async def pump(
        self, length: int, produce: Produce, progress: Progress
    ) -> LocalFileError | OSError | None:
        """Send ``length`` bytes, a file's, from ``produce``.

        Returns why ``produce`` failed, if it did (zeros were sent in place of
        the rest); raises NetError if the stream failed.
        """
        feed = FileFeed(produce)
        if isinstance(self._stream, PumpingSink):
            await self._stream.pump_out(length, feed, progress)
        else:
            await self._pump_on_loop(length, feed, progress)
        return feed.error

    async def _pump_on_loop(self, length: int, feed: FileFeed, progress: Progress) -> None:
        """Disk reads one batch ahead of the network writes on the loop: on the loop
        too while the disk keeps up (``_read_pace``, as ``_WriteBehind``: ~5 % of the
        sender's CPU over QUIC), else in a thread."""
        loop = asyncio.get_running_loop()
        size = min(PUMP_BUFFER_SIZE, length)
        batches = (page_aligned(size), page_aligned(size))  # one filling, one being sent
        unread = length

        def read_next(turn: int) -> asyncio.Future[memoryview] | None:
            nonlocal unread
            if not unread:
                return None
            batch = batches[turn][: min(size, unread)]
            unread -= len(batch)
            # Paced by the batch, not the byte: a file's few last bytes cost a call.
            fill = functools.partial(_filled, feed, batch)
            read = functools.partial(self._read_pace.timed, fill, 1)
            if not self._read_pace.fits(1):
                return loop.run_in_executor(None, read)
            done: asyncio.Future[memoryview] = loop.create_future()
            done.set_result(read())
            return done

        turn = 0
        pending = read_next(turn)
        try:
            while pending is not None:
                batch = await pending
                turn ^= 1
                pending = read_next(turn)
                for start in range(0, len(batch), IO_BUFFER_SIZE):
                    piece = batch[start : start + IO_BUFFER_SIZE]
                    await self._stream.write_all(piece)
                    progress(len(piece))
        finally:
            if pending is not None:
                await asyncio.shield(pending)  # the file stays open until its read ends

    async def finish(self) -> None:
        """Signal the end of this stream."""
        await self._stream.finish()

    async def reset(self, code: int) -> None:
        """Abandon the stream; the peer's reader fails."""
        await self._stream.reset(code)
