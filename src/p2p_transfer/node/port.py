"""A receiver's stable UDP port: the one it used last (kept in the config dir), else a
default one, else any free one, so that a ticket printed yesterday still reaches it."""

from __future__ import annotations

import contextlib
from pathlib import Path

from p2p_transfer.limits import DEFAULT_RECEIVE_PORT
from p2p_transfer.net.transport import DEFAULT_BIND, split_bind
from p2p_transfer.trust.files import write_private_atomically

#: The file in the config dir that holds the port ``receive`` used last.
PORT_FILE = "receive-port"


def remembered_port(config_dir: Path) -> int:
    """The port this device's receiver used last, or the default one."""
    with contextlib.suppress(OSError, ValueError):
        port = int((config_dir / PORT_FILE).read_text().strip())
        if 1 <= port <= 65535:
            return port
    return DEFAULT_RECEIVE_PORT


def remember_port(config_dir: Path, port: int) -> None:
    """Keep ``port`` for the next start (a config dir we cannot write only loses that)."""
    if port != remembered_port(config_dir) or not (config_dir / PORT_FILE).exists():
        with contextlib.suppress(OSError):
            write_private_atomically(config_dir / PORT_FILE, f"{port}\n".encode())


def stable_bind(config_dir: Path, bind_addr: str | None) -> str | None:
    """Where a receiver binds first: ``--bind`` as given when it names a port, else its
    host (all interfaces by default) at the remembered port; None when nothing changes."""
    host, port = split_bind(bind_addr or DEFAULT_BIND)
    if port != 0:
        return None
    address = f"[{host}]" if ":" in host else host
    return f"{address}:{remembered_port(config_dir)}"
