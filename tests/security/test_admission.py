"""Connection caps, idle eviction and pending offers: a flood of connections cannot
keep an honest peer out, and each cap holds when no one can be dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import pytest

from conftest import CODE, Peers
from p2p_transfer.events import DoneEvent, OfferEvent, StateEvent
from p2p_transfer.limits import (
    MANIFEST_ENTRIES_HELD,
    MANIFEST_SMALL_OFFER_ENTRIES,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP,
    MAX_MANIFEST_ENTRIES,
    MAX_PENDING_OFFERS,
    MiB,
)
from p2p_transfer.net import NetError
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.protocol import Decline, Error, Offer, Welcome
from p2p_transfer.transfer import Decision, IncomingOffer, SendOptions
from p2p_transfer.transfer.admission import ConnectionTable, ManifestBudget
from p2p_transfer.trust import attempts as attempts_module
from security.conftest import HostileFactory, reserve, trusted_conversation
from security.hostile import Conversation, HostileClient, file_entry, same_family
from waiting import hold_for, stays, wait_until

#: Idle connections an attacker tries to hold while an honest file goes through.
IDLE_FLOOD = 200
#: The honest file sent through the flood (the size issue 3 names).
HONEST_FILE_SIZE = 100 * MiB


class _Holder:
    """A connection as the table sees it."""

    def __init__(self, name: str, idle: bool = True) -> None:
        self.name = name
        self.idle = idle
        self.evicted: str | None = None

    def evict(self, reason: str) -> None:
        self.evicted = reason


# --- The table itself ----------------------------------------------------------------


def test_table_evicts_the_oldest_idle_connection_of_a_full_ip() -> None:
    table = ConnectionTable(max_total=10, max_per_ip=3)
    old, busy, young = _Holder("old"), _Holder("busy", idle=False), _Holder("young")
    for holder in (old, busy, young):
        assert table.admit(holder, "10.0.0.1")
    newcomer = _Holder("new")
    assert table.admit(newcomer, "10.0.0.1")
    assert old.evicted == "too many connections; idle connection dropped"
    assert busy.evicted is None and young.evicted is None
    assert len(table) == 3


def test_table_refuses_when_no_one_of_that_ip_is_idle() -> None:
    table = ConnectionTable(max_total=10, max_per_ip=2)
    busy = [_Holder(f"busy{i}", idle=False) for i in range(2)]
    for holder in busy:
        assert table.admit(holder, "10.0.0.1")
    assert not table.admit(_Holder("new"), "10.0.0.1")
    assert all(h.evicted is None for h in busy)
    assert table.admit(_Holder("elsewhere"), "10.0.0.2")  # other addresses unaffected


def test_table_counts_an_ipv6_64_as_one_address() -> None:
    """One host holds a whole /64: its addresses share one per-address share."""
    table = ConnectionTable(max_total=10, max_per_ip=2)
    for suffix in ("1", "2"):
        assert table.admit(_Holder(suffix, idle=False), f"2001:db8:1:2::{suffix}")
    assert not table.admit(_Holder("3", idle=False), "2001:db8:1:2:ffff::3")
    assert table.admit(_Holder("other /64", idle=False), "2001:db8:1:3::1")


def test_table_total_cap_evicts_idle_from_any_ip_then_refuses() -> None:
    table = ConnectionTable(max_total=3, max_per_ip=3)
    idle = _Holder("idle")
    assert table.admit(idle, "10.0.0.1")
    assert table.admit(_Holder("b1", idle=False), "10.0.0.2")
    assert table.admit(_Holder("b2", idle=False), "10.0.0.3")
    assert table.admit(_Holder("b3", idle=False), "10.0.0.4")
    assert idle.evicted is not None
    assert not table.admit(_Holder("b4", idle=False), "10.0.0.5")
    assert len(table) == 3


def test_table_release_frees_a_place() -> None:
    table = ConnectionTable(max_total=1, max_per_ip=1)
    first = _Holder("first", idle=False)
    assert table.admit(first, None)
    assert not table.admit(_Holder("second", idle=False), None)
    table.release(first)
    table.release(first)  # twice is harmless
    assert table.admit(_Holder("third", idle=False), None)


def test_manifest_budget_holds_per_peer_and_in_all_and_gives_back() -> None:
    budget = ManifestBudget(total=300, per_peer=200, small=0, reserve=0)
    assert budget.reserve("a", 150) == ""
    assert "this device's other offers" in budget.reserve("a", 100)  # a's 250 > 200
    assert budget.reserve("b", 100) == ""
    assert "too many large offers" in budget.reserve("c", 100)  # 350 in all > 300
    assert budget.reserve("c", 50) == ""
    assert budget.held == 300
    budget.release("a", 150)
    assert budget.reserve("c", 100) == "" and budget.held == 250


def test_small_offers_fit_while_large_ones_hold_the_budget() -> None:
    """Three peers hold every entry of the budget: a one-file offer, even from one of
    them, still fits (the reserve), and the reserve is bounded too."""
    budget = ManifestBudget(total=600, per_peer=200, small=10, reserve=25)
    for peer in "abc":
        assert budget.reserve(peer, 200) == ""
    assert "too many large offers" in budget.reserve("d", 11)
    assert budget.reserve("d", 1) == "" and budget.reserve("a", 10) == ""  # a's share aside
    assert budget.reserve("e", 10) == ""
    assert "too many offers" in budget.reserve("f", 10)  # 21 + 10 > the reserve of 25
    budget.release("e", 10)
    assert budget.reserve("f", 10) == "" and budget.held == 621


# --- Real connections ----------------------------------------------------------------


async def _hold_after_hello(client: HostileClient, ticket: str, count: int) -> list[Conversation]:
    """``count`` connections of a trusted client that said hello and then sit, each
    counted under the client's own address."""
    held = []
    for _ in range(count):
        conversation = await client.connect_from_bind(ticket)
        welcome = await conversation.hello()
        assert isinstance(welcome, Welcome), welcome
        held.append(conversation)
    return held


