"""Two hosts on one LAN (network namespaces joined by a bridge): the real CLI on each.

The receiver runs in one namespace bound to its LAN address, the sender in
another; nothing crosses the namespace the tests run in. Root only.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from conftest import assert_same_tree, make_tree
from e2e.cli import CODE
from netns import Host, JsonLines, Lab

#: Seconds for a process's next expected event (start-up, a small tree over a veth).
EVENT_TIMEOUT = 30.0
#: The issue's bar for ``devices`` to list a receiver in another namespace.
LISTED_WITHIN = 5.0
#: Packet loss on the receiver's link in the loss test, percent each way.
LOSS_PERCENT = 5
#: Size of the file sent through the lossy link.
LOSSY_BYTES = 50 * 1024 * 1024
#: Seconds the lossy transfer may take (it needs a few at most on a 2-core machine).
LOSSY_TIMEOUT = 120.0


def cli(host: Host, home: Path, *args: str) -> JsonLines:
    """``p2p-transfer --config-dir HOME ARGS`` inside ``host``'s namespace."""
    return host.spawn(sys.executable, "-m", "p2p_transfer", "--config-dir", str(home), *args)


def start_receiver(
    host: Host, home: Path, inbox: Path, name: str
) -> tuple[JsonLines, dict[str, Any]]:
    """A one-shot JSON receiver bound to the host's LAN address; returns it and its ticket event."""
    receiver = cli(host, home, "--name", name, "receive", "--dir", str(inbox), "--once", "--yes",
                   "--code", CODE, "--bind", host.address, "--json")
    return receiver, receiver.expect_event("ticket", EVENT_TIMEOUT)


def devices(host: Host, home: Path, timeout: float) -> list[dict[str, Any]]:
    """``devices --json`` inside ``host``: one dict per listed device."""
    result = host.run(sys.executable, "-m", "p2p_transfer", "--config-dir", str(home),
                      "devices", "--json", "--timeout", str(timeout), timeout=timeout + 30)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_folder_by_ticket_between_two_hosts(netns_lab: Lab, tmp_path: Path) -> None:
    a, b = netns_lab.lan(2)
    tree = make_tree(tmp_path / "src")
    inbox = tmp_path / "inbox"
    receiver, ticket = start_receiver(a, tmp_path / "a-home", inbox, "Alice")
    sender = cli(b, tmp_path / "b-home", "--name", "Bob", "send", "--to", ticket["ticket"],
                 "--code", CODE, "--json", str(tree))
    done = sender.expect_event("done", EVENT_TIMEOUT)
    assert done["ok"] is True, sender.seen
    connection = next(e for e in sender.seen if e.get("event") == "connection")
    assert connection["path"] == "direct"
    assert connection["remote_addr"].startswith(f"{a.address}:")
    assert sender.wait(EVENT_TIMEOUT) == 0, sender.stderr
    assert receiver.wait(EVENT_TIMEOUT) == 0, receiver.stderr
    assert_same_tree(tree, inbox / "tree")


def test_folder_by_ticket_across_a_router(netns_lab: Lab, tmp_path: Path) -> None:
    """Discovery cannot cross the router, but a ticket's direct address is routed."""
    (a,), far, _router = netns_lab.routed(1)
    tree = make_tree(tmp_path / "src")
    inbox = tmp_path / "inbox"
    receiver, ticket = start_receiver(a, tmp_path / "a-home", inbox, "Alice")
    assert devices(far, tmp_path / "far-home", 2.0) == []
    sender = cli(far, tmp_path / "far-home", "--name", "Far", "send", "--to", ticket["ticket"],
                 "--code", CODE, "--json", str(tree))
    assert sender.expect_event("done", EVENT_TIMEOUT)["ok"] is True, sender.seen
    assert sender.wait(EVENT_TIMEOUT) == 0, sender.stderr
    assert receiver.wait(EVENT_TIMEOUT) == 0, receiver.stderr
    assert_same_tree(tree, inbox / "tree")


def test_fifty_mib_survive_five_percent_packet_loss(netns_lab: Lab, tmp_path: Path) -> None:
    """5 % of the receiver's packets dropped each way; QUIC retransmits, BLAKE3 verifies."""
    a, b = netns_lab.lan(2)
    netns_lab.drop_packets(a, LOSS_PERCENT)
    folder = tmp_path / "src" / "lossy"
    folder.mkdir(parents=True)
    (folder / "big.bin").write_bytes(os.urandom(LOSSY_BYTES))
    (folder / "small.txt").write_text("still here\n")
    inbox = tmp_path / "inbox"
    receiver, ticket = start_receiver(a, tmp_path / "a-home", inbox, "Alice")
    sender = cli(b, tmp_path / "b-home", "--name", "Bob", "send", "--to", ticket["ticket"],
                 "--code", CODE, "--json", str(folder))
    assert sender.expect_event("done", LOSSY_TIMEOUT)["ok"] is True, sender.seen
    assert sender.wait(EVENT_TIMEOUT) == 0, sender.stderr
    assert receiver.wait(EVENT_TIMEOUT) == 0, receiver.stderr
    assert_same_tree(folder, inbox / "lossy")
    assert netns_lab.dropped_packets(a) > 0  # the loss was real


def test_devices_lists_receiver_and_send_by_name(netns_lab: Lab, tmp_path: Path) -> None:
    a, b = netns_lab.lan(2)
    tree = make_tree(tmp_path / "src")
    inbox = tmp_path / "inbox"
    receiver, ticket = start_receiver(a, tmp_path / "a-home", inbox, "Alice")
    listed = devices(b, tmp_path / "b-home", LISTED_WITHIN)
    assert [(d["name"], d["endpoint_id"]) for d in listed] == [
        ("Alice", ticket["endpoint_id"])
    ], listed
    assert listed[0]["addresses"] and all(
        addr.startswith(f"{a.address}:") for addr in listed[0]["addresses"]
    )
    sender = cli(b, tmp_path / "b-home", "--name", "Bob", "send", "--to", "Alice",
                 "--code", CODE, "--json", str(tree))
    assert sender.expect_event("done", EVENT_TIMEOUT)["ok"] is True, sender.seen
    assert sender.wait(EVENT_TIMEOUT) == 0, sender.stderr
    assert receiver.wait(EVENT_TIMEOUT) == 0, receiver.stderr
    assert_same_tree(tree, inbox / "tree")
    # The receiver exited (--once): its goodbye took it off the LAN.
    assert devices(b, tmp_path / "b-home", 1.0) == []
