"""LAN discovery: the pure table and resolution logic, the ``devices`` CLI, and real
mDNS between network namespaces (root only; see tests/netns.py).

zeroconf never runs in this test process: the namespace tests start
``tests/discovery_agent.py`` (or the CLI) inside namespaces they create.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from iroh import iroh_ffi

import p2p_transfer.discovery as discovery_package
from netns import Host, JsonLines, Lab
from p2p_transfer.cli.context import CliContext
from p2p_transfer.cli.devices_command import devices
from p2p_transfer.discovery import (
    AmbiguousDeviceError,
    Announcement,
    Device,
    DeviceNotFoundError,
    DeviceTable,
    DiscoveryError,
    device_ticket,
    looks_like_ticket,
    resolve_device,
    ticket_for,
)
from p2p_transfer.discovery.records import (
    SERVICE_TYPE,
    TXT_KEY_ADDRESSES,
    TXT_KEY_ID,
    TXT_KEY_NAME,
    TXT_KEY_PROTOCOL,
    announceable_addresses,
    decode_txt,
    encode_txt,
    host_name,
    instance_name,
    parse_socket_address,
    service_name,
    valid_addresses,
)
from p2p_transfer.discovery.table import find_device, next_check_ms, refresh_step
from p2p_transfer.events import DeviceEvent, DeviceLostEvent
from p2p_transfer.limits import (
    MAX_DEVICE_ADDRESSES,
    MAX_DEVICE_NAME_CHARS,
    MAX_DNS_LABEL_BYTES,
    MAX_TXT_ITEM_BYTES,
)
from p2p_transfer.net import parse_ticket
from p2p_transfer.protocol.messages import PROTOCOL_VERSION
from waiting import hold_for

AGENT = str(Path(__file__).resolve().parent / "discovery_agent.py")
#: The issue's bar: a device in another namespace is listed within this many seconds.
SEEN_WITHIN = 5.0
#: Probing (~1.7 s) plus a slow CI machine.
REGISTER_WITHIN = 10.0
#: Goodbye packets go out at once; the browser drops the device on the first one.
GOODBYE_WITHIN = 3.0


def real_id() -> str:
    """A valid endpoint ID (an Ed25519 public key), as iroh would print it."""
    return str(iroh_ffi.SecretKey.generate().public())


def device(name: str, endpoint_id: str | None = None, *addresses: str, seen: float = 0) -> Device:
    eid = endpoint_id or secrets.token_hex(32)
    return Device(
        name=name,
        endpoint_id=eid,
        addresses=tuple(addresses) or ("10.0.0.2:4000",),
        protocol=PROTOCOL_VERSION,
        service_name=service_name(name, eid),
        last_seen=seen,
    )


# --- names and records --------------------------------------------------------------------


def test_instance_names_differ_for_devices_sharing_a_name() -> None:
    a, b = secrets.token_hex(32), secrets.token_hex(32)
    assert instance_name("Alice", a) != instance_name("Alice", b)
    assert instance_name("Alice", a) == f"Alice [{a[:12]}]"
    assert service_name("Alice", a).endswith("." + SERVICE_TYPE)
    assert host_name(a) == f"p2p-{a[:12]}.local."


@pytest.mark.parametrize(
    "raw",
    ["🦊" * MAX_DEVICE_NAME_CHARS, "a" * 200, "dots.in.name", "tab\there\x00nul", "", "   ", "\\"],
)
def test_instance_name_is_one_bounded_dns_label(raw: str) -> None:
    eid = secrets.token_hex(32)
    label = instance_name(raw, eid)
    assert len(label.encode()) <= MAX_DNS_LABEL_BYTES
    assert "." not in label and "\\" not in label
    assert not any(ord(c) < 0x20 for c in label)
    assert label.endswith(f" [{eid[:12]}]")
    assert label.encode().decode() == label  # never a split character


def test_txt_round_trip() -> None:
    eid = secrets.token_hex(32)
    addresses = ("10.0.0.2:4000", "[2001:db8::1]:4000")
    announcement = Announcement("Alice's laptop", eid, addresses, 4000)
    decoded = decode_txt(encode_txt(announcement))
    assert decoded is not None
    assert decoded.endpoint_id == eid
    assert decoded.name == "Alice's laptop"
    assert decoded.protocol == PROTOCOL_VERSION
    assert decoded.addresses == ("10.0.0.2:4000", "[2001:db8::1]:4000")


def test_txt_items_fit_dns_sd_limit_with_long_name_and_many_addresses() -> None:
    eid = secrets.token_hex(32)
    addresses = tuple(f"[2001:db8:1234:5678:9abc:def0:1234:{i + 1:x}]:65535" for i in range(20))
    announcement = Announcement("🦊" * MAX_DEVICE_NAME_CHARS, eid, addresses, 65535)
    txt = encode_txt(announcement)
    for key, value in txt.items():
        assert len(f"{key}={value}".encode()) <= MAX_TXT_ITEM_BYTES, key
    decoded = decode_txt(txt)
    assert decoded is not None
    assert 0 < len(decoded.addresses) < len(addresses)
    assert decoded.addresses == addresses[: len(decoded.addresses)]  # the first ones kept
    assert decoded.name and set(decoded.name) == {"🦊"}


@pytest.mark.parametrize(
    "props",
    [
        {},
        {TXT_KEY_ID: None},
        {TXT_KEY_ID: "abc"},
        {TXT_KEY_ID: "g" * 64},
        {TXT_KEY_ID: "a" * 65},
    ],
)
def test_decode_rejects_records_without_a_usable_endpoint_id(props: dict[str, str | None]) -> None:
    assert decode_txt(props) is None


def test_decode_cleans_what_a_stranger_may_announce() -> None:
    eid = secrets.token_hex(32)
    many = ",".join(f"10.0.{i // 250}.{i % 250 + 1}:4000" for i in range(100))
    decoded = decode_txt({
        TXT_KEY_ID: eid.upper(),
        TXT_KEY_NAME: "\x1b[31mEvil\x07\u202e " + "x" * 500,
        TXT_KEY_PROTOCOL: "99999999999999999999",
        TXT_KEY_ADDRESSES: "bogus,10.0.0.1,1.2.3.4:0,[fe80::1%eth0]:4000,0.0.0.0:4000,"
                           "224.0.0.251:5353,[::1]:99999," + many,
        "unknown": "ignored",
    })
    assert decoded is not None
    assert decoded.endpoint_id == eid
    assert not {"\x1b", "\x07", "\u202e"} & set(decoded.name)
    assert len(decoded.name) <= MAX_DEVICE_NAME_CHARS
    assert decoded.protocol is None
    assert len(decoded.addresses) == MAX_DEVICE_ADDRESSES
    assert decoded.addresses[0] == "10.0.0.1:4000"


def test_decode_names_a_nameless_device_by_its_id() -> None:
    eid = secrets.token_hex(32)
    decoded = decode_txt({TXT_KEY_ID: eid, TXT_KEY_NAME: "\x00\x01"})
    assert decoded is not None and decoded.name == eid[:12]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.2:4000", ("10.0.0.2", 4000)),
        ("[2001:db8::1]:4000", ("2001:db8::1", 4000)),
        (" 10.0.0.2:1 ", ("10.0.0.2", 1)),
    ],
)
def test_parse_socket_address(text: str, expected: tuple[str, int]) -> None:
    ip, port = parse_socket_address(text)
    assert (str(ip), port) == expected


@pytest.mark.parametrize(
    "text", ["10.0.0.2", "10.0.0.2:", ":4000", "2001:db8::1:4000", "[10.0.0.2]:4000",
             "10.0.0.2:65536", "10.0.0.2:0", "host:4000", "10.0.0.2:-1", "10.0.0.2:4e3"],
)
def test_parse_socket_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_socket_address(text)


def test_valid_addresses_dedupes_and_canonicalizes() -> None:
    assert valid_addresses(["10.0.0.2:4000", "10.0.0.2:4000", "[2001:DB8::1]:5"]) == (
        "10.0.0.2:4000", "[2001:db8::1]:5",
    )


def test_announceable_addresses_prefers_what_other_hosts_can_reach() -> None:
    got = announceable_addresses(
        ["127.0.0.1:4000", "[::1]:4001", "[fe80::1]:4001", "[2001:db8::1]:4001", "10.0.0.2:4000"]
    )
    assert got == ("10.0.0.2:4000", "[2001:db8::1]:4001")
    # A loopback-only node still announces, for peers on the same machine.
    assert announceable_addresses(["127.0.0.1:4000"]) == ("127.0.0.1:4000",)
    assert announceable_addresses(["nonsense"]) == ()


# --- the device table ---------------------------------------------------------------------


def test_table_adds_updates_and_ignores_repeats() -> None:
    now = [100.0]
    table = DeviceTable(clock=lambda: now[0])
    alice = device("Alice")
    assert table.upsert(alice) == "added"
    assert table.get(alice.service_name).last_seen == 100.0  # type: ignore[union-attr]
    now[0] = 105.0
    assert table.upsert(alice) is None
    assert table.get(alice.service_name).last_seen == 105.0  # type: ignore[union-attr]
    moved = Device(alice.name, alice.endpoint_id, ("10.0.0.9:4000",), alice.protocol,
                   alice.service_name)
    assert table.upsert(moved) == "updated"
    now[0] = 110.0
    table.touch(alice.service_name)
    assert table.get(alice.service_name).last_seen == 110.0  # type: ignore[union-attr]
    assert table.remove(alice.service_name) is not None
    assert table.remove(alice.service_name) is None
    assert len(table) == 0


def test_table_never_holds_its_own_endpoint() -> None:
    own = secrets.token_hex(32)
    table = DeviceTable(own_endpoint_id=own.upper())
    assert table.upsert(device("Me", own)) is None
    assert len(table) == 0
    assert table.upsert(device("Other")) == "added"


def test_table_is_bounded() -> None:
    table = DeviceTable(capacity=3)
    for i in range(10):
        table.upsert(device(f"d{i}"))
    assert len(table) == 3
    assert [d.name for d in table.devices()] == ["d0", "d1", "d2"]


def test_table_lists_by_name() -> None:
    table = DeviceTable()
    for name in ("bob", "Alice", "carol"):
        table.upsert(device(name))
    assert [d.name for d in table.devices()] == ["Alice", "bob", "carol"]


@pytest.mark.parametrize(
    ("age_percent", "step"),
    [(0, 0), (50, 0), (79.9, 0), (80, 1), (84, 1), (85, 2), (90, 3), (95, 4), (99.9, 4),
     (100, None), (250, None)],
)
def test_refresh_step_follows_rfc6762(age_percent: float, step: int | None) -> None:
    ttl = 120
    assert refresh_step(1000.0, ttl, 1000.0 + ttl * 1000 * age_percent / 100) == step


def test_refresh_step_of_zero_ttl_is_expired() -> None:
    assert refresh_step(0.0, 0, 0.0) is None


def test_next_check_is_the_next_unsent_refresh_point_then_expiry() -> None:
    assert next_check_ms(1000.0, 10, 0) == 1000.0 + 8000.0
    assert next_check_ms(1000.0, 10, 1) == 1000.0 + 8500.0
    assert next_check_ms(1000.0, 10, 4) == 1000.0 + 10000.0


# --- resolving --to NAME --------------------------------------------------------------------


def test_resolve_exact_name() -> None:
    alice, bob = device("Alice"), device("Bob")
    assert resolve_device("Alice", [alice, bob]) is alice
    assert resolve_device("  Bob ", [alice, bob]) is bob


def test_resolve_case_insensitively_when_no_exact_match() -> None:
    alice = device("Alice")
    assert resolve_device("alice", [alice]) is alice


def test_exact_name_wins_over_case_insensitive_match() -> None:
    upper, lower = device("Alice"), device("alice")
    assert resolve_device("alice", [upper, lower]) is lower
    with pytest.raises(AmbiguousDeviceError):
        resolve_device("ALICE", [upper, lower])


def test_shared_name_is_an_error_listing_the_candidates() -> None:
    a = device("Alice", "aa" * 32, "10.0.0.2:4000")
    b = device("Alice", "bb" * 32, "10.0.0.3:4000")
    with pytest.raises(AmbiguousDeviceError) as caught:
        resolve_device("Alice", [a, b])
    message = str(caught.value)
    assert "2 devices" in message
    assert "aaaaaaaaaaaa" in message and "bbbbbbbbbbbb" in message
    assert "10.0.0.2:4000" in message and "10.0.0.3:4000" in message
    assert {d.endpoint_id for d in caught.value.candidates} == {a.endpoint_id, b.endpoint_id}
    # The way out the message suggests works:
    assert resolve_device("bbbb", [a, b]) is b


def test_resolve_by_endpoint_id_prefix() -> None:
    a = device("Alice", "ab12" + "0" * 60)
    b = device("Bob", "ab34" + "0" * 60)
    assert resolve_device("AB12", [a, b]) is a
    assert resolve_device("ab34" + "0" * 60, [a, b]) is b


def test_short_id_prefix_is_not_accepted() -> None:
    a = device("Alice", "ab12" + "0" * 60)
    with pytest.raises(DeviceNotFoundError):
        resolve_device("ab1", [a])


def test_ambiguous_id_prefix() -> None:
    a = device("Alice", "abcd1" + "0" * 59)
    b = device("Bob", "abcd2" + "0" * 59)
    with pytest.raises(AmbiguousDeviceError):
        resolve_device("abcd", [a, b])


def test_one_endpoint_seen_twice_is_not_ambiguous() -> None:
    eid = secrets.token_hex(32)
    old = Device("Alice", eid, ("10.0.0.2:1",), 1, "old name", last_seen=1.0)
    new = Device("Alice", eid, ("10.0.0.2:2",), 1, "new name", last_seen=2.0)
    assert resolve_device("Alice", [old, new]) is new


@pytest.mark.parametrize("to", ["Carol", "", "   "])
def test_not_found_says_what_was_seen_and_what_to_do(to: str) -> None:
    with pytest.raises(DeviceNotFoundError) as caught:
        resolve_device(to, [device("Alice")])
    if to.strip():
        assert "Alice" in str(caught.value)
        assert "ticket" in str(caught.value)


class FakeSource:
    """A scripted browser: devices appear at given times."""

    def __init__(self, schedule: list[tuple[float, Device]]) -> None:
        self.start = time.monotonic()
        self.schedule = schedule

    def devices(self) -> list[Device]:
        elapsed = time.monotonic() - self.start
        return [d for at, d in self.schedule if at <= elapsed]

    async def wait_for_change(self, timeout: float) -> None:
        """Returns when the next scheduled device appears, or after ``timeout``."""
        elapsed = time.monotonic() - self.start
        upcoming = [at - elapsed for at, _ in self.schedule if at > elapsed]
        await hold_for(min([timeout, *upcoming]) if upcoming else timeout)


async def test_find_waits_for_the_device_then_settles() -> None:
    alice = device("Alice")
    source = FakeSource([(0.2, alice)])
    started = time.monotonic()
    assert await find_device(source, "Alice", timeout=2.0, settle=0.3) is alice
    assert 0.45 <= time.monotonic() - started < 1.5


async def test_find_reports_a_second_device_of_the_same_name() -> None:
    source = FakeSource([(0.05, device("Alice")), (0.2, device("Alice"))])
    with pytest.raises(AmbiguousDeviceError):
        await find_device(source, "Alice", timeout=2.0, settle=0.5)


async def test_find_gives_up_after_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(DeviceNotFoundError):
        await find_device(FakeSource([(0.0, device("Bob"))]), "Alice", timeout=0.3, settle=0.1)
    assert 0.3 <= time.monotonic() - started < 1.0


# --- dialing a device ---------------------------------------------------------------------


def test_device_ticket_dials_the_announced_id_and_addresses() -> None:
    eid = real_id()
    found = device("Alice", eid, "10.77.0.2:4000", "[2001:db8::2]:4000")
    addr = parse_ticket(device_ticket(found))
    assert str(addr.id()) == eid
    assert sorted(addr.direct_addresses()) == sorted(["10.77.0.2:4000", "[2001:db8::2]:4000"])
    assert addr.relay_url() is None


@pytest.mark.parametrize(
    ("endpoint_id", "addresses"),
    [("not-an-id", ["10.0.0.2:4000"]), (None, []), (None, ["bogus"])],
)
def test_ticket_for_refuses_what_cannot_be_dialed(
    endpoint_id: str | None, addresses: list[str]
) -> None:
    with pytest.raises(DiscoveryError):
        ticket_for(endpoint_id or real_id(), addresses)


def test_a_ticket_is_told_apart_from_a_device_name() -> None:
    eid = real_id()
    ticket = ticket_for(eid, ["10.0.0.2:4000"])
    assert looks_like_ticket(ticket) and looks_like_ticket(f"  {ticket}\n")
    assert looks_like_ticket(ticket[:30])  # cut short: still a (bad) ticket, not a name
    for name in ("Alice", "endpoint", "endpoint-laptop", "Endpoint 2", eid[:8], "10.0.0.2:4000"):
        assert not looks_like_ticket(name), name


# --- events ---------------------------------------------------------------------------------


def test_device_events_json() -> None:
    eid = secrets.token_hex(32)
    assert DeviceEvent("Alice", eid, ["10.0.0.2:4000"]).to_dict() == {
        "event": "device", "name": "Alice", "endpoint_id": eid, "addresses": ["10.0.0.2:4000"],
        "protocol": "p2p-transfer", "fingerprint": "", "device_model": "", "device_type": "",
    }
    assert DeviceLostEvent("Alice", eid, "goodbye").to_dict() == {
        "event": "device_lost", "name": "Alice", "endpoint_id": eid, "reason": "goodbye",
    }


# --- the devices command (zeroconf replaced by a stub) --------------------------------------


class StubDiscovery:
    """Stands in for Discovery so the command's output logic runs without a network."""

    found: ClassVar[list[Device]] = []
    fail: ClassVar[str | None] = None
    own: ClassVar[str | None] = None
    closed: ClassVar[bool] = False

    @classmethod
    async def start(cls, events: Any = None, own_endpoint_id: str | None = None) -> StubDiscovery:
        if cls.fail:
            raise DiscoveryError(cls.fail)
        cls.own = own_endpoint_id
        return cls()

    async def list_devices(self, duration: float) -> list[Device]:
        return [d for d in self.found if d.endpoint_id != self.own]

    async def close(self) -> None:
        type(self).closed = True