def _sessions_ended(peers: Peers) -> int:
    """How many of the receiver's sessions have ended (their connections are let go)."""
    return sum(1 for e in peers.receiver_events(StateEvent) if isinstance(e, StateEvent)
               and e.state.final)


async def _refused(client: HostileClient, ticket: str) -> bool:
    """True when a new connection from the client's address is turned away (at connect
    or right after)."""
    try:
        conversation = await client.connect_from_bind(ticket, timeout=5)
        reply = await conversation.hello()
    except NetError:
        return True
    return not isinstance(reply, Welcome)


async def test_idle_connections_make_room_for_an_honest_peer(
    peers: Peers, hostile: HostileFactory, tmp_path: Path
) -> None:
    client = await hostile("idler")
    idle = [await client.connect_from_bind(peers.ticket) for _ in range(MAX_CONNECTIONS_PER_IP)]
    await stays(
        lambda: all(c.connection.close_reason() is None for c in idle), seconds=0.2,
        what="every idle connection open",
    )
    assert all(c.connection.close_reason() is None for c in idle)
    source = tmp_path / "honest.txt"
    source.write_text("through")
    # From the same address (127.0.0.1) as the idle ones, not over ::1 (see same_family).
    ticket = same_family(peers.ticket, "127.0.0.1")
    assert (await peers.sender.send(ticket, [source], SendOptions(code=CODE))).ok
    reason = await idle[0].closed(5)
    assert "too many connections; idle connection dropped" in reason


async def test_per_ip_cap_holds_when_no_one_is_idle(
    peers: Peers, hostile: HostileFactory, tmp_path: Path
) -> None:
    client = await hostile("busy", bind="127.0.0.3", trusted_by=peers)
    held = await _hold_after_hello(client, peers.ticket, MAX_CONNECTIONS_PER_IP)
    assert await _refused(client, peers.ticket)
    assert all(c.connection.close_reason() is None for c in held)
    source = tmp_path / "other-ip.txt"
    source.write_text("another address is unaffected")
    assert (await peers.send(source)).ok


