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
_ROUTES6 = Path("/proc/net/ipv6_route")
_RTF_UP, _RTF_REJECT = 0x1, 0x200


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
    rows = _table(routes, header=True)
    for fields in rows or ():
        if len(fields) > 1 and fields[1] == "00000000":
            return fields[0]
    return None


def has_default_route(routes: Path = _ROUTES, routes6: Path = _ROUTES6) -> bool:
    """True when some packet could leave this machine for the internet: a default route
    (IPv4 or IPv6) that is up and not a reject route. Where the kernel's tables cannot
    be read (not Linux), True: nothing is known."""
    table4, table6 = _table(routes, header=True), _table(routes6, header=False)
    if table4 is None or table6 is None:
        return True
    usable = [  # (device, flags) of each default route
        (fields[0], int(fields[3], 16)) for fields in table4
        if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000"
    ] + [
        (fields[9], int(fields[8], 16)) for fields in table6
        if len(fields) > 9 and fields[1] == "00" and int(fields[0], 16) == 0
    ]
    return any(
        device != "lo" and flags & _RTF_UP and not flags & _RTF_REJECT for device, flags in usable
    )


def _table(path: Path, header: bool) -> list[list[str]] | None:
    """The fields of each row of a kernel routing table, or None where it cannot be read."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    return [line.split() for line in lines[1 if header else 0 :]]