@pytest.fixture
def stub_discovery(monkeypatch: pytest.MonkeyPatch) -> type[StubDiscovery]:
    StubDiscovery.found, StubDiscovery.fail, StubDiscovery.closed = [], None, False
    monkeypatch.setattr(discovery_package, "Discovery", StubDiscovery)
    return StubDiscovery


def invoke_devices(home: Path, *args: str) -> Any:
    context = CliContext(config_dir=home, device_name="me")
    return CliRunner().invoke(devices, list(args), obj=context)


def test_devices_json_prints_one_line_per_device(
    stub_discovery: type[StubDiscovery], home: Path
) -> None:
    alice = device("Alice", None, "10.77.0.2:4000")
    bob = device("Bob", None, "10.77.0.3:4000", "[2001:db8::3]:4000")
    stub_discovery.found = [alice, bob]
    result = invoke_devices(home, "--json", "--timeout", "0.1")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    ours = {"protocol": "p2p-transfer", "fingerprint": "", "device_model": "", "device_type": ""}
    assert lines == [
        {"event": "device", "name": "Alice", **ours,
         "endpoint_id": alice.endpoint_id, "addresses": ["10.77.0.2:4000"]},
        {"event": "device", "name": "Bob", **ours,
         "endpoint_id": bob.endpoint_id,
         "addresses": ["10.77.0.3:4000", "[2001:db8::3]:4000"]},
    ]
    assert stub_discovery.closed
    assert not (home / "identity.key").exists()  # listing creates no identity


