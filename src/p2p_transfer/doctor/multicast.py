"""Does multicast work here? An mDNS probe on each LAN interface, and who answers it.

The probe is a DNS query sent to 224.0.0.251:5353 from an ordinary port. Its own
copy coming back (the host loops multicast to itself) shows this machine lets
mDNS out and in; answers from other addresses (responders reply straight to
the asking port, RFC 6762 section 6.7) show the network carries it to others.
"""

from __future__ import annotations

import contextlib
import secrets
import select
import socket
import struct
import time
from dataclasses import dataclass, field

from p2p_transfer.discovery.records import SERVICE_TYPE
from p2p_transfer.events import CheckEvent
from p2p_transfer.net.interfaces import Interface

MDNS_GROUP = "224.0.0.251"
MDNS_PORT = 5353
_TYPE_A, _TYPE_PTR, _CLASS_IN = 1, 12, 1
_RESPONSE_FLAG = 0x8000
#: Services asked for, so any responder on the LAN has something to answer.
_ASKED = (SERVICE_TYPE, "_services._dns-sd._udp.local.")


@dataclass(slots=True)
class ProbeResult:
    """What came back within the wait."""

    #: Interfaces whose own probe came back.
    echoed: set[str] = field(default_factory=set)
    #: Addresses of other devices heard (answers to the probe, or their own mDNS).
    heard_from: set[str] = field(default_factory=set)


def _name(labels: str) -> bytes:
    out = b""
    for label in labels.rstrip(".").split("."):
        raw = label.encode()
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def probe_query(token: str) -> bytes:
    """A query for our unique probe name (our echo) and the services others announce."""
    questions = [(f"{token}.local.", _TYPE_A)] + [(service, _TYPE_PTR) for service in _ASKED]
    packet = struct.pack("!6H", 0, 0, len(questions), 0, 0, 0)
    for name, kind in questions:
        packet += _name(name) + struct.pack("!2H", kind, _CLASS_IN)
    return packet


def _listener(interfaces: list[Interface]) -> socket.socket | None:
    """A socket on 5353 joined to the mDNS group on each interface (beside zeroconf's)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(("", MDNS_PORT))
    except OSError:
        sock.close()
        return None  # something holds 5353 without sharing it: echoes can't be seen
    for interface in interfaces:
        for address in interface.addresses:
            membership = socket.inet_aton(MDNS_GROUP) + socket.inet_aton(address)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    return sock


def _sender(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    sock.bind((address, 0))
    return sock


def probe(interfaces: list[Interface], wait: float) -> ProbeResult:
    """Send the probe out of every interface and collect what comes back (blocking)."""
    result = ProbeResult()
    token = f"p2pt-probe-{secrets.token_hex(6)}"
    query = probe_query(token)
    own = {address for interface in interfaces for address in interface.addresses}
    listener = _listener(interfaces)
    senders: dict[socket.socket, str] = {}
    try:
        for interface in interfaces:
            sock = _sender(interface.addresses[0])
            senders[sock] = interface.name
            with contextlib.suppress(OSError):  # ENETUNREACH, EPERM (a firewall): no echo
                sock.sendto(query, (MDNS_GROUP, MDNS_PORT))
        watched = [*senders, *([listener] if listener is not None else [])]
        deadline = time.monotonic() + wait
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select(watched, [], [], remaining)
            for sock in readable:
                try:
                    packet, (source, _) = sock.recvfrom(9000)
                except OSError:
                    continue
                _note(result, packet, source, token, own, interfaces)
    finally:
        for sock in [*senders, *([listener] if listener is not None else [])]:
            sock.close()
    return result


def _note(
    result: ProbeResult, packet: bytes, source: str, token: str, own: set[str],
    interfaces: list[Interface],
) -> None:
    if len(packet) < 12:
        return
    if source.startswith("127."):
        return  # this machine itself (its zeroconf, on loopback)
    if source not in own:
        result.heard_from.add(source)  # an answer, or another device's own mDNS
        return
    is_response = struct.unpack("!H", packet[2:4])[0] & _RESPONSE_FLAG
    if not is_response and token.encode() in packet:
        result.echoed.update(i.name for i in interfaces if source in i.addresses)


def check_multicast(interfaces: list[Interface], result: ProbeResult) -> CheckEvent:
    """The probe's verdict in words."""
    if not interfaces:
        return CheckEvent("multicast", "fail", "no LAN interface to send an mDNS probe on",
                          "connect to a network first")
    names = ", ".join(i.name for i in interfaces)
    if not result.echoed:
        return CheckEvent(
            "multicast", "fail",
            f"mDNS probes on {names} never came back: this device drops multicast "
            "(a firewall blocking UDP 5353?)",
            "allow mDNS (UDP 5353) in this device's firewall; meanwhile use "
            "`send --to HOST:PORT` or the receiver's ticket",
        )
    if result.heard_from:
        others = ", ".join(sorted(result.heard_from))
        return CheckEvent(
            "multicast", "ok",
            f"mDNS works on {', '.join(sorted(result.echoed))}; "
            f"heard {len(result.heard_from)} other device(s): {others}",
        )
    return CheckEvent(
        "multicast", "warn",
        f"mDNS leaves this device on {', '.join(sorted(result.echoed))}, "
        "but no other device answered",
        "either nothing else runs mDNS here, or the network drops multicast between "
        "devices (Wi-Fi client/AP isolation, guest networks): use `send --to HOST:PORT` "
        "or the ticket",
    )
