"""Questions the UI must answer: accept an offer, type a code, accept an upload; and codes to show.

Each prompt has an ID; the UI answers through the API with that ID, so an
answer can never land on a different question. A prompt closes once: when
answered, when its deadline passes, when the peer goes away, or when dismissed;
every close is announced with a ``prompt_closed`` event.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from p2p_transfer.app.errors import AppError, GoneError
from p2p_transfer.app.events import PromptClosedEvent
from p2p_transfer.errors import LocalFault
from p2p_transfer.events import Event
from p2p_transfer.limits import (
    APP_DECLINE_REASON_CHARS,
    APP_PROMPT_ID_BYTES,
    LOCALSEND_MAX_PIN_CHARS,
)
from p2p_transfer.trust import normalize_code
from p2p_transfer.trust.verification import CODE_FORM

PromptKind = Literal["offer", "code", "code_shown", "upload", "pin"]


class PromptError(LocalFault):
    """The answer does not fit the prompt, or the prompt is gone."""


class PromptGone(PromptError):
    """No open prompt has this ID (answered, timed out or withdrawn)."""


@dataclass(slots=True)
class Prompt:
    """One open question (or, for ``code_shown``, one code on screen)."""

    id: str
    kind: PromptKind
    event: Event
    deadline: float
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    expiry: asyncio.TimerHandle | None = None


def new_prompt_id() -> str:
    """A fresh random prompt ID."""
    return secrets.token_hex(APP_PROMPT_ID_BYTES)


class PromptBook:
    """The open prompts, in the order they were opened."""

    def __init__(self, emit: Callable[[Event], None]) -> None:
        self._emit = emit
        self._open: dict[str, Prompt] = {}

    def open(
        self,
        kind: PromptKind,
        make_event: Callable[[str, float], Event],
        timeout: float,
        expire_after: float | None = None,
    ) -> Prompt:
        """Open a prompt and announce it; the UI shows ``timeout`` as the time left.

        With ``expire_after`` the prompt closes itself after that many seconds;
        without, the caller enforces the deadline (the transfer and share
        layers already do, and withdraw the question by cancelling).
        """
        return self._ask(new_prompt_id(), kind, make_event, timeout, expire_after)

    def renew(
        self,
        prompt_id: str,
        make_event: Callable[[str, float], Event],
        timeout: float,
        expire_after: float | None = None,
    ) -> Prompt:
        """Ask an open prompt's question again under the same ID (a code that was wrong:
        the dialog stays, with the new words): a new event, deadline and answer."""
        old = self.get(prompt_id)
        if old.expiry is not None:
            old.expiry.cancel()
        if not old.future.done():
            old.future.cancel()
        return self._ask(prompt_id, old.kind, make_event, timeout, expire_after)

    def _ask(
        self,
        prompt_id: str,
        kind: PromptKind,
        make_event: Callable[[str, float], Event],
        timeout: float,
        expire_after: float | None,
    ) -> Prompt:
        deadline = time.time() + timeout
        prompt = Prompt(prompt_id, kind, make_event(prompt_id, deadline), deadline)
        if expire_after is not None:
            loop = asyncio.get_running_loop()
            prompt.expiry = loop.call_later(expire_after, self.close, prompt_id, "timeout")
        self._open[prompt_id] = prompt
        self._emit(prompt.event)
        return prompt

    def get(self, prompt_id: str) -> Prompt:
        """The open prompt with this ID, or PromptGone."""
        prompt = self._open.get(prompt_id)
        if prompt is None:
            raise PromptGone("this question is no longer open (answered, expired or withdrawn)")
        return prompt

    def answer(self, prompt_id: str, value: Any, outcome: str) -> None:
        """Hand ``value`` to whoever waits on the prompt, then close it with ``outcome``."""
        prompt = self.get(prompt_id)
        if not prompt.future.done():
            prompt.future.set_result(value)
        self.close(prompt_id, outcome)

    def hand(self, prompt_id: str, value: Any) -> None:
        """Hand ``value`` to whoever waits on the prompt and keep it open: a typed code
        stays on screen while it is checked (its session closes or renews it)."""
        prompt = self.get(prompt_id)
        if prompt.future.done():
            raise PromptError("this code is being checked; wait for the answer")
        prompt.future.set_result(value)
        if prompt.expiry is not None:
            prompt.expiry.cancel()
            prompt.expiry = None

    def close(self, prompt_id: str, outcome: str) -> bool:
        """Close a prompt (if still open) and announce it; True if it was open."""
        prompt = self._open.pop(prompt_id, None)
        if prompt is None:
            return False
        if prompt.expiry is not None:
            prompt.expiry.cancel()
        if not prompt.future.done():
            prompt.future.cancel()
        self._emit(PromptClosedEvent(prompt_id, outcome))
        return True

    def close_all(self, outcome: str) -> None:
        """Close every prompt (the app is stopping or the node restarts)."""
        for prompt_id in list(self._open):
            self.close(prompt_id, outcome)

    def pending(self) -> list[Prompt]:
        """Open prompts, oldest first."""
        return list(self._open.values())

    async def wait(self, prompt: Prompt) -> Any:
        """The answer to ``prompt``; if the waiter is cancelled, the prompt is withdrawn."""
        try:
            return await asyncio.shield(prompt.future)
        except asyncio.CancelledError:
            if prompt.future.cancelled():
                # The prompt itself was closed (expired, or the app is stopping).
                raise PromptGone("the question was closed without an answer") from None
            self.close(prompt.id, "withdrawn")  # the one waiting for it went away
            raise


def answer_prompt(book: PromptBook, prompt_id: str, body: dict[str, Any]) -> None:
    """Answer a prompt from the API: ``accept`` (offer, upload), ``pin``, ``code``, or
    ``dismiss`` (code_shown); a wrong answer is AppError, a closed prompt GoneError."""
    try:
        prompt = book.get(prompt_id)
    except PromptGone as exc:
        raise GoneError(str(exc)) from None
    try:
        _apply(book, prompt, body)
    except PromptGone as exc:
        raise GoneError(str(exc)) from None
    except PromptError as exc:
        raise AppError(str(exc)) from None


def _apply(book: PromptBook, prompt: Prompt, body: dict[str, Any]) -> None:
    if prompt.kind in ("offer", "upload"):
        accept = body.get("accept")
        if not isinstance(accept, bool):
            raise PromptError('answer with {"accept": true} or {"accept": false}')
        reason = body.get("reason", "")
        if not isinstance(reason, str):
            raise PromptError("reason: text")
        reason = reason[:APP_DECLINE_REASON_CHARS]
        value: Any = (accept, reason) if prompt.kind == "offer" else accept
        book.answer(prompt.id, value, "accepted" if accept else "declined")
    elif prompt.kind == "pin":
        pin = body.get("pin")
        if not isinstance(pin, str) or not pin.strip() or len(pin) > LOCALSEND_MAX_PIN_CHARS:
            raise PromptError(
                f'answer with {{"pin": "..."}} (1 to {LOCALSEND_MAX_PIN_CHARS} characters)'
            )
        book.answer(prompt.id, pin.strip(), "answered")
    elif prompt.kind == "code":
        typed = body.get("code")
        code = normalize_code(typed) if isinstance(typed, str) else None
        if code is None:
            raise PromptError(f"the code is {CODE_FORM}")
        book.hand(prompt.id, code)  # open until the code is checked
    else:
        if body.get("dismiss") is not True:
            raise PromptError('a shown code is only dismissed: {"dismiss": true}')
        book.close(prompt.id, "dismissed")
