"""The verification code, on both sides: the receiver shows it and checks the guesses,
the sender types it and proves it; or both hold a pairing and skip it.

The code never travels: each guess is a fresh SPAKE2 exchange (trust/pake.py), and
each side proves the shared key to the other, so a wrong code and an impostor
receiver are both caught.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2p_transfer.events import CodeEvent, EventBus, VerifiedEvent
from p2p_transfer.limits import CODE_ENTRY_TIMEOUT, MAX_WRONG_CODES, WRONG_CODE_DELAY
from p2p_transfer.net import NetError, PeerConnection, StreamEnded
from p2p_transfer.protocol import (
    PROTOCOL_VERSION,
    Hello,
    ProtocolError,
    Retry,
    Verified,
    Verify,
    Welcome,
)
from p2p_transfer.transfer.control import ControlStream
from p2p_transfer.transfer.offers import Refused
from p2p_transfer.transfer.session import TransferError, raise_if_peer_stopped
from p2p_transfer.trust import PairingStore, address_group, generate_code, normalize_code
from p2p_transfer.trust.pake import CodeExchange, PakeError
from p2p_transfer.trust.vouched import VouchedPeer

if TYPE_CHECKING:
    from p2p_transfer.transfer.receiver import ReceiverServices, ReceiveSession

#: Seconds a peer turned away because too many verifications wait is told to wait.
VERIFICATIONS_BUSY_RETRY = 5.0


class CodeCheck:
    """The receiver's side: a place among the verifications waiting for a code, then one
    exchange per guess, each an attempt the limits count; ``Refused`` unless one is right
    and in time."""

    def __init__(
        self,
        services: ReceiverServices,
        connection: PeerConnection,
        waiter: ReceiveSession,
        remote_ip: str | None,
        fixed_code: str | None,
        vouched: VouchedPeer | None = None,
    ) -> None:
        self._session = waiter.session
        #: The one peer a short code's PAKE vouched for (a receive by code), if any.
        self._vouched = vouched
        self._services = services
        self._connection = connection
        #: The session that holds a place among the verifications (and is ended to free it).
        self._waiter = waiter
        self._peer_id = connection.peer_id
        #: What counts as the peer's address for the verification limits.
        self._address = address_group(remote_ip)
        self._fixed_code = fixed_code
        #: A typed code is being checked (the session must not be dropped for another).
        self.checking = False
        #: When the running attempt began: how the attempt limits name it.
        self._attempt_began = 0.0

    async def verify(self, control: ControlStream, hello: Hello) -> None:
        """Welcome the peer: by the pairing both sides hold, or by the code."""
        services, session, peer_name = self._services, self._session, self._waiter.peer_name
        if self._vouched is not None:  # a short code's PAKE already verified it
            await self._admit_vouched(control, self._vouched)
            return
        # Both sides must hold the pairing: a sender that lost or never had it
        # verifies again, so it always knows whom it sends to.
        if hello.paired and services.pairings.is_trusted(self._peer_id):
            await control.send(Welcome(PROTOCOL_VERSION, services.device_name, False))
            services.events.emit(VerifiedEvent(session, self._peer_id, peer_name, "pairing"))
            return
        if services.pairings.is_trusted(self._peer_id):
            # The sender no longer holds the pairing (forgotten there, or expired): this
            # side forgets it too, so both show the same trust until a code pairs them again.
            services.pairings.remove(self._peer_id)
        try:
            attempt = await self._wait_for_code()
            exchange = await self._check_code(control, attempt, hello.retries)
        finally:
            services.slots.release(self._waiter)
        services.attempts.succeed(self._peer_id, self._address)
        services.pairings.add(self._peer_id, peer_name)
        await control.send(Verified(exchange.receiver_proof()))
        services.events.emit(VerifiedEvent(session, self._peer_id, peer_name, "code"))

    async def _admit_vouched(self, control: ControlStream, vouched: VouchedPeer) -> None:
        """The device that used this receiver's short code, and nobody else, goes on
        without a 6-digit code (and without becoming a pairing)."""
        services = self._services
        if not vouched.admits(self._peer_id):
            raise Refused("this receiver only takes files from the device that used its code")
        await control.send(Welcome(PROTOCOL_VERSION, services.device_name, False))
        services.events.emit(
            VerifiedEvent(self._session, self._peer_id, self._waiter.peer_name, "short-code")
        )

    async def _wait_for_code(self) -> int:
        """A place among the verifications waiting for a code, and the first attempt's
        number; Refused before any code exists (the user is not shown one) when the
        peer's key or address is locked out or over its share, or no place is free.

        A newcomer replaces its own key's waiting verification, so one endpoint never
        has two guesses pending, and may displace other idle ones (trust/verification.py).
        """
        self._refuse_if_over_limits()
        services = self._services
        displaced = services.slots.take(self._waiter, self._peer_id, self._address)
        if displaced is None:
            raise Refused(
                "too many verifications in progress; try again shortly", "busy",
                retry_after=VERIFICATIONS_BUSY_RETRY,
            )
        attempt = self._begin()
        for other in displaced:  # their codes go away before this one is shown
            await (other.stop() if other.peer_id == self._peer_id else other.make_room())
        return attempt

    def _begin(self) -> int:
        """Count an attempt (before its code is shown); its number for the sender."""
        self._attempt_began = time.time()
        return self._services.attempts.begin(self._peer_id, self._address, self._attempt_began)

    def _refuse_if_over_limits(self) -> None:
        refusal = self._services.attempts.refusal(self._peer_id, self._address)
        if refusal is not None:
            raise Refused(refusal.message, refusal.kind, retry_after=refusal.retry_after)

    async def _check_code(
        self, control: ControlStream, attempt: int, retries: bool
    ) -> CodeExchange:
        """Show a code and check the peer's guesses; Refused unless one is right and in time.

        Every guess is a fresh SPAKE2 exchange for the same code, counted as an attempt
        from the moment it is offered: a sender that can ask its user again (``retries``)
        gets a Retry after a wrong code, while attempts are left.
        """
        services, peer_id = self._services, self._peer_id
        code = self._fixed_code or generate_code()
        challenge: type[Welcome] | type[Retry] = Welcome
        while True:
            exchange = CodeExchange(code, receiver_id=services.endpoint_id, sender_id=peer_id)
            services.events.emit(
                CodeEvent(self._session, code, peer_id, self._waiter.peer_name, attempt,
                          MAX_WRONG_CODES)
            )
            self.checking = False
            await control.send(
                Welcome(PROTOCOL_VERSION, services.device_name, True, exchange.message, attempt,
                        MAX_WRONG_CODES)
                if challenge is Welcome else Retry(exchange.message, attempt, MAX_WRONG_CODES)
            )
            try:
                right = await self._guessed_right(control, exchange)
            except BaseException:
                # No guess came (closed, out of time, interrupted): not a wrong code.
                services.attempts.unanswered(peer_id, self._attempt_began)
                raise
            if right:
                return exchange
            services.attempts.fail(peer_id, self._address, started=self._attempt_began)
            await asyncio.sleep(WRONG_CODE_DELAY)
            attempts_left = services.attempts.attempts_left(peer_id)
            if not retries or attempts_left == 0:
                raise Refused(
                    "wrong verification code", "wrong_code", attempts_left=attempts_left
                )
            self._refuse_if_over_limits()
            attempt = self._begin()
            challenge = Retry

    async def _guessed_right(self, control: ControlStream, exchange: CodeExchange) -> bool:
        """Read one guess within the code's time and check it (in constant time)."""
        with self._connection.deadline(
            CODE_ENTRY_TIMEOUT, "verification code not entered in time"
        ) as deadline:
            guess = await control.expect(Verify)
        if deadline.expired:  # read just as time ran out: too late, never compared
            raise NetError("verification code not entered in time")
        self.checking = True
        try:
            exchange.finish(guess.pake)
            return exchange.check_sender(guess.proof)
        except PakeError:
            return False  # a malformed message is a wrong guess, counted alike


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