def test_devices_table_for_people(stub_discovery: type[StubDiscovery], home: Path) -> None:
    alice = device("Alice", None, "10.77.0.2:4000")
    stub_discovery.found = [alice]
    result = invoke_devices(home, "--timeout", "0.1")
    assert result.exit_code == 0
    assert result.stderr == "looking for devices on this network (0.1 s)…\n"
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "ENDPOINT", "ID", "ADDRESSES"]
    assert row.split() == ["Alice", alice.endpoint_id[:12], "10.77.0.2:4000"]


def test_devices_none_found_explains(stub_discovery: type[StubDiscovery], home: Path) -> None:
    result = invoke_devices(home, "--timeout", "0.1")
    assert result.exit_code == 0
    assert "no devices found" in result.output and "ticket" in result.output
    assert "p2p-transfer doctor" in result.output and "client isolation" in result.output


def test_devices_hides_this_device(stub_discovery: type[StubDiscovery], home: Path) -> None:
    from p2p_transfer.trust import endpoint_id_of, load_or_create_secret_key

    own = endpoint_id_of(load_or_create_secret_key(home))
    stub_discovery.found = [device("Me", own), device("Other")]
    result = invoke_devices(home, "--json", "--timeout", "0.1")
    assert [json.loads(line)["name"] for line in result.output.splitlines()] == ["Other"]


