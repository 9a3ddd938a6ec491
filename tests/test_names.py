"""What a ``--to`` name means (node/names.py), without a network: the strongest protocol
that answers to it, an ambiguity listing every device with its protocol and ID, and a
LocalSend device never given a name a device of ours has."""

from __future__ import annotations

import pytest

from p2p_transfer.discovery import (
    AmbiguousDeviceError,
    Device,
    DeviceNotFoundError,
    DiscoveryError,
    ticket_for,
)
from p2p_transfer.localsend import LocalSendDevice, Target
from p2p_transfer.net import parse_ticket
from p2p_transfer.net.keys import generate_secret_key
from p2p_transfer.node.names import LookalikeError, paired_named, route_for_name
from p2p_transfer.trust import Pairing
from p2p_transfer.trust.identity import endpoint_id_of

NOT_HERE = DeviceNotFoundError("no device named 'bob' on the local network")


def _id() -> str:
    return endpoint_id_of(generate_secret_key())


def _localsend(name: str, host: str, fingerprint: str = "CD" * 32) -> LocalSendDevice:
    return LocalSendDevice(name, fingerprint, host, 53317, "https", "Pixel", "mobile", 0.0)


def _pairing(name: str, endpoint_id: str, *addresses: str) -> Pairing:
    return Pairing(endpoint_id, name, 0.0, 1e12, addresses)


def _device(name: str, endpoint_id: str, address: str) -> Device:
    return Device(name, endpoint_id, (address,), 1, f"{name}._p2p-transfer._udp.local.")


def test_a_name_announced_on_the_lan_goes_over_p2p_transfer() -> None:
    bob = _id()
    ticket = ticket_for(bob, ["10.0.0.3:4000"])
    # bob's own LocalSend announcement (same name, same host) does not make it ambiguous.
    route = route_for_name("bob", ticket, [], [_localsend("bob", "10.0.0.3")])
    assert (route.target, route.via, route.found, route.peer_id) == (
        ticket, "p2p-transfer", "lan", bob
    )
    assert route.warning == ""


def test_a_localsend_alias_equal_to_an_announced_name_is_an_ambiguity_listing_both() -> None:
    bob = _id()
    ticket = ticket_for(bob, ["10.0.0.3:4000"])
    with pytest.raises(AmbiguousDeviceError) as raised:
        route_for_name("bob", ticket, [], [_localsend("Bob", "10.0.0.9")])
    assert str(raised.value) == (
        f"'bob' names a LocalSend device and a p2p-transfer device; send to the one you mean "
        f"with its ID prefix (--to {bob[:12]}) or its ticket:\n"
        f"  p2p-transfer: bob at 10.0.0.3:4000, ID {bob[:12]}\n"
        "  LocalSend: Bob at 10.0.0.9:53317, fingerprint CDCDCDCD (claimed; LocalSend proves "
        "no one)"
    )


def test_two_devices_of_ours_with_one_name_are_listed_with_their_ids_their_own_localsend_left_out(
) -> None:
    first, second = _id(), _id()
    several = AmbiguousDeviceError("matches 2", [_device("vm", first, "10.0.0.2:4000"),
                                                 _device("vm", second, "10.0.0.3:4000")])
    # Each announces itself to LocalSend too, from its own address: neither is listed again.
    heard = [_localsend("vm", "10.0.0.2"), _localsend("vm", "10.0.0.3")]
    with pytest.raises(AmbiguousDeviceError) as raised:
        route_for_name("vm", several, [], heard)
    message = str(raised.value)
    assert message.startswith("'vm' names 2 p2p-transfer devices; send to the one you mean "
                              f"with its ID prefix (--to {first[:12]}) or its ticket:\n")
    assert message.splitlines()[1:] == [
        f"  p2p-transfer: vm at 10.0.0.2:4000, ID {first[:12]}",
        f"  p2p-transfer: vm at 10.0.0.3:4000, ID {second[:12]}",
    ]
    assert "localsend:" not in message
    # A third, LocalSend-only device of that name is listed too, still with no LocalSend route.
    with pytest.raises(AmbiguousDeviceError) as raised:
        route_for_name("vm", several, [], [*heard, _localsend("vm", "10.0.0.9", "AB" * 32)])
    assert str(raised.value).startswith("'vm' names a LocalSend device and 2 p2p-transfer")
    assert "LocalSend: vm at 10.0.0.9:53317, fingerprint ABABABAB" in str(raised.value)
    assert "localsend:" not in str(raised.value)


def test_a_paired_device_not_announced_is_dialed_where_it_was_last_reached() -> None:
    bob = _id()
    paired = [_pairing("bob", bob, "10.0.0.3:4000")]
    # Its own LocalSend announcement, at the address it was reached at, is not a rival.
    route = route_for_name("bob", NOT_HERE, paired, [_localsend("bob", "10.0.0.3")])
    assert (route.via, route.found, route.peer_name, route.peer_id) == (
        "p2p-transfer", "pairing", "bob", bob
    )
    assert isinstance(route.target, str)
    assert list(parse_ticket(route.target).direct_addresses()) == ["10.0.0.3:4000"]
    assert route.addresses == ("10.0.0.3:4000",)


