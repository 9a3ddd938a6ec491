"""This machine's network interfaces: the IPv4 addresses other devices could use, the
default route. Read by the doctor and by a classic wormhole transfer's direct hints."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import ifaddr

#: Interface name prefixes of tunnels and VPNs (WireGuard, OpenVPN, Tailscale, ZeroTier…).
VPN_PREFIXES = ("tun", "tap", "wg", "tailscale", "utun", "ppp", "zt", "ipsec", "vpn", "nordlynx")
_ROUTES = Path("/proc/net/route")


@dataclass(frozen=True, slots=True)
class Interface:
    """One network interface with an IPv4 address other devices could use."""

    name: str
    addresses: tuple[str, ...]
    #: Index for multicast (``IP_MULTICAST_IF`` takes the address, joins take either).
    index: int

    @property
    def vpn_like(self) -> bool:
        return self.name.lower().startswith(VPN_PREFIXES)


def lan_interfaces() -> list[Interface]:
    """Interfaces with a non-loopback, non-link-local IPv4 address."""
    found: list[Interface] = []
    for adapter in ifaddr.get_adapters():
        addresses = tuple(
            str(ip.ip) for ip in adapter.ips
            if isinstance(ip.ip, str) and _usable(ipaddress.IPv4Address(ip.ip))
        )
        if addresses:
            found.append(Interface(adapter.nice_name, addresses, adapter.index or 0))
    return found


def _usable(address: ipaddress.IPv4Address) -> bool:
    return not (address.is_loopback or address.is_link_local or address.is_unspecified)


def default_route_interface(routes: Path = _ROUTES) -> str | None:
    """The interface of the IPv4 default route (from the kernel's routing table)."""
    try:
        lines = routes.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 1 and fields[1] == "00000000":
            return fields[0]
    return None