def test_devices_discovery_failure_is_one_clear_error(
    stub_discovery: type[StubDiscovery], home: Path
) -> None:
    stub_discovery.fail = "LAN discovery unavailable: no multicast"
    result = invoke_devices(home, "--json", "--timeout", "0.1")
    assert result.exit_code == 1
    assert json.loads(result.output) == {
        "event": "error", "message": "LAN discovery unavailable: no multicast",
        "session": None, "detail": "",
    }


@pytest.mark.parametrize("timeout", ["0", "-1", "601", "soon"])
def test_devices_rejects_bad_timeout(home: Path, timeout: str) -> None:
    result = invoke_devices(home, "--timeout", timeout)
    assert result.exit_code == 2


# --- real mDNS between network namespaces -------------------------------------------------


def agent(host: Host, *args: str) -> JsonLines:
    """Start the discovery agent inside ``host``'s namespace."""
    return host.spawn(sys.executable, AGENT, *args)


def announce(host: Host, name: str, endpoint_id: str, *extra: str) -> JsonLines:
    return agent(host, "announce", "--name", name, "--id", endpoint_id,
                 "--addr", f"{host.address}:4000", *extra)


def test_announced_device_is_seen_in_another_namespace_then_says_goodbye(
    netns_lab: Lab,
) -> None:
    a, b = netns_lab.lan(2)
    eid = secrets.token_hex(32)
    browser = agent(b, "browse")
    browser.expect_event("browsing", REGISTER_WITHIN)
    announcer = announce(a, "Alice", eid)
    announcer.expect_event("announced", REGISTER_WITHIN)
    started = time.monotonic()
    seen = browser.expect_event("device", SEEN_WITHIN, endpoint_id=eid)
    assert seen == {"event": "device", "name": "Alice", "endpoint_id": eid,
                    "addresses": [f"{a.address}:4000"], "protocol": "p2p-transfer",
                    "fingerprint": "", "device_model": "", "device_type": ""}
    announcer.send("stop")
    lost = browser.expect_event("device_lost", GOODBYE_WITHIN, endpoint_id=eid)
    assert lost["reason"] == "goodbye"
    assert time.monotonic() - started < SEEN_WITHIN + GOODBYE_WITHIN
    announcer.expect_event("stopped", GOODBYE_WITHIN)
    assert announcer.wait(5) == 0