def test_a_localsend_device_taking_a_paired_name_while_it_is_away_gets_a_refusal() -> None:
    bob = _id()
    paired = [_pairing("bob", bob, "10.0.0.3:4000")]
    with pytest.raises(LookalikeError) as raised:
        route_for_name("BOB", NOT_HERE, paired, [_localsend("bob", "10.0.0.66")])
    message = str(raised.value)
    assert message.startswith(
        f"bob (paired, ID {bob[:12]}) is not announced on this network, and a LocalSend "
        "device at 10.0.0.66:53317 calls itself 'BOB': nothing sent — LocalSend cannot prove "
        "it is bob."
    )
    assert "p2p-transfer doctor" in message and "localsend:" not in message
    assert message.splitlines()[1:] == [
        f"  p2p-transfer: bob (paired; not announced now), ID {bob[:12]}",
        "  LocalSend: bob at 10.0.0.66:53317, fingerprint CDCDCDCD (claimed; LocalSend proves "
        "no one)",
    ]
    # Never reached at an address: its own announcement cannot be told from another's.
    with pytest.raises(LookalikeError):
        route_for_name("bob", NOT_HERE, [_pairing("bob", bob)], [_localsend("bob", "10.0.0.3")])


def test_a_paired_device_never_reached_and_not_announced_says_what_to_do() -> None:
    bob = _id()
    with pytest.raises(DeviceNotFoundError) as raised:
        route_for_name("bob", NOT_HERE, [_pairing("bob", bob)], [])
    assert str(raised.value) == (
        f"bob (paired, ID {bob[:12]}) is not announced on this network and was never reached "
        "at an address to try again; if it is on, send with its ticket (`p2p-transfer "
        "receive` prints it); `p2p-transfer doctor` says why devices don't see each other"
    )
    # When the LAN could not be asked at all, its reason is said too.
    with pytest.raises(DeviceNotFoundError) as raised:
        route_for_name("bob", DiscoveryError("multicast is not available"),
                       [_pairing("bob", bob)], [])
    assert "not announced on this network (multicast is not available)" in str(raised.value)


def test_an_announced_device_under_a_paired_name_but_another_key_is_ambiguous() -> None:
    paired_bob, stranger = _id(), _id()
    ticket = ticket_for(stranger, ["10.0.0.7:4000"])
    with pytest.raises(AmbiguousDeviceError) as raised:
        route_for_name("bob", ticket, [_pairing("bob", paired_bob, "10.0.0.3:4000")], [])
    message = str(raised.value)
    assert f"p2p-transfer: bob at 10.0.0.7:4000, ID {stranger[:12]}" in message
    assert f"p2p-transfer: bob (paired; not announced now), ID {paired_bob[:12]}" in message
    # The paired one itself, announced: no question.
    ticket = ticket_for(paired_bob, ["10.0.0.3:4000"])
    route = route_for_name("bob", ticket, [_pairing("bob", paired_bob, "10.0.0.3:4000")], [])
    assert route.found == "lan" and route.peer_id == paired_bob


def test_only_a_name_no_device_of_ours_has_reaches_localsend_and_says_so() -> None:
    phone = _localsend("phone", "10.0.0.8")
    route = route_for_name("phone", NOT_HERE, [], [phone])
    assert route.target == phone.target() and isinstance(route.target, Target)
    assert (route.via, route.found, route.peer_name) == ("localsend", "localsend", "phone")
    assert route.warning == "phone is a LocalSend device: files go unverified by the receiver's key"
    event = route.event("s1", "phone")
    assert (event.via, event.warning, event.addresses) == (
        "localsend", route.warning, ["10.0.0.8:53317"]
    )
    # Two LocalSend devices of one name (and none of ours): their addresses are the way out.
    with pytest.raises(AmbiguousDeviceError) as raised:
        route_for_name("phone", NOT_HERE, [], [phone, _localsend("phone", "10.0.0.9")])
    assert "send to the one you mean with --to localsend:10.0.0.8:53317" in str(raised.value)
    # Nobody answers to it: the LAN's own error, as it was.
    with pytest.raises(DeviceNotFoundError) as missing:
        route_for_name("desk", NOT_HERE, [], [])
    assert missing.value is NOT_HERE


def test_a_pairing_is_named_by_its_name_in_any_case_or_an_id_prefix() -> None:
    bob, carol = _id(), _id()
    pairings = [_pairing("Bob", bob), _pairing("carol", carol)]
    assert paired_named("bob", pairings) == [pairings[0]]
    assert paired_named(carol[:8], pairings) == [pairings[1]]
    assert paired_named("dave", pairings) == []
    assert paired_named("ab", [_pairing("x", "ab" + bob[2:])]) == []  # too short a prefix
