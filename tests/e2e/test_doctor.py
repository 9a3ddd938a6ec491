"""``p2p-transfer doctor`` on a lab network: two hosts on a bridge, made to fail the ways
real networks do (a firewall eating mDNS, a device reachable only by multicast, switch
ports isolated from each other), and what doctor says about each."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from netns import BRIDGE_IFNAME, Host, Lab, _ip
from p2p_transfer.cli.doctor_command import human_lines
from p2p_transfer.events import CheckEvent

#: Seconds a doctor run may take here (its checks run at once; the slowest is 2.5 s).
DOCTOR_TIMEOUT = 30.0
#: Seconds a receiver takes to start announcing itself (mDNS probing is ~1.7 s).
ANNOUNCE_TIMEOUT = 30.0
DOCTOR_TABLE = "p2pt_doctor"


def doctor(host: Host, tmp_path: Path, *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """Run ``doctor --json`` on ``host``; its exit status and its checks by name."""
    done = host.run(sys.executable, "-m", "p2p_transfer", "--config-dir",
                    str(tmp_path / f"{host.ns}-doctor"), "doctor", "--json",
                    "--dir", str(tmp_path / "inbox"), *args,
                    timeout=DOCTOR_TIMEOUT, check=False)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    # Besides its checks, a warning of zeroconf's (a socket the firewall refuses) is a line.
    assert all(c["event"] in ("check", "log") for c in lines), done.stdout
    return done.returncode, {c["name"]: c for c in lines if c["event"] == "check"}


def start_receiver(lab: Lab, host: Host, tmp_path: Path) -> str:
    """``receive`` on ``host``, announced; returns its endpoint ID once it is on the LAN."""
    receiver = host.spawn(sys.executable, "-m", "p2p_transfer", "--config-dir",
                          str(tmp_path / "rx-home"), "--name", "bob", "receive", "--dir",
                          str(tmp_path / "rx-inbox"), "--bind", host.address, "--json")
    ticket = receiver.expect_event("ticket", ANNOUNCE_TIMEOUT)
    return str(ticket["endpoint_id"])


def firewall(host: Host, *rules: str) -> None:
    """An nftables table on ``host`` with an input and an output chain and ``rules``."""
    host.run("nft", (
        f"add table inet {DOCTOR_TABLE}; "
        f"add chain inet {DOCTOR_TABLE} in {{ type filter hook input priority 0; }}; "
        f"add chain inet {DOCTOR_TABLE} out {{ type filter hook output priority 0; }}; "
        + "; ".join(f"add rule inet {DOCTOR_TABLE} {rule}" for rule in rules)
    ))


@pytest.fixture
def two_hosts(netns_lab: Lab) -> tuple[Lab, Host, Host]:
    alice, bob = netns_lab.lan(2)
    return netns_lab, alice, bob


def test_a_healthy_network(two_hosts: tuple[Lab, Host, Host], tmp_path: Path) -> None:
    lab, alice, bob = two_hosts
    start_receiver(lab, bob, tmp_path)
    status, checks = doctor(alice, tmp_path)
    assert status == 0, checks
    assert checks["network"]["status"] == "ok" and alice.address in checks["network"]["detail"]
    assert checks["multicast"]["status"] == "ok", checks["multicast"]
    assert bob.address in checks["multicast"]["detail"]
    assert checks["devices"]["status"] == "ok" and "bob" in checks["devices"]["detail"]
    assert checks["device bob"]["status"] == "ok", checks["device bob"]
    assert checks["download folder"]["status"] == "ok"
    assert {"ports", "firewall", "config"} <= checks.keys()
    assert all(c["status"] == "ok" for c in checks.values()), checks


def test_a_firewall_dropping_mdns_is_named(
    two_hosts: tuple[Lab, Host, Host], tmp_path: Path
) -> None:
    lab, alice, bob = two_hosts
    start_receiver(lab, bob, tmp_path)
    firewall(alice, "in udp dport 5353 drop", "in udp sport 5353 drop",
             "out udp dport 5353 drop", "out udp sport 5353 drop")
    status, checks = doctor(alice, tmp_path)
    assert status == 1
    multicast = checks["multicast"]
    assert multicast["status"] == "fail" and "drops multicast" in multicast["detail"]
    assert "send --to HOST:PORT" in multicast["advice"]
    assert checks["devices"]["status"] == "warn"
    assert checks["firewall"]["status"] == "warn"
    assert "5353" in checks["firewall"]["detail"]


def test_a_device_seen_but_unreachable_points_at_isolation(
    two_hosts: tuple[Lab, Host, Host], tmp_path: Path
) -> None:
    """Bob answers mDNS but drops everything else, as many Wi-Fi client-isolation setups
    (and firewalls) look from a laptop."""
    lab, alice, bob = two_hosts
    start_receiver(lab, bob, tmp_path)
    firewall(bob, 'in iifname "lo" accept', "in udp dport 5353 accept", "in drop")
    status, checks = doctor(alice, tmp_path)
    assert status == 1
    assert checks["devices"]["status"] == "ok"
    seen = checks["device bob"]
    assert seen["status"] == "fail" and "seen on the network but unreachable" in seen["detail"]
    assert "client isolation" in seen["advice"] and "firewall" in seen["advice"]


def test_isolated_switch_ports_leave_no_device_and_say_isolation(
    two_hosts: tuple[Lab, Host, Host], tmp_path: Path
) -> None:
    lab, alice, bob = two_hosts
    start_receiver(lab, bob, tmp_path)
    bridge = next(ns for ns in lab.namespaces if ns.endswith("-br"))
    for port in ("p1", "p2"):
        _ip("-n", bridge, "link", "set", "dev", port, "type", "bridge_slave", "isolated", "on")
    assert BRIDGE_IFNAME
    status, checks = doctor(alice, tmp_path)
    assert checks["multicast"]["status"] == "warn", checks["multicast"]
    assert "no other device answered" in checks["multicast"]["detail"]
    assert "isolation" in checks["multicast"]["advice"]
    devices = checks["devices"]
    assert devices["status"] == "warn" and "isolation" in devices["detail"]
    assert status == 0  # warnings only: nothing here is broken, the network keeps them apart


def test_people_read_one_line_per_check_and_the_advice_under_it() -> None:
    check = CheckEvent("multicast", "fail", "probes never came back", "allow UDP 5353")
    assert human_lines(check) == [
        "✗ multicast        probes never came back",
        "                   → allow UDP 5353",
    ]
    assert human_lines(CheckEvent("config", "ok", "private")) == ["✓ config           private"]
