"""The live transfer board: one record per session, updated from the node's events.

The UI never reassembles a transfer from raw events: every change here is
published as a whole ``transfer`` snapshot, so a tab that (re)connects only
needs the latest snapshot of each transfer. A record's state only moves
forward (``SessionState``); a late event never takes it back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from p2p_transfer.app.events import TransferSnapshot, TransferUpdateEvent
from p2p_transfer.events import (
    Direction,
    DoneEvent,
    Event,
    FileFailedEvent,
    FileProgress,
    ProgressEvent,
    SessionState,
    Via,
)
from p2p_transfer.limits import APP_FINISHED_ON_BOARD

#: How a send ends that Retry may send again (what arrived is resumed).
RETRYABLE = frozenset({SessionState.FAILED, SessionState.CANCELLED})


@dataclass(slots=True)
class TransferRecord:
    """The mutable state behind a snapshot; ``id`` is the session ID."""

    id: str
    direction: Direction
    state: SessionState
    peer_name: str = ""
    peer_id: str = ""
    verified: str = ""
    files_total: int = 0
    files_done: int = 0
    files_failed: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    rate: float = 0.0
    eta: float | None = None
    active: list[FileProgress] = field(default_factory=list)
    message: str = ""
    cancelled_by: str = ""
    folder: str = ""
    names: list[str] = field(default_factory=list)
    path: str = ""
    rtt_ms: float | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    #: The send this one tries again, and the one that tried this one again ("": none).
    retry_of: str = ""
    retried_as: str = ""
    #: A text message, not files (``names`` holds its first line).
    text: bool = False
    #: The protocol it goes over: ours (verified end to end) or LocalSend's (not).
    via: Via = "p2p-transfer"
    #: A send by code: the code to type on the other device ("" for any other transfer).
    code: str = ""

    @property
    def final(self) -> bool:
        return self.state.final

    @property
    def can_retry(self) -> bool:
        """A failed or cancelled send, not retried yet: Retry sends the same again."""
        return (
            self.direction == "send" and self.state in RETRYABLE and not self.retried_as
        )

    def snapshot(self) -> TransferSnapshot:
        return TransferSnapshot(
            id=self.id,
            direction=self.direction,
            state=self.state,
            peer_name=self.peer_name,
            peer_id=self.peer_id,
            verified=self.verified,
            files_total=self.files_total,
            files_done=self.files_done,
            files_failed=self.files_failed,
            bytes_total=self.bytes_total,
            bytes_done=self.bytes_done,
            rate=self.rate,
            eta=self.eta,
            active=list(self.active),
            message=self.message,
            cancelled_by=self.cancelled_by,
            folder=self.folder,
            names=list(self.names),
            path=self.path,
            rtt_ms=self.rtt_ms,
            started_at=self.started_at,
            finished_at=self.finished_at,
            can_retry=self.can_retry,
            retry_of=self.retry_of,
            retried_as=self.retried_as,
            text=self.text,
            via=self.via,
            code=self.code,
        )


class TransferBoard:
    """Records by session ID, publishing a snapshot on every change."""

    def __init__(
        self,
        emit: Callable[[Event], None],
        on_finished: Callable[[TransferSnapshot], None],
        keep_finished: int = APP_FINISHED_ON_BOARD,
        on_removed: Callable[[str], None] = lambda record_id: None,
    ) -> None:
        self._emit = emit
        self._on_finished = on_finished
        self._on_removed = on_removed
        self._keep_finished = keep_finished
        self._records: dict[str, TransferRecord] = {}

    def get(self, record_id: str) -> TransferRecord | None:
        return self._records.get(record_id)

    def snapshots(self) -> list[TransferSnapshot]:
        """Every record on the board, oldest first."""
        return [r.snapshot() for r in self._records.values()]

    def active(self) -> list[TransferRecord]:
        """Records not yet finished."""
        return [r for r in self._records.values() if not r.final]

    def add(self, record: TransferRecord) -> TransferRecord:
        self._records[record.id] = record
        self._publish(record)
        return record

    def update(self, record: TransferRecord, **changes: Any) -> None:
        """Change fields of an unfinished record and publish it (finished records stay put)."""
        if record.final:
            return
        for key, value in changes.items():
            setattr(record, key, value)
        self._publish(record)

    def advance(self, record: TransferRecord, state: SessionState, message: str = "") -> None:
        """Move a record to a later state (an earlier or equal one is ignored)."""
        if record.final or not record.state.precedes(state):
            return
        if state.final:
            self.finish(record, state, message)
        else:
            self.update(record, state=state)

    def finish(
        self, record: TransferRecord, state: SessionState, message: str = "", by: str = ""
    ) -> None:
        """End a record once; later endings (a cancel racing a failure) are ignored."""
        if record.final:
            return
        record.state = state
        record.message = message or record.message
        record.cancelled_by = by if state is SessionState.CANCELLED else ""
        record.finished_at = time.time()
        record.active = []
        record.rate = 0.0
        record.eta = None
        self._publish(record)
        self._on_finished(record.snapshot())
        self._trim()

    def note_retry(self, record: TransferRecord, retry_id: str) -> None:
        """A finished send was tried again as ``retry_id`` (its card says so)."""
        record.retried_as = retry_id
        self._publish(record)

    def apply(self, record: TransferRecord, event: Event) -> None:
        """Fold a progress, file or done event into its record (states come separately)."""
        if isinstance(event, ProgressEvent):
            self.update(
                record,
                bytes_done=event.bytes_done,
                bytes_total=event.bytes_total,
                files_done=event.files_done,
                files_total=event.files_total,
                rate=event.rate,
                eta=event.eta,
                active=list(event.active),
            )
        elif isinstance(event, FileFailedEvent):
            self.update(
                record, files_failed=record.files_failed + 1,
                message=f"{event.path}: {event.message}",
            )
        elif isinstance(event, DoneEvent):
            changes: dict[str, Any] = {
                "files_done": event.files, "files_failed": event.files_failed,
                "bytes_total": event.bytes_total, "via": event.via,
            }
            if event.ok:
                changes["bytes_done"] = event.bytes_total
            if event.target:
                changes["folder"] = event.target
            self.update(record, **changes)

    def _publish(self, record: TransferRecord) -> None:
        self._emit(TransferUpdateEvent(record.snapshot()))

    def _trim(self) -> None:
        finished = [r for r in self._records.values() if r.final]
        for record in finished[: max(0, len(finished) - self._keep_finished)]:
            del self._records[record.id]
            self._on_removed(record.id)
