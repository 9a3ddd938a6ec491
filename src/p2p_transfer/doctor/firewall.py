"""This device's own side: its firewall's rules (when readable) and its ports."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess

from p2p_transfer.events import CheckEvent
from p2p_transfer.net.interfaces import Interface

#: Seconds one firewall tool may take to list its rules.
_LIST_TIMEOUT = 2.0
_NFT_INPUT_DROP = re.compile(r"hook input[^;\n]*;[^}]*?policy drop", re.S)
_NFT_MDNS_DROP = re.compile(r"(dport|sport) 5353[^\n]*drop")


def _run(*command: str) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_LIST_TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def firewall_findings() -> tuple[list[str], bool]:
    """What the readable firewalls say that matters here, and whether any was readable."""
    findings: list[str] = []
    readable = False
    if (ruleset := _run("nft", "list", "ruleset")) is not None:
        readable = True
        if _NFT_INPUT_DROP.search(ruleset):
            findings.append("nftables drops incoming packets unless a rule allows them")
        if _NFT_MDNS_DROP.search(ruleset):
            findings.append("nftables drops mDNS (UDP 5353)")
    if (rules := _run("iptables", "-S")) is not None:
        readable = True
        if "-P INPUT DROP" in rules or "-P INPUT REJECT" in rules:
            findings.append("iptables drops incoming packets by default (INPUT policy DROP)")
    if (status := _run("ufw", "status")) is not None:
        readable = True
        if "Status: active" in status:
            findings.append("ufw is active (it denies incoming connections by default)")
    return findings, readable


def check_firewall(findings: list[str], readable: bool) -> CheckEvent:
    if findings:
        return CheckEvent(
            "firewall", "warn", "; ".join(findings),
            "allow UDP 5353 (mDNS) and the receiver's port (UDP, and TCP with the same "
            "number) from the local network, and give the receiver that port: "
            "`receive --bind 0.0.0.0:41641`",
        )
    if not readable:
        return CheckEvent("firewall", "ok", "no firewall rules readable here "
                          "(no nft/iptables/ufw, or not root)")
    return CheckEvent("firewall", "ok", "no rule that drops incoming traffic")


def check_own_ports(interfaces: list[Interface], timeout: float = 1.0) -> CheckEvent:
    """A TCP and a UDP port opened on each LAN address answer from this same device."""
    failures: list[str] = []
    for interface in interfaces:
        address = interface.addresses[0]
        try:
            _tcp_round_trip(address, timeout)
            _udp_round_trip(address, timeout)
        except OSError as exc:
            failures.append(f"{interface.name} {address}: {exc.strerror or exc}")
    if not interfaces:
        return CheckEvent("ports", "warn", "no LAN address to listen on")
    if failures:
        return CheckEvent(
            "ports", "fail", "ports opened here do not answer: " + "; ".join(failures),
            "this device's firewall blocks its own ports: allow the receiver's port",
        )
    shown = ", ".join(i.addresses[0] for i in interfaces)
    return CheckEvent("ports", "ok", f"TCP and UDP ports opened on {shown} answer")


def _tcp_round_trip(address: str, timeout: float) -> None:
    with socket.create_server((address, 0)) as server:
        server.settimeout(timeout)
        with socket.create_connection(server.getsockname(), timeout=timeout) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"p2pt")
                peer.settimeout(timeout)
                if peer.recv(4) != b"p2pt":
                    raise OSError("TCP data did not arrive")


def _udp_round_trip(address: str, timeout: float) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.bind((address, 0))
        server.settimeout(timeout)
        client.sendto(b"p2pt", server.getsockname())
        try:
            if server.recv(4) != b"p2pt":
                raise OSError("UDP data did not arrive")
        except TimeoutError:
            raise OSError("UDP datagram lost") from None