def test_vanished_device_expires_after_its_ttl_while_a_live_one_is_refreshed(
    netns_lab: Lab,
) -> None:
    ttl = 3
    a, b = netns_lab.lan(2)
    eid = secrets.token_hex(32)
    browser = agent(b, "browse")
    browser.expect_event("browsing", REGISTER_WITHIN)
    announcer = announce(a, "Alice", eid, "--ttl", str(ttl))
    browser.expect_event("device", REGISTER_WITHIN, endpoint_id=eid)
    # Alive: three TTLs pass and it stays listed (refresh queries are answered).
    with pytest.raises(AssertionError):
        browser.expect_event("device_lost", ttl * 3)
    os.killpg(announcer.proc.pid, signal.SIGKILL)  # no goodbye: only the TTL can tell
    lost = browser.expect_event("device_lost", ttl + 3, endpoint_id=eid)
    assert lost["reason"] == "expired"


def test_two_devices_with_one_name_are_both_listed_and_ambiguous(netns_lab: Lab) -> None:
    a, b, c = netns_lab.lan(3)
    id_a, id_c = real_id(), real_id()
    for host, eid in ((a, id_a), (c, id_c)):
        announce(host, "Alice", eid).expect_event("announced", REGISTER_WITHIN)
    finder = agent(b, "find", "--to", "Alice", "--timeout", str(SEEN_WITHIN))
    error = finder.expect_event("error", SEEN_WITHIN + 5)
    assert error["kind"] == "AmbiguousDeviceError"
    assert id_a[:12] in error["message"] and id_c[:12] in error["message"]
    by_prefix = agent(b, "find", "--to", id_c[:8], "--timeout", str(SEEN_WITHIN))
    found = by_prefix.expect_event("found", SEEN_WITHIN + 5)
    assert found["endpoint_id"] == id_c
    assert found["addresses"] == [f"{c.address}:4000"]
    assert str(parse_ticket(found["ticket"]).id()) == id_c


