"""Presence: who is on this network, and what a ``--to`` name means.

This node announces itself on the LAN (mDNS) and browses for others; LocalSend
devices are heard by scanning their multicast. Every way of turning a ``--to``
(a ticket, HOST:PORT, a device name, a LocalSend address or alias) into
something to send to is here, in one place: ``route`` (what a name means, once
looked up, is decided in ``names``).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import TYPE_CHECKING

import msgspec

from p2p_transfer.discovery import (
    Announcement,
    Device,
    DeviceNotFoundError,
    DiscoveryError,
    device_ticket,
    looks_like_ticket,
    port_of,
)
from p2p_transfer.events import (
    DeviceEvent,
    DiscoveryErrorEvent,
    EventBus,
    LogEvent,
    LookupEvent,
)
from p2p_transfer.limits import DISCOVERY_SETTLE_TIME, PAIRED_LOOKUP_WINDOW
from p2p_transfer.net import Transport, fetch_ticket, parse_host_port, ticket_via
from p2p_transfer.node.config import NodeConfig, endpoint
from p2p_transfer.node.localsend_bridge import LocalSendBridge
from p2p_transfer.node.names import (
    Route,
    localsend_route,
    paired_named,
    route_for_name,
    ticket_route,
)
from p2p_transfer.node.routes import remembered_ticket
from p2p_transfer.trust import PairingStore
from p2p_transfer.trust.identity import existing_endpoint_id

if TYPE_CHECKING:
    from p2p_transfer.discovery import DeviceBrowser, Discovery
    from p2p_transfer.localsend import LocalSendDevice, Target


class Presence:
    """This node on the LAN (announced, browsing) and the resolution of names."""

    def __init__(
        self,
        config: NodeConfig,
        events: EventBus,
        transport: Transport | None,
        localsend: LocalSendBridge,
        pairings: PairingStore,
    ) -> None:
        self._config = config
        self._events = events
        self._transport = transport
        self._localsend = localsend
        self._pairings = pairings
        #: The LAN announcement, after ``announce_on_lan``.
        self.discovery: Discovery | None = None
        self._withdrawal: asyncio.Task[None] | None = None

    def own_endpoint_id(self) -> str | None:
        """This device's endpoint ID if it has an identity (never creates one)."""
        if self._transport is not None:
            return self._transport.endpoint_id
        return existing_endpoint_id(self._config.config_dir)

    # --- this node on the LAN ------------------------------------------------------

    async def announce_on_lan(self) -> None:
        """Announce this node on the LAN (mDNS) until ``close``.

        Never raises: a network without multicast still works with tickets, so
        a failure only becomes a ``discovery_error`` event.
        """
        from p2p_transfer.discovery import Discovery  # zeroconf is loaded only when used

        transport = endpoint(self._transport)
        try:
            self.discovery = await Discovery.start(self._events, transport.endpoint_id)
        except DiscoveryError as exc:
            self._events.emit(DiscoveryErrorEvent(str(exc)))
            return
        addresses = tuple(transport.addresses)
        self.discovery.announce_in_background(
            Announcement(self._config.device_name, transport.endpoint_id, addresses,
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

    async def close(self) -> None:
        """Withdraw, and wait for the goodbye packets while the process still can."""
        if (withdrawal := self.withdraw_from_lan()) is not None:
            await withdrawal

    # --- what a --to means ---------------------------------------------------------

    async def send_target(self, to: str | Target) -> str | Target:
        """A ticket for our own protocol, or a LocalSend device to send to."""
        return (await self.route(to)).target

    async def route(self, to: str | Target, session: str = "") -> Route:
        """Where ``to`` leads (a ticket, HOST:PORT, ``localsend:HOST``, a device picked
        from a list, or a name) and how it was found; a name lookup is said first as a
        ``lookup`` event of ``session``, since it may take seconds."""
        from p2p_transfer.localsend.address import parse_localsend_address

        if not isinstance(to, str):
            return localsend_route(to, "device")
        if (address := parse_localsend_address(to)) is not None:
            return localsend_route(address, "address")
        if looks_like_ticket(to):
            return ticket_route(await self.resolve(to), "ticket")
        if parse_host_port(to) is not None:
            if session:
                self._events.emit(LookupEvent(session, to.strip(), "address"))
            return ticket_route(await self.resolve(to), "address")
        name = to.strip()
        if session:
            self._events.emit(LookupEvent(session, name))
        return await self._route_name(name)

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
        self._events.emit(DeviceEvent(device.name, device.endpoint_id, list(device.addresses)))
        return device_ticket(device)

    async def _route_name(self, name: str) -> Route:
        """A device name (or ID prefix): looked up on the LAN (mDNS), among the pairings and
        among LocalSend devices at once; ``names.route_for_name`` decides what it means.
        A paired device that was reached before is looked for on the LAN only briefly:
        past that, it is dialed where it was last reached."""
        paired = paired_named(name, self._pairings.list())
        window = PAIRED_LOOKUP_WINDOW if any(map(remembered_ticket, paired)) else None
        scan = asyncio.create_task(self.scan_localsend(DISCOVERY_SETTLE_TIME * 2))
        try:
            lan = await self._on_lan(name, window)
        except BaseException:
            scan.cancel()
            raise
        heard = [d for d in await scan if d.name.casefold() == name.casefold()]
        return route_for_name(name, lan, paired, heard)

    async def _on_lan(self, name: str, window: float | None) -> str | DiscoveryError:
        """The LAN's answer for ``name``: a ticket, or why there is none (within ``window``
        seconds when given)."""
        try:
            async with asyncio.timeout(window):
                return await self.resolve(name)
        except TimeoutError:
            return DeviceNotFoundError(f"no device named {name!r} answered in {window:g} s")
        except DiscoveryError as exc:
            return exc

    # --- who is out there ----------------------------------------------------------

    async def scan_localsend(self, seconds: float) -> list[LocalSendDevice]:
        """LocalSend devices heard within ``seconds``: ours announces and listens (the
        running service's table, if it runs). Never raises: without multicast, none."""
        from p2p_transfer.localsend import DeviceTable, MulticastDiscovery

        service = self._localsend.service
        if service is not None:
            if service.discovery is not None:
                service.discovery.announce()
                await asyncio.sleep(seconds)
            return service.table.devices()
        info = await self._localsend.info(announce=True)
        if await asyncio.to_thread(_port_in_use, info.port):
            self._events.emit(LogEvent("warning", "localsend", (
                f"LocalSend devices cannot be found from here: they answer on TCP port "
                f"{info.port}, which another program holds (`p2p-transfer app` perhaps); "
                "send to one with --to localsend:HOST, or from that program"
            )))
        table = DeviceTable(info.fingerprint)
        discovery = MulticastDiscovery(
            lambda announce: msgspec.structs.replace(info, announce=announce), table, None,
            answer=False,
        )
        try:
            await discovery.start(announce=False)
        except OSError as exc:
            self._events.emit(LogEvent("warning", "localsend",
                                       f"cannot look for LocalSend devices: {exc}"))
            return []
        try:
            discovery.announce()
            await asyncio.sleep(seconds)
        finally:
            await discovery.close()
        return table.devices()

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


def _port_in_use(port: int) -> bool:
    """True when another program listens on TCP ``port`` of this machine: LocalSend
    devices answer an announcement there (HTTP ``register``), so that program hears
    them, and a scan of ours does not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no holder
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False