async def test_total_cap_holds_across_addresses(
    peers: Peers, hostile: HostileFactory
) -> None:
    per_address = MAX_CONNECTIONS_PER_IP
    addresses = MAX_CONNECTIONS // per_address
    held = []
    for i in range(addresses):
        client = await hostile(f"busy{i}", bind=f"127.0.1.{i + 1}", trusted_by=peers)
        held += await _hold_after_hello(client, peers.ticket, per_address)
    assert len(held) == MAX_CONNECTIONS
    late = await hostile("late", bind="127.0.1.200", trusted_by=peers)
    assert await _refused(late, peers.ticket)
    ended = _sessions_ended(peers)
    held[0].close()  # one leaves: there is room again
    await wait_until(
        lambda: _sessions_ended(peers) > ended, what="the receiver to let the leaving peer go"
    )
    conversation = await late.connect_from_bind(peers.ticket)
    assert isinstance(await conversation.hello(), Welcome)


async def test_refused_peers_lingering_before_close_can_be_dropped(
    peers: Peers, hostile: HostileFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that was told no (here: the attempt cap) and does not hang up holds its
    place only until someone needs it: refusals cannot fill the table."""
    monkeypatch.setattr(attempts_module, "GLOBAL_ATTEMPTS_PER_MINUTE", 0)
    monkeypatch.setattr(attempts_module, "FRESH_ADDRESS_ATTEMPTS_PER_MINUTE", 0)
    address = "127.0.0.4"
    lingering = []
    for i in range(MAX_CONNECTIONS_PER_IP):
        client = await hostile(f"refused{i}", bind=address)
        conversation = await client.connect_from_bind(peers.ticket)
        reply = await conversation.hello()
        assert isinstance(reply, Error) and "too many verification attempts" in reply.message
        lingering.append(conversation)  # ...and never closes
    trusted = await hostile("trusted", bind=address, trusted_by=peers)
    conversation = await trusted.connect_from_bind(peers.ticket)
    assert isinstance(await conversation.hello(), Welcome)


async def test_honest_send_completes_through_a_flood_of_idle_connections(
    peers: Peers, hostile: HostileFactory, tmp_path: Path
) -> None:
    """IDLE_FLOOD idle or slow connections from four addresses (one of them the honest
    peer's), kept coming during the transfer: the honest file still arrives verified."""
    attackers = [await hostile(f"flood{i}", bind=f"127.0.0.{1 + 9 * i}") for i in range(4)]
    opened: list[Conversation] = []
    refused = 0

    async def open_one(client: HostileClient, slow: bool = False) -> None:
        nonlocal refused
        try:
            conversation = await client.connect(peers.ticket, timeout=10)
        except NetError:
            refused += 1
            return
        opened.append(conversation)
        if slow:  # a slowloris: half a frame header, then nothing
            with contextlib.suppress(NetError):  # unless it was dropped already
                await conversation.send_raw(b"\x00\x00")

    started = time.monotonic()
    await asyncio.gather(*(open_one(attackers[i % 4], i % 3 == 0) for i in range(IDLE_FLOOD)))
    assert len(opened) + refused == IDLE_FLOOD

    async def keep_coming() -> None:
        i = 0
        while True:
            await open_one(attackers[i % 4])
            i += 1
            await hold_for(0.01)

    churn = asyncio.create_task(keep_coming())
    source = tmp_path / "honest.bin"
    data = os.urandom(HONEST_FILE_SIZE)
    source.write_bytes(data)
    try:
        result = await peers.send(source)
    finally:
        churn.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await churn
    assert result.ok, result.message
    assert (peers.target / "honest.bin").read_bytes() == data
    done = await peers.wait_for_receiver(DoneEvent)
    assert isinstance(done, DoneEvent) and done.ok and done.files == 1
    # The rest were dropped or refused; a drop's close frame may still be on its way.
    await wait_until(
        lambda: sum(c.connection.close_reason() is None for c in opened) <= MAX_CONNECTIONS,
        timeout=5.0,
        what=f"at most {MAX_CONNECTIONS} flood connections left open",
    )
    assert time.monotonic() - started < 60


async def test_pending_offers_are_capped(peers: Peers, hostile: HostileFactory) -> None:
    release = asyncio.Event()
    waiting = 0

    async def busy_user(offer: IncomingOffer) -> Decision:
        nonlocal waiting
        waiting += 1
        await release.wait()
        return Decision(False, "done waiting")

    await reserve(peers, busy_user, auto_accept=False)
    client = await hostile("offerer", trusted_by=peers)
    conversations = []
    for i in range(MAX_PENDING_OFFERS):
        conversation = await client.connect(peers.ticket)
        await conversation.hello()
        offer = asyncio.create_task(conversation.offer([file_entry(f"f{i}.txt", 1)]))
        conversations.append((conversation, offer))
    await wait_until(lambda: waiting == MAX_PENDING_OFFERS, what="offers to wait")
    one_more = await client.connect(peers.ticket)
    await one_more.hello()
    answer, _ = await one_more.offer([file_entry("extra.txt", 1)])
    assert isinstance(answer, Decline), answer
    assert answer.reason == "the receiver has too many offers waiting; try again later"
    assert waiting == MAX_PENDING_OFFERS  # the user was not asked about it
    assert len(peers.receiver_events(OfferEvent)) == MAX_PENDING_OFFERS + 1
    release.set()
    for _, offer in conversations:
        answer, _ = await offer
        assert isinstance(answer, Decline) and answer.reason == "done waiting"


async def test_a_second_node_on_another_address_is_served_during_a_flood(
    peers: Peers, hostile: HostileFactory, tmp_path: Path
) -> None:
    """The per-address cap keeps a flood from one address from touching another."""
    client = await hostile("flooder", bind="127.0.0.6", trusted_by=peers)
    await _hold_after_hello(client, peers.ticket, MAX_CONNECTIONS_PER_IP)
    other = await Node.start(NodeConfig(tmp_path / "other-home", "other", "127.0.0.7"))
    try:
        source = tmp_path / "from-elsewhere.txt"
        source.write_text("hi")
        assert (await other.send(peers.ticket, [source], SendOptions(code=CODE))).ok
    finally:
        await other.close()


#: Paired keys whose largest offers together hold the whole manifest budget.
BUDGET_HOLDERS = MANIFEST_ENTRIES_HELD // MAX_MANIFEST_ENTRIES


async def test_a_one_file_offer_is_accepted_while_three_keys_hold_the_manifest_budget(
    peers: Peers, hostile: HostileFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three paired keys each declare the largest manifest and send no page of it: they
    hold every entry of the budget (a fourth large offer is declined). A paired device's
    one-file offer still goes through."""
    first = tmp_path / "first.txt"
    first.write_text("pairs the honest sender")
    assert (await peers.send(first)).ok
    granted: list[int] = []
    reserve = ManifestBudget.reserve

    def recorded(self: ManifestBudget, peer: str, entries: int) -> str:
        refusal = reserve(self, peer, entries)
        if not refusal:
            granted.append(entries)
        return refusal

    monkeypatch.setattr(ManifestBudget, "reserve", recorded)
    holders = []
    for index in range(BUDGET_HOLDERS):
        conversation = await trusted_conversation(peers, hostile, f"holder{index}")
        await conversation.send(Offer(f"hold{index}", MAX_MANIFEST_ENTRIES, MAX_MANIFEST_ENTRIES,
                                      MAX_MANIFEST_ENTRIES, MAX_MANIFEST_ENTRIES // 1000))
        holders.append(conversation)
    await wait_until(lambda: granted.count(MAX_MANIFEST_ENTRIES) == BUDGET_HOLDERS,
                     what="the holders to take the whole budget")
    late = await trusted_conversation(peers, hostile, "late")
    large = [file_entry(f"large-{i}.txt", 1) for i in range(MANIFEST_SMALL_OFFER_ENTRIES + 1)]
    answer, _ = await late.offer(large)
    assert isinstance(answer, Decline) and "too many large offers" in answer.reason, answer

    source = tmp_path / "one.txt"
    source.write_text("one small file")
    result = await peers.send(source)
    assert result.ok, result.message
    assert (peers.target / "one.txt").read_text() == "one small file"
    assert all(c.connection.close_reason() is None for c in holders)  # still holding
