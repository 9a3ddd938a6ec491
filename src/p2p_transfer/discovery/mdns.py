"""mDNS / DNS-SD with zeroconf: announcing this node and keeping the live device table.

One ``Discovery`` per process owns one ``AsyncZeroconf`` (its multicast
sockets on every IPv4 interface) and offers announcing, browsing and finding a
device by name. Failures here never stop a transfer: a network that blocks
multicast still works with tickets.

zeroconf keeps a service's PTR record for at least 1125 s whatever TTL it was
sent with, so it alone would keep a crashed device listed for ~19 minutes.
The browser therefore watches each device's SRV record (host TTL, 120 s),
asks for it again at 80/85/90/95 % of its life as RFC 6762 section 5.2 says,
and drops the device when it expires unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from zeroconf import (
    DNSOutgoing,
    DNSQuestion,
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceStateChange,
    current_time_millis,
)
from zeroconf import Error as ZeroconfError
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from p2p_transfer.discovery.records import (
    SERVICE_TYPE,
    Announcement,
    Device,
    DiscoveryError,
    announceable_addresses,
    decode_txt,
    encode_txt,
    host_ips,
    host_name,
    service_name,
    valid_addresses,
)
from p2p_transfer.discovery.table import DeviceTable, find_device, next_check_ms, refresh_step
from p2p_transfer.events import DeviceEvent, DeviceLostEvent, DiscoveryErrorEvent, EventBus
from p2p_transfer.limits import (
    DISCOVERY_FIND_TIMEOUT,
    DISCOVERY_MIN_SWEEP_DELAY,
    DISCOVERY_RECORD_TTL,
    DISCOVERY_RESOLVE_TIMEOUT_MS,
    DISCOVERY_SETTLE_TIME,
    DISCOVERY_SWEEP_INTERVAL,
    MAX_DISCOVERED_DEVICES,
)

log = logging.getLogger(__name__)

# DNS numbers (RFC 1035, RFC 2782, RFC 3596) for the refresh queries.
DNS_CLASS_IN = 1
DNS_TYPE_A = 1
DNS_TYPE_TXT = 16
DNS_TYPE_AAAA = 28
DNS_TYPE_SRV = 33
DNS_FLAGS_QUERY = 0x0000

Interfaces = Sequence[str] | None
#: Why a device left the table: its goodbye (or zeroconf's own expiry of its
#: PTR record), or its SRV record expiring unanswered.
LostReason = Literal["goodbye", "expired"]


class Announcer:
    """This node's DNS-SD service: registered on start, withdrawn with goodbyes on stop."""

    def __init__(
        self, zc: AsyncZeroconf, announcement: Announcement, ttl: int = DISCOVERY_RECORD_TTL
    ) -> None:
        addresses = announceable_addresses(announcement.addresses)
        if not addresses:
            raise DiscoveryError("nothing to announce: this endpoint has no direct address")
        self.announcement = replace(announcement, addresses=addresses)
        self._zc = zc
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            service_name(announcement.name, announcement.endpoint_id),
            port=announcement.port,
            properties=encode_txt(self.announcement),
            server=host_name(announcement.endpoint_id),
            host_ttl=ttl,
            other_ttl=ttl,
            parsed_addresses=host_ips(addresses),
        )
        self._registered = False
        self._broadcast: asyncio.Future[Any] | None = None

    @property
    def service_name(self) -> str:
        """The instance name actually registered (probing may have renamed it)."""
        return str(self._info.name)

    @property
    def registered(self) -> bool:
        """True between a successful ``start`` and ``stop``."""
        return self._registered

    async def start(self) -> None:
        """Probe for the name (~1.7 s), then register; the announcements go out in the background.

        A name collision (the same identity running twice) is resolved by
        zeroconf renaming the instance; the TXT record keeps the real name.
        """
        try:
            awaitable = await self._zc.async_register_service(self._info, allow_name_change=True)
        except (NonUniqueNameException, ZeroconfError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise DiscoveryError(f"cannot announce on the LAN: {reason}") from None
        self._registered = True
        self._broadcast = asyncio.ensure_future(awaitable)

    async def stop(self) -> None:
        """Withdraw the service: goodbye packets (TTL 0) so browsers drop it at once."""
        if not self._registered:
            return
        self._registered = False
        if self._broadcast is not None and not self._broadcast.done():
            self._broadcast.cancel()
            with contextlib.suppress(asyncio.CancelledError, ZeroconfError, OSError):
                await self._broadcast
        try:
            await (await self._zc.async_unregister_service(self._info))
        except (ZeroconfError, OSError) as exc:
            log.debug("goodbye for %s failed: %s", self.service_name, exc)


class DeviceBrowser:
    """Keeps the live device table for ``SERVICE_TYPE`` and emits device events.

    Runs entirely on the event loop; zeroconf calls ``_on_change`` there.
    """

    def __init__(
        self,
        zc: AsyncZeroconf,
        events: EventBus | None = None,
        own_endpoint_id: str | None = None,
    ) -> None:
        self._zc = zc
        self._events = events
        self.table = DeviceTable(own_endpoint_id)
        self._browser: AsyncServiceBrowser | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._resolving: dict[str, asyncio.Task[None]] = {}
        #: Per device: creation time of the SRV record last seen, and refresh steps sent.
        self._srv_created: dict[str, float] = {}
        self._steps_sent: dict[str, int] = {}
        self._waiters: set[asyncio.Future[None]] = set()

    def devices(self) -> list[Device]:
        """The devices seen so far, by name."""
        return self.table.devices()

    async def start(self) -> None:
        """Start browsing; the first answers usually arrive within a fraction of a second."""
        if self._browser is not None:
            return
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf, [SERVICE_TYPE], handlers=[self._on_change]
        )
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="discovery-sweep")

    async def stop(self) -> None:
        """Stop browsing and every pending lookup."""
        tasks = [*self._resolving.values()]
        if self._sweeper is not None:
            tasks.append(self._sweeper)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._resolving.clear()
        self._sweeper = None
        if self._browser is not None:
            browser, self._browser = self._browser, None
            await browser.async_cancel()
        self._notify()

    async def wait_for_change(self, timeout: float) -> None:
        """Return when the table changes, or after ``timeout`` seconds."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        try:
            await asyncio.wait({future}, timeout=timeout)
        finally:
            self._waiters.discard(future)

    def _notify(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.set_result(None)

    def _emit(self, event: DeviceEvent | DeviceLostEvent) -> None:
        self._notify()
        if self._events is not None:
            self._events.emit(event)

    # --- zeroconf callbacks -------------------------------------------------

    def _on_change(
        self, zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if service_type != SERVICE_TYPE or self._browser is None:
            return
        pending = self._resolving.pop(name, None)
        if pending is not None:
            pending.cancel()
        if state_change is ServiceStateChange.Removed:
            self._drop(name, "goodbye")
            return
        if len(self._resolving) >= MAX_DISCOVERED_DEVICES:
            return  # a flood of announcements: ignore more until some resolve
        task = asyncio.create_task(self._resolve(name), name=f"discovery-resolve {name}")
        self._resolving[name] = task
        task.add_done_callback(lambda t, n=name: self._resolve_done(n, t))

    def _resolve_done(self, name: str, task: asyncio.Task[None]) -> None:
        if self._resolving.get(name) is task:
            del self._resolving[name]
        if not task.cancelled() and task.exception() is not None:
            log.debug("resolving %s failed: %r", name, task.exception())

    async def _resolve(self, name: str) -> None:
        """Read a service's SRV/TXT/address records (from cache, else by asking)."""
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(self._zc.zeroconf, DISCOVERY_RESOLVE_TIMEOUT_MS):
            return
        decoded = decode_txt(info.decoded_properties)
        if decoded is None:
            return
        addresses = decoded.addresses
        if not addresses and info.port:
            # No addresses in TXT (a foreign implementation): use the A/AAAA records.
            addresses = valid_addresses(
                f"[{ip}]:{info.port}" if ":" in ip else f"{ip}:{info.port}"
                for ip in info.parsed_addresses()
            )
        device = Device(
            name=decoded.name,
            endpoint_id=decoded.endpoint_id,
            addresses=addresses,
            protocol=decoded.protocol,
            service_name=name,
        )
        change = self.table.upsert(device)
        if name in self.table:  # restart the refresh schedule from the fresh records
            self._srv_created.pop(name, None)
            self._steps_sent[name] = 0
        if change is not None:
            self._emit(DeviceEvent(device.name, device.endpoint_id, list(device.addresses)))

    def _drop(self, name: str, reason: LostReason) -> None:
        self._srv_created.pop(name, None)
        self._steps_sent.pop(name, None)
        device = self.table.remove(name)
        if device is not None:
            self._emit(DeviceLostEvent(device.name, device.endpoint_id, reason))

    # --- expiry and refresh ---------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            wait_ms = self.sweep() - current_time_millis()
            delay = min(DISCOVERY_SWEEP_INTERVAL, wait_ms / 1000.0)
            await asyncio.sleep(max(DISCOVERY_MIN_SWEEP_DELAY, delay))

    def sweep(self) -> float:
        """Refresh devices whose SRV record is aging, drop those whose record expired.

        Returns when (zeroconf milliseconds) the next device needs attention,
        so that short TTLs get every refresh point, not just one per interval.
        """
        zc = self._zc.zeroconf
        now = current_time_millis()
        next_ms = now + DISCOVERY_SWEEP_INTERVAL * 1000.0
        for name in self.table.names():
            if name in self._resolving:
                continue
            records = [
                r for r in zc.cache.get_all_by_details(name, DNS_TYPE_SRV, DNS_CLASS_IN)
                if not r.is_expired(now)
            ]
            if not records:
                self._drop(name, "expired")
                continue
            srv = max(records, key=lambda r: r.get_expiration_time(100))
            step = refresh_step(srv.created, srv.ttl, now)
            if step is None:
                self._drop(name, "expired")
                continue
            if self._srv_created.get(name) != srv.created:
                if name in self._srv_created:
                    self.table.touch(name)  # answered a refresh: seen again
                self._srv_created[name] = srv.created
                self._steps_sent[name] = 0
            if step > self._steps_sent.get(name, 0):
                self._steps_sent[name] = step
                self._send_refresh(name, getattr(srv, "server", None))
            next_ms = min(next_ms, next_check_ms(srv.created, srv.ttl, self._steps_sent[name]))
        return next_ms

    def _send_refresh(self, name: str, server: str | None) -> None:
        out = DNSOutgoing(DNS_FLAGS_QUERY)
        out.add_question(DNSQuestion(name, DNS_TYPE_SRV, DNS_CLASS_IN))
        out.add_question(DNSQuestion(name, DNS_TYPE_TXT, DNS_CLASS_IN))
        if server:
            out.add_question(DNSQuestion(server, DNS_TYPE_A, DNS_CLASS_IN))
        self._zc.zeroconf.async_send(out)


