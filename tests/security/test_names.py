"""Names as an attacker on the LAN uses them: a LocalSend device that announces the name of
a paired device never receives its files (while that device is there, and while it is
not), and two real receivers of one name make an error that lists both IDs instead of a
pick. The impostor is a real LocalSend HTTPS server that accepts everything, so a send
that reached it would land in its folder; the two receivers run in network namespaces
of their own, announcing over mDNS and LocalSend as a person's ``receive`` does."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from conftest import Peers
from e2e.cli import CODE
from netns import Host, JsonLines, Lab
from p2p_transfer.discovery import AmbiguousDeviceError, DeviceNotFoundError
from p2p_transfer.events import Event, OfferEvent
from p2p_transfer.localsend import LocalSendDevice
from p2p_transfer.localsend.receiver import ReceiverSetup
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.node.names import LookalikeError
from p2p_transfer.transfer import Decision, IncomingOffer, ReceiveOptions, SendOptions

#: Seconds for a process's next expected event.
EVENT_TIMEOUT = 30.0
#: Where the impostor's LocalSend server listens.
IMPOSTOR_IP = "127.0.0.2"


@dataclass
class Impostor:
    """A LocalSend server on 127.0.0.1 that calls itself ``alias`` and takes every offer."""

    node: Node
    device: LocalSendDevice
    inbox: Path
    offers: list[Event]

    def got_nothing(self) -> bool:
        return not self.offers and (not self.inbox.exists() or not any(self.inbox.iterdir()))


@pytest.fixture
async def impostor(tmp_path: Path) -> AsyncIterator[Impostor]:
    async def take_everything(offer: IncomingOffer) -> Decision:
        return Decision(True)

    inbox = tmp_path / "stolen"
    # Another machine than the paired device's (127.0.0.1): loopback has the whole /8.
    node = Node.without_endpoint(NodeConfig(tmp_path / "mallory", "rx", bind_addr=IMPOSTOR_IP))
    offers: list[Event] = []
    node.events.subscribe(lambda e: offers.append(e) if isinstance(e, OfferEvent) else None)
    service = await node.start_localsend(
        ReceiverSetup(ReceiveOptions(target=inbox, auto_accept=True), take_everything, None),
        0, announce=False,
    )
    # As its multicast announcement makes it heard: the paired device's name, its own
    # address and certificate.
    device = LocalSendDevice("rx", service.fingerprint, IMPOSTOR_IP, service.port, "https",
                             "Evil", "desktop", 0.0)
    try:
        yield Impostor(node, device, inbox, offers)
    finally:
        await node.close()


def _heard(node: Node, monkeypatch: pytest.MonkeyPatch, devices: list[LocalSendDevice]) -> None:
    async def scan(seconds: float) -> list[LocalSendDevice]:
        return devices

    monkeypatch.setattr(node.presence, "scan_localsend", scan)


async def _paired(peers: Peers, tmp_path: Path) -> Path:
    """Pair by ticket (the code), as a first send does; returns the file to send next."""
    first = tmp_path / "first.txt"
    first.write_text("hello rx\n")
    assert (await peers.send(first)).ok
    secret = tmp_path / "secret.txt"
    secret.write_text("for rx only\n")
    return secret


async def test_a_localsend_alias_equal_to_a_paired_name_never_receives_its_files(
    peers: Peers, impostor: Impostor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = await _paired(peers, tmp_path)
    sender = peers.sender
    _heard(sender, monkeypatch, [impostor.device])

    # The paired device announced on the LAN: an ambiguity, listing both; nothing sent.
    async def announced(to: str) -> str:
        return peers.ticket

    monkeypatch.setattr(sender.presence, "resolve", announced)
    result = await sender.send("rx", [secret], SendOptions())
    assert isinstance(result.error, AmbiguousDeviceError), result
    assert peers.receiver.endpoint_id[:12] in str(result.error)
    assert f"LocalSend: rx at {IMPOSTOR_IP}:{impostor.device.port}" in str(result.error)

    # The paired device away (not announced): a refusal, nothing sent, also with no one to
    # ask (--json, --yes, the app: a LocalSend route would have gone ahead unasked).
    async def away(to: str) -> str:
        raise DeviceNotFoundError(f"no device named {to!r} on the local network")

    monkeypatch.setattr(sender.presence, "resolve", away)
    for name in ("rx", "RX"):
        result = await sender.send(name, [secret], SendOptions())
        assert isinstance(result.error, LookalikeError), (name, result)
    assert impostor.got_nothing()
    assert not (peers.target / "secret.txt").exists()

    # The paired device by its ID prefix (no LocalSend alias is that), or with the impostor
    # announcing from the device's own address (it passes for the device's own LocalSend
    # face): sent where the device was last reached, over our protocol, whose handshake
    # proves the key. The files reach the paired device, never the server.
    for name, heard in [(peers.receiver.endpoint_id[:8], impostor.device),
                        ("rx", replace(impostor.device, host="127.0.0.1"))]:
        _heard(sender, monkeypatch, [heard])
        (peers.target / "secret.txt").unlink(missing_ok=True)
        result = await sender.send(name, [secret], SendOptions())
        assert result.ok, (name, result)
        assert (peers.target / "secret.txt").read_text() == "for rx only\n"
    assert impostor.got_nothing()
    _heard(sender, monkeypatch, [impostor.device])

    # Control: without the pairing the same name reaches the same server (so the
    # impostor would have taken the files, had a send gone to it).
    sender.pairings.clear()
    result = await sender.send("rx", [secret], SendOptions())
    assert result.ok, result
    assert (impostor.inbox / "secret.txt").read_text() == "for rx only\n"


# --- two real receivers of one name, in network namespaces ---------------------------


def _cli(host: Host, home: Path, *args: str) -> JsonLines:
    return host.spawn(sys.executable, "-m", "p2p_transfer", "--config-dir", str(home), *args)


def _ours_listed(host: Host, home: Path, name: str) -> list[str]:
    """Endpoint IDs of devices of ours called ``name`` that ``devices`` lists from ``host``."""
    listing = host.run(sys.executable, "-m", "p2p_transfer", "--config-dir", str(home),
                       "devices", "--json", "--timeout", "2", timeout=EVENT_TIMEOUT)
    devices = [json.loads(line) for line in listing.stdout.splitlines()]
    return [d["endpoint_id"] for d in devices
            if d.get("name") == name and d.get("protocol") != "localsend"]


def test_two_receivers_of_one_name_make_an_error_listing_both_ids(
    netns_lab: Lab, tmp_path: Path
) -> None:
    sender_host, *hosts = netns_lab.lan(3)
    ids = []
    for n, host in enumerate(hosts):
        # As a person starts it: announced over mDNS, and to LocalSend (on by default).
        receiver = _cli(host, tmp_path / f"victim{n}", "--name", "victim", "receive", "--dir",
                        str(tmp_path / f"inbox{n}"), "--yes", "--code", CODE, "--json")
        ids.append(receiver.expect_event("ticket", EVENT_TIMEOUT)["endpoint_id"])
        receiver.expect_event("localsend", EVENT_TIMEOUT)
    deadline = time.monotonic() + EVENT_TIMEOUT
    while len(_ours_listed(sender_host, tmp_path / "sender", "victim")) < 2:  # both announced
        assert time.monotonic() < deadline, "the two receivers were never both listed"
    note = tmp_path / "note.txt"
    note.write_text("which one?\n")
    sender = _cli(sender_host, tmp_path / "sender", "send", "--to", "victim", "--code", CODE,
                  "--json", str(note))
    error = sender.expect_event("error", EVENT_TIMEOUT)
    assert sender.wait(EVENT_TIMEOUT) == 1
    message = error["message"]
    assert message.startswith("'victim' names 2 p2p-transfer devices;"), message
    # Every device, with its protocol and ID; their own LocalSend announcements left out.
    listed = message.splitlines()[1:]
    assert len(listed) == 2, message
    for host, endpoint_id in zip(hosts, ids, strict=True):
        line = re.compile(rf"  p2p-transfer: victim at (.+), ID {endpoint_id[:12]}")
        (where,) = [m.group(1) for m in map(line.fullmatch, listed) if m is not None]
        assert f"{host.address}:" in where, message
    assert "LocalSend" not in message and "localsend:" not in message
    for n in (0, 1):  # nothing sent to either
        inbox = tmp_path / f"inbox{n}"
        assert not inbox.exists() or not any(inbox.iterdir())
