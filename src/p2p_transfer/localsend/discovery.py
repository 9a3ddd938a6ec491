"""Finding LocalSend devices: multicast announcements on 224.0.0.167:53317 (spec 3.1).

We announce ourselves (``announce: true``) at start, shortly after, and then
every LOCALSEND_ANNOUNCE_INTERVAL; a device that announces gets our info by
``POST /register`` (a multicast reply with ``announce: false`` when that fails),
and every announcement or registration lands in a ``DeviceTable``. Our own
announcement (our fingerprint) is never listed. What arrives is bounded: one
datagram's size, the table's size, the register replies in flight.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from p2p_transfer.limits import (
    LOCALSEND_ANNOUNCE_INTERVAL,
    LOCALSEND_DEVICE_TTL,
    LOCALSEND_MAX_DATAGRAM,
    LOCALSEND_MAX_DEVICES,
    LOCALSEND_MAX_REGISTER_REPLIES,
    LOCALSEND_PORT,
)
from p2p_transfer.localsend.messages import (
    MULTICAST_GROUP,
    DeviceInfo,
    Target,
    decode_device_info,
    encode,
)
from p2p_transfer.protocol.errors import ProtocolError

if TYPE_CHECKING:
    from p2p_transfer.localsend.client import LocalSendClient

log = logging.getLogger(__name__)

#: Seconds after the start at which the first announcements go out.
ANNOUNCE_BURST = (0.0, 1.0, 3.0)


@dataclass(frozen=True, slots=True)
class LocalSendDevice:
    """A LocalSend device seen on the LAN."""

    name: str
    fingerprint: str
    host: str
    port: int
    scheme: str
    device_model: str
    device_type: str
    last_seen: float

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def target(self) -> Target:
        """Where to send to it, pinned to the fingerprint it announced (HTTPS)."""
        scheme = "http" if self.scheme == "http" else "https"
        return Target(self.host, self.port, self.name, scheme,
                      self.fingerprint.upper() if scheme == "https" else None)


def others(
    devices: Iterable[LocalSendDevice], ours: Iterable[tuple[str, Iterable[str]]]
) -> list[LocalSendDevice]:
    """``devices`` without those that are one of our own devices (``ours``: name and
    ``HOST:PORT`` addresses), which announce to LocalSend devices too: a device of ours
    is listed once, and its name resolves to our protocol, never to LocalSend."""
    own = {(name.casefold(), _host(address)) for name, addresses in ours for address in addresses}
    return [d for d in devices if (d.name.casefold(), d.host) not in own]


def _host(address: str) -> str:
    host = address.rpartition(":")[0] if ":" in address else address
    return host.strip("[]")


class DeviceTable:
    """LocalSend devices by fingerprint; each is listed LOCALSEND_DEVICE_TTL after it was
    last heard from. A device that moves to an address another held replaces it."""

    def __init__(self, own_fingerprint: str, clock: Callable[[], float] = time.time) -> None:
        self._own = own_fingerprint.upper()
        self._clock = clock
        self._devices: dict[str, LocalSendDevice] = {}

    def add(self, info: DeviceInfo, host: str) -> LocalSendDevice | None:
        """Note a device; None when it is us, has no fingerprint, or the table is full."""
        key = info.fingerprint.upper()
        if not key or key == self._own:
            return None
        self._expire()
        if key not in self._devices and len(self._devices) >= LOCALSEND_MAX_DEVICES:
            return None
        device = LocalSendDevice(
            info.name, info.fingerprint, host, info.port, info.protocol,
            info.model, info.kind, self._clock(),
        )
        for other_key, other in list(self._devices.items()):
            if other_key != key and (other.host, other.port) == (host, info.port):
                del self._devices[other_key]
        self._devices[key] = device
        return device

    def devices(self) -> list[LocalSendDevice]:
        """The devices heard from lately, by name."""
        self._expire()
        return sorted(self._devices.values(), key=lambda d: (d.name.casefold(), d.fingerprint))

    def named(self, name: str) -> list[LocalSendDevice]:
        """Devices whose alias is ``name`` (ignoring case)."""
        wanted = name.casefold()
        return [d for d in self.devices() if d.name.casefold() == wanted]

    def _expire(self) -> None:
        cutoff = self._clock() - LOCALSEND_DEVICE_TTL
        for key, device in list(self._devices.items()):
            if device.last_seen < cutoff:
                del self._devices[key]


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, received: Callable[[bytes, str], None]) -> None:
        self._received = received

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._received(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:
        log.debug("LocalSend multicast socket: %s", exc)


def _multicast_socket(port: int) -> socket.socket:
    """A UDP socket on ``port`` in the LocalSend group, shared with other LocalSend apps
    on this machine (SO_REUSEADDR), sending with TTL 1 (this LAN only)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", port))
        membership = struct.pack("4s4s", socket.inet_aton(MULTICAST_GROUP),
                                 socket.inet_aton("0.0.0.0"))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class MulticastDiscovery:
    """Announces ``own`` and collects the devices that announce or answer."""

    def __init__(
        self,
        own: Callable[[bool | None], DeviceInfo],
        table: DeviceTable,
        client: Callable[[], LocalSendClient] | None,
        *,
        port: int = LOCALSEND_PORT,
        answer: bool = True,
    ) -> None:
        """``own(announce)``: our info; ``client``: gives the client that answers
        announcements with ``register``, made when first needed (None: answer by
        multicast only); ``answer``: answer at all."""
        self._own = own
        self.table = table
        self._client = client
        self._port = port
        self._answer = answer
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._announcer: asyncio.Task[None] | None = None
        self._replies = 0
        self.changed = asyncio.Event()

    async def start(self, *, announce: bool) -> None:
        """Listen (raises OSError if the group cannot be joined); with ``announce``, keep
        announcing ourselves until ``close``."""
        loop = asyncio.get_running_loop()
        sock = _multicast_socket(self._port)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self._received), sock=sock
        )
        self._transport = transport
        if announce:
            self._announcer = asyncio.create_task(self._announce_forever())

    def announce(self, *, announce: bool = True) -> None:
        """Send our info to the group once (``announce=False``: a reply)."""
        if self._transport is not None:
            self._transport.sendto(encode(self._own(announce)), (MULTICAST_GROUP, self._port))

    async def _announce_forever(self) -> None:
        started = asyncio.get_running_loop().time()
        for delay in ANNOUNCE_BURST:
            await asyncio.sleep(max(0.0, started + delay - asyncio.get_running_loop().time()))
            self.announce()
        while True:
            await asyncio.sleep(LOCALSEND_ANNOUNCE_INTERVAL)
            self.announce()

    def _received(self, data: bytes, host: str) -> None:
        if len(data) > LOCALSEND_MAX_DATAGRAM:
            return
        try:
            info = decode_device_info(data)
        except ProtocolError:
            return
        if self.table.add(info, host) is None:
            return
        self.changed.set()
        if info.announce and self._answer:
            self._reply(info, host)

    def _reply(self, info: DeviceInfo, host: str) -> None:
        """Answer an announcement: ``register`` to it, else a multicast reply."""
        if self._client is None or self._replies >= LOCALSEND_MAX_REGISTER_REPLIES:
            self.announce(announce=False)
            return
        self._replies += 1
        task = asyncio.create_task(self._register(info, host))
        self._tasks.add(task)
        task.add_done_callback(self._replied)

    def _replied(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._replies -= 1

    async def _register(self, info: DeviceInfo, host: str) -> None:
        assert self._client is not None
        # The HTTP client (aiohttp) loads on the first announcement heard, not before.
        from p2p_transfer.localsend.address import LocalSendError

        target = Target(host, info.port, info.name, info.protocol,
                        info.fingerprint.upper() if info.protocol == "https" else None)
        try:
            info, learned = await self._client().register(target)
        except LocalSendError as exc:
            log.debug("register at %s failed (%s); answering by multicast", target.host, exc)
            self.announce(announce=False)
        else:
            if learned.fingerprint:  # what its certificate says, not what it claims
                info = msgspec.structs.replace(info, fingerprint=learned.fingerprint)
            if self.table.add(info, target.host) is not None:
                self.changed.set()

    async def close(self) -> None:
        if self._announcer is not None:
            self._announcer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(
            *self._tasks, *([self._announcer] if self._announcer else []), return_exceptions=True
        )
        if self._transport is not None:
            self._transport.close()
            self._transport = None