class Discovery:
    """The process's LAN discovery: one zeroconf instance, an announcer, a browser."""

    def __init__(
        self,
        zc: AsyncZeroconf,
        events: EventBus | None = None,
        own_endpoint_id: str | None = None,
    ) -> None:
        self._zc = zc
        self._events = events
        self._own = own_endpoint_id
        self._announcers: list[Announcer] = []
        self._announce_tasks: set[asyncio.Task[None]] = set()
        self._browser: DeviceBrowser | None = None
        self._closed = False

    @classmethod
    async def start(
        cls,
        events: EventBus | None = None,
        own_endpoint_id: str | None = None,
        interfaces: Interfaces = None,
    ) -> Discovery:
        """Open mDNS sockets on every IPv4 interface (or only ``interfaces``, by address).

        Must run inside the event loop, which zeroconf then shares.
        """
        choice: InterfaceChoice | list[str] = (
            list(interfaces) if interfaces else InterfaceChoice.All
        )
        try:
            zc = AsyncZeroconf(interfaces=choice, ip_version=IPVersion.V4Only)
        except (ZeroconfError, OSError) as exc:
            raise DiscoveryError(f"LAN discovery unavailable: {exc}") from None
        return cls(zc, events, own_endpoint_id)

    async def announce(
        self, announcement: Announcement, ttl: int = DISCOVERY_RECORD_TTL
    ) -> Announcer:
        """Register this node's service and return its announcer (withdrawn by ``close``)."""
        announcer = Announcer(self._zc, announcement, ttl)
        self._announcers.append(announcer)
        await announcer.start()
        return announcer

    def announce_in_background(
        self, announcement: Announcement, ttl: int = DISCOVERY_RECORD_TTL
    ) -> None:
        """Announce without waiting for probing; a failure becomes a ``discovery_error`` event."""
        task = asyncio.create_task(self._announce_reporting(announcement, ttl))
        self._announce_tasks.add(task)
        task.add_done_callback(self._announce_tasks.discard)

    async def _announce_reporting(self, announcement: Announcement, ttl: int) -> None:
        try:
            await self.announce(announcement, ttl)
        except DiscoveryError as exc:
            if self._events is not None:
                self._events.emit(DiscoveryErrorEvent(str(exc)))

    async def browse(self) -> DeviceBrowser:
        """Start (once) and return the browser keeping the device table."""
        if self._browser is None:
            self._browser = DeviceBrowser(self._zc, self._events, self._own)
            await self._browser.start()
        return self._browser

    async def list_devices(self, duration: float) -> list[Device]:
        """Browse for ``duration`` seconds and return what was seen."""
        browser = await self.browse()
        await asyncio.sleep(duration)
        return browser.devices()

    async def find(
        self,
        to: str,
        timeout: float = DISCOVERY_FIND_TIMEOUT,
        settle: float = DISCOVERY_SETTLE_TIME,
    ) -> Device:
        """The device ``to`` names (see ``resolve_device``), waiting up to ``timeout`` seconds.

        After the first match it listens ``settle`` seconds more, so that a
        second device of the same name makes this an ambiguity error instead
        of a coin toss. Raises DeviceNotFoundError or AmbiguousDeviceError.
        """
        return await find_device(await self.browse(), to, timeout, settle)

    async def close(self) -> None:
        """Withdraw every announcement (goodbyes), stop browsing, close the sockets."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._announce_tasks):
            task.cancel()
        await asyncio.gather(*self._announce_tasks, return_exceptions=True)
        for announcer in self._announcers:
            await announcer.stop()
        if self._browser is not None:
            await self._browser.stop()
        with contextlib.suppress(ZeroconfError, OSError):
            await self._zc.async_close()
