"""Finding the address other devices on the LAN can reach, without sending any packet."""

from __future__ import annotations

import ipaddress

import ifaddr

from p2p_transfer.errors import LocalFault

#: Addresses that can be told to listen everywhere.
UNSPECIFIED = frozenset({"0.0.0.0", "::", ""})


class NoLanAddressError(LocalFault):
    """This machine has no usable LAN address (offline, or only loopback)."""


def lan_addresses() -> list[str]:
    """IPv4 addresses of this machine's interfaces, private ranges first (no loopback)."""
    found: list[ipaddress.IPv4Address] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue  # IPv6: phones scan IPv4 URLs more reliably
            addr = ipaddress.IPv4Address(ip.ip)
            if addr.is_loopback or addr.is_link_local or addr.is_unspecified:
                continue
            found.append(addr)
    found.sort(key=lambda a: (not a.is_private, a))
    return [str(a) for a in found]


def default_bind_address() -> str:
    """The LAN address to listen on by default, or NoLanAddressError."""
    addresses = lan_addresses()
    if not addresses:
        raise NoLanAddressError(
            "no LAN address found; connect to a network or use --bind 127.0.0.1"
        )
    return addresses[0]


def url_host(address: str) -> str:
    """An address as it goes in a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address
