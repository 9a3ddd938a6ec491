"""What each send on the board was asked to do (for Retry), and the staged copies it holds.

Files dropped into the page are the app's own copies, in a staging batch. A send
holds its batch while it runs and, when it failed or was cancelled, for as long as
its card can be retried (until the card leaves the board or is retried: the retry
takes the batch over). Several sends (one per device) may hold one batch; it is
deleted when the last lets go.

``SendControl`` starts sends (to devices, by code, again on Retry) and keeps that
book; staging batches are made and dropped through it, as it knows which are held. A
send to a trusted device that is away waits in the outbox (``outbox.py``) under a
``queued`` card; the outbox hands it back here when the device answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p_transfer.app.board import TransferBoard, TransferRecord
from p2p_transfer.app.errors import AppError, BusyError, NotFoundError
from p2p_transfer.app.events import TransferSnapshot
from p2p_transfer.app.files import FileBrowser, PathRefused, Staging, StagingError
from p2p_transfer.app.node_control import NodeControl
from p2p_transfer.app.outbox import Outbox, QueuedSend
from p2p_transfer.app.settings import Settings
from p2p_transfer.app.targets import Destination, Targets, UnresolvedTarget
from p2p_transfer.app.tracker import SessionTracker
from p2p_transfer.events import SessionState
from p2p_transfer.lifecycle import new_session_id
from p2p_transfer.limits import APP_MAX_SEND_PATHS, APP_MAX_SEND_TARGETS, APP_OUTBOX_MAX_SENDS
from p2p_transfer.node import Node, RunningSession
from p2p_transfer.protocol import text_preview
from p2p_transfer.rendezvous import RendezvousError
from p2p_transfer.transfer import SendOptions, TransferError
from p2p_transfer.transfer.sender import check_text
from p2p_transfer.transfer.session import DataTransport

#: Runs a coroutine in the background, kept referenced until done (the service's).
Spawn = Callable[[Coroutine[Any, Any, Any], str], Any]


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A send as the user asked for it; Retry asks for the same again."""

    #: What was typed or pasted (a ticket, HOST:PORT, a name), or None.
    to: str | None
    #: A device picked in the list (endpoint ID or LocalSend fingerprint), or None.
    device: str | None
    #: Paths picked in the file browser.
    paths: tuple[str, ...]
    #: The staging batch of dropped files, if any.
    batch: str | None = None
    #: A text message to send instead of files.
    text: str | None = None
    #: Sent by a code (no device): Retry asks for a new code.
    by_code: bool = False


class SendBook:
    """Requests by session ID, while their cards are on the board."""

    def __init__(self) -> None:
        self._requests: dict[str, SendRequest] = {}

    def add(self, session: str, request: SendRequest) -> None:
        self._requests[session] = request

    def get(self, session: str) -> SendRequest | None:
        return self._requests.get(session)

    def drop(self, session: str) -> str | None:
        """Forget a send; returns its staging batch when no other send holds it (the
        caller deletes it), else None."""
        request = self._requests.pop(session, None)
        if request is None or request.batch is None or self.holds(request.batch):
            return None
        return request.batch

    def holds(self, batch: str) -> bool:
        """True while a send on the board holds this staging batch."""
        return any(r.batch == batch for r in self._requests.values())


@dataclass(frozen=True, slots=True)
class SendParts:
    """What sending needs from the rest of the app (built by ``AppService``)."""

    nodes: NodeControl
    board: TransferBoard
    tracker: SessionTracker
    targets: Targets
    files: FileBrowser
    staging: Staging
    settings: Callable[[], Settings]
    transport: DataTransport
    spawn: Spawn
    outbox: Outbox


