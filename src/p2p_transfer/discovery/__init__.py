"""LAN discovery: devices announce themselves over mDNS / DNS-SD and appear by name.

``records`` and ``table`` are pure (what is announced, the device table,
``--to NAME`` resolution); ``dial`` turns a device into a ticket; ``mdns``
holds the zeroconf parts (``Discovery``, ``Announcer``, ``DeviceBrowser``).
Those are imported on first use, so ``send --to TICKET`` never loads zeroconf.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from p2p_transfer.discovery.dial import device_ticket, looks_like_ticket, ticket_for
from p2p_transfer.discovery.records import (
    SERVICE_TYPE,
    Announcement,
    Device,
    DiscoveryError,
    port_of,
)
from p2p_transfer.discovery.table import (
    AmbiguousDeviceError,
    DeviceNotFoundError,
    DeviceTable,
    describe_device,
    find_device,
    resolve_device,
)

if TYPE_CHECKING:
    from p2p_transfer.discovery.mdns import Announcer, DeviceBrowser, Discovery

_LAZY = {"Announcer", "DeviceBrowser", "Discovery"}


def __getattr__(name: str) -> Any:
    """Load the zeroconf side only when one of its classes is asked for."""
    if name in _LAZY:
        return getattr(importlib.import_module("p2p_transfer.discovery.mdns"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SERVICE_TYPE",
    "AmbiguousDeviceError",
    "Announcement",
    "Announcer",
    "Device",
    "DeviceBrowser",
    "DeviceNotFoundError",
    "DeviceTable",
    "Discovery",
    "DiscoveryError",
    "describe_device",
    "device_ticket",
    "find_device",
    "looks_like_ticket",
    "port_of",
    "resolve_device",
    "ticket_for",
]
