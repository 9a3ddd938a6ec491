"""Sending: the route to a ``--to``, and the sender that takes it.

A ``--to`` becomes a route (``Presence.route``): a ticket for our own protocol or a
LocalSend device, said as a ``route`` event before anything is sent; each route has
its own sender. A LocalSend device found by name is sent to only once the user heard
what that gives up (``confirm``). A new way of reaching a receiver (a rendezvous code,
say) is a new route here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import (
    ConnectionEvent,
    DialingEvent,
    Event,
    EventBus,
    QueuedEvent,
    RouteEvent,
    SessionEvent,
    SessionState,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import (
    REMEMBERED_ROUTE_TIMEOUT,
    RETRY_FIRST_PAUSE,
    RETRY_LONGEST_PAUSE,
)
from p2p_transfer.net import Transport, Unreachable, parse_ticket
from p2p_transfer.node.config import NodeConfig, endpoint
from p2p_transfer.node.localsend_bridge import LocalSendBridge
from p2p_transfer.node.names import DOCTOR_HINT, Route
from p2p_transfer.node.presence import Presence
from p2p_transfer.node.routes import RouteMemory
from p2p_transfer.transfer import (
    CodePrompt,
    SendOptions,
    SendSession,
    TransferError,
    TransferResult,
)
from p2p_transfer.trust import PairingStore
from p2p_transfer.units import format_duration

if TYPE_CHECKING:
    from p2p_transfer.localsend import PinPrompt, Target

#: Asks the sending user whether to go on over a route that gives something up (the
#: event's ``warning``): a LocalSend device found by name. True: go on.
ConfirmPrompt = Callable[[RouteEvent], Awaitable[bool]]


@dataclasses.dataclass(frozen=True, slots=True)
class _Waiting:
    """``send --wait``: how long the send waits for its receiver, and until when (the
    event loop's clock)."""

    seconds: float
    until: float


class Dispatcher:
    """Runs one send: resolves ``to``, then sends over the route it names."""

    def __init__(
        self,
        config: NodeConfig,
        events: EventBus,
        pairings: PairingStore,
        transport: Transport | None,
        presence: Presence,
        localsend: LocalSendBridge,
    ) -> None:
        self._config = config
        self._events = events
        self._pairings = pairings
        self._transport = transport
        self._presence = presence
        self._localsend = localsend
        self._routes = RouteMemory(events, pairings)

    async def send(
        self,
        lifecycle: Lifecycle,
        to: str | Target,
        paths: list[Path],
        options: SendOptions,
        ask_code: CodePrompt | None,
        ask_pin: PinPrompt | None,
        confirm: ConfirmPrompt | None = None,
    ) -> TransferResult:
        """A send session's work, from resolving ``to`` to the sender's result.

        With ``options.wait`` (``send --wait``) the session stays ``queued`` until the
        receiver answers: ``to`` is looked up until it is found, then dialed, again and
        again with growing pauses, until the wait is over."""
        waiting: _Waiting | None = None
        if options.wait > 0:
            waiting = _Waiting(options.wait, asyncio.get_running_loop().time() + options.wait)
            lifecycle.advance(SessionState.QUEUED)
            self._events.emit(QueuedEvent(lifecycle.session, str(to).strip(), options.wait))
            route = await self._found(to, waiting.until, lifecycle.session)
        else:
            lifecycle.advance(SessionState.CONNECTING)
            route = await self._presence.route(to, lifecycle.session)
        said = to.strip() if isinstance(to, str) else to.name
        event = route.event(lifecycle.session, said)
        self._events.emit(event)
        if not isinstance(route.target, str):
            lifecycle.advance(SessionState.CONNECTING)
            if route.found == "localsend" and confirm is not None and not await confirm(event):
                raise TransferError(
                    f"nothing sent: {route.peer_name} takes files only over LocalSend, "
                    "unverified; send to a device of ours (by name or ticket) to verify them"
                )
            return await self._localsend.send(lifecycle, route.target, paths, options, ask_pin)
        if waiting is not None:  # what is left of the wait is the dial's to use
            left = max(0.0, waiting.until - asyncio.get_running_loop().time())
            options = dataclasses.replace(options, wait=left)
        sender = SendSession(
            lifecycle, endpoint(self._transport), self._config.device_name, self._events,
            self._pairings, options, ask_code,
        )
        named = "" if route.found == "ticket" else route.peer_name or said
        # A remembered route keeps the ticket stored; any other is the one that reached it.
        forget = self._routes.watch(lifecycle.session,
                                    "" if route.found == "pairing" else route.target)
        reached = _connecting_once_reached(self._events, lifecycle)
        try:
            if route.found == "pairing":
                return await self._remembered(sender, route, paths, lifecycle.session, waiting)
            # After a broken path a name (or HOST:PORT) is looked up again: the receiver
            # may be back on another address.
            redial = (None if route.found == "ticket"
                      else functools.partial(self._presence.resolve, said))
            return await sender.run(route.target, paths, named, redial)
        finally:
            reached()
            forget()

    async def _found(self, to: str | Target, give_up: float, session: str) -> Route:
        """``to``'s route, looking again (with growing pauses) while it is not found, until
        ``give_up`` (``send --wait``); the last failure after that."""
        loop = asyncio.get_running_loop()
        pause = RETRY_FIRST_PAUSE
        while True:
            try:
                return await self._presence.route(to, session)
            except P2PTransferError:
                if loop.time() + pause >= give_up:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_LONGEST_PAUSE)

    async def _remembered(
        self, sender: SendSession, route: Route, paths: list[Path], session: str,
        waiting: _Waiting | None,
    ) -> TransferResult:
        """A paired device not announced on the LAN, dialed where it was last reached: on a
        LAN it answers at once or not at all, so it gets REMEMBERED_ROUTE_TIMEOUT from the
        dial (not the connect deadline of a ticket; that only when its relay may help),
        and a miss says why and what to do.
        With ``waiting`` (``send --wait``) the dial goes on to the wait's end: the sender
        dials again, with growing pauses, until the device is back there."""
        assert isinstance(route.target, str)
        if parse_ticket(route.target).relay_url() is not None and self._at_a_relay():
            return await self._say_why(sender.run(route.target, paths, route.peer_name), route)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None) as deadline:

                def on_event(event: Event) -> None:
                    if not isinstance(event, SessionEvent) or event.session != session:
                        return
                    if isinstance(event, DialingEvent):
                        deadline.reschedule(
                            waiting.until if waiting is not None
                            else loop.time() + REMEMBERED_ROUTE_TIMEOUT
                        )
                    elif isinstance(event, ConnectionEvent):
                        deadline.reschedule(None)

                unsubscribe = self._events.subscribe(on_event)
                try:
                    return await self._say_why(
                        sender.run(route.target, paths, route.peer_name), route
                    )
                finally:
                    unsubscribe()
        except TimeoutError:
            if not deadline.expired():
                raise
            when = (f"within {REMEMBERED_ROUTE_TIMEOUT:g} s" if waiting is None
                    else f"within the {format_duration(waiting.seconds)} the send waited")
            raise Unreachable(_not_there(route, when)) from None

    def _at_a_relay(self) -> bool:
        """This node is connected to a relay: a remembered route's relay may lead to the
        device from another network (without one, as on a LAN with no internet, only its
        addresses can, and they answer at once or not at all)."""
        return self._transport is not None and self._transport.relay_url is not None

    @staticmethod
    async def _say_why(sending: Awaitable[TransferResult], route: Route) -> TransferResult:
        try:
            return await sending
        except Unreachable as exc:
            raise Unreachable(_not_there(route, ""), str(exc)) from None


def _not_there(route: Route, when: str) -> str:
    """Why a paired device was not reached where it was last, and what to do."""
    where = ", ".join(route.addresses) or "its relay"
    return (
        f"cannot reach {route.peer_name}: it is not announced on this network, and nothing "
        f"answered where it was last reached ({where}){' ' + when if when else ''}. It may "
        "be off, or restarted with another port (then its ticket changed); if it is on, "
        f"the network or a firewall may drop mDNS (UDP 5353): {DOCTOR_HINT}. Meanwhile, "
        "send with its ticket (`p2p-transfer receive` prints it)"
    )


def _connecting_once_reached(events: EventBus, lifecycle: Lifecycle) -> Callable[[], None]:
    """A queued session (``send --wait``) is ``connecting`` once its receiver answers; a
    session already connecting stays so. Returns the function that stops watching."""

    def on_event(event: Event) -> None:
        if isinstance(event, ConnectionEvent) and event.session == lifecycle.session:
            lifecycle.advance(SessionState.CONNECTING)

    return events.subscribe(on_event)