def test_a_node_ignores_its_own_announcement(netns_lab: Lab) -> None:
    a, b = netns_lab.lan(2)
    id_a, id_b = secrets.token_hex(32), secrets.token_hex(32)
    both = announce(a, "Alice", id_a, "--browse")
    both.expect_event("announced", REGISTER_WITHIN)
    announce(b, "Bob", id_b).expect_event("announced", REGISTER_WITHIN)
    both.expect_event("device", SEEN_WITHIN, endpoint_id=id_b)
    both.send("stop")
    both.expect_event("stopped", GOODBYE_WITHIN)
    assert not [e for e in both.seen if e.get("endpoint_id") == id_a]


def test_discovery_works_across_several_interfaces(netns_lab: Lab) -> None:
    """A host on two LANs (default route on one only) is found from both."""
    lan1, lan2 = netns_lab.bridge("br1"), netns_lab.bridge("br2")
    multi, left, right = netns_lab.host("m"), netns_lab.host("l"), netns_lab.host("r")
    netns_lab.attach(multi, lan1, "10.77.1.2/24", "eth0")
    netns_lab.attach(multi, lan2, "10.77.2.2/24", "eth1", default_route=False)
    netns_lab.attach(left, lan1, "10.77.1.3/24")
    netns_lab.attach(right, lan2, "10.77.2.3/24")
    eid = secrets.token_hex(32)
    watchers = [agent(host, "browse") for host in (left, right)]
    for watcher in watchers:
        watcher.expect_event("browsing", REGISTER_WITHIN)
    agent(multi, "announce", "--name", "Multi", "--id", eid,
          "--addr", "10.77.1.2:4000", "--addr", "10.77.2.2:4000",
          ).expect_event("announced", REGISTER_WITHIN)
    for watcher in watchers:
        seen = watcher.expect_event("device", SEEN_WITHIN, endpoint_id=eid)
        assert seen["addresses"] == ["10.77.1.2:4000", "10.77.2.2:4000"]


