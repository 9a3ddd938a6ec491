"""A receiver's stable port: the same one after a restart, any other when it is taken."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from p2p_transfer.limits import DEFAULT_RECEIVE_PORT
from p2p_transfer.net import RELAY_OFF, ticket_addresses, ticket_endpoint_id
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.node.port import PORT_FILE, remember_port, remembered_port, stable_bind


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
