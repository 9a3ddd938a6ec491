"""Send and receive by a short code: the rendezvous, then our own sessions.

The sender allocates a code on magic-wormhole's mailbox server and waits; the
receiver claims it. After the PAKE on the code and the versions, two sides of
ours swap endpoint tickets under the code's key, and the transfer runs as any
other (resume, LAN fast path, BLAKE3), each side checking the other's endpoint
ID against the ticket it received: the code stands in for the 6-digit one. A
magic-wormhole client on the other side gets wormhole's own protocol instead
(rendezvous/classic.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from p2p_transfer.events import (
    CodeWaitEvent,
    EventBus,
    InviteEvent,
    LogEvent,
    RendezvousEvent,
    SessionState,
    VerifiedEvent,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import (
    CODE_CONNECT_TIMEOUT,
    CODE_PEER_TIMEOUT,
    CODE_TICKET_TIMEOUT,
    CODE_WORDS,
    LAN_CODE_LOOKUP,
    LAN_CODE_SEARCH,
    RELAY_TICKET_WAIT,
)
from p2p_transfer.net import RELAY_OFF, NetError, Transport, ticket_endpoint_id
from p2p_transfer.net.interfaces import has_default_route
from p2p_transfer.node.config import NodeConfig, endpoint
from p2p_transfer.node.inbox import Inbox
from p2p_transfer.rendezvous import classic
from p2p_transfer.rendezvous.abilities import PeerKind, decode_ticket, encode_ticket
from p2p_transfer.rendezvous.errors import (
    BadRendezvousMessage,
    CodeNotWaiting,
    MailboxUnreachable,
    PeerWentAway,
)
from p2p_transfer.rendezvous.lan import (
    LanOffer,
    LanSender,
    find_sender,
    local_code,
    made_for_the_lan,
    meet_sender,
)
from p2p_transfer.rendezvous.mailbox import CodeChannel
from p2p_transfer.transfer import (
    Decider,
    ReceiveOptions,
    SendOptions,
    SendSession,
    TransferResult,
)
from p2p_transfer.trust import PairingStore, VouchedPeer
from p2p_transfer.units import format_duration

T = TypeVar("T")

#: A send that the person redirected while its code waited (a device picked by number):
#: given the session's lifecycle, it runs the send to that device instead.
Redirect = Callable[[Lifecycle], Awaitable[TransferResult]]


class CodeRoute:
    """Sends and receives that start from a short code."""

    def __init__(
        self,
        config: NodeConfig,
        events: EventBus,
        pairings: PairingStore,
        transport: Transport | None,
        inbox: Inbox,
    ) -> None:
        self._config = config
        self._events = events
        self._pairings = pairings
        self._transport = transport
        self._inbox = inbox

    # --- the sending side ----------------------------------------------------------

    async def send(
        self,
        lifecycle: Lifecycle,
        paths: list[Path],
        options: SendOptions,
        mailbox: str,
        redirect: asyncio.Future[Redirect] | None = None,
        transit_relay: str | None = None,
        chosen: str | None = None,
    ) -> TransferResult:
        """A send session's work: allocate a code, or use the one ``chosen`` by the person
        (``send --code``: the receiver may be waiting with it already); on this LAN alone
        when the server is out of reach. Wait until it is used (or the person picks a
        device instead: ``redirect``), then send to whoever used it (a magic-wormhole
        receiver over its own protocol, through ``transit_relay`` if need be)."""
        transit = classic.transit_relay(transit_relay)
        channel = CodeChannel.open(mailbox, "send")
        lan: LanOffer | None = None
        try:
            try:
                code = await channel.allocate() if chosen is None else await channel.claim(chosen)
            except MailboxUnreachable as exc:
                lan = await self._offer_on_the_lan(chosen, exc)
                code = lan.code
            # The code is the first thing a script reads (then the session's states).
            self._events.emit(InviteEvent(
                lifecycle.session, code, "mailbox" if lan is None else "lan",
                channel.server if lan is None else "",
            ))
            lifecycle.advance(SessionState.CONNECTING)
            if lan is not None:
                met = await _first(lan.wait(), redirect)
                if callable(met):
                    return await met(lifecycle)
                self._events.emit(RendezvousEvent("lan", "p2p-transfer", lifecycle.session))
                ticket, name = met
            else:
                peer = await _first(channel.wait_for_peer(), redirect)
                if callable(peer):
                    await channel.close()  # the code goes: nobody else may use it now
                    return await peer(lifecycle)
                self._events.emit(RendezvousEvent("mailbox", peer, lifecycle.session))
                if peer == "magic-wormhole":
                    return await classic.send_classic(
                        channel, lifecycle, paths, options, transit, self._events
                    )
                ticket, name = await self._swap_tickets(channel)
        finally:
            await channel.close()
            if lan is not None:
                await lan.close()
        vouched = VouchedPeer(_endpoint_of(ticket))
        sender = SendSession(
            lifecycle, endpoint(self._transport), self._config.device_name, self._events,
            self._pairings, dataclasses.replace(options, vouched=vouched),
        )
        return await sender.run(ticket, paths, name)

    async def _offer_on_the_lan(self, chosen: str | None, unreachable: Exception) -> LanOffer:
        """The server is out of reach (said as a warning): the code, made here unless
        ``chosen``, is offered on this LAN only."""
        self._events.emit(LogEvent("warning", "codes", str(unreachable)))
        lan = LanOffer(chosen or local_code(CODE_WORDS), endpoint(self._transport).ticket,
                       self._config.device_name)
        await lan.start()
        return lan

    # --- the receiving side --------------------------------------------------------

    async def receive(
        self, code: str, options: ReceiveOptions, decide: Decider, mailbox: str,
        transit_relay: str | None = None, wait: float = 0.0,
    ) -> TransferResult | None:
        """Claim ``code``, meet its sender, and receive what it sends (one session); with
        ``wait`` (``receive CODE --wait``), its sender may come that much later. A magic-
        wormhole sender is received over its own protocol, through ``transit_relay`` if
        need be."""
        transit = classic.transit_relay(transit_relay)
        channel = CodeChannel.open(mailbox, "receive")
        # A ticket that names our relay reaches us from anywhere: the relay is given
        # until the ticket goes, counted from now (with internet it answers long before).
        relay = asyncio.create_task(self._relay_up())
        try:
            met = await self._meet(channel, code, wait)
            if isinstance(met, LanSender):
                await channel.close()
                await relay
                ticket, _ = await meet_sender(
                    met, code, endpoint(self._transport).ticket, self._config.device_name
                )
                self._events.emit(RendezvousEvent("lan", "p2p-transfer"))
            else:
                self._events.emit(RendezvousEvent("mailbox", met))
                if met == "magic-wormhole":
                    return await self._receive_classic(channel, options, decide, transit)
                await relay
                ticket, _ = await self._swap_tickets(channel)
        finally:
            relay.cancel()
            await channel.close()
        vouched = VouchedPeer(_endpoint_of(ticket))
        return await self._serve_vouched(
            dataclasses.replace(options, vouched=vouched), decide, vouched
        )

    async def _meet(self, channel: CodeChannel, code: str, wait: float) -> LanSender | PeerKind:
        """Where ``code``'s sender is: on this LAN, or met on the code server (what it runs).

        A code made without the server (its nameplate says so) is looked for on this LAN
        first, briefly: it must not be claimed on the server, where it could be a
        stranger's. Without the server, the LAN is looked at longer. With ``wait`` the
        sender may come later: the claimed code waits on the server for it while the LAN
        is watched too (a sender without the server offers its code there)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + wait
        nearby = await find_sender(code, LAN_CODE_LOOKUP) if made_for_the_lan(code) else None
        if nearby is not None:
            return nearby
        try:
            await channel.claim(code)
        except MailboxUnreachable as exc:
            if wait > 0:
                self._events.emit(CodeWaitEvent(code, wait, "lan"))
            nearby = await find_sender(code, max(LAN_CODE_SEARCH, until - loop.time()))
            if nearby is not None:
                return nearby
            if wait > 0:
                raise CodeNotWaiting(
                    f"no one sent with the code {code} on this network within "
                    f"{format_duration(wait)}, and the code server {channel.server} is out "
                    "of reach (offline?); check the code with the sender, or use --to"
                ) from exc
            raise MailboxUnreachable(channel.server) from exc
        if wait <= 0:
            return await channel.wait_for_peer(CODE_PEER_TIMEOUT)
        self._events.emit(CodeWaitEvent(code, wait, "mailbox"))
        return await _sender_anywhere(channel, code, until - loop.time(), wait)

    async def _relay_up(self) -> None:
        """Until the relay answers, at most RELAY_TICKET_WAIT; at once without a relay, or
        with no route off this machine (a LAN with no internet), where it cannot answer."""
        if self._config.relay != RELAY_OFF and has_default_route():
            await endpoint(self._transport).wait_for_relay(RELAY_TICKET_WAIT)

    async def _receive_classic(
        self, channel: CodeChannel, options: ReceiveOptions, decide: Decider, relay: str
    ) -> TransferResult | None:
        """A magic-wormhole sender: its own protocol, as one receive session of ours."""
        task = self._inbox.launch(lambda lifecycle: classic.receive_classic(
            channel, lifecycle, options, decide, relay, self._events
        ))
        return await task

    async def _serve_vouched(
        self, options: ReceiveOptions, decide: Decider, vouched: VouchedPeer
    ) -> TransferResult | None:
        """Serve the one sender the code vouched for; it must connect in time."""
        arrived = asyncio.Event()

        def watch(event: object) -> None:
            if isinstance(event, VerifiedEvent) and vouched.admits(event.peer_id):
                arrived.set()

        unsubscribe = self._events.subscribe(watch)
        serving = asyncio.create_task(self._inbox.serve(options, decide, once=True))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_until(arrived, serving), CODE_CONNECT_TIMEOUT)
            if not arrived.is_set() and not serving.done():
                serving.cancel()
                raise PeerWentAway(
                    f"the sender did not connect within {CODE_CONNECT_TIMEOUT:.0f} s "
                    "(it stopped, or the two devices cannot reach each other: try "
                    "--relay default on both)"
                )
            return await serving
        finally:
            unsubscribe()
            if not serving.done():
                serving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await serving

    # --- both sides ----------------------------------------------------------------

    async def _swap_tickets(self, channel: CodeChannel) -> tuple[str, str]:
        """Send our ticket under the code's key and read the other side's."""
        transport = endpoint(self._transport)
        channel.send(encode_ticket(transport.ticket, self._config.device_name))
        return decode_ticket(await channel.receive(CODE_TICKET_TIMEOUT))


