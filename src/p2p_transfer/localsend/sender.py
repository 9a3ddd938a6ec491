"""Sending to a LocalSend device: prepare-upload (asking for a PIN if it wants one), then
the uploads, ``--parallel`` files at a time, with the progress and summary of any send.

The device's user is waited for as ours are (``offer_sent``, then ``decision``), and
the device is named by its alias, also when it was given by address."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from p2p_transfer.events import (
    DecisionEvent,
    DialingEvent,
    DoneEvent,
    EventBus,
    FileDoneEvent,
    FileFailedEvent,
    OfferSentEvent,
    SessionState,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import DECISION_TIMEOUT, PUMP_BUFFER_SIZE
from p2p_transfer.localsend.address import LocalSendError
from p2p_transfer.localsend.client import LocalSendClient, NoAnswer, PinRequired
from p2p_transfer.localsend.messages import TEXT_TYPE, FileInfo, FileMetadata, Target
from p2p_transfer.transfer.local import SourceEntry, SourceError, scan_sources
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.transfer.sender import SendOptions, check_text
from p2p_transfer.transfer.session import Declined, TransferError, TransferResult

#: PIN prompts before giving up (the receiver locks us out after three wrong ones).
MAX_PIN_TRIES = 3


@dataclass(frozen=True, slots=True)
class PinRequest:
    """The sending user is asked for the PIN ``peer_name`` (a LocalSend device) requires."""

    session: str
    peer_name: str
    #: The PIN given before was wrong.
    retry: bool


#: Asks the sending user for a LocalSend device's PIN.
PinPrompt = Callable[[PinRequest], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class _Outgoing:
    file_id: str
    index: int
    source: SourceEntry


class LocalSendSender:
    """Sends one set of paths to one LocalSend device."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        events: EventBus,
        client: LocalSendClient,
        target: Target,
        options: SendOptions,
        ask_pin: PinPrompt | None,
    ) -> None:
        self._lifecycle = lifecycle
        self._events = events
        self._client = client
        self._target = target
        self._options = options
        self._ask_pin = ask_pin
        self._session = lifecycle.session

    async def run(self, paths: list[Path]) -> TransferResult:
        """Offer, upload and report; raises the typed outcomes (Declined, ...)."""
        target = self._target
        address = f"[{target.host}]:{target.port}" if ":" in target.host else (
            f"{target.host}:{target.port}"
        )
        self._events.emit(
            DialingEvent(self._session, target.fingerprint or "", target.name, [address])
        )
        await self._learn_alias()
        self._lifecycle.peer_name = self._target.name
        if self._options.text is not None:
            return await self._send_text(self._options.text, paths)
        sources = await asyncio.to_thread(
            scan_sources, paths, self._options.follow_symlinks
        )
        outgoing = [
            _Outgoing(secrets.token_hex(8), n, source)
            for n, source in enumerate(s for s in sources if s.entry.kind == "file")
        ]
        if not outgoing:
            raise TransferError("nothing to send: LocalSend carries files, and these "
                                "folders hold none")
        files = {o.file_id: _file_info(o) for o in outgoing}
        total = sum(o.source.entry.size for o in outgoing)
        self._lifecycle.advance(SessionState.WAITING)
        reply = await self._prepare(files, total)
        tracker = ProgressTracker(
            self._session, "send", total, len(outgoing), self._events.emit
        )
        if reply is None:  # the device needs nothing more (204)
            return self._finish(tracker, len(outgoing), 0, total)
        session_id, tokens = reply
        self._lifecycle.advance(SessionState.TRANSFERRING)
        failed = await self._upload_all(outgoing, session_id, tokens, tracker)
        return self._finish(tracker, len(outgoing) - failed, failed, total)

    async def _send_text(self, text: str, paths: list[Path]) -> TransferResult:
        """A text message as LocalSend's apps send one: a ``text/plain`` file whose preview
        is the text. A device that shows it answers at once (204); one that stores texts
        as files asks for the bytes, and gets them as that file."""
        check_text(text, paths)
        data = text.encode()
        file_id = secrets.token_hex(8)
        info = FileInfo(id=file_id, file_name=f"{file_id}.txt", size=len(data),
                        file_type=TEXT_TYPE, preview=text)
        started = asyncio.get_running_loop().time()
        self._lifecycle.advance(SessionState.WAITING)
        reply = await self._prepare({file_id: info}, len(data), text=True)
        if reply is not None:
            session_id, tokens = reply
            if file_id not in tokens:
                raise TransferError(f"{self._target.name} did not take the text")
            self._lifecycle.advance(SessionState.TRANSFERRING)
            await self._client.upload(
                self._target, session_id, file_id, tokens[file_id], _once(data), len(data)
            )
        seconds = asyncio.get_running_loop().time() - started
        self._events.emit(DoneEvent(
            self._session, "send", True, 0, 0, len(data), len(data), round(seconds, 3), None,
            "localsend", text=True,
        ))
        return TransferResult(SessionState.DONE, 0, 0, len(data), len(data), seconds)

    async def _learn_alias(self) -> None:
        """A device given by address (``localsend:HOST``) is named by its alias, as its own
        screen names it: asked with ``register``, which also pins its certificate. A
        device that does not answer it is named by its address."""
        if self._target.name != self._target.host:
            return
        try:
            info, self._target = await self._client.register(self._target)
        except NoAnswer:
            raise
        except LocalSendError:
            return
        self._target = replace(self._target, name=info.name)

    async def _prepare(
        self, files: dict[str, FileInfo], size: int, text: bool = False
    ) -> tuple[str, dict[str, str]] | None:
        """Offer ``files`` (``size`` bytes) and wait for the device's user: ``offer_sent``
        once the offer is on its way, ``decision`` with the answer."""
        offered = OfferSentEvent(self._session, self._target.name, 0 if text else len(files),
                                 size, text=text)
        pin = None
        for attempt in range(MAX_PIN_TRIES + 1):
            try:
                reply, self._target = await self._client.prepare_upload(
                    self._target, files, pin, DECISION_TIMEOUT,
                    on_sent=lambda: self._events.emit(offered),
                )
            except PinRequired:
                if self._ask_pin is None or attempt == MAX_PIN_TRIES:
                    raise
                pin = await self._ask_pin(PinRequest(self._session, self._target.name,
                                                     retry=pin is not None))
                continue
            except Declined:
                # LocalSend says no more than "declined" (403): no reason to show.
                self._events.emit(DecisionEvent(self._session, False))
                raise
            self._events.emit(DecisionEvent(self._session, True))
            return None if reply is None else (reply.session_id, reply.files)
        raise AssertionError("unreachable")

    async def _upload_all(
        self,
        outgoing: list[_Outgoing],
        session_id: str,
        tokens: dict[str, str],
        tracker: ProgressTracker,
    ) -> int:
        """Every accepted file, ``parallel`` at a time; returns how many failed."""
        gate = asyncio.Semaphore(self._options.parallel)
        failures = 0

        async def one(item: _Outgoing) -> None:
            nonlocal failures
            entry = item.source.entry
            token = tokens.get(item.file_id)
            if token is None:
                failures += 1
                self._events.emit(FileFailedEvent(
                    self._session, "send", entry.path, "the receiver did not accept it"
                ))
                tracker.finish_file(item.index)
                return
            async with gate:
                tracker.start_file(item.index, entry.path, entry.size)
                try:
                    await self._client.upload(
                        self._target, session_id, item.file_id, token,
                        _read(item.source.source, entry.size, item.index, tracker), entry.size,
                    )
                except (LocalSendError, SourceError, OSError) as exc:
                    failures += 1
                    self._events.emit(FileFailedEvent(
                        self._session, "send", entry.path,
                        _refused(exc, entry.size, self._target.name),
                    ))
                else:
                    self._events.emit(FileDoneEvent(
                        self._session, "send", entry.path, entry.size, "", 0, "localsend"
                    ))
                finally:
                    tracker.finish_file(item.index)

        tasks = [asyncio.create_task(one(item)) for item in outgoing]
        try:
            await asyncio.wait(tasks)  # being cancelled leaves the uploads running...
        except asyncio.CancelledError:
            # ...so the device hears "cancel" before its uploads break off (it ends the
            # session cancelled by us, not failed).
            await asyncio.shield(self._client.cancel(self._target, session_id))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        for task in tasks:
            task.result()  # an unexpected error of one upload
        return failures

    def _finish(
        self, tracker: ProgressTracker, ok: int, failed: int, total: int
    ) -> TransferResult:
        tracker.flush()
        self._events.emit(DoneEvent(
            self._session, "send", failed == 0, ok, failed, total, tracker.bytes_transferred,
            round(tracker.seconds, 3), None, "localsend",
        ))
        return TransferResult(
            SessionState.DONE if failed == 0 else SessionState.FAILED, ok, failed, total,
            tracker.bytes_transferred, tracker.seconds,
            "" if failed == 0 else f"{failed} file(s) did not arrive",
        )


