"""The composition root: one Node owns the endpoint, trust stores and event stream.

Front ends (CLI, web app) build a Node, subscribe to its events and call its
methods; nothing below them prints or prompts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_transfer.discovery import (
    Announcement,
    DiscoveryError,
    device_ticket,
    looks_like_ticket,
    port_of,
)
from p2p_transfer.events import (
    DecisionEvent,
    DeviceEvent,
    DiscoveryErrorEvent,
    ErrorEvent,
    Event,
    EventBus,
    RelayEvent,
    TicketEvent,
)
from p2p_transfer.limits import RELAY_ONLINE_TIMEOUT
from p2p_transfer.net import (
    RELAY_OFF,
    IdentityResponder,
    IncomingConnection,
    NetError,
    Transport,
    fetch_ticket,
    parse_host_port,
    ticket_via,
)
from p2p_transfer.transfer.admission import ConnectionTable
from p2p_transfer.transfer.receiver import (
    Decider,
    ReceiveOptions,
    ReceiverServices,
    ReceiveSession,
)
from p2p_transfer.transfer.sender import CodePrompt, SendOptions, SendSession
from p2p_transfer.transfer.session import TransferError, TransferResult
from p2p_transfer.trust import AttemptLimiter, PairingStore, load_or_create_secret_key
from p2p_transfer.trust.files import ensure_private_dir

if TYPE_CHECKING:
    from p2p_transfer.discovery import Discovery


@dataclass(slots=True)
class NodeConfig:
    """Everything a Node needs to start."""

    config_dir: Path
    device_name: str
    bind_addr: str | None = None
    relay: str = RELAY_OFF


class _ConnectionSlot:
    """A place in the connection table, held from the first packet to the end."""

    def __init__(self) -> None:
        self.session: ReceiveSession | None = None
        self.task: asyncio.Task[TransferResult | None] | None = None

    @property
    def idle(self) -> bool:
        """Droppable: still in the handshake, no hello yet, or only waiting to close."""
        session = self.session
        return session is None or not session.said_hello or session.closing

    def evict(self, reason: str) -> None:
        if self.session is not None:
            self.session.evict(reason)
        elif self.task is not None:
            self.task.cancel()


class Node:
    """One running p2p-transfer instance."""

    def __init__(self, config: NodeConfig, transport: Transport, pairings: PairingStore) -> None:
        self.config = config
        self.transport = transport
        self.pairings = pairings
        self.events = EventBus()
        local = transport.local_udp_socket
        self._receiving = ReceiverServices(
            config.device_name, transport.endpoint_id, self.events, pairings,
            AttemptLimiter(config.config_dir),
            data_host=local[0] if local else "0.0.0.0",
        )
        self._sessions: set[asyncio.Task[TransferResult | None]] = set()
        self._connections = ConnectionTable()
        self.discovery: Discovery | None = None
        self._withdrawal: asyncio.Task[None] | None = None
        self._identity: IdentityResponder | None = None

    @classmethod
    async def start(cls, config: NodeConfig) -> Node:
        """Load (or create) the identity and bind the endpoint."""
        ensure_private_dir(config.config_dir)
        key = await asyncio.to_thread(load_or_create_secret_key, config.config_dir)
        transport = await Transport.bind(key, config.bind_addr, config.relay)
        return cls(config, transport, PairingStore(config.config_dir))

    async def connect_relay(self) -> RelayEvent | None:
        """With a relay chosen, wait briefly for it and say whether it is reachable."""
        if self.config.relay == RELAY_OFF:
            return None
        connected = await self.transport.wait_for_relay(RELAY_ONLINE_TIMEOUT)
        message = (
            f"relay connected: {self.transport.relay_url}" if connected else
            f"relay unreachable after {RELAY_ONLINE_TIMEOUT:.0f} s (no internet?); "
            "using direct addresses only"
        )
        event = RelayEvent(self.config.relay, connected, self.transport.relay_url, message)
        self.events.emit(event)
        return event

    @property
    def endpoint_id(self) -> str:
        """This node's public key."""
        return self.transport.endpoint_id

    def announce_ticket(self) -> TicketEvent:
        """Emit (and return) the ticket event peers need to reach this node."""
        event = TicketEvent(
            self.transport.ticket, self.endpoint_id, self.config.device_name,
            self.transport.addresses,
        )
        self.events.emit(event)
        return event

    async def announce_on_lan(self) -> None:
        """Announce this node on the LAN (mDNS) until ``close``.

        Never raises: a network without multicast still works with tickets, so
        a failure only becomes a ``discovery_error`` event.
        """
        from p2p_transfer.discovery import Discovery  # zeroconf is loaded only when used

        try:
            self.discovery = await Discovery.start(self.events, self.endpoint_id)
        except DiscoveryError as exc:
            self.events.emit(DiscoveryErrorEvent(str(exc)))
            return
        addresses = tuple(self.transport.addresses)
        self.discovery.announce_in_background(
            Announcement(self.config.device_name, self.endpoint_id, addresses,
                         port_of(addresses) or 0)
        )

    def withdraw_from_lan(self) -> asyncio.Task[None] | None:
        """Stop announcing this node; the goodbye packets go out in the background."""
        if self.discovery is not None and self._withdrawal is None:
            self._withdrawal = asyncio.create_task(self.discovery.close())
        return self._withdrawal

    async def answer_address_queries(self) -> None:
        """Let ``send --to HOST:PORT`` learn our ticket (TCP, same port number as QUIC)."""
        local = self.transport.local_udp_socket
        if local is None:
            return
        try:
            self._identity = await IdentityResponder.start(*local, self.transport.ticket)
        except OSError as exc:
            self.events.emit(
                DiscoveryErrorEvent(f"--to HOST:PORT will not work: TCP port {local[1]}: "
                                    f"{exc.strerror or exc}")
            )

    async def resolve(self, to: str) -> str:
        """A ticket for ``--to``: a ticket as is, ``HOST:PORT``, or a LAN device name."""
        if looks_like_ticket(to):
            return to
        if (host_port := parse_host_port(to)) is not None:
            host, port = host_port
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            return ticket_via(await fetch_ticket(host, port), address)
        return await self.find_device(to)

    async def find_device(self, to: str) -> str:
        """The ticket of the LAN device ``to`` names (a name or endpoint-ID prefix).

        Raises DiscoveryError when none or several devices match.
        """
        from p2p_transfer.discovery import Discovery  # zeroconf is loaded only when used

        discovery = await Discovery.start(own_endpoint_id=self.endpoint_id)
        try:
            device = await discovery.find(to)
        finally:
            await discovery.close()
        self.events.emit(DeviceEvent(device.name, device.endpoint_id, list(device.addresses)))
        return device_ticket(device)

    async def send(
        self,
        ticket: str,
        paths: list[Path],
        options: SendOptions,
        ask_code: CodePrompt | None = None,
    ) -> TransferResult:
        """Send paths to the node a ticket names."""
        session = SendSession(
            self.transport, self.config.device_name, self.events, self.pairings, options, ask_code
        )
        return await session.run(ticket, paths)

    async def serve(
        self, options: ReceiveOptions, decide: Decider, once: bool = False
    ) -> TransferResult | None:
        """Accept senders until closed; with ``once``, return after the first offer's session."""
        # The first offer takes a ``once`` node: nobody else should find it from then
        # on, and its goodbyes go out while the files move, not when the user waits.
        unsubscribe = self.events.subscribe(self._withdraw_on_decision) if once else None
        finished: asyncio.Queue[TransferResult] = asyncio.Queue()
        acceptor = asyncio.create_task(self._accept_loop(options, decide, finished))
        try:
            if once:
                waiter = asyncio.create_task(finished.get())
                done, _ = await asyncio.wait(
                    {acceptor, waiter}, return_when=asyncio.FIRST_COMPLETED
                )
                if waiter in done:
                    return waiter.result()
                waiter.cancel()
                return None
            await acceptor
            return None
        finally:
            if unsubscribe is not None:
                unsubscribe()
            acceptor.cancel()
            for task in list(self._sessions):
                task.cancel()
            await asyncio.gather(*self._sessions, return_exceptions=True)

    def _withdraw_on_decision(self, event: Event) -> None:
        if isinstance(event, DecisionEvent):
            self.withdraw_from_lan()

    async def _accept_loop(
        self, options: ReceiveOptions, decide: Decider, finished: asyncio.Queue[TransferResult]
    ) -> None:
        while (incoming := await self.transport.next_incoming()) is not None:
            slot = _ConnectionSlot()
            if not self._connections.admit(slot, incoming.remote_ip):
                await incoming.refuse()
                continue
            task = asyncio.create_task(
                self._serve_connection(slot, incoming, options, decide, finished)
            )
            slot.task = task
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)

    async def _serve_connection(
        self,
        slot: _ConnectionSlot,
        incoming: IncomingConnection,
        options: ReceiveOptions,
        decide: Decider,
        finished: asyncio.Queue[TransferResult],
    ) -> TransferResult | None:
        try:
            try:
                connection = await incoming.establish()
            except NetError:
                return None
            session = slot.session = ReceiveSession(connection, self._receiving, options, decide)
            try:
                result = await session.run()
            except TransferError as exc:
                self.events.emit(ErrorEvent(str(exc)))
                if session.offered:
                    finished.put_nowait(TransferResult(False, 0, 0, 0, 0, 0.0, str(exc)))
                return None
            if result is not None:
                finished.put_nowait(result)
            return result
        finally:
            self._connections.release(slot)

    async def close(self) -> None:
        """Stop sessions and close the endpoint so peers learn of it at once."""
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if (withdrawal := self.withdraw_from_lan()) is not None:
            await withdrawal  # goodbye packets while the process still can
        if self._identity is not None:
            await self._identity.close()
        await self.transport.close()