class CodeEntry:
    """The sender's side: the code typed (``--code`` first, then the user, again after a
    wrong one when the user can be asked), proved, and the receiver's proof checked."""

    def __init__(
        self,
        session: str,
        endpoint_id: str,
        pairings: PairingStore,
        events: EventBus,
        code: str | None,
        ask_code: CodePrompt | None,
        vouched: VouchedPeer | None = None,
    ) -> None:
        self._session = session
        #: The receiver a short code's PAKE vouched for (a send by code), if any.
        self._vouched = vouched
        self._endpoint_id = endpoint_id
        self._pairings = pairings
        self._events = events
        self._code = code
        self._ask_code = ask_code

    @property
    def retries(self) -> bool:
        """A user who can be asked again may retry a wrong code on the same connection."""
        return self._ask_code is not None

    async def prove(self, control: ControlStream, welcome: Welcome, peer_id: str) -> None:
        """Verify the receiver ``welcome`` came from, by pairing or by code, or raise."""
        if not welcome.code_required:
            if self._vouched is not None and self._vouched.admits(peer_id):
                self._events.emit(
                    VerifiedEvent(self._session, peer_id, welcome.name, "short-code")
                )
                return
            if not self._pairings.is_trusted(peer_id):
                # Only a pairing this device holds may skip the code: a receiver's word
                # is not enough (it could be an impostor answering for a name).
                raise TransferError(
                    "the receiver skipped verification, but this device never paired "
                    "with it; not sending"
                )
            self._events.emit(VerifiedEvent(self._session, peer_id, welcome.name, "pairing"))
            return
        if self._pairings.is_trusted(peer_id):
            # The receiver asks for a code: it no longer holds the pairing (forgotten there,
            # or expired). Forget it here too, so both show the same trust.
            self._pairings.remove(peer_id)
        challenge: Welcome | Retry = welcome
        while True:
            code = await self._code_for(welcome.name, challenge)
            exchange = CodeExchange(code, receiver_id=peer_id, sender_id=self._endpoint_id)
            try:
                exchange.finish(challenge.pake)
            except PakeError as exc:
                raise ProtocolError(str(exc)) from None
            await control.send(Verify(exchange.message, exchange.sender_proof()))
            answer = await control.read()
            if not isinstance(answer, Retry) or not self.retries:
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
        self._events.emit(VerifiedEvent(self._session, peer_id, welcome.name, "code"))

    async def _code_for(self, peer_name: str, challenge: Welcome | Retry) -> str:
        """The code to try: ``--code`` first, then what the user types (again)."""
        retry = isinstance(challenge, Retry)
        typed = None if retry else self._code
        if typed is None:
            if self._ask_code is None:
                raise TransferError("the receiver asks for a verification code; pass --code")
            typed = await self._ask_code(CodeRequest(
                self._session, peer_name, challenge.attempt, challenge.max_attempts, retry
            ))
        code = normalize_code(typed)
        if code is None:
            raise TransferError(f"a verification code is 6 digits, not {typed.strip()!r}")
        return code
