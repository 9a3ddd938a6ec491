"""The live device table, record freshness, and turning ``--to NAME`` into one device.

No sockets here, and an injectable clock: the mDNS side (``mdns``) feeds the
table, tests drive it directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Literal, Protocol

from p2p_transfer.discovery.records import NAME_ID_PREFIX, Device, DiscoveryError
from p2p_transfer.errors import LocalFault
from p2p_transfer.limits import (
    DISCOVERY_REFRESH_PERCENT,
    DISCOVERY_REFRESH_STEP_PERCENT,
    MAX_DISCOVERED_DEVICES,
    MIN_ENDPOINT_PREFIX,
)

Change = Literal["added", "updated"]

#: Percents of a record's lifetime at which refresh queries go out: RFC 6762
#: section 5.2 asks at 80 %, then 85, 90 and 95 % while no answer comes.
REFRESH_STEPS = tuple(range(DISCOVERY_REFRESH_PERCENT, 100, DISCOVERY_REFRESH_STEP_PERCENT))
_HEX = frozenset("0123456789abcdef")


def refresh_step(created_ms: float, ttl_s: float, now_ms: float) -> int | None:
    """How far a record has aged: 0 fresh, k after the k-th refresh point, None expired."""
    lifetime_ms = ttl_s * 1000.0
    age_ms = now_ms - created_ms
    if lifetime_ms <= 0 or age_ms >= lifetime_ms:
        return None
    step = 0
    for index, percent in enumerate(REFRESH_STEPS, start=1):
        if age_ms >= lifetime_ms * percent / 100.0:
            step = index
    return step


def next_check_ms(created_ms: float, ttl_s: float, steps_sent: int) -> float:
    """When a record next needs attention: its next unsent refresh point, else its expiry."""
    lifetime_ms = ttl_s * 1000.0
    if steps_sent < len(REFRESH_STEPS):
        return created_ms + lifetime_ms * REFRESH_STEPS[steps_sent] / 100.0
    return created_ms + lifetime_ms


class DeviceTable:
    """Devices keyed by service instance name; never holds this node's own ID.

    Bounded: announcements past ``MAX_DISCOVERED_DEVICES`` are ignored, so a
    flood of fake services cannot grow memory without limit.
    """

    def __init__(
        self,
        own_endpoint_id: str | None = None,
        clock: Callable[[], float] = time.time,
        capacity: int = MAX_DISCOVERED_DEVICES,
    ) -> None:
        self._own = own_endpoint_id.lower() if own_endpoint_id else None
        self._clock = clock
        self._capacity = capacity
        self._devices: dict[str, Device] = {}

    def __len__(self) -> int:
        return len(self._devices)

    def __contains__(self, service_name: object) -> bool:
        return service_name in self._devices

    def get(self, service_name: str) -> Device | None:
        """The device found under ``service_name``, if any."""
        return self._devices.get(service_name)

    def names(self) -> list[str]:
        """Service names of all devices (a copy, safe to iterate while changing)."""
        return list(self._devices)

    def devices(self) -> list[Device]:
        """All devices, by name then endpoint ID."""
        return sorted(self._devices.values(), key=lambda d: (d.name.casefold(), d.endpoint_id))

    def is_own(self, endpoint_id: str) -> bool:
        """True for this node's own announcement (seen on every interface it announces on)."""
        return self._own is not None and endpoint_id.lower() == self._own

    def upsert(self, device: Device) -> Change | None:
        """Add or refresh a device; returns what a listener should hear, None if nothing.

        Its ``last_seen`` is set from the table's clock.
        """
        if self.is_own(device.endpoint_id):
            return None
        previous = self._devices.get(device.service_name)
        if previous is None and len(self._devices) >= self._capacity:
            return None
        self._devices[device.service_name] = replace(device, last_seen=self._clock())
        if previous is None:
            return "added"
        return None if previous.same_announcement(device) else "updated"

    def touch(self, service_name: str) -> None:
        """Note that a device answered again (a refreshed record), without other change."""
        device = self._devices.get(service_name)
        if device is not None:
            self._devices[service_name] = replace(device, last_seen=self._clock())

    def remove(self, service_name: str) -> Device | None:
        """Drop a device; returns it if it was there."""
        return self._devices.pop(service_name, None)


