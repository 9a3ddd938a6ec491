"""This machine's network interfaces: addresses, the default route, VPN-like links."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

import ifaddr

from p2p_transfer.events import CheckEvent

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


def check_interfaces(interfaces: list[Interface], default: str | None) -> CheckEvent:
    """Which interfaces could reach other devices, which one the default route uses."""
    if not interfaces:
        return CheckEvent(
            "network", "fail", "no network interface with an IPv4 address (only loopback)",
            "connect to a Wi-Fi or wired network; on one machine, use 127.0.0.1",
        )
    listed = "; ".join(f"{i.name} {', '.join(i.addresses)}" for i in interfaces)
    route = f"default route via {default}" if default else "no default route"
    vpns = [i.name for i in interfaces if i.vpn_like]
    if vpns:
        return CheckEvent(
            "network", "warn", f"{listed}; {route}; VPN-like: {', '.join(vpns)}",
            "a VPN can carry LAN traffic away or block it: if devices can't see each "
            "other, pause the VPN or allow local network access in its settings",
        )
    if default is None:
        return CheckEvent(
            "network", "warn", f"{listed}; {route}",
            "without a default route multicast may go nowhere: check the network settings",
        )
    return CheckEvent("network", "ok", f"{listed}; {route}")


def hostname() -> str:
    """This machine's host name (for the report's header)."""
    return socket.gethostname()
