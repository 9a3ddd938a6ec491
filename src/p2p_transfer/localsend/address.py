"""Where a LocalSend device is: ``--to localsend:HOST[:PORT]``, and the error of a
device that cannot be reached. No aiohttp here: a send to our own peers reads this."""

from __future__ import annotations

from p2p_transfer.limits import LOCALSEND_PORT
from p2p_transfer.localsend.messages import Target
from p2p_transfer.transfer.session import TransferError


class LocalSendError(TransferError):
    """A LocalSend device could not be reached or answered wrongly; one line for the user."""


#: ``--to localsend:HOST[:PORT]`` names a LocalSend device by address.
ADDRESS_PREFIX = "localsend:"


def parse_localsend_address(to: str) -> Target | None:
    """``localsend:HOST[:PORT]`` (``[v6]:PORT`` too) as a target; None for anything else."""
    if not to.lower().startswith(ADDRESS_PREFIX):
        return None
    rest = to[len(ADDRESS_PREFIX):].strip()
    host, port = rest, LOCALSEND_PORT
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = _port(tail[1:], to)
    elif rest.count(":") == 1:
        host, _, number = rest.partition(":")
        port = _port(number, to)
    if not host:
        raise LocalSendError(f"{to!r}: no host; use localsend:HOST[:PORT]")
    return Target(host, port, host)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise LocalSendError(f"{whole!r}: the port must be a number from 1 to 65535")
    return int(text)
