"""What a node starts with, and the one check that it has an endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from p2p_transfer.net import RELAY_OFF

T = TypeVar("T")


@dataclass(slots=True)
class NodeConfig:
    """Everything a Node needs to start."""

    config_dir: Path
    device_name: str
    bind_addr: str | None = None
    relay: str = RELAY_OFF
    #: A receiver keeps its UDP port across restarts (``--bind`` without a port).
    stable_port: bool = False


def endpoint(transport: T | None) -> T:
    """The node's endpoint; a node made ``without_endpoint`` (``devices``, ``share``) has
    none, and asking it for peer-to-peer work is a programming error."""
    if transport is None:
        raise RuntimeError("this node was started without an endpoint")
    return transport