def _file_info(item: _Outgoing) -> FileInfo:
    """How the spec describes a file: its relative path as the name (folders kept, as
    the official app sends them), its type and modification time; no sha256 (it is
    optional, would cost a second read of every file, and TLS already protects the bytes)."""
    entry = item.source.entry
    modified = datetime.fromtimestamp(entry.mtime, UTC).isoformat().replace("+00:00", "Z")
    return FileInfo(
        id=item.file_id, file_name=entry.path, size=entry.size,
        file_type=mimetypes.guess_type(entry.path)[0] or "application/octet-stream",
        metadata=FileMetadata(modified=modified),
    )


def _refused(exc: Exception, size: int, device: str) -> str:
    """Why a file did not arrive. An empty file refused is said as such: some LocalSend
    implementations (localsendd) take no file without bytes, and an HTTP status alone
    would not tell the user that."""
    if size == 0 and isinstance(exc, LocalSendError):
        answer = str(exc).partition(": ")[2] or str(exc)  # "HTTP 500 …", without the name
        return f"{device} refused this empty file: some LocalSend apps take none ({answer})"
    return str(exc)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _read(
    path: str, size: int, index: int, tracker: ProgressTracker
) -> AsyncIterator[bytes]:
    """A file's bytes in big pieces, read in a worker thread, counted as they go."""
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        position = 0
        while position < size:
            data = await asyncio.to_thread(
                os.pread, fd, min(PUMP_BUFFER_SIZE, size - position), position
            )
            if not data:
                raise SourceError(f"{os.path.basename(path)} shrank while being sent")
            position += len(data)
            tracker.advance(index, len(data))
            yield data
    finally:
        os.close(fd)