def _endpoint_of(ticket: str) -> str:
    """The endpoint ID a ticket from the other side names (it must be one)."""
    try:
        return ticket_endpoint_id(ticket)
    except NetError:
        raise BadRendezvousMessage("its ticket is damaged") from None


async def _until(arrived: asyncio.Event, serving: asyncio.Task[object]) -> None:
    """Until the vouched sender verified, or serving ended (whichever comes first)."""
    waiter = asyncio.create_task(arrived.wait())
    try:
        await asyncio.wait({waiter, serving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def _first(
    met: Awaitable[T], redirect: asyncio.Future[Redirect] | None
) -> T | Redirect:
    """What the code brought once it was used, or the redirect if that came first."""
    if redirect is None:
        return await met
    waiting = asyncio.ensure_future(met)
    try:
        await asyncio.wait({waiting, redirect}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        waiting.cancel()
        raise
    if waiting.done():
        return waiting.result()
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await waiting
    return redirect.result()


async def _sender_anywhere(
    channel: CodeChannel, code: str, seconds: float, wait: float
) -> LanSender | PeerKind:
    """The code's sender, whichever way it comes first within ``seconds``: through the
    code server (the claimed code), or offering the code on this LAN."""
    server = asyncio.ensure_future(channel.wait_for_peer(seconds, waiting=wait))
    lan = asyncio.ensure_future(find_sender(code, seconds))
    try:
        await asyncio.wait({server, lan}, return_when=asyncio.FIRST_COMPLETED)
        if not server.done() and lan.exception() is None and (nearby := lan.result()):
            return nearby
        return await server
    finally:
        for task in (server, lan):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
