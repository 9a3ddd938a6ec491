"""A receiver's stable port: the same one after a restart, any other when it is taken;
and its one public relay, the same at every start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from p2p_transfer.limits import DEFAULT_RECEIVE_PORT
from p2p_transfer.net import (
    RELAY_DEFAULT,
    RELAY_OFF,
    default_relays,
    ticket_addresses,
    ticket_endpoint_id,
)
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.node.port import (
    PORT_FILE,
    RELAY_FILE,
    nearest_relay,
    remember_port,
    remembered_port,
    stable_bind,
    stable_relay,
)


def test_the_port_is_remembered_and_a_bad_file_means_the_default(tmp_path: Path) -> None:
    assert remembered_port(tmp_path) == DEFAULT_RECEIVE_PORT
    remember_port(tmp_path, 50123)
    assert remembered_port(tmp_path) == 50123
    (tmp_path / PORT_FILE).write_text("not a port")
    assert remembered_port(tmp_path) == DEFAULT_RECEIVE_PORT
    (tmp_path / PORT_FILE).write_text("70000")
    assert remembered_port(tmp_path) == DEFAULT_RECEIVE_PORT


def test_a_bind_without_a_port_takes_the_remembered_one(tmp_path: Path) -> None:
    remember_port(tmp_path, 50124)
    assert stable_bind(tmp_path, None) == "0.0.0.0:50124"
    assert stable_bind(tmp_path, "127.0.0.1") == "127.0.0.1:50124"
    assert stable_bind(tmp_path, "::1") == "[::1]:50124"
    assert stable_bind(tmp_path, "127.0.0.1:6000") is None  # a port given is a port kept


_START_RECEIVER = """
import asyncio, json, sys
from pathlib import Path
from p2p_transfer.node import Node, NodeConfig

async def main():
    node = await Node.start(NodeConfig(Path(sys.argv[1]), "laptop", "127.0.0.1", "off",
                                       stable_port=True))
    print(json.dumps([node.transport.local_udp_socket[1], node.transport.ticket]))
    await node.close()

asyncio.run(main())
"""


def _start_receiver(config_dir: Path) -> tuple[int, str]:
    """A receiver's node started (and stopped) in a process of its own: its port, ticket."""
    done = subprocess.run([sys.executable, "-c", _START_RECEIVER, str(config_dir)],
                          capture_output=True, text=True, timeout=60, check=True)
    port, ticket = json.loads(done.stdout)
    return int(port), str(ticket)


async def test_a_receiver_keeps_its_port_across_restarts_or_moves_when_taken(
    tmp_path: Path,
) -> None:
    port, ticket = _start_receiver(tmp_path / "rx")
    again, new_ticket = _start_receiver(tmp_path / "rx")
    # Yesterday's ticket names the same device at the same IPv4 address (iroh's IPv6
    # socket takes a port of its own choosing).
    assert again == port
    assert ticket_endpoint_id(new_ticket) == ticket_endpoint_id(ticket)
    assert f"127.0.0.1:{port}" in ticket_addresses(ticket)
    assert f"127.0.0.1:{port}" in ticket_addresses(new_ticket)
    # Taken (another receiver holds it): this one still starts, elsewhere.
    config = NodeConfig(tmp_path / "other", "desk", "127.0.0.1", RELAY_OFF, stable_port=True)
    config.config_dir.mkdir()
    remember_port(config.config_dir, port)
    holder = await Node.start(config)
    try:
        assert holder.transport.local_udp_socket == ("127.0.0.1", port)
        moved, _ = _start_receiver(tmp_path / "rx")
        assert moved != port
    finally:
        await holder.close()
    assert remembered_port(tmp_path / "rx") == moved  # the last one used, next time


def test_a_receiver_keeps_one_public_relay_and_any_other_choice_is_as_given(
    tmp_path: Path,
) -> None:
    relays = default_relays()
    assert stable_relay(tmp_path, RELAY_OFF) == RELAY_OFF
    assert stable_relay(tmp_path, "https://relay.example.org") == "https://relay.example.org"
    assert not (tmp_path / RELAY_FILE).exists()
    chosen = stable_relay(tmp_path, RELAY_DEFAULT)
    assert chosen in relays
    assert (tmp_path / RELAY_FILE).read_text().strip() == chosen
    # Kept (the time zone may change; the ticket must not) ...
    other = next(r for r in relays if r != chosen)
    (tmp_path / RELAY_FILE).write_text(f"{other}\n")
    assert stable_relay(tmp_path, RELAY_DEFAULT) == other
    # ... unless iroh no longer has it: then chosen afresh.
    (tmp_path / RELAY_FILE).write_text("https://gone.example.org/\n")
    assert stable_relay(tmp_path, RELAY_DEFAULT) in relays


@pytest.mark.parametrize(
    ("utc_offset", "region"),
    [(-8, "usw"), (-7, "usw"), (-5, "use"), (-3, "use"), (0, "euc"), (2, "euc"),
     (4, "euc"), (5.5, "aps"), (9, "aps"), (12, "aps")],
)
def test_the_first_relay_is_the_nearest_by_the_time_zone(utc_offset: float, region: str) -> None:
    relays = ["https://usw1-1.relay.example./", "https://aps1-1.relay.example./",
              "https://euc1-1.relay.example./", "https://use1-1.relay.example./"]
    assert urlsplit(nearest_relay(relays, utc_offset)).hostname.startswith(region)
    # Relays named otherwise: the first one.
    assert nearest_relay(["https://a.example/", "https://b.example/"], utc_offset) == (
        "https://a.example/"
    )
