"""The doctor's view of this machine's interfaces: which could reach other devices."""

from __future__ import annotations

import socket

from p2p_transfer.events import CheckEvent
from p2p_transfer.net.interfaces import Interface


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
