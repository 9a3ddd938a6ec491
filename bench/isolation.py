"""Is this process in a network namespace that has only loopback?

iroh's stack sends UPnP / port-mapping probes to the LAN, and wormhole
advertises and dials every local address, so every row but plain TCP must run
where loopback is the only interface (``scripts/isolated`` makes one).
"""

from __future__ import annotations

import socket

LOOPBACK_INTERFACE = "lo"
ISOLATED_COMMAND = "scripts/isolated .venv/bin/python -m bench"


def non_loopback_interfaces() -> list[str]:
    """Names of the network interfaces of this namespace other than loopback."""
    return sorted(name for _, name in socket.if_nameindex() if name != LOOPBACK_INTERFACE)


def is_isolated() -> bool:
    """True when loopback is the only network interface in sight."""
    return not non_loopback_interfaces()
