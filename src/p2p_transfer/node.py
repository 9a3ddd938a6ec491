"""The composition root: one Node owns the endpoint, trust stores, sessions and event stream.

Front ends (CLI, web app) build a Node, subscribe to its events and call its
methods; nothing below them prints or prompts. Every session (a send, a
receive, a share upload) gets its ID here when it starts; every event it
emits carries that ID, and ``cancel`` stops it by that ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from p2p_transfer.discovery import (
    AmbiguousDeviceError,
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
    LocalSendReadyEvent,
    LogEvent,
    RelayEvent,
    SessionState,
    TicketEvent,
)
from p2p_transfer.lifecycle import Lifecycle, new_session_id
from p2p_transfer.limits import DISCOVERY_SETTLE_TIME, LOCALSEND_PORT, RELAY_ONLINE_TIMEOUT
from p2p_transfer.net import (
    RELAY_OFF,
    IdentityResponder,
    IncomingConnection,
    NetError,
    Transport,
    bind_host,
    fetch_ticket,
    parse_host_port,
    parse_ticket,
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
    from p2p_transfer.localsend import (
        DeviceInfo,
        LocalSendDevice,
        LocalSendService,
        PinPrompt,
        ReceiverSetup,
        Target,
    )
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
        #: Sessions that got as far as an offer end here while ``serve`` runs.
        self._finished: asyncio.Queue[TransferResult] | None = None
        self.localsend: LocalSendService | None = None

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
        to: str | Target,
        paths: list[Path],
        options: SendOptions,
        ask_code: CodePrompt | None = None,
        ask_pin: PinPrompt | None = None,
    ) -> RunningSession:
        """Start sending ``paths`` (or, with no paths, the text message ``options.text``)
        to ``to``: a ticket, HOST:PORT, a LAN device name, or a LocalSend device
        (``localsend:HOST[:PORT]``, its name, or a ``Target`` found by discovery);
        ``ask_pin`` asks for the PIN a LocalSend device may require. Several receivers
        are several calls: each is its own session."""
        session = self._new_session("send")

        async def send() -> TransferResult:
            session.lifecycle.advance(SessionState.CONNECTING)
            target = await self._send_target(to)
            if isinstance(target, str):
                sender = SendSession(
                    session.lifecycle, self.transport, self.config.device_name, self.events,
                    self.pairings, options, ask_code,
                )
                named = "" if isinstance(to, str) and looks_like_ticket(to) else str(to).strip()
                return await sender.run(target, paths, named)
            return await self._send_localsend(session.lifecycle, target, paths, options, ask_pin)

        self._run(session, send())
        return session

    async def send(
        self,
        to: str | Target,
        paths: list[Path],
        options: SendOptions,
        ask_code: CodePrompt | None = None,
        ask_pin: PinPrompt | None = None,
    ) -> TransferResult:
        """Send ``paths`` to ``to`` and wait for the outcome (failures are results too)."""
        return await self.start_send(to, paths, options, ask_code, ask_pin).outcome()

    async def _send_target(self, to: str | Target) -> str | Target:
        """A ticket for our own protocol, or a LocalSend device to send to."""
        from p2p_transfer.localsend.address import parse_localsend_address

        if not isinstance(to, str):
            return to
        if (address := parse_localsend_address(to)) is not None:
            return address
        if looks_like_ticket(to) or parse_host_port(to) is not None:
            return await self.resolve(to)
        return await self._resolve_name(to)

    async def _send_localsend(
        self,
        lifecycle: Lifecycle,
        target: Target,
        paths: list[Path],
        options: SendOptions,
        ask_pin: PinPrompt | None,
    ) -> TransferResult:
        from p2p_transfer.localsend import LocalSendClient, LocalSendSender

        client = LocalSendClient(await self._localsend_info())
        try:
            sender = LocalSendSender(lifecycle, self.events, client, target, options, ask_pin)
            return await sender.run(paths)
        finally:
            await client.close()

    async def _localsend_info(self, announce: bool | None = None) -> DeviceInfo:
        """How we describe ourselves to LocalSend devices: our certificate's fingerprint if
        we have one (so a scan never lists ourselves), else a random one (a sender or a
        listing needs no certificate, and makes none)."""
        from p2p_transfer.localsend.identity import existing_fingerprint, own_info

        if self.localsend is not None:
            return self.localsend.info_for_announce(announce)
        fingerprint = await asyncio.to_thread(existing_fingerprint, self.config.config_dir)
        return own_info(self.config.device_name, fingerprint or secrets.token_hex(32).upper(),
                        LOCALSEND_PORT, announce=announce)

    # --- receiving -----------------------------------------------------------------

    async def serve(
        self, options: ReceiveOptions, decide: Decider, once: bool = False
    ) -> TransferResult | None:
        """Accept senders until closed; with ``once``, return after the first offer's session."""
        # The first offer takes a ``once`` node: nobody else should find it from then
        # on, and its goodbyes go out while the files move, not when the user waits.
        unsubscribe = self.events.subscribe(self._withdraw_on_decision) if once else None
        # The first offer's result, for ``once`` only: a result holds its session's error,
        # whose traceback holds what the session held (its manifest, say).
        finished: asyncio.Queue[TransferResult] = asyncio.Queue(maxsize=1)
        self._finished = finished if once else None
        acceptor = asyncio.create_task(
            self._accept_loop(options, decide, self._finished)
        )
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
            self._finished = None
            if unsubscribe is not None:
                unsubscribe()
            acceptor.cancel()
            await self._stop_connections()

    def _withdraw_on_decision(self, event: Event) -> None:
        if isinstance(event, DecisionEvent):
            self.withdraw_from_lan()

    async def _accept_loop(
        self,
        options: ReceiveOptions,
        decide: Decider,
        finished: asyncio.Queue[TransferResult] | None,
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
        finished: asyncio.Queue[TransferResult] | None,
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
            if finished is not None and receiver.offered and result is not None:
                with contextlib.suppress(asyncio.QueueFull):
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

    async def _resolve_name(self, to: str) -> str | Target:
        """A device name (or ID prefix): ours on the LAN, or a LocalSend device's alias; a
        name both answer to is an error listing both (the user picks by ticket or address).
        A device of ours, which also announces itself to LocalSend, is ours."""
        from p2p_transfer.localsend.discovery import others

        scan = asyncio.create_task(self.scan_localsend(DISCOVERY_SETTLE_TIME * 2))
        try:
            ours: str | DiscoveryError = await self.resolve(to)
        except DiscoveryError as exc:
            ours = exc
        except BaseException:
            scan.cancel()
            raise
        named = [d for d in await scan if d.name.casefold() == to.strip().casefold()]
        if isinstance(ours, str):
            addresses = [str(a) for a in parse_ticket(ours).direct_addresses()]
            named = others(named, [(to.strip(), addresses)])
        if not named:
            if isinstance(ours, DiscoveryError):
                raise ours
            return ours
        listing = "; ".join(f"LocalSend: {d.name} at {d.address} (localsend:{d.address})"
                            for d in named)
        if isinstance(ours, str | AmbiguousDeviceError):
            raise AmbiguousDeviceError(
                f"{to!r} names a LocalSend device and a p2p-transfer device: {listing}; "
                "send with --to localsend:HOST:PORT, or the other device's ticket", [],
            )
        if len(named) > 1:
            raise AmbiguousDeviceError(f"{to!r} names several LocalSend devices: {listing}", [])
        return named[0].target()

    async def scan_localsend(self, seconds: float) -> list[LocalSendDevice]:
        """LocalSend devices heard within ``seconds``: ours announces and listens (the
        running service's table, if it runs). Never raises: without multicast, none."""
        from p2p_transfer.localsend import DeviceTable, MulticastDiscovery

        if self.localsend is not None:
            if self.localsend.discovery is not None:
                self.localsend.discovery.announce()
                await asyncio.sleep(seconds)
            return self.localsend.table.devices()
        info = await self._localsend_info(announce=True)
        table = DeviceTable(info.fingerprint)
        discovery = MulticastDiscovery(
            lambda announce: msgspec.structs.replace(info, announce=announce), table, None,
            answer=False,
        )
        try:
            await discovery.start(announce=False)
        except OSError as exc:
            self.events.emit(LogEvent("warning", "localsend",
                                      f"cannot look for LocalSend devices: {exc}"))
            return []
        try:
            discovery.announce()
            await asyncio.sleep(seconds)
        finally:
            await discovery.close()
        return table.devices()

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
        """Devices of ours that announce themselves on the LAN within ``timeout`` s, this
        one excluded."""
        from p2p_transfer.discovery import Discovery  # zeroconf is loaded only when used

        discovery = await Discovery.start(own_endpoint_id=self.own_endpoint_id())
        try:
            return await discovery.list_devices(timeout)
        finally:
            await discovery.close()

    async def list_all_devices(self, timeout: float) -> list[Device | LocalSendDevice]:
        """``list_devices`` and the LocalSend devices heard meanwhile (``p2p-transfer
        devices``); a device of ours, which announces to LocalSend too, is listed once."""
        from p2p_transfer.localsend.discovery import others

        scan = asyncio.create_task(self.scan_localsend(timeout))
        try:
            ours = await self.list_devices(timeout)
        except BaseException:
            scan.cancel()
            raise
        found: list[Device | LocalSendDevice] = list(ours)
        return found + others(await scan, [(d.name, d.addresses) for d in ours])

    # --- LocalSend -------------------------------------------------------------------

    async def start_localsend(
        self, setup: ReceiverSetup, port: int, *, announce: bool = True
    ) -> LocalSendService:
        """Serve LocalSend devices on ``port`` (HTTPS) until ``close``: their offers are
        receive sessions of this node, asked through ``setup.decide``; with ``announce``,
        announce this device on the LAN and answer others' announcements.
        Raises OSError when the port is taken."""
        from p2p_transfer.localsend import LocalSendService  # aiohttp, only when used

        if self._receiving is not None:  # one manifest budget for the offers of both doors
            setup.manifests = self._receiving.manifests
        self.localsend = await LocalSendService.start(
            self.config.config_dir, self.config.device_name, self.events, setup,
            self._launch_receive, host=bind_host(self.config.bind_addr or "0.0.0.0"), port=port,
            announce=announce,
        )
        self.events.emit(LocalSendReadyEvent(
            self.config.device_name, self.localsend.port, self.localsend.fingerprint,
            self.localsend.discovery is not None,
        ))
        return self.localsend

    def _launch_receive(
        self, work: Callable[[Lifecycle], Awaitable[TransferResult | None]]
    ) -> asyncio.Task[TransferResult | None]:
        """Run a receive session that came in by another door (LocalSend) as one of ours."""
        session = self._new_session("receive")
        task = self._run(session, work(session.lifecycle))
        finished = self._finished
        if finished is not None:
            def report(done: asyncio.Task[TransferResult | None]) -> None:
                if not done.cancelled() and done.exception() is None and (
                    result := done.result()
                ) is not None:
                    with contextlib.suppress(asyncio.QueueFull):
                        finished.put_nowait(result)

            task.add_done_callback(report)
        return task

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
        if self.localsend is not None:
            await self.localsend.close()
        for share in self._shares:
            await share.stop()
        if (withdrawal := self.withdraw_from_lan()) is not None:
            await withdrawal  # goodbye packets while the process still can
        if self._identity is not None:
            await self._identity.close()
        if self._transport is not None:
            await self._transport.close()
