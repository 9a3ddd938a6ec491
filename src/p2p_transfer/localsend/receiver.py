"""Receiving from LocalSend devices: the offer, our prompt, then the uploads, one session at a time.

Every offer goes through the receiver's own ``decide_offer`` (limits, ``--yes`` or
the user), and every byte through the one file writer (``TargetFolder``): the
same ``.part`` files, no clobbering, sanitized names. What the HTTP layer gets
back is either an answer or a ``Refused`` carrying the status code the spec
gives for it; this module has no HTTP in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from p2p_transfer.disk import PartFile, TargetError, TargetFolder, describe_os_error
from p2p_transfer.events import (
    DecisionEvent,
    DoneEvent,
    EventBus,
    FileDoneEvent,
    FileFailedEvent,
    LogEvent,
    SessionState,
    TextEvent,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import (
    CLOSE_GRACE,
    LOCALSEND_DATA_TIMEOUT,
    LOCALSEND_MAX_TEXT_CHARS,
    LOCALSEND_MAX_WRONG_PINS_IN_ALL,
    LOCALSEND_SESSION_IDLE_TIMEOUT,
    LOCALSEND_WRONG_PINS_WINDOW,
    MAX_PENDING_OFFERS,
    PART_RELEASE_WAIT,
)
from p2p_transfer.localsend.messages import DeviceInfo, PrepareUploadReply
from p2p_transfer.localsend.offer import IncomingFile, LocalSendOffer
from p2p_transfer.localsend.pins import PinCheck, PinGate
from p2p_transfer.protocol import text_preview
from p2p_transfer.tasks import run_to_the_end
from p2p_transfer.transfer.admission import CountedSlots, ManifestBudget
from p2p_transfer.transfer.offers import (
    Decider,
    Decision,
    IncomingOffer,
    ReceiveOptions,
    Refused,
    decide_offer,
)
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.transfer.session import Cancelled, TransferError, TransferResult

T = TypeVar("T")
#: An upload's body, read as batches of pieces given the size announced for it.
BodyReader = Callable[[int], AsyncIterator[list[bytes]]]
#: Random bytes of a LocalSend session ID and of each file's token (URL-safe text).
WIRE_SECRET_BYTES = 16
#: Mode of a finished file before the umask (LocalSend sends no modes).
FILE_MODE = 0o666

#: Runs a receive session's work as a session of the Node (an ID, a lifecycle, an end).
SessionLauncher = Callable[
    [Callable[[Lifecycle], Awaitable[TransferResult | None]]], "asyncio.Task[object]"
]


@dataclass(slots=True)
class ReceiverSetup:
    """How LocalSend offers are received: where to, who decides, which PIN."""

    options: ReceiveOptions
    decide: Decider
    pin: str | None = None
    #: LocalSend offers waiting for the user's answer at once (more are declined).
    pending_offers: CountedSlots = field(
        default_factory=lambda: CountedSlots(MAX_PENDING_OFFERS)
    )
    #: Manifest entries held by offers; the node shares its own (our protocol's) with
    #: LocalSend, so the offers of both doors together stay within one budget.
    manifests: ManifestBudget = field(default_factory=ManifestBudget)


class LocalSendReceiver:
    """Answers ``prepare-upload``, ``upload`` and ``cancel``; one session at a time (409
    for others, as the official app does: one prompt, one folder, one progress)."""

    def __init__(self, setup: ReceiverSetup, events: EventBus, launch: SessionLauncher) -> None:
        self.setup = setup
        self._events = events
        self._launch = launch
        self._pins = PinGate(setup.pin, on_closed=self._pin_closed)
        self._current: IncomingSession | None = None

    @property
    def busy(self) -> bool:
        return self._current is not None

    def _pin_closed(self, addresses: int) -> None:
        self._events.emit(LogEvent("warning", "localsend", (
            f"{LOCALSEND_MAX_WRONG_PINS_IN_ALL} wrong LocalSend PINs within "
            f"{LOCALSEND_WRONG_PINS_WINDOW / 60:g} minutes, from {addresses} address(es): "
            "someone may be guessing it. LocalSend offers are refused until you start "
            "receiving again (restart `p2p-transfer receive`, or change the PIN in the app)"
        )))

    def admit(self, ip: str, pin: str | None) -> None:
        """Refuse a ``prepare-upload`` that cannot be taken, before its body is read: a
        wrong or missing PIN, an address (or the PIN itself) locked out, a session open."""
        check = self._pins.check(ip, pin)
        if check is PinCheck.LOCKED:
            raise Refused("too many wrong PINs; wait a minute", status=429)
        if check is PinCheck.CLOSED:
            raise Refused("too many wrong PINs were tried here; the receiving user "
                               "has to restart receiving before a PIN is taken again", status=429)
        if check is PinCheck.WRONG:
            raise Refused("PIN required" if not pin else "wrong PIN", status=401)
        self._refuse_if_busy()

    async def prepare_upload(
        self, sender: DeviceInfo, offer: LocalSendOffer, ip: str
    ) -> PrepareUploadReply | None:
        """Ask the user about an offer ``admit`` let in and ``read_offer`` planned; the
        reply with a token per file, or None (204) when there is nothing to upload (no
        files, or a text message that was shown)."""
        if not offer.files and offer.text is None:
            return None
        self._refuse_if_busy()
        entries = max(1, len(offer.files))
        holder = f"localsend {ip}"
        if refusal := self.setup.manifests.reserve(holder, entries):
            raise Refused(refusal, status=503)
        session = IncomingSession(sender, ip, offer, self.setup, self._events)
        self._current = session
        try:
            task = self._launch(session.run)
        except BaseException:
            self._current = None
            self.setup.manifests.release(holder, entries)
            raise
        task.add_done_callback(lambda _: self._session_ended(session, holder, entries))
        try:
            decision = await asyncio.shield(session.decided)
        except asyncio.CancelledError:
            session.cancel_by_peer("the sender went away before the answer")
            raise
        if not decision.accept:
            raise Refused(decision.reason or "declined", status=403)
        if offer.text is not None:
            return None
        return PrepareUploadReply(session_id=session.wire_id, files=dict(session.tokens))

    def _refuse_if_busy(self) -> None:
        if self._current is not None:
            raise Refused("busy with another session", status=409)

    def _session_ended(self, session: IncomingSession, holder: str, entries: int) -> None:
        session.close()
        self.setup.manifests.release(holder, entries)
        if self._current is session:
            self._current = None

    async def upload(
        self,
        session_id: str,
        file_id: str,
        token: str,
        ip: str,
        length: int | None,
        body: BodyReader,
    ) -> None:
        """Receive one file's body into its part; returns once it has its name.
        ``length``: the body's declared length, if it has one."""
        session = self._session(session_id, ip)
        await session.receive_file(file_id, token, length, body)

    def cancel(self, session_id: str, ip: str) -> None:
        """The sender cancels its session."""
        self._session(session_id, ip).cancel_by_peer("")

    def _session(self, session_id: str, ip: str) -> IncomingSession:
        session = self._current
        if (
            session is None
            or not hmac.compare_digest(session.wire_id.encode(), session_id.encode())
            or session.ip != ip
        ):
            raise Refused("no such session from this address", status=403)
        return session


