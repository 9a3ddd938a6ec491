"""The composition root: one Node owns the endpoint, trust stores, sessions and event stream.

Front ends (CLI, web app) build a Node, subscribe to its events and call its
methods; nothing below them prints or prompts. Every session (a send, a
receive, a share upload) gets its ID here when it starts; every event it
emits carries that ID, and ``cancel`` stops it by that ID.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_transfer.discovery import (
    Announcement,
    Device,
    DiscoveryError,
    device_ticket,
    looks_like_ticket,
    port_of,
)
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import (
    DecisionEvent,
    DeviceEvent,
    Direction,
    DiscoveryErrorEvent,
    ErrorEvent,
    Event,
    EventBus,
    RelayEvent,
    SessionState,
    TicketEvent,
)
from p2p_transfer.lifecycle import Lifecycle, new_session_id
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
from p2p_transfer.transfer.session import Cancelled, Declined, TransferResult
from p2p_transfer.trust import AttemptLimiter, PairingStore, load_or_create_secret_key
from p2p_transfer.trust.files import ensure_private_dir
from p2p_transfer.trust.identity import existing_endpoint_id

if TYPE_CHECKING:
    from p2p_transfer.discovery import DeviceBrowser, Discovery
    from p2p_transfer.share import ShareConfig, ShareServer


@dataclass(slots=True)
class NodeConfig:
    """Everything a Node needs to start."""

    config_dir: Path
    device_name: str
    bind_addr: str | None = None
    relay: str = RELAY_OFF


@dataclass(slots=True)
class RunningSession:
    """A session the node runs: its ID, where it stands, and its task."""

    lifecycle: Lifecycle
    task: asyncio.Task[TransferResult | None] | None = None
    #: How it ended, once it has (also when it was cancelled).
    result: TransferResult | None = None

    @property
    def id(self) -> str:
        return self.lifecycle.session

    async def outcome(self) -> TransferResult:
        """Wait for the end; a session cancelled through ``Node.cancel`` ends in a result,
        a caller that is itself cancelled (Ctrl-C) is cancelled as usual."""
        assert self.task is not None
        try:
            result = await self.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.result is None or (current is not None and current.cancelling()):
                raise
            return self.result
        assert result is not None
        return result


@dataclass(slots=True, eq=False)
class _ConnectionSlot:
    """A place in the connection table, held from the first packet to the end."""

    session: ReceiveSession | None = None
    task: asyncio.Task[object] | None = field(default=None)

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

    def __init__(
        self, config: NodeConfig, transport: Transport | None, pairings: PairingStore
    ) -> None:
        self.config = config
        self._transport = transport
        self.pairings = pairings
        self.events = EventBus()
        self._receiving: ReceiverServices | None = None
        if transport is not None:
            local = transport.local_udp_socket
            self._receiving = ReceiverServices(
                config.device_name, transport.endpoint_id, self.events, pairings,
                AttemptLimiter(config.config_dir),
                data_host=local[0] if local else "0.0.0.0",
            )
        self._sessions: dict[str, RunningSession] = {}
        #: Connection tasks, including those that never became a session.
        self._connection_tasks: set[asyncio.Task[object]] = set()
        self._connections = ConnectionTable()
        self.discovery: Discovery | None = None
        self._withdrawal: asyncio.Task[None] | None = None
        self._identity: IdentityResponder | None = None
        self._shares: list[ShareServer] = []

    @classmethod
    async def start(cls, config: NodeConfig) -> Node:
        """Load (or create) the identity and bind the endpoint."""
        ensure_private_dir(config.config_dir)
        key = await asyncio.to_thread(load_or_create_secret_key, config.config_dir)
        transport = await Transport.bind(key, config.bind_addr, config.relay)
        return cls(config, transport, PairingStore(config.config_dir))

    @classmethod
    def without_endpoint(cls, config: NodeConfig) -> Node:
        """A node for commands that never send or receive peer to peer (``devices``,
        ``share``): no endpoint is bound and no identity is created."""
        return cls(config, None, PairingStore(config.config_dir))

    @property
    def transport(self) -> Transport:
        """The endpoint (a node made ``without_endpoint`` has none)."""
        if self._transport is None:
            raise RuntimeError("this node was started without an endpoint")
        return self._transport

    # --- sessions ------------------------------------------------------------------

    def _new_session(self, direction: Direction) -> RunningSession:
        session = RunningSession(Lifecycle(new_session_id(), direction, self.events.emit))
        self._sessions[session.id] = session
        return session

    def _run(
        self, session: RunningSession, work: Awaitable[TransferResult | None]
    ) -> asyncio.Task[TransferResult | None]:
        task = asyncio.create_task(self._conclude(session, work), name=f"session {session.id}")
        session.task = task
        task.add_done_callback(lambda _: self._sessions.pop(session.id, None))
        return task

    async def _conclude(
        self, session: RunningSession, work: Awaitable[TransferResult | None]
    ) -> TransferResult | None:
        """Run a session's work and turn how it ended into its final state: the one place
        where outcomes (typed exceptions and results) become states and events."""
        lifecycle = session.lifecycle
        try:
            result = await work
        except asyncio.CancelledError:
            message = lifecycle.cancel_reason or "cancelled"
            session.result = TransferResult(
                SessionState.CANCELLED, message=message, by="local",
                error=Cancelled(message, "local"),
            )
            lifecycle.advance(SessionState.CANCELLED, message, "local")
            raise
        except Declined as exc:
            result = TransferResult(SessionState.DECLINED, message=exc.reason, error=exc)
        except Cancelled as exc:
            result = TransferResult(
                SessionState.CANCELLED, message=str(exc), by=exc.by, error=exc
            )
        except P2PTransferError as exc:
            result = TransferResult(SessionState.FAILED, message=str(exc), error=exc)
        session.result = result
        if result is not None:
            if result.state is SessionState.FAILED:
                detail = result.error.detail if result.error is not None else ""
                self.events.emit(ErrorEvent(result.message, session.id, detail))
            lifecycle.advance(result.state, result.message, result.by)
        return result

    def cancel(self, session_id: str) -> bool:
        """Cancel a running session (either direction); False if there is none by that ID."""
        session = self._sessions.get(session_id)
        if session is None or session.task is None or session.task.done():
            return False
        session.task.cancel()
        return True

    # --- sending -------------------------------------------------------------------

    def start_send(
        self,
        to: str,
        paths: list[Path],
        options: SendOptions,
        ask_code: CodePrompt | None = None,
    ) -> RunningSession:
        """Start sending ``paths`` to ``to`` (a ticket, HOST:PORT or LAN device name)."""
        session = self._new_session("send")
        sender = SendSession(
            session.lifecycle, self.transport, self.config.device_name, self.events,
            self.pairings, options, ask_code,
        )

        async def send() -> TransferResult:
            session.lifecycle.advance(SessionState.CONNECTING)
            named = "" if looks_like_ticket(to) else to.strip()  # a LAN name, HOST:PORT
            return await sender.run(await self.resolve(to), paths, named)

        self._run(session, send())
        return session

    async def send(
        self,
        to: str,
        paths: list[Path],
        options: SendOptions,
        ask_code: CodePrompt | None = None,
    ) -> TransferResult:
        """Send ``paths`` to ``to`` and wait for the outcome (failures are results too)."""
        return await self.start_send(to, paths, options, ask_code).outcome()

    # --- receiving -----------------------------------------------------------------

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
            await self._stop_connections()

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
            self._connection_tasks.add(task)
            task.add_done_callback(self._connection_tasks.discard)

    async def _serve_connection(
        self,
        slot: _ConnectionSlot,
        incoming: IncomingConnection,
        options: ReceiveOptions,
        decide: Decider,
        finished: asyncio.Queue[TransferResult],
    ) -> None:
        try:
            try:
                connection = await incoming.establish()
            except NetError:
                return
            assert self._receiving is not None
            session = self._new_session("receive")
            receiver = slot.session = ReceiveSession(
                session.lifecycle, connection, self._receiving, options, decide,
                incoming.remote_ip,
            )
            task = self._run(session, receiver.run())
            # The session's own task ends it when this connection task is cancelled.
            try:
                result = await asyncio.shield(task)
            except asyncio.CancelledError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise
            if receiver.offered and result is not None:
                finished.put_nowait(result)
        finally:
            self._connections.release(slot)

    async def _stop_connections(self) -> None:
        for task in list(self._connection_tasks):
            task.cancel()
        await asyncio.gather(*self._connection_tasks, return_exceptions=True)

    # --- reaching and being reached ------------------------------------------------

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

    def own_endpoint_id(self) -> str | None:
        """This device's endpoint ID if it has an identity (never creates one)."""
        if self._transport is not None:
            return self._transport.endpoint_id
        return existing_endpoint_id(self.config.config_dir)

    def announce_ticket(self) -> TicketEvent:
        """Emit (and return) the ticket event peers need to reach this node; it says
        whether this node is announced on the LAN (after ``announce_on_lan``)."""
        event = TicketEvent(
            self.transport.ticket, self.endpoint_id, self.config.device_name,
            self.transport.addresses, announced=self.discovery is not None,
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

    async def browse_lan(self) -> DeviceBrowser | None:
        """The live table of LAN devices (announcing this node first, if it does not yet)."""
        if self.discovery is None:
            await self.announce_on_lan()
        if self.discovery is None:
            return None
        return await self.discovery.browse()

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
        from p2p_transfer.discovery import Discovery  # zeroconf is loaded only when used

        discovery = await Discovery.start(own_endpoint_id=self.own_endpoint_id())
        try:
            device = await discovery.find(to)
        finally:
            await discovery.close()
        self.events.emit(DeviceEvent(device.name, device.endpoint_id, list(device.addresses)))
        return device_ticket(device)

    async def list_devices(self, timeout: float) -> list[Device]:
        """Devices that announce themselves on the LAN within ``timeout`` s, this one
        excluded (``p2p-transfer devices``)."""
        from p2p_transfer.discovery import Discovery  # zeroconf is loaded only when used

        discovery = await Discovery.start(own_endpoint_id=self.own_endpoint_id())
        try:
            return await discovery.list_devices(timeout)
        finally:
            await discovery.close()

    # --- the browser share ---------------------------------------------------------

    async def open_share(self, config: ShareConfig) -> ShareServer:
        """Start a share server whose uploads are sessions of this node (events included);
        it stops with the node, or earlier with its own ``stop``."""
        from p2p_transfer.share import ShareServer  # aiohttp is loaded only when used

        server = ShareServer(config, self.events, session_ids=new_session_id)
        await server.start()
        self._shares.append(server)
        return server

    # --- the end -------------------------------------------------------------------

    async def close(self) -> None:
        """Stop sessions and close the endpoint so peers learn of it at once."""
        for session in list(self._sessions.values()):
            if session.task is not None:
                session.task.cancel()
        await asyncio.gather(
            *(s.task for s in self._sessions.values() if s.task is not None),
            return_exceptions=True,
        )
        await self._stop_connections()
        for share in self._shares:
            await share.stop()
        if (withdrawal := self.withdraw_from_lan()) is not None:
            await withdrawal  # goodbye packets while the process still can
        if self._identity is not None:
            await self._identity.close()
        if self._transport is not None:
            await self._transport.close()