def test_loopback_only_namespace_announces_and_browses_without_error(netns_lab: Lab) -> None:
    """Like ``make test``'s isolated namespace: no multicast interface at all, no failure."""
    lonely = netns_lab.host("lo")
    lonely.addresses.append("127.0.0.1")
    both = announce(lonely, "Alone", secrets.token_hex(32), "--addr", "[::1]:4000", "--browse")
    both.expect_event("announced", REGISTER_WITHIN)
    both.send("stop")
    both.expect_event("stopped", GOODBYE_WITHIN)
    assert both.wait(5) == 0
    assert "Traceback" not in both.stderr and "Error" not in both.stderr, both.stderr


def run_devices_cli(host: Host, home: Path, timeout: float) -> list[dict[str, Any]]:
    """``p2p-transfer devices --json`` inside ``host``; its JSON lines."""
    result = host.run(
        sys.executable, "-m", "p2p_transfer", "--config-dir", str(home),
        "devices", "--json", "--timeout", str(timeout), timeout=timeout + 30,
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_devices_command_lists_a_device_in_another_namespace(
    netns_lab: Lab, tmp_path: Path
) -> None:
    a, b = netns_lab.lan(2)
    eid = secrets.token_hex(32)
    announcer = announce(a, "Alice", eid)
    announcer.expect_event("announced", REGISTER_WITHIN)
    listed = run_devices_cli(b, tmp_path / "b-home", SEEN_WITHIN)
    assert listed == [{"event": "device", "name": "Alice", "protocol": "p2p-transfer",
                       "endpoint_id": eid, "addresses": [f"{a.address}:4000"],
                       "fingerprint": "", "device_model": "", "device_type": ""}]
    announcer.send("stop")
    announcer.expect_event("stopped", GOODBYE_WITHIN)
    assert run_devices_cli(b, tmp_path / "b-home", 1.0) == []


def test_discovery_stays_on_its_lan_behind_a_router(netns_lab: Lab) -> None:
    """mDNS is link-local: a host one router away never sees the device."""
    (a, b), far, _router = netns_lab.routed(2)
    eid = secrets.token_hex(32)
    near_watcher, far_watcher = agent(b, "browse"), agent(far, "browse")
    for watcher in (near_watcher, far_watcher):
        watcher.expect_event("browsing", REGISTER_WITHIN)
    announce(a, "Alice", eid).expect_event("announced", REGISTER_WITHIN)
    near_watcher.expect_event("device", SEEN_WITHIN, endpoint_id=eid)
    with pytest.raises(AssertionError):
        far_watcher.expect_event("device", SEEN_WITHIN)