class SendControl:
    """Starts sends (to devices, by code, Retry) and forgets them once they cannot be retried."""

    def __init__(self, parts: SendParts) -> None:
        self._p = parts
        #: What each send on the board was asked to do (Retry), and its staged batch.
        self.book = SendBook()

    def start_send(
        self,
        targets: list[tuple[str | None, str | None]],
        paths: list[str],
        staging_batch: str | None = None,
        text: str | None = None,
    ) -> list[TransferSnapshot]:
        """Send the paths (and staged files), or a text message, to each target, a session
        per target, in the background; returns the new records. ``targets``: (typed or
        pasted text, picked device) pairs, one of each set. Every target is checked before
        any send starts."""
        node = self._p.nodes.running
        if not targets:
            raise AppError("choose a device, or give a ticket, HOST:PORT or device name")
        if len(targets) > APP_MAX_SEND_TARGETS:
            raise AppError(f"at most {APP_MAX_SEND_TARGETS} devices per send")
        chosen = self._chosen(paths, staging_batch, text)
        destinations: dict[str, tuple[Destination, SendRequest]] = {}
        for to, device in targets:  # the same device twice gets one send
            destination = self._destination(to, device)
            request = SendRequest(to, device, tuple(paths), staging_batch, text)
            destinations.setdefault(destination.peer_id or str(destination.dial),
                                    (destination, request))
        self._check_room(sum(d.away for d, _ in destinations.values()))
        return [
            self._begin(node, destination, request, chosen).snapshot()
            for destination, request in destinations.values()
        ]

    def retry(self, record_id: str) -> TransferSnapshot:
        """Send a failed or cancelled send again, to the same device with the same files:
        the receiver offers what it already holds, so the send resumes."""
        node = self._p.nodes.running
        record = self._p.board.get(record_id)
        if record is None:
            raise NotFoundError("no such transfer")
        request = self.book.get(record_id)
        if not record.can_retry or request is None:
            raise BusyError("only a failed or cancelled send can be tried again, once")
        chosen = self._chosen(list(request.paths), request.batch, request.text)
        if request.by_code:  # a code is good for one try: a new one
            retry = self._launch_by_code(node, request, chosen, retry_of=record_id)
        else:
            destination = self._destination(request.to, request.device)
            self._check_room(int(destination.away))
            retry = self._begin(node, destination, request, chosen, retry_of=record_id)
        self.book.drop(record_id)  # the retry holds its staged files now
        self._p.board.note_retry(record, retry.id)
        return retry.snapshot()

    def start_send_by_code(
        self, paths: list[str], staging_batch: str | None = None, text: str | None = None
    ) -> TransferSnapshot:
        """Send the paths (and staged files), or a text, to whoever types the code this
        allocates on the code server (its card carries the code once it is there)."""
        node = self._p.nodes.running
        chosen = self._chosen(paths, staging_batch, text)
        request = SendRequest(None, None, tuple(paths), staging_batch, text, by_code=True)
        return self._launch_by_code(node, request, chosen).snapshot()

    def _destination(self, to: str | None, device: str | None) -> Destination:
        try:
            return self._p.targets.resolve(to, device)
        except UnresolvedTarget as exc:
            raise (NotFoundError if exc.missing else AppError)(str(exc)) from None

    def _chosen(
        self, paths: list[str], staging_batch: str | None, text: str | None = None
    ) -> list[Path]:
        """The paths to send, checked against the browser's rule, and the staged items;
        none for a text message (checked instead)."""
        if text is not None:
            if paths or staging_batch:
                raise AppError("send either a text or files, not both")
            try:
                check_text(text, [])
            except TransferError as exc:
                raise AppError(str(exc)) from None
            return []
        if len(paths) > APP_MAX_SEND_PATHS:
            raise AppError(f"at most {APP_MAX_SEND_PATHS} paths per send")
        # A path outside the browsable folders is PathRefused (403), a missing one
        # PathMissing (404), as when browsing.
        chosen = [self._p.files.check(p) for p in paths]
        try:
            if staging_batch:
                chosen += self._p.staging.top_level(staging_batch)
        except StagingError as exc:
            raise AppError(str(exc)) from None
        if not chosen:
            raise AppError("choose files or folders to send")
        names = [p.name for p in chosen]
        if len(set(names)) != len(names):
            raise AppError("two of the chosen items have the same name; send them separately")
        return chosen

    def _begin(
        self,
        node: Node,
        destination: Destination,
        request: SendRequest,
        chosen: list[Path],
        retry_of: str = "",
    ) -> TransferRecord:
        """Start one send session and its card; to a device that is away, the card waits
        in the outbox instead."""
        if destination.away:
            send = QueuedSend(
                new_session_id(), destination.peer_id, destination.peer_name,
                tuple(map(str, chosen)), request.paths, request.batch, request.text,
            )
            record = self._card(send.id, request, chosen, send.peer_name, send.peer_id,
                                retry_of, SessionState.QUEUED)
            self._p.outbox.queue(send)
            return record
        session = node.start_send(
            destination.dial, chosen, self._send_options(request.text), self._p.tracker.ask_code,
            self._p.tracker.ask_pin,
        )
        record = self._card(session.id, request, chosen, destination.peer_name,
                            destination.peer_id, retry_of)
        self._p.spawn(self._settle(session), f"app-send {session.id}")
        return record

    def _card(
        self, record_id: str, request: SendRequest, chosen: list[Path],
        peer_name: str, peer_id: str, retry_of: str,
        state: SessionState = SessionState.CONNECTING,
    ) -> TransferRecord:
        """A send's card and its request (for Retry)."""
        record = TransferRecord(
            id=record_id,
            direction="send",
            state=state,
            peer_name=peer_name,
            peer_id=peer_id,
            folder=str(chosen[0].parent) if request.paths else "",
            names=[text_preview(request.text)] if request.text is not None else (
                [p.name for p in chosen]
            ),
            retry_of=retry_of,
            text=request.text is not None,
        )
        self._p.tracker.track_send(record)
        self.book.add(record_id, request)
        return record

    # --- the outbox's sends (``Outbox`` calls these) -------------------------------------

    def _check_room(self, away: int) -> None:
        """Refuse, before anything starts, sends to devices that are away beyond what the
        outbox may hold."""
        if away > self._p.outbox.room():
            raise BusyError(
                f"{APP_OUTBOX_MAX_SENDS} sends wait for devices that are away already: cancel "
                "one of them, or send when the device is on"
            )

    def show_queued(self, send: QueuedSend) -> TransferRecord:
        """A send an earlier run left in the outbox: its card, queued, and its request."""
        request = SendRequest(None, send.peer_id, send.paths, send.batch, send.text)
        record = self._card(send.id, request, [Path(p) for p in send.chosen], send.peer_name,
                            send.peer_id, "", SessionState.QUEUED)
        self._p.board.update(record, started_at=send.queued_at)
        return record

    def start_queued(self, send: QueuedSend, ticket: str) -> None:
        """The device a waiting send is for answers at ``ticket``: the send starts under
        its card's ID (the card goes on to connecting), its items chosen again as Retry
        would, so they pass the same checks."""
        record = self._p.board.get(send.id)
        request = self.book.get(send.id)
        if record is None or record.final or request is None:
            return
        try:
            node = self._p.nodes.running
            chosen = self._chosen(list(request.paths), request.batch, request.text)
        except (AppError, PathRefused) as exc:
            self._p.board.finish(record, SessionState.FAILED, f"Nothing was sent: {exc}.")
            return
        self._p.board.update(record, started_at=time.time())  # "took" counts from here
        session = node.start_send(
            ticket, chosen, self._send_options(request.text), self._p.tracker.ask_code,
            self._p.tracker.ask_pin, session_id=send.id,
        )
        self._p.spawn(self._settle(session), f"app-send {session.id}")

    def drop_queued(self, send: QueuedSend, message: str) -> None:
        """A waiting send leaves the outbox unsent: its card fails with ``message``."""
        record = self._p.board.get(send.id) or self.show_queued(send)
        self._p.board.finish(record, SessionState.FAILED, message)

    def _launch_by_code(
        self, node: Node, request: SendRequest, chosen: list[Path], retry_of: str = ""
    ) -> TransferRecord:
        """Start one send by code and its card (no peer until the code is used)."""
        try:
            mailbox = self._p.settings().mailbox_url
        except RendezvousError as exc:
            raise AppError(str(exc)) from None
        session = node.start_send_by_code(chosen, self._send_options(request.text), mailbox)
        record = self._card(session.id, request, chosen, "", "", retry_of)
        self._p.spawn(self._settle(session), f"app-send {session.id}")
        return record

    def _send_options(self, text: str | None) -> SendOptions:
        return SendOptions(
            parallel=self._p.settings().parallel_files, transport=self._p.transport, text=text,
        )

    async def _settle(self, session: RunningSession) -> None:
        """A send that did not fail or get cancelled will not be retried: forget it (and
        its staged copies, once no other send holds them)."""
        await asyncio.gather(session.task, return_exceptions=True)
        record = self._p.board.get(session.id)
        if record is None or not record.can_retry:
            await self._forget_send(session.id)

    async def _forget_send(self, session_id: str) -> None:
        if (batch := self.book.drop(session_id)) is not None:
            await asyncio.to_thread(self._p.staging.remove, batch)

    def card_removed(self, record_id: str) -> None:
        """A card left the board: it can no longer be retried."""
        self._p.spawn(self._forget_send(record_id), f"app-forget {record_id}")

    # --- staging batches (files dropped into the page) ---------------------------

    async def new_staging_batch(self) -> str:
        """A fresh staging batch for dropped files."""
        return await asyncio.to_thread(self._p.staging.create)

    def staged(self, batch: str) -> list[dict[str, Any]]:
        """The top-level items of a staging batch (what would be sent)."""
        try:
            items = self._p.staging.top_level(batch)
        except StagingError as exc:
            raise NotFoundError(str(exc)) from None
        return [{"name": p.name, "kind": "dir" if p.is_dir() else "file"} for p in items]

    async def drop_staging_batch(self, batch: str) -> None:
        """Delete a staging batch the user removed before sending."""
        if self.book.holds(batch):
            raise BusyError("this batch is being sent")
        await asyncio.to_thread(self._p.staging.remove, batch)
