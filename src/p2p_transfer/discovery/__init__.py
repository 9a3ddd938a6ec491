"""LAN discovery: devices announce themselves over mDNS / DNS-SD and appear by name.

``records`` and ``table`` are pure (what is announced, the device table,
``--to NAME`` resolution); ``dial`` turns a device into a ticket; ``mdns``
holds the zeroconf parts (``Discovery``, ``Announcer``, ``DeviceBrowser``).
"""

from p2p_transfer.discovery.dial import device_ticket, ticket_for
from p2p_transfer.discovery.mdns import Announcer, DeviceBrowser, Discovery
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
    resolve_device,
)

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
    "port_of",
    "resolve_device",
    "ticket_for",
]