# --- Resolving ``send --to`` --------------------------------------------------


class DeviceNotFoundError(DiscoveryError, LocalFault):
    """No device on the LAN matches what the user typed."""


class AmbiguousDeviceError(DiscoveryError, LocalFault):
    """Several devices match; ``candidates`` lists them for the user to choose."""

    def __init__(self, message: str, candidates: list[Device]) -> None:
        super().__init__(message)
        self.candidates = candidates


def describe_device(device: Device) -> str:
    """One line naming a device unambiguously: name, ID prefix, addresses."""
    addresses = ", ".join(device.addresses) or "no address"
    return f"{device.name}  {device.endpoint_id[:NAME_ID_PREFIX]}  ({addresses})"


def _one_per_endpoint(devices: Iterable[Device]) -> list[Device]:
    """The same endpoint seen under several service names counts once (latest wins)."""
    best: dict[str, Device] = {}
    for device in devices:
        known = best.get(device.endpoint_id)
        if known is None or device.last_seen > known.last_seen:
            best[device.endpoint_id] = device
    return sorted(best.values(), key=lambda d: (d.name.casefold(), d.endpoint_id))


def looks_like_id_prefix(text: str) -> bool:
    """Hex, long enough that a typo is unlikely to match a stranger."""
    lowered = text.lower()
    return len(lowered) >= MIN_ENDPOINT_PREFIX and set(lowered) <= _HEX


def resolve_device(to: str, devices: Iterable[Device]) -> Device:
    """The one device ``to`` names: exact name, else case-insensitive name, else ID prefix.

    A name two devices share is an error listing both (never a silent pick: a
    stranger can announce any name, and the user must choose by ID prefix).
    """
    wanted = to.strip()
    if not wanted:
        raise DeviceNotFoundError("no device name given")
    candidates = _one_per_endpoint(devices)
    folded = wanted.casefold()
    id_prefix = wanted.lower()
    for matches in (
        [d for d in candidates if d.name == wanted],
        [d for d in candidates if d.name.casefold() == folded],
        [d for d in candidates if d.endpoint_id.startswith(id_prefix)]
        if looks_like_id_prefix(wanted) else [],
    ):
        if len(matches) == 1:
            return matches[0]
        if matches:
            lines = "\n".join(f"  {describe_device(d)}" for d in matches)
            raise AmbiguousDeviceError(
                f"{wanted!r} matches {len(matches)} devices; pass an endpoint-ID prefix "
                f"instead (--to {matches[0].endpoint_id[:NAME_ID_PREFIX]}):\n{lines}",
                matches,
            )
    seen = "; ".join(describe_device(d) for d in candidates) or "none"
    raise DeviceNotFoundError(
        f"no device named {wanted!r} on the local network (devices seen: {seen}). "
        "Is it running `p2p-transfer receive`? If this network blocks multicast, "
        "send with its ticket instead."
    )


class DeviceSource(Protocol):
    """What ``find_device`` needs from a browser: the table now, and a way to wait for news."""

    def devices(self) -> list[Device]:
        """The devices seen so far."""
        ...

    async def wait_for_change(self, timeout: float) -> None:
        """Return when the table changes, or after ``timeout`` seconds."""
        ...


async def find_device(source: DeviceSource, to: str, timeout: float, settle: float) -> Device:
    """Wait up to ``timeout`` seconds for the device ``to`` names (see ``resolve_device``).

    After the first match, listen ``settle`` seconds more: another device of
    the same name answering a moment later makes this an ambiguity error
    instead of a coin toss. Ambiguity is raised at once (waiting cannot fix it);
    not-found only when the time is up.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    settled_at: float | None = None
    while True:
        try:
            found: Device | None = resolve_device(to, source.devices())
            missing: DeviceNotFoundError | None = None
        except DeviceNotFoundError as exc:
            found, missing = None, exc
        now = loop.time()
        if found is not None:
            if settled_at is None:
                settled_at = now + settle
            if now >= settled_at:
                return found
            wake = settled_at
        else:
            settled_at = None
            if now >= deadline:
                assert missing is not None
                raise missing
            wake = deadline
        await source.wait_for_change(max(0.0, wake - now))
