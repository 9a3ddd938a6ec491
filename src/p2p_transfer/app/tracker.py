"""Sessions as the app shows them: node events folded into board records and prompts.

Every node event names its session; this keeps one record per session ID and
nothing else to find it by. Sends get their record when the user starts them;
receives when their offer arrives (a code shown before that is a prompt of
its own, closed when the session verifies or ends). A code prompt, on either
side, stays one prompt across a wrong code and the next attempt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from p2p_transfer.app.board import TransferBoard, TransferRecord
from p2p_transfer.app.events import (
    CodePromptEvent,
    CodeShownEvent,
    OfferPromptEvent,
    PinPromptEvent,
)
from p2p_transfer.app.prompts import Prompt, PromptBook, PromptGone, PromptKind
from p2p_transfer.events import (
    CodeEvent,
    ConnectionEvent,
    DoneEvent,
    Event,
    FileFailedEvent,
    InviteEvent,
    OfferEvent,
    ProgressEvent,
    RouteEvent,
    SessionEvent,
    SessionState,
    StateEvent,
    VerifiedEvent,
)
from p2p_transfer.limits import APP_CODE_SHOWN_SECONDS, CODE_ENTRY_TIMEOUT, DECISION_TIMEOUT
from p2p_transfer.localsend.sender import PinRequest
from p2p_transfer.transfer import Decision, IncomingOffer, TransferError
from p2p_transfer.transfer.sender import CodeRequest


@dataclass(slots=True)
class _Arrival:
    """A receiving session before its offer: who it is, and the code on screen."""

    peer_id: str = ""
    peer_name: str = ""
    verified: str = ""
    path: str = ""
    rtt_ms: float | None = None
    code_prompt: str | None = None


class SessionTracker:
    """Folds the node's events into the board (by session ID) and asks the UI's questions."""

    def __init__(
        self,
        board: TransferBoard,
        prompts: PromptBook,
        receive_folder: Callable[[], str],
        auto_accept_trusted: Callable[[], bool],
    ) -> None:
        self.board = board
        self._prompts = prompts
        self._receive_folder = receive_folder
        self._auto_accept_trusted = auto_accept_trusted
        self._arrivals: dict[str, _Arrival] = {}
        #: Each sending session's code prompt, open from the first question until the
        #: receiver verified the code (or the session ended).
        self._code_prompts: dict[str, str] = {}

    def track_send(self, record: TransferRecord) -> None:
        """A send the user just started (its record's ID is its session ID)."""
        self.board.add(record)

    def forget_arrivals(self, outcome: str) -> None:
        """The node stopped: no receiving session goes on, and no code stays on screen."""
        for arrival in self._arrivals.values():
            self._close_code(arrival, outcome)
        self._arrivals.clear()

    def on_event(self, event: Event) -> None:
        """Fold one node event into its session's record or arrival."""
        if not isinstance(event, SessionEvent):
            return
        record = self.board.get(event.session)
        if record is not None:
            self._on_record_event(record, event)
        elif isinstance(event, CodeEvent | VerifiedEvent | OfferEvent | ConnectionEvent):
            self._on_arrival_event(self._arrivals.setdefault(event.session, _Arrival()), event)
        elif isinstance(event, StateEvent) and event.state.final:
            arrival = self._arrivals.pop(event.session, None)
            if arrival is not None:
                self._close_code(arrival, str(event.state))

    def _on_record_event(self, record: TransferRecord, event: SessionEvent) -> None:
        if isinstance(event, StateEvent):
            if event.peer_name and not record.peer_name:
                self.board.update(record, peer_name=event.peer_name)
            if event.state.final:
                self._close_code_prompt(record.id, str(event.state))
                self.board.finish(record, event.state, event.message, event.by)
            else:
                self.board.advance(record, event.state)
        elif isinstance(event, ConnectionEvent):
            self.board.update(
                record, peer_id=event.peer_id, path=event.path, rtt_ms=event.rtt_ms
            )
        elif isinstance(event, RouteEvent):
            self.board.update(record, via=event.via)
        elif isinstance(event, InviteEvent):
            self.board.update(record, code=event.code)
        elif isinstance(event, VerifiedEvent):
            self._close_code_prompt(record.id, "verified")
            self.board.update(
                record, verified=event.by, peer_name=event.peer_name, peer_id=event.peer_id
            )
        elif isinstance(event, ProgressEvent | FileFailedEvent | DoneEvent):
            self.board.apply(record, event)

    def _on_arrival_event(self, arrival: _Arrival, event: SessionEvent) -> None:
        if isinstance(event, ConnectionEvent):
            arrival.peer_id, arrival.path, arrival.rtt_ms = event.peer_id, event.path, event.rtt_ms
        elif isinstance(event, CodeEvent):
            arrival.peer_id, arrival.peer_name = event.peer_id, event.peer_name
            arrival.code_prompt = self._ask(
                arrival.code_prompt, "code_shown",
                lambda pid, deadline: CodeShownEvent(
                    pid, event.code, event.peer_name, event.peer_id, deadline, event.attempt,
                    event.max_attempts,
                ),
                APP_CODE_SHOWN_SECONDS,
            ).id
        elif isinstance(event, VerifiedEvent):
            arrival.peer_id, arrival.peer_name = event.peer_id, event.peer_name
            arrival.verified = event.by
            self._close_code(arrival, "verified")
        elif isinstance(event, OfferEvent):
            self._arrivals.pop(event.session, None)
            self._close_code(arrival, "verified")
            self.board.add(TransferRecord(
                id=event.session,
                direction="receive",
                state=SessionState.WAITING,
                peer_name=event.sender,
                peer_id=event.sender_id,
                verified=arrival.verified,
                files_total=event.files,
                bytes_total=event.bytes,
                folder="" if event.text else self._receive_folder(),
                names=[event.preview] if event.text else list(event.sample),
                path=arrival.path,
                rtt_ms=arrival.rtt_ms,
                text=event.text,
                via=event.via,
            ))

    def _close_code(self, arrival: _Arrival, outcome: str) -> None:
        if arrival.code_prompt is not None:
            self._prompts.close(arrival.code_prompt, outcome)
            arrival.code_prompt = None

    def _close_code_prompt(self, session: str, outcome: str) -> None:
        if (prompt_id := self._code_prompts.pop(session, None)) is not None:
            self._prompts.close(prompt_id, outcome)

    def _ask(
        self,
        prompt_id: str | None,
        kind: PromptKind,
        make_event: Callable[[str, float], Event],
        expire_after: float,
    ) -> Prompt:
        """A code prompt: the open one asked again in place (a wrong code), else a new one."""
        if prompt_id is not None:
            with contextlib.suppress(PromptGone):
                return self._prompts.renew(
                    prompt_id, make_event, CODE_ENTRY_TIMEOUT, expire_after=expire_after
                )
        return self._prompts.open(kind, make_event, CODE_ENTRY_TIMEOUT, expire_after=expire_after)

    # --- the node's questions -----------------------------------------------------

    async def decide_offer(self, offer: IncomingOffer) -> Decision:
        """Auto-accept a trusted device (when set), else ask the UI."""
        record = self.board.get(offer.session)
        verified = record.verified if record is not None else ""
        if verified == "pairing" and self._auto_accept_trusted():
            return Decision(True)
        prompt = self._prompts.open(
            "offer",
            lambda pid, deadline: OfferPromptEvent(
                pid, offer.session, offer.peer_name, offer.peer_id, offer.files,
                offer.folders, offer.total_bytes, list(offer.sample), verified, deadline,
                offer.via, offer.device_model, offer.text, offer.preview,
            ),
            DECISION_TIMEOUT,
        )
        try:
            accept, reason = await self._prompts.wait(prompt)
        except PromptGone:
            return Decision(False, "the receiver is not answering right now")
        return Decision(True) if accept else Decision(False, reason or "declined by the receiver")

    async def ask_pin(self, request: PinRequest) -> str:
        """The sending side's question for a LocalSend device: its PIN."""
        prompt = self._prompts.open(
            "pin",
            lambda pid, deadline: PinPromptEvent(
                pid, request.session, request.peer_name, request.retry, deadline
            ),
            CODE_ENTRY_TIMEOUT,
            expire_after=CODE_ENTRY_TIMEOUT,
        )
        try:
            pin = await self._prompts.wait(prompt)
        except PromptGone:
            raise TransferError(
                f"no PIN entered for {request.peer_name} within {CODE_ENTRY_TIMEOUT:.0f} s"
            ) from None
        return str(pin)

    async def ask_code(self, request: CodeRequest) -> str:
        """The sending side's question: the code the receiver shows (asked again in the
        same prompt after a wrong one, which stays open while a code is checked)."""
        prompt = self._ask(
            self._code_prompts.get(request.session), "code",
            lambda pid, deadline: CodePromptEvent(
                pid, request.session, request.peer_name, deadline, request.attempt,
                request.max_attempts, request.retry,
            ),
            CODE_ENTRY_TIMEOUT,
        )
        self._code_prompts[request.session] = prompt.id
        try:
            code = await self._prompts.wait(prompt)
        except PromptGone:
            raise TransferError(
                f"no code entered (the receiver waits {CODE_ENTRY_TIMEOUT:.0f} s)"
            ) from None
        return str(code)