class IncomingSession:
    """One LocalSend sender's offer and its uploads."""

    def __init__(
        self,
        sender: DeviceInfo,
        ip: str,
        offer: LocalSendOffer,
        setup: ReceiverSetup,
        events: EventBus,
    ) -> None:
        self.sender = sender
        self.ip = ip
        self.offer = offer
        self._setup = setup
        self._events = events
        self.wire_id = secrets.token_urlsafe(WIRE_SECRET_BYTES)
        self.tokens = {fid: secrets.token_urlsafe(WIRE_SECRET_BYTES) for fid in offer.files}
        self.decided: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._index = {fid: n for n, fid in enumerate(offer.files)}
        self._waiting = set(offer.files)  # not yet begun
        #: Uploads being received, by file ID: their handlers' tasks.
        self._active: dict[str, asyncio.Task[object]] = {}
        self._ok = 0
        self._failed = 0
        self._changed = asyncio.Event()
        self._stopped: Cancelled | None = None
        self._stop_signal = asyncio.Event()
        #: An upload's connection broke (perhaps the sender cancelling).
        self._broke_off = False
        self._accepted = False
        self._target: TargetFolder | None = None
        self._tracker: ProgressTracker | None = None
        self._session = ""

    # --- the session's own task ----------------------------------------------------

    async def run(self, lifecycle: Lifecycle) -> TransferResult:
        """Offer → decision → (text shown | files received); raises ``Cancelled``."""
        self._session = lifecycle.session
        lifecycle.peer_name = self.sender.name
        try:
            decision = await self._ask(lifecycle)
        finally:
            if not self.decided.done():
                self.decided.set_result(Decision(False, "the receiver stopped"))
        if not decision.accept:
            return TransferResult(
                SessionState.DECLINED, bytes_total=self.offer.total_bytes, message=decision.reason
            )
        if self.offer.text is not None:
            text = self.offer.text[:LOCALSEND_MAX_TEXT_CHARS]
            self._events.emit(TextEvent(self._session, self.sender.name, text, "localsend"))
            size = self.offer.total_bytes
            self._events.emit(DoneEvent(
                self._session, "receive", True, 0, 0, size, size, 0.0, via="localsend",
                text=True,
            ))
            return TransferResult(SessionState.DONE, bytes_total=size, bytes_transferred=size)
        lifecycle.advance(SessionState.TRANSFERRING)
        return await self._receive_all()

    async def _ask(self, lifecycle: Lifecycle) -> Decision:
        offer = self.offer
        incoming = IncomingOffer(
            session=self._session, peer_id=self.sender.fingerprint, peer_name=self.sender.name,
            files=len(offer.files), folders=offer.folders, total_bytes=offer.total_bytes,
            sample=offer.sample, via="localsend", device_model=self.sender.model,
            text=offer.text is not None,
            preview=text_preview(offer.text) if offer.text is not None else "",
        )
        self._events.emit(incoming.event())
        lifecycle.advance(SessionState.WAITING)
        setup = self._setup
        deciding = asyncio.create_task(
            decide_offer(incoming, setup.options, setup.decide, setup.pending_offers)
        )
        stopping = asyncio.create_task(self._stop_signal.wait())
        try:
            await asyncio.wait({deciding, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not deciding.done():  # the sender left first: the question is withdrawn
                deciding.cancel()
                await asyncio.gather(deciding, return_exceptions=True)
        if deciding.cancelled():
            assert self._stopped is not None
            raise self._stopped
        decision = deciding.result()
        if decision.accept and offer.files:
            try:
                self._target = await asyncio.to_thread(
                    TargetFolder, setup.options.target, setup.options.umask
                )
            except (OSError, TargetError) as exc:
                decision = Decision(False, f"the receiver cannot write there: {exc}")
        if self._stopped is not None:  # the sender left while the user was deciding
            raise self._stopped
        self._events.emit(DecisionEvent(self._session, decision.accept, decision.reason))
        self._accepted = decision.accept
        self._tracker = ProgressTracker(
            self._session, "receive", offer.total_bytes, len(offer.files), self._events.emit
        )
        self.decided.set_result(decision)
        return decision

    async def _receive_all(self) -> TransferResult:
        """Wait until every file is settled (or the sender stops sending, or cancels)."""
        assert self._target is not None and self._tracker is not None
        tracker = self._tracker
        while self._waiting or self._active:
            self._changed.clear()
            if self._stopped is not None:
                await self._stop_uploads()
                raise self._stopped
            try:
                async with asyncio.timeout(LOCALSEND_SESSION_IDLE_TIMEOUT):
                    await self._changed.wait()
            except TimeoutError:
                if not self._active and tracker.idle_seconds >= LOCALSEND_SESSION_IDLE_TIMEOUT:
                    self._give_up_waiting()
        if self._broke_off and self._stopped is None:
            # A sender that cancels may drop its uploads a moment before it says so.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_GRACE):
                    await self._stop_signal.wait()
        if self._stopped is not None:
            await self._stop_uploads()
            raise self._stopped
        tracker.flush()
        try:
            await asyncio.to_thread(self._target.sync)
        except TargetError as exc:
            raise TransferError(f"the received files could not be flushed to disk: {exc}") from None
        ok = self._failed == 0
        self._events.emit(DoneEvent(
            self._session, "receive", ok, self._ok, self._failed, self.offer.total_bytes,
            tracker.bytes_transferred, round(tracker.seconds, 3), str(self._target.root),
            "localsend",
        ))
        return TransferResult(
            SessionState.DONE if ok else SessionState.FAILED, self._ok, self._failed,
            self.offer.total_bytes, tracker.bytes_transferred, tracker.seconds,
            "" if ok else f"{self._failed} file(s) did not arrive",
        )

    async def _stop_uploads(self) -> None:
        """Wait for the uploads still running to stop (each sees the stop at its next read
        of the body) and remove their parts: nothing half-received is left when the
        session ends. Stragglers are cancelled after a grace."""
        tasks = list(self._active.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CLOSE_GRACE)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=PART_RELEASE_WAIT)

    def _give_up_waiting(self) -> None:
        """The sender stopped uploading: files never begun count as failed."""
        for file_id in sorted(self._waiting):
            self._waiting.discard(file_id)
            self._fail(file_id, f"not sent within {LOCALSEND_SESSION_IDLE_TIMEOUT:g} s")

    def cancel_by_peer(self, reason: str) -> None:
        """The sender cancelled (or went away): the session ends cancelled by peer."""
        if self._stopped is None:
            who = self.sender.name
            self._stopped = Cancelled(reason or f"cancelled by {who}", "peer")
        if not self.decided.done():
            self.decided.set_result(Decision(False, "cancelled by the sender"))
        self._stop_signal.set()
        self._changed.set()

    def close(self) -> None:
        """The session ended: later uploads are refused, the folder handles go."""
        if self._stopped is None:
            self._stopped = Cancelled("the session ended", "local")
        if self._target is not None:
            self._target.close()

    # --- an upload (runs in the HTTP handler's task) --------------------------------

    async def receive_file(
        self, file_id: str, token: str, length: int | None, body: BodyReader
    ) -> None:
        expected = self.tokens.get(file_id)
        if (
            not self._accepted
            or self._stopped is not None
            or expected is None
            or not hmac.compare_digest(expected.encode(), token.encode())
        ):
            raise Refused("invalid token", status=403)
        if file_id not in self._waiting:
            raise Refused("this file was already sent", status=409)
        file = self.offer.files[file_id]
        self._waiting.discard(file_id)
        if length is not None and length != file.size:
            self._fail(file_id, f"announced {file.size} bytes, sent {length}")
            raise Refused(f"the body must be exactly {file.size} bytes, as announced", status=400)
        task = asyncio.current_task()
        assert task is not None
        self._active[file_id] = task
        try:
            await self._write(file, body(file.size))
        except Cancelled:
            raise Refused("the session was cancelled", status=409) from None
        finally:
            self._active.pop(file_id, None)
            self._changed.set()

    async def _write(self, file: IncomingFile, body: AsyncIterator[list[bytes]]) -> None:
        assert self._target is not None and self._tracker is not None
        target, tracker, index = self._target, self._tracker, self._index[file.file_id]
        try:
            part = await _open_part(target, file.path)
        except TargetError as exc:
            self._fail(file.file_id, str(exc))
            raise Refused("the receiver cannot create the file", status=500) from None
        checksum = hashlib.sha256() if file.sha256 is not None else None
        tracker.start_file(index, file.path, file.size)
        final: str | None = None
        writes = _OneAhead(part, checksum)
        try:
            received = 0
            async for batch in _with_deadline(body, LOCALSEND_DATA_TIMEOUT, self._stop_signal):
                if self._stopped is not None:
                    raise self._stopped
                size = sum(map(len, batch))
                if received + size > file.size:
                    raise Refused(f"more data than the announced {file.size} bytes", status=400)
                await writes.put(batch)
                received += size
                tracker.advance(index, size)
            await writes.drain()
            if self._stopped is not None:
                raise self._stopped
            if received != file.size:
                raise Refused(f"the body ended after {received} of {file.size} bytes", status=400)
            if checksum is not None and checksum.hexdigest() != file.sha256:
                raise Refused("the data does not match its sha256", status=400)
            final = await _on_disk(target.finish, part, FILE_MODE, file.mtime)
        except Refused as exc:
            self._fail(file.file_id, str(exc))
            raise
        except TargetError as exc:
            self._fail(file.file_id, str(exc))
            raise Refused("the receiver could not write the file", status=500) from None
        except Cancelled:
            raise
        except asyncio.CancelledError:
            if self._stopped is None:  # a cancelled session says so once, not per file
                self._broke_off = True
                self._fail(file.file_id, "the upload broke off")
            raise
        except Exception:  # the connection broke, or the body's framing did
            self._broke_off = True
            self._fail(file.file_id, "the upload broke off")
            raise Refused("the upload broke off", status=400) from None
        finally:
            await writes.settle()
            if final is None:
                await _discard(target, part)
            tracker.finish_file(index)
        self._ok += 1
        self._events.emit(FileDoneEvent(
            self._session, "receive", final, file.size, part.digest, 0, "localsend"
        ))

    def _fail(self, file_id: str, message: str) -> None:
        self._failed += 1
        path = self.offer.files[file_id].path
        self._events.emit(FileFailedEvent(self._session, "receive", path, message))


async def _discard(target: TargetFolder, part: PartFile) -> None:
    """Remove a part, to the end even when cancelled meanwhile (then cancelled after it):
    whoever waits for this upload must not see a part that is still there."""
    await run_to_the_end(asyncio.to_thread(target.discard, part))


async def _open_part(target: TargetFolder, path: str) -> PartFile:
    """A new part of its own (LocalSend never resumes): the writer claims a name whose
    part and file are both free, so no part in the folder, nor a file of this offer
    named like one (``x.part``), is ever taken over. Cancelled meanwhile, the part the
    worker made anyway is removed."""
    job = asyncio.ensure_future(_on_disk(target.new_part, path))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        try:
            part = await job
        except TargetError:
            raise asyncio.CancelledError from None
        await _discard(target, part)
        raise


class _OneAhead:
    """Stores one batch of an upload in a worker thread while the next is read, so the
    loop's decryption and the disk's write and hashing overlap (one batch in flight)."""

    def __init__(self, part: PartFile, checksum: hashlib._Hash | None) -> None:
        self._part = part
        self._checksum = checksum
        self._job: asyncio.Future[None] | None = None

    async def put(self, batch: list[bytes]) -> None:
        """Hand ``batch`` over once the one before it is stored (its error raised here)."""
        await self.drain()
        self._job = asyncio.ensure_future(_on_disk(self._store, batch))

    def _store(self, batch: list[bytes]) -> None:
        for data in batch:
            self._part.write(data)
            if self._checksum is not None:
                self._checksum.update(data)

    async def drain(self) -> None:
        """Until the batch in flight is stored; its failure is raised."""
        if self._job is not None:
            await asyncio.shield(self._job)
            self._job = None

    async def settle(self) -> None:
        """Until no thread writes any more, whatever happened: the part may be closed."""
        if self._job is not None:
            await asyncio.gather(self._job, return_exceptions=True)


async def _on_disk(call: Callable[..., T], *args: object) -> T:
    """A blocking file call in a worker thread, its OSError as a TargetError."""
    try:
        return await asyncio.to_thread(call, *args)
    except OSError as exc:
        raise TargetError(describe_os_error(exc)) from None


async def _with_deadline(
    body: AsyncIterator[T], seconds: float, stop: asyncio.Event
) -> AsyncIterator[T]:
    """``body``'s chunks, each of which must come within ``seconds``; ends at once (with
    nothing more) when ``stop`` is set, also while waiting for a chunk."""
    iterator = aiter(body)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            chunk = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait(
                {chunk, stopped}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if chunk not in done:
                chunk.cancel()
                await asyncio.gather(chunk, return_exceptions=True)
                if stop.is_set():
                    return
                raise Refused(f"no data for {seconds:g} s", status=408)
            try:
                data = chunk.result()
            except StopAsyncIteration:
                return
            yield data
    finally:
        stopped.cancel()
