"""The upload WebSocket: ``file_info`` → host decision → bytes → ``complete``, repeatable.

One reader task per socket moves frames into a small queue; the session reads
that queue with deadlines (asyncio queues are safe to cancel a ``get`` on), so
every wait has a bound and a browser that goes away is noticed at once, even
while the host is still deciding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSMessage, WSMsgType, web

from p2p_transfer.disk import TargetError, UploadFile, free_space
from p2p_transfer.events import (
    EventBus,
    SessionState,
    ShareUploadAcceptedEvent,
    ShareUploadCompleteEvent,
    ShareUploadFailedEvent,
    ShareUploadProgressEvent,
    ShareUploadRejectedEvent,
    ShareUploadRequestEvent,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import (
    PROGRESS_EVENTS_PER_SECOND,
    SHARE_CHUNK_SIZE,
    SHARE_CLOSE_REASON_CHARS,
    SHARE_MIN_CHUNK_SIZE,
    SHARE_TOKEN_BITS,
    SHARE_UPLOAD_QUEUE_FRAMES,
    KiB,
)
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.protocol.paths import upload_name
from p2p_transfer.share.config import Decision, ShareConfig, UploadRequest
from p2p_transfer.share.messages import (
    Accepted,
    Complete,
    Error,
    FileInfo,
    Progress,
    RejectCode,
    Rejected,
    ServerMessage,
    decode_client_message,
    encode,
)
from p2p_transfer.units import format_size

log = logging.getLogger(__name__)

_PROGRESS_INTERVAL = 1.0 / PROGRESS_EVENTS_PER_SECOND
#: WebSocket close codes (RFC 6455).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
_END_TYPES = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


def _write_all(part: UploadFile, chunks: list[bytes]) -> None:
    """Write a batch of frames (in a worker thread: one hop for the batch)."""
    for chunk in chunks:
        part.write(chunk)


def new_request_id() -> str:
    """128 random bits, hex: unguessable, so one browser cannot address another's upload."""
    return secrets.token_hex(SHARE_TOKEN_BITS // 8)


@dataclass(slots=True)
class UploadGate:
    """Server-wide counts: uploads waiting for the host, uploads receiving, bytes promised."""

    max_pending: int
    max_active: int
    pending: int = 0
    active: int = 0
    #: Bytes that accepted uploads still have to write (checked against free space).
    reserved: int = 0
    sessions: set[UploadSession] = field(default_factory=set)


class _Signal(Exception):
    """Control flow inside this module, never raised out of it: deliberately not a
    P2PTransferError, so no ``except P2PTransferError`` on the way can swallow one."""


class _Closed(_Signal):
    """The browser closed the socket, or it broke."""


class _Timeout(_Signal):
    """Nothing arrived within the deadline."""


class _Violation(_Signal):
    """The browser broke the protocol; ``code`` is the close code to use."""

    def __init__(self, message: str, code: int = CLOSE_POLICY, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        #: For the host's event only (may name paths); the browser gets ``message``.
        self.detail = detail


class UploadSession:
    """One upload socket: any number of files, one after the other."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        config: ShareConfig,
        upload_dir: Path,
        gate: UploadGate,
        bus: EventBus,
        client: str,
        session_ids: Callable[[], str],
        mute: Callable[[], None] = lambda: None,
        browser: str = "",
    ) -> None:
        """``mute`` stops the connection's incoming bytes from being parsed (the
        socket is being ended for a reason of ours); ``browser`` is which one it says it
        is (share/browser.py), told to the host with each request."""
        self.ws = ws
        self.config = config
        self.upload_dir = upload_dir
        self.gate = gate
        self.bus = bus
        self.client = client
        self.browser = browser
        self._session_ids = session_ids
        self._mute = mute
        self._queue: asyncio.Queue[WSMessage] = asyncio.Queue(SHARE_UPLOAD_QUEUE_FRAMES)
        self._reader: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Serve files until the browser closes, breaks the protocol, or idles too long."""
        self._reader = asyncio.create_task(self._read_loop())
        self.gate.sessions.add(self)
        try:
            while True:
                try:
                    msg = await self._next(self.config.handshake_timeout)
                except _Timeout:
                    await self._fail_socket(
                        f"no file_info within {self.config.handshake_timeout:g} s", CLOSE_POLICY
                    )
                    return
                if msg.type is not WSMsgType.TEXT:
                    await self._fail_socket("expected a file_info text message", CLOSE_POLICY)
                    return
                try:
                    info = decode_client_message(msg.data)
                except ProtocolError as exc:
                    await self._fail_socket(exc.message, CLOSE_POLICY)
                    return
                if not await self._upload(info):
                    return
        except _Closed:
            return
        finally:
            self.gate.sessions.discard(self)
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            if not self.ws.closed:
                await self.ws.close()

    async def _read_loop(self) -> None:
        while True:
            msg = await self.ws.receive()
            await self._queue.put(msg)
            if msg.type in _END_TYPES:
                return

    async def _next(self, timeout: float) -> WSMessage:
        """The next data message; raises _Timeout or _Closed.

        ``asyncio.timeout`` around ``Queue.get`` is cancel-safe: a frame is
        either returned or left in the queue, never dropped.
        """
        try:
            async with asyncio.timeout(timeout):
                msg = await self._queue.get()
        except TimeoutError:
            raise _Timeout from None
        if msg.type in _END_TYPES:
            # Put it back so later waits see the end too.
            self._queue.put_nowait(msg)
            if msg.type is WSMsgType.ERROR:
                log.debug("upload socket from %s failed: %s", self.client, msg.data)
            raise _Closed
        return msg

    async def _send(self, message: ServerMessage) -> None:
        try:
            await self.ws.send_str(encode(message))
        except (ConnectionError, RuntimeError) as exc:
            raise _Closed from exc

    async def _fail_socket(self, message: str, code: int) -> None:
        """Tell the browser what went wrong, then close the socket, reading nothing more
        of what it sends (a flood of tiny frames stops costing anything at once)."""
        self._mute()
        with contextlib.suppress(_Closed):
            await self._send(Error(message))
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=message[:SHARE_CLOSE_REASON_CHARS].encode())

    async def _reject(
        self, upload: Lifecycle, request_id: str, name: str, reason: str, code: RejectCode
    ) -> bool:
        self.bus.emit(ShareUploadRejectedEvent(upload.session, request_id, name, reason, code))
        state = SessionState.DECLINED if code == "declined" else SessionState.FAILED
        upload.advance(state, reason)
        await self._send(Rejected(reason, code))
        return True

    async def _upload(self, info: FileInfo) -> bool:
        """Handle one announced file (a session of its own); False when the socket must end."""
        upload = Lifecycle(self._session_ids(), "receive", self.bus.emit)
        upload.peer_name = self.client
        config = self.config
        name = upload_name(info.file_name)
        size = info.file_size
        if not name:
            reason = "The file name is not usable."
            return await self._reject(upload, "", info.file_name, reason, "bad_name")
        if config.max_size is not None and size > config.max_size:
            limit = format_size(config.max_size)
            reason = f"The file is larger than this share's limit of {limit}."
            return await self._reject(upload, "", name, reason, "too_large")
        free = await asyncio.to_thread(free_space, self.upload_dir)
        if free is not None and size > free - self.gate.reserved:  # None: the disk does not say
            reason = f"This device does not have enough free space ({format_size(size)} needed)."
            return await self._reject(upload, "", name, reason, "no_space")
        if self.gate.pending >= self.gate.max_pending:
            reason = "Too many uploads are waiting for an answer; try again shortly."
            return await self._reject(upload, "", name, reason, "busy")
        if self.gate.active >= self.gate.max_active:
            reason = "This device is receiving too many files at once; try again shortly."
            return await self._reject(upload, "", name, reason, "busy")

        request = UploadRequest(
            new_request_id(), name, size, self.client, upload.session, self.browser
        )
        self.bus.emit(ShareUploadRequestEvent(
            upload.session, request.request_id, name, size, self.client, self.browser
        ))
        upload.advance(SessionState.WAITING)
        self.gate.pending += 1
        try:
            decision = await self._ask_host(request, upload)
        finally:
            self.gate.pending -= 1
        if decision is not True:
            reason, code = decision
            return await self._reject(upload, request.request_id, name, reason, code)
        if self.gate.active >= self.gate.max_active:
            reason = "This device is receiving too many files at once; try again shortly."
            return await self._reject(upload, request.request_id, name, reason, "busy")
        return await self._receive(request, upload)

    async def _ask_host(
        self, request: UploadRequest, upload: Lifecycle
    ) -> tuple[str, RejectCode] | bool:
        """Run the decider under the answer deadline, watching the socket meanwhile.

        Returns True, or (reason, code). Raises _Closed if the browser left, and
        ends the socket if it sent anything before being answered.
        """
        timeout = self.config.answer_timeout
        decide = self.config.decide
        if decide is None:
            return ("This share does not accept uploads.", "declined")
        decision_task: asyncio.Task[Decision] = asyncio.create_task(decide(request))
        message_task = asyncio.create_task(self._next(timeout))
        tasks = (decision_task, message_task)
        try:
            done, _ = await asyncio.wait(
                tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not message_task.cancelled() and not isinstance(message_task.exception(), _Timeout):
            # Anything from the browser now (a close, or data too early) ends the request.
            self.bus.emit(ShareUploadRejectedEvent(
                upload.session, request.request_id, request.file_name, "the browser went away",
                "error",
            ))
            upload.advance(SessionState.CANCELLED, "the browser went away", "peer")
            if message_task.exception() is None:
                await self._fail_socket("sent data before the upload was accepted", CLOSE_POLICY)
            raise _Closed
        if decision_task not in done:
            return (f"The owner did not answer within {timeout:g} s.", "timeout")
        try:
            result = decision_task.result()
        except Exception:
            log.exception("upload decider failed")
            return ("The owner could not be asked.", "error")
        if result is True:
            return True
        if isinstance(result, str) and result:
            return (result, "declined")
        return ("The owner declined this file.", "declined")

    async def _receive(self, request: UploadRequest, upload: Lifecycle) -> bool:
        """Accept, write the bytes to a .part, finalize, answer ``complete``."""
        size = request.file_size
        try:
            part = await asyncio.to_thread(
                UploadFile, self.upload_dir, request.file_name, self.config.umask
            )
        except (OSError, TargetError) as exc:
            log.warning("cannot create upload %r: %s", request.file_name, exc)
            return await self._reject(
                upload, request.request_id, request.file_name,
                "This device could not create the file.", "error",
            )
        self.gate.active += 1
        self.gate.reserved += size
        started = time.monotonic()
        failure: _Violation | None = None
        final: str | None = None
        try:
            self.bus.emit(ShareUploadAcceptedEvent(
                upload.session, request.request_id, request.file_name, size
            ))
            upload.advance(SessionState.TRANSFERRING)
            await self._send(Accepted(request.request_id))
            await self._receive_bytes(request, upload, part, started)
            final = await asyncio.to_thread(part.finish)
        except _Violation as exc:
            failure = exc
        except _Closed:
            failure = _Violation("the browser closed the connection before the file was complete")
            upload.advance(SessionState.CANCELLED, failure.message, "peer")
        except (OSError, TargetError) as exc:
            log.warning("writing upload %r failed: %s", request.file_name, exc)
            failure = _Violation("This device could not write the file.", detail=str(exc))
        finally:
            self.gate.active -= 1
            self.gate.reserved -= size - part.written
            if final is None:
                # Cancelled or failed: the .part goes before anyone hears of the end.
                await asyncio.shield(asyncio.to_thread(part.discard))
        if failure is not None:
            message = f"{failure.message} ({failure.detail})" if failure.detail else failure.message
            self.bus.emit(ShareUploadFailedEvent(
                upload.session, request.request_id, request.file_name, message, part.written
            ))
            upload.advance(SessionState.FAILED, message)
            await self._fail_socket(failure.message, failure.code)
            return False
        assert final is not None
        self.bus.emit(ShareUploadCompleteEvent(
            upload.session, request.request_id, request.file_name, final, size,
            part.hasher.hexdigest(), time.monotonic() - started,
        ))
        upload.advance(SessionState.DONE)
        await self._send(Complete())
        return True

    async def _receive_bytes(
        self, request: UploadRequest, upload: Lifecycle, part: UploadFile, started: float
    ) -> int:
        """Write binary frames to ``part`` until the declared size has arrived.

        Each frame but a file's last is at least SHARE_MIN_CHUNK_SIZE: a frame costs
        the server about as much as 100 KiB of data, so smaller ones would let a
        browser make it work far more per byte. Frames are written in batches of
        SHARE_CHUNK_SIZE, one thread hop each.
        """
        size = request.file_size
        received = 0
        batch: list[bytes] = []
        batched = 0
        last_progress = started
        while received < size:
            try:
                msg = await self._next(self.config.data_timeout)
            except _Timeout:
                raise _Violation(f"no data for {self.config.data_timeout:g} s") from None
            if msg.type is not WSMsgType.BINARY:
                raise _Violation("expected file data (binary frames)")
            data: bytes = msg.data
            if len(data) > SHARE_CHUNK_SIZE:
                raise _Violation(
                    f"data frames must be at most {SHARE_CHUNK_SIZE // KiB} KiB", CLOSE_TOO_BIG
                )
            if received + len(data) > size:
                raise _Violation("more data than the declared file_size")
            received += len(data)
            if len(data) < SHARE_MIN_CHUNK_SIZE and received < size:
                raise _Violation(
                    f"data frames must be at least {SHARE_MIN_CHUNK_SIZE // KiB} KiB, "
                    "except the last one of a file"
                )
            batch.append(data)
            batched += len(data)
            if batched >= SHARE_CHUNK_SIZE or received == size:
                await asyncio.to_thread(_write_all, part, batch)
                self.gate.reserved -= batched
                batch, batched = [], 0
            now = time.monotonic()
            if now - last_progress >= _PROGRESS_INTERVAL and received < size:
                last_progress = now
                rate = received / max(now - started, 1e-9)
                self.bus.emit(ShareUploadProgressEvent(
                    upload.session, request.request_id, request.file_name, received, size, rate
                ))
                await self._send(Progress(received))
        return received

    async def close(self) -> None:
        """Close the socket because the server stops."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=CLOSE_GOING_AWAY, message=b"the share was stopped")
