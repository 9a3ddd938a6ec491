"""Presence alone: what a ``--to`` means (each form reaches its own lookup and no other),
HOST:PORT answered by a real node's address responder, the LAN announcement's failure
and its withdrawal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from p2p_transfer import discovery as discovery_package
from p2p_transfer.discovery import DiscoveryError, ticket_for
from p2p_transfer.events import DiscoveryErrorEvent, Event, LookupEvent
from p2p_transfer.limits import DISCOVERY_FIND_TIMEOUT, PAIRED_LOOKUP_WINDOW
from p2p_transfer.localsend import LocalSendDevice, Target
from p2p_transfer.net import parse_ticket, ticket_endpoint_id
from p2p_transfer.net.keys import generate_secret_key
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.node.presence import Presence
from p2p_transfer.trust.identity import endpoint_id_of


def _ticket(address: str = "10.0.0.5:4000") -> str:
    """A ticket of some device (never dialed here)."""
    return ticket_for(endpoint_id_of(generate_secret_key()), [address])


class Lookups:
    """Stands in for the LAN and LocalSend lookups, noting which ones ran."""

    def __init__(self, ours: str | DiscoveryError, localsend: list[LocalSendDevice]) -> None:
        self.ours = ours
        self.localsend = localsend
        self.asked: list[str] = []

    async def resolve(self, to: str) -> str:
        self.asked.append(f"lan {to}")
        if isinstance(self.ours, DiscoveryError):
            raise self.ours
        return self.ours

    async def scan_localsend(self, seconds: float) -> list[LocalSendDevice]:
        self.asked.append("localsend")
        return self.localsend


def _presence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lookups: Lookups | None = None
) -> Presence:
    presence = Node.without_endpoint(NodeConfig(tmp_path / "home", "us")).presence
    if lookups is not None:
        monkeypatch.setattr(presence, "resolve", lookups.resolve)
        monkeypatch.setattr(presence, "scan_localsend", lookups.scan_localsend)
    return presence


def _localsend_device(name: str, host: str) -> LocalSendDevice:
    return LocalSendDevice(name, "CD" * 32, host, 53317, "https", "Pixel", "mobile", 0.0)


async def test_a_localsend_address_or_target_is_used_as_is_without_a_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = Lookups(DiscoveryError("not asked"), [])
    presence = _presence(tmp_path, monkeypatch, lookups)
    assert await presence.send_target("localsend:10.0.0.7:5000") == Target(
        "10.0.0.7", 5000, "10.0.0.7"
    )
    found = _localsend_device("Phone", "10.0.0.8").target()
    assert await presence.send_target(found) is found
    assert lookups.asked == []


async def test_a_ticket_is_never_taken_for_a_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = _ticket()
    lookups = Lookups(ticket, [_localsend_device(ticket, "10.0.0.8")])
    presence = _presence(tmp_path, monkeypatch, lookups)
    assert await presence.send_target(ticket) == ticket
    assert lookups.asked == [f"lan {ticket}"]  # no LocalSend scan for a ticket


async def test_a_name_only_our_lan_knows_is_our_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = _ticket()
    lookups = Lookups(ticket, [_localsend_device("Phone", "10.0.0.8")])
    presence = _presence(tmp_path, monkeypatch, lookups)
    assert await presence.send_target("laptop") == ticket
    assert sorted(lookups.asked) == ["lan laptop", "localsend"]  # both asked, at once


async def test_a_name_only_a_localsend_device_answers_to_is_that_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = _localsend_device("Phone", "10.0.0.8")
    lookups = Lookups(DiscoveryError("no device named 'phone'"), [phone])
    presence = _presence(tmp_path, monkeypatch, lookups)
    assert await presence.send_target(" phone ") == phone.target()


async def test_a_name_nobody_answers_to_is_the_lans_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = DiscoveryError("no device named 'desk' on this network")
    lookups = Lookups(missing, [_localsend_device("Phone", "10.0.0.8")])
    presence = _presence(tmp_path, monkeypatch, lookups)
    with pytest.raises(DiscoveryError) as raised:
        await presence.send_target("desk")
    assert raised.value is missing


async def test_host_port_asks_that_address_for_the_ticket_and_dials_it_first(
    tmp_path: Path,
) -> None:
    receiver = await Node.start(NodeConfig(tmp_path / "rx", "rx", "127.0.0.1"))
    asking = Node.without_endpoint(NodeConfig(tmp_path / "tx", "tx"))
    try:
        await receiver.answer_address_queries()
        address = next(a for a in receiver.transport.addresses if a.startswith("127.0.0.1:"))
        ticket = await asking.presence.send_target(address)
        assert isinstance(ticket, str)
        assert ticket_endpoint_id(ticket) == receiver.endpoint_id
        assert str(parse_ticket(ticket).direct_addresses()[0]) == address
    finally:
        await asking.close()
        await receiver.close()


class _NoMulticast:
    @classmethod
    async def start(cls, *args: Any, **kwargs: Any) -> _NoMulticast:
        raise DiscoveryError("multicast is not available on this network")


async def test_a_lan_without_multicast_is_an_event_and_the_ticket_says_not_announced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discovery_package, "Discovery", _NoMulticast)
    node = await Node.start(NodeConfig(tmp_path / "home", "us", "127.0.0.1"))
    events: list[Event] = []
    node.events.subscribe(events.append)
    try:
        await node.announce_on_lan()  # does not raise: tickets still work
        assert [e.message for e in events if isinstance(e, DiscoveryErrorEvent)] == [
            "multicast is not available on this network"
        ]
        assert node.announce_ticket().announced is False
        assert await node.browse_lan() is None
    finally:
        await node.close()


class _Announcement:
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


async def test_withdrawing_says_goodbye_once_and_close_waits_for_it(tmp_path: Path) -> None:
    presence = Node.without_endpoint(NodeConfig(tmp_path / "home", "us")).presence
    assert presence.withdraw_from_lan() is None  # never announced: nothing to withdraw
    announcement = _Announcement()
    presence.discovery = announcement  # type: ignore[assignment]
    first = presence.withdraw_from_lan()
    assert first is not None and presence.withdraw_from_lan() is first
    await presence.close()
    assert first.done() and announcement.closed == 1



async def test_a_name_lookup_is_said_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = _ticket()
    presence = _presence(tmp_path, monkeypatch)
    said: list[Event] = []
    lookups = Lookups(ticket, [])

    async def resolve(to: str) -> str:
        if to == "laptop":  # a name: on screen while the LAN is asked
            assert [type(e) for e in said] == [LookupEvent]
        return await lookups.resolve(to)

    monkeypatch.setattr(presence, "resolve", resolve)
    monkeypatch.setattr(presence, "scan_localsend", lookups.scan_localsend)
    presence._events.subscribe(said.append)
    route = await presence.route(" laptop ", "s1")
    assert (route.target, route.found) == (ticket, "lan")
    assert said[0] == LookupEvent("s1", "laptop")
    # A ticket is no lookup.
    said.clear()
    assert (await presence.route(ticket, "s2")).found == "ticket"
    assert not any(isinstance(e, LookupEvent) for e in said)


async def test_a_paired_device_is_looked_for_on_the_lan_only_briefly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "home").mkdir()
    node = Node.without_endpoint(NodeConfig(tmp_path / "home", "us"))
    bob = endpoint_id_of(generate_secret_key())
    node.pairings.add(bob, "bob")
    node.pairings.remember_route(bob, ["10.0.0.3:4000"])
    silent = asyncio.Event()  # mDNS dropped: the LAN never answers

    async def resolve(to: str) -> str:
        await silent.wait()
        raise AssertionError("never answered")

    async def scan(seconds: float) -> list[LocalSendDevice]:
        return []

    monkeypatch.setattr(node.presence, "resolve", resolve)
    monkeypatch.setattr(node.presence, "scan_localsend", scan)
    loop = asyncio.get_running_loop()
    started = loop.time()
    route = await node.presence.route("bob", "s1")
    took = loop.time() - started
    assert (route.found, route.via, route.peer_id, route.addresses) == (
        "pairing", "p2p-transfer", bob, ("10.0.0.3:4000",)
    )
    assert PAIRED_LOOKUP_WINDOW <= took < DISCOVERY_FIND_TIMEOUT
