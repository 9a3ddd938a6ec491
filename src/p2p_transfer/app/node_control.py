"""The app's node: started with the settings, restarted when the name or relay changes.

While it runs it receives all the time (its offers go to the app's decider),
announces itself and keeps the LAN device table; every event it emits goes to
the app (``on_event``). What it reports for the Devices and WAN views (relay
state, discovery trouble) is kept here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from p2p_transfer.app.errors import BusyError
from p2p_transfer.app.events import NodeStateEvent
from p2p_transfer.app.settings import Settings
from p2p_transfer.discovery import Device, DeviceBrowser, DiscoveryError
from p2p_transfer.errors import LocalFault
from p2p_transfer.events import DiscoveryErrorEvent, ErrorEvent, Event, LogEvent, RelayEvent
from p2p_transfer.localsend.discovery import LocalSendDevice, others
from p2p_transfer.net import NetError
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.transfer import Decider, ReceiveOptions
from p2p_transfer.transfer.session import DataTransport
from p2p_transfer.trust import IdentityError

log = logging.getLogger(__name__)

NodeState = Literal["starting", "running", "stopped"]


class NodeStartError(LocalFault):
    """The node could not start (its key, its address); the message says why."""


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """What the app's node is built with besides the settings."""

    config_dir: Path
    bind_addr: str | None
    discovery: bool
    umask: int
    transport: DataTransport


class NodeControl:
    """Starts, stops and restarts the app's one node."""

    def __init__(
        self,
        options: NodeOptions,
        emit: Callable[[Event], None],
        on_event: Callable[[Event], None],
        decide: Decider,
    ) -> None:
        self._options = options
        self._emit = emit
        self._on_event = on_event
        self._decide = decide
        self.node: Node | None = None
        self.state: NodeState = "stopped"
        self.message = ""
        self.relay: RelayEvent | None = None
        self.discovery_error = ""
        #: Why LocalSend devices cannot send here ("" when they can, or it is off).
        self.localsend_error = ""
        self.browser: DeviceBrowser | None = None
        self.receive_options: ReceiveOptions | None = None
        self._lock = asyncio.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._serve_task: asyncio.Task[Any] | None = None
        self._relay_task: asyncio.Task[Any] | None = None

    @property
    def announces(self) -> bool:
        """Whether this app announces itself and looks for LAN devices (``--no-announce``
        turns it off): only then can a device never reached before be found."""
        return self._options.discovery

    @property
    def running(self) -> Node:
        """The node, or BusyError while it (re)starts: what every action on it needs."""
        if self.node is None:
            raise BusyError(f"the node is not running ({self.message or self.state})")
        return self.node

    def _set_state(self, state: NodeState, device_name: str, message: str = "") -> None:
        self.state, self.message = state, message
        node = self.node
        self._emit(NodeStateEvent(
            state, device_name, node.endpoint_id if node is not None else "", message
        ))

    async def start(self, settings: Settings) -> Node:
        """Start the node the settings describe: receiving, announced, answering HOST:PORT."""
        async with self._lock:
            self._set_state("starting", settings.device_name)
            # A stable port, as ``receive``'s: where devices last reached this one (and
            # sends in their outboxes wait to reach it again) stays right across restarts.
            config = NodeConfig(
                self._options.config_dir, settings.device_name, self._options.bind_addr,
                settings.relay, stable_port=True,
            )
            try:
                node = await Node.start(config)
            except (IdentityError, NetError) as exc:
                self._set_state("stopped", settings.device_name, str(exc))
                raise NodeStartError(f"cannot start the node: {exc}") from None
            node.pairings.lifetime = settings.pairing_lifetime_seconds
            self.node = node
            self._unsubscribe = node.events.subscribe(self._watch)
            self.receive_options = ReceiveOptions(
                target=settings.download_path, umask=self._options.umask,
                transport=self._options.transport,
            )
            self._serve_task = asyncio.create_task(
                node.serve(self.receive_options, self._decide), name="app-serve"
            )
            self._serve_task.add_done_callback(self._serve_ended)
            self.relay = None
            if settings.relay != "off":
                self._relay_task = asyncio.create_task(node.connect_relay(), name="app-relay")
            node.announce_ticket()
            if self._options.discovery:
                await self._start_discovery(node)
            await node.answer_address_queries()  # others may send to HOST:PORT
            await self._start_localsend(node, settings)
            self._set_state("running", settings.device_name)
            return node

    async def stop(self, device_name: str) -> None:
        """Stop the node (its sessions end cancelled, told on its events)."""
        async with self._lock:
            self.browser = None  # the node closes its discovery
            node, self.node = self.node, None
            for task in (self._serve_task, self._relay_task):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            self._serve_task = self._relay_task = None
            if node is not None:
                await node.close()
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            self._set_state("stopped", device_name)

    async def _start_localsend(self, node: Node, settings: Settings) -> None:
        """Let LocalSend devices send here (their offers go to the app's dialog too); a
        taken port is only reported."""
        from p2p_transfer.localsend import CertificateError, ReceiverSetup

        self.localsend_error = ""
        if not settings.localsend or self.receive_options is None:
            return
        setup = ReceiverSetup(self.receive_options, self._decide, settings.localsend_pin or None)
        try:
            await node.start_localsend(
                setup, settings.localsend_port, announce=self._options.discovery
            )
        except (OSError, CertificateError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.localsend_error = (
                f"LocalSend devices cannot send here: TCP port {settings.localsend_port}: {reason}"
            )
            self._watch(LogEvent("warning", "localsend", self.localsend_error))

    def _serve_ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("the receiver stopped", exc_info=exc)
            self.message = f"receiving stopped: {exc}"
            self._emit(ErrorEvent(f"receiving stopped: {exc}"))

    async def _start_discovery(self, node: Node) -> None:
        """Announce on the LAN and keep the device table (trouble is only an event)."""
        self.discovery_error = ""
        try:
            self.browser = await node.browse_lan()
        except (DiscoveryError, OSError) as exc:
            self._watch(DiscoveryErrorEvent(f"cannot look for devices: {exc}"))

    def _watch(self, event: Event) -> None:
        """Note what the views report (relay state, discovery trouble), then pass it on."""
        if isinstance(event, DiscoveryErrorEvent):
            self.discovery_error = event.message
        elif isinstance(event, RelayEvent):
            self.relay = event
        self._on_event(event)

    def devices(self) -> list[Device]:
        """The devices on the LAN right now."""
        return self.browser.devices() if self.browser is not None else []

    def localsend_devices(self) -> list[LocalSendDevice]:
        """The LocalSend devices heard from lately (none while LocalSend is off), without
        our own devices (they announce to LocalSend too, and are listed as ours)."""
        node = self.node
        if node is None or node.localsend is None:
            return []
        ours = [(d.name, d.addresses) for d in self.devices()]
        return others(node.localsend.table.devices(), ours)

    def device(self, endpoint_id: str) -> Device | None:
        """The LAN device with this endpoint ID, if it is there."""
        wanted = endpoint_id.lower()
        return next((d for d in self.devices() if d.endpoint_id == wanted), None)
