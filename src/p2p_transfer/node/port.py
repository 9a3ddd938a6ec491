"""A receiver's stable UDP port and relay: the port it used last (kept in the config
dir), else a default one, else any free one; and the same one of iroh's public relays
every time. So a ticket printed yesterday still reaches it, on the same network by its
address, from anywhere through its relay."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from p2p_transfer.limits import DEFAULT_RECEIVE_PORT
from p2p_transfer.net.transport import DEFAULT_BIND, RELAY_DEFAULT, default_relays, split_bind
from p2p_transfer.trust.files import write_private_atomically

#: The file in the config dir that holds the port ``receive`` used last.
PORT_FILE = "receive-port"
#: The file in the config dir that holds the public relay ``receive`` uses.
RELAY_FILE = "receive-relay"
#: iroh's public relays by where they are (how their host names begin), each with the
#: UTC offsets (hours, up to and including the second) nearest to it.
_RELAY_REGIONS = (("usw", -7.0), ("use", -2.0), ("euc", 4.5), ("aps", 14.0))


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


def stable_relay(config_dir: Path, relay: str) -> str:
    """The relay a receiver uses: with ``--relay default``, one of iroh's public relays,
    the same every time (kept in the config dir), so its ticket can name it before it
    answers; the first time, the one nearest by this machine's time zone (iroh would pick
    by latency, which needs the internet and changes the ticket). Any other choice as is."""
    if relay != RELAY_DEFAULT:
        return relay
    relays = default_relays()
    with contextlib.suppress(OSError):
        kept = (config_dir / RELAY_FILE).read_text().strip()
        if kept in relays:
            return kept
    chosen = nearest_relay(relays, _utc_offset_hours())
    with contextlib.suppress(OSError):  # a config dir we cannot write only loses that
        write_private_atomically(config_dir / RELAY_FILE, f"{chosen}\n".encode())
    return chosen


def nearest_relay(relays: Sequence[str], utc_offset: float) -> str:
    """Of ``relays``, the one in the region of ``utc_offset``; the first if none is."""
    for region, up_to in _RELAY_REGIONS:
        if utc_offset <= up_to:
            found = [r for r in relays if (urlsplit(r).hostname or "").startswith(region)]
            if found:
                return found[0]
            break
    return relays[0]


def _utc_offset_hours() -> float:
    offset = datetime.datetime.now().astimezone().utcoffset()
    return offset.total_seconds() / 3600 if offset is not None else 0.0
