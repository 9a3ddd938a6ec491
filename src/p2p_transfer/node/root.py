"""The composition root: one Node builds its parts, wires them and closes them in order.

Front ends (CLI, web app) build a Node, subscribe to its events and call its
methods; nothing below them prints or prompts. Its parts, one job and one module
each, are listed in this package's ``__init__``.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_transfer.events import DecisionEvent, Event, EventBus, RelayEvent, TicketEvent
from p2p_transfer.lifecycle import new_session_id
from p2p_transfer.net import NetError, Transport
from p2p_transfer.node.codes import CodeRoute, Redirect
from p2p_transfer.node.config import NodeConfig, endpoint
from p2p_transfer.node.inbox import Inbox
from p2p_transfer.node.localsend_bridge import LocalSendBridge
from p2p_transfer.node.port import remember_port, stable_bind, stable_relay
from p2p_transfer.node.presence import Presence
from p2p_transfer.node.reachability import Reachability
from p2p_transfer.node.sending import ConfirmPrompt, Dispatcher
from p2p_transfer.node.sessions import RunningSession, SessionRegistry
from p2p_transfer.transfer import (
    CodePrompt,
    ContinuationStore,
    Decider,
    ReceiveOptions,
    ReceiverServices,
    SendOptions,
    TransferResult,
)
from p2p_transfer.trust import AttemptLimiter, PairingStore, load_or_create_secret_key
from p2p_transfer.trust.files import ensure_private_dir

if TYPE_CHECKING:
    from p2p_transfer.discovery import Device, DeviceBrowser
    from p2p_transfer.localsend import (
        LocalSendDevice,
        LocalSendService,
        PinPrompt,
        ReceiverSetup,
        Target,
    )
    from p2p_transfer.share import ShareConfig, ShareServer


class Node:
    """One running p2p-transfer instance."""

    def __init__(
        self, config: NodeConfig, transport: Transport | None, pairings: PairingStore
    ) -> None:
        self.config = config
        self._transport = transport
        self.pairings = pairings
        self.events = EventBus()
        self.sessions = SessionRegistry(self.events)
        #: What our receive sessions share; LocalSend's offers draw on its manifest budget.
        self._receiving = self._receiver_services()
        self.inbox = Inbox(self.sessions, transport, self._receiving)
        self.localsend_bridge = LocalSendBridge(config, self.events, self.inbox.launch)
        self.presence = Presence(
            config, self.events, transport, self.localsend_bridge, pairings
        )
        self.reachability = Reachability(config, self.events, transport)
        self._dispatcher = Dispatcher(
            config, self.events, pairings, transport, self.presence, self.localsend_bridge
        )
        self.codes = CodeRoute(config, self.events, pairings, transport, self.inbox)
        self._shares: list[ShareServer] = []

    def _receiver_services(self) -> ReceiverServices | None:
        """What every receive session of ours shares (none without an endpoint)."""
        transport = self._transport
        if transport is None:
            return None
        local = transport.local_udp_socket
        return ReceiverServices(
            self.config.device_name, transport.endpoint_id, self.events, self.pairings,
            AttemptLimiter(self.config.config_dir),
            data_host=local[0] if local else "0.0.0.0",
            continuations=ContinuationStore(self.config.config_dir),
        )

    @classmethod
    async def start(cls, config: NodeConfig) -> Node:
        """Load (or create) the identity and bind the endpoint."""
        ensure_private_dir(config.config_dir)
        key = await asyncio.to_thread(load_or_create_secret_key, config.config_dir)
        transport = await _bind(key, config)
        return cls(config, transport, PairingStore(config.config_dir))

    @classmethod
    def without_endpoint(cls, config: NodeConfig) -> Node:
        """A node for commands that never send or receive peer to peer (``devices``,
        ``share``): no endpoint is bound and no identity is created."""
        return cls(config, None, PairingStore(config.config_dir))

    @property
    def transport(self) -> Transport:
        """The endpoint (a node made ``without_endpoint`` has none)."""
        return endpoint(self._transport)

    @property
    def endpoint_id(self) -> str:
        """This node's public key."""
        return self.transport.endpoint_id

    def own_endpoint_id(self) -> str | None:
        """This device's endpoint ID if it has an identity (never creates one)."""
        return self.presence.own_endpoint_id()

    # --- sessions ------------------------------------------------------------------

    def start_send(
        self,
        to: str | Target,
        paths: list[Path],
        options: SendOptions,
        ask_code: CodePrompt | None = None,
        ask_pin: PinPrompt | None = None,
        confirm: ConfirmPrompt | None = None,
        *,
        session_id: str | None = None,
    ) -> RunningSession:
        """Start sending ``paths`` (or, with no paths, the text message ``options.text``)
        to ``to``: a ticket, HOST:PORT, a LAN device name, or a LocalSend device
        (``localsend:HOST[:PORT]``, its name, or a ``Target`` found by discovery);
        ``ask_pin`` asks for the PIN a LocalSend device may require, ``confirm`` whether
        to go on to a LocalSend device found by name (None: go on; the ``route`` event
        carries the warning). Several receivers are several calls: each is its own
        session. ``session_id``: one made earlier (a send that waited in the app's outbox
        keeps the ID its card had)."""
        return self.sessions.start("send", lambda lifecycle: self._dispatcher.send(
            lifecycle, to, paths, options, ask_code, ask_pin, confirm
        ), session_id)

    async def send(
        self,
        to: str | Target,
        paths: list[Path],
        options: SendOptions,
        ask_code: CodePrompt | None = None,
        ask_pin: PinPrompt | None = None,
        confirm: ConfirmPrompt | None = None,
    ) -> TransferResult:
        """Send ``paths`` to ``to`` and wait for the outcome (failures are results too)."""
        return await self.start_send(to, paths, options, ask_code, ask_pin, confirm).outcome()

    def start_send_by_code(
        self,
        paths: list[Path],
        options: SendOptions,
        mailbox: str,
        redirect: asyncio.Future[Redirect] | None = None,
        transit_relay: str | None = None,
        code: str | None = None,
    ) -> RunningSession:
        """Start a send by code: its ``invite`` event carries the code to type on the
        other device (a new one, or ``code`` as the person chose it); ``redirect`` (a
        device the person picked instead) cancels the code and sends there, in the same
        session."""
        return self.sessions.start("send", lambda lifecycle: self.codes.send(
            lifecycle, paths, options, mailbox, redirect, transit_relay, code
        ))

    def redirect_to(
        self, to: str | Target, paths: list[Path], options: SendOptions,
        ask_code: CodePrompt | None = None, ask_pin: PinPrompt | None = None,
    ) -> Redirect:
        """A send by code's redirect: a plain send to ``to``, in the code's session."""
        return lambda lifecycle: self._dispatcher.send(
            lifecycle, to, paths, options, ask_code, ask_pin
        )

    async def receive_by_code(
        self, code: str, options: ReceiveOptions, decide: Decider, mailbox: str,
        transit_relay: str | None = None, wait: float = 0.0,
    ) -> TransferResult | None:
        """Receive what ``code`` brings: meet its sender (waiting up to ``wait`` s for one
        that is not there yet), then one receive session (``transit_relay``: for a
        magic-wormhole sender; None for the usual one)."""
        return await self.codes.receive(code, options, decide, mailbox, transit_relay, wait)

    async def serve(
        self, options: ReceiveOptions, decide: Decider, once: bool = False
    ) -> TransferResult | None:
        """Accept senders until closed; with ``once``, return after the first offer's session."""
        # The first offer takes a ``once`` node: nobody else should find it from then
        # on, and its goodbyes go out while the files move, not when the user waits.
        unsubscribe = self.events.subscribe(self._withdraw_on_decision) if once else None
        try:
            return await self.inbox.serve(options, decide, once)
        finally:
            if unsubscribe is not None:
                unsubscribe()

    def _withdraw_on_decision(self, event: Event) -> None:
        if isinstance(event, DecisionEvent):
            self.presence.withdraw_from_lan()

    def cancel(self, session_id: str) -> bool:
        """Cancel a running session (either direction); False if there is none by that ID."""
        return self.sessions.cancel(session_id)

    # --- being found and reached ---------------------------------------------------

    async def connect_relay(self) -> RelayEvent | None:
        """With a relay chosen, wait briefly for it and say whether it is reachable."""
        return await self.reachability.connect_relay()

    def connect_relay_in_background(self) -> None:
        """Reach the chosen relay without delaying anything; a ticket naming it follows
        the first one once it answers (a relay event says how it went either way)."""
        self.reachability.connect_relay_in_background(
            lambda: self.presence.discovery is not None
        )

    def announce_ticket(self) -> TicketEvent:
        """Emit (and return) the ticket event peers need to reach this node; it says
        whether this node is announced on the LAN (after ``announce_on_lan``)."""
        return self.reachability.announce_ticket(self.presence.discovery is not None)

    async def answer_address_queries(self) -> None:
        """Let ``send --to HOST:PORT`` learn our ticket (TCP, same port number as QUIC)."""
        await self.reachability.answer_address_queries()

    async def announce_on_lan(self) -> None:
        """Announce this node on the LAN (mDNS) until ``close``; a failure is only an event."""
        await self.presence.announce_on_lan()

    async def browse_lan(self) -> DeviceBrowser | None:
        """The live table of LAN devices (announcing this node first, if it does not yet)."""
        return await self.presence.browse_lan()

    def withdraw_from_lan(self) -> asyncio.Task[None] | None:
        """Stop announcing this node; the goodbye packets go out in the background."""
        return self.presence.withdraw_from_lan()

    async def list_devices(self, timeout: float) -> list[Device]:
        """Devices of ours announcing themselves on the LAN within ``timeout`` s, not us."""
        return await self.presence.list_devices(timeout)

    async def list_all_devices(self, timeout: float) -> list[Device | LocalSendDevice]:
        """``list_devices`` and the LocalSend devices heard meanwhile, each once."""
        return await self.presence.list_all_devices(timeout)

    # --- other doors: LocalSend, the browser share -----------------------------------

    @property
    def localsend(self) -> LocalSendService | None:
        """The LocalSend service, once ``start_localsend`` started it."""
        return self.localsend_bridge.service

    async def start_localsend(
        self, setup: ReceiverSetup, port: int, *, announce: bool = True
    ) -> LocalSendService:
        """Serve LocalSend devices on ``port`` (HTTPS) until ``close``: their offers are
        receive sessions of this node, asked through ``setup.decide``; with ``announce``,
        announce this device on the LAN and answer others' announcements.
        Raises OSError when the port is taken."""
        if self._receiving is not None:  # one manifest budget for the offers of both doors
            setup.manifests = self._receiving.manifests
        return await self.localsend_bridge.start(setup, port, announce=announce)

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
        await self.sessions.close()
        await self.inbox.close()
        await self.localsend_bridge.close()
        for share in self._shares:
            await share.stop()
        await self.presence.close()  # goodbye packets while the process still can
        await self.reachability.close()
        if self._transport is not None:
            await self._transport.close()


async def _bind(key: bytes, config: NodeConfig) -> Transport:
    """The endpoint; a receiver's on its remembered port when it is free (else any port),
    remembered for the next start, and with its one relay (``stable_relay``)."""
    preferred = stable_bind(config.config_dir, config.bind_addr) if config.stable_port else None
    relay = config.relay
    if config.stable_port:  # its ticket names its relay from the start
        relay = await asyncio.to_thread(stable_relay, config.config_dir, config.relay)
    transport: Transport | None = None
    if preferred is not None:
        with contextlib.suppress(NetError):  # taken (another receiver): any port will do
            transport = await Transport.bind(key, preferred, relay)
    if transport is None:
        transport = await Transport.bind(key, config.bind_addr, relay)
    if config.stable_port and (local := transport.local_udp_socket) is not None:
        await asyncio.to_thread(remember_port, config.config_dir, local[1])
    return transport
