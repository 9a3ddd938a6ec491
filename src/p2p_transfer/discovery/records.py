"""What a device announces on the LAN, and how it is written to and read from DNS-SD.

Pure data and functions (no zeroconf, no sockets), so the parts that handle
untrusted announcements can be tested exhaustively. Anyone on the LAN can
announce anything: a decoded announcement is bounded (name length, address
count, TXT sizes) and its endpoint ID is only a claim, which the QUIC
handshake later proves or refutes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from p2p_transfer.errors import P2PTransferError
from p2p_transfer.limits import (
    MAX_DEVICE_ADDRESSES,
    MAX_DNS_LABEL_BYTES,
    MAX_TXT_ITEM_BYTES,
)
from p2p_transfer.protocol.messages import PROTOCOL_VERSION
from p2p_transfer.protocol.names import clean_device_name

#: The DNS-SD service type every node announces and browses.
SERVICE_TYPE = "_p2p-transfer._udp.local."
#: Version of the TXT record layout below (DNS-SD's ``txtvers`` convention).
TXT_VERSION = 1
#: Hex characters of the endpoint ID put in the instance and host names so
#: that two devices sharing a name still get distinct DNS names.
NAME_ID_PREFIX = 12

# TXT keys.
TXT_KEY_VERSION = "txtvers"
TXT_KEY_PROTOCOL = "proto"
TXT_KEY_ID = "id"
TXT_KEY_NAME = "name"
TXT_KEY_ADDRESSES = "addrs"
#: Separator between addresses in the ``addrs`` TXT value.
ADDRESS_SEPARATOR = ","

_ENDPOINT_ID = re.compile(r"[0-9a-f]{64}")
#: Characters that would change how a DNS-SD instance label is parsed or shown.
_LABEL_UNSAFE = re.compile(r"[\x00-\x1f\x7f.\\]")


class DiscoveryError(P2PTransferError):
    """LAN discovery failed, or a device could not be found or used."""


@dataclass(frozen=True, slots=True)
class Announcement:
    """What this node tells the LAN about itself."""

    name: str
    endpoint_id: str
    addresses: tuple[str, ...]
    port: int
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Device:
    """A device seen on the LAN (one row of the device table)."""

    name: str
    endpoint_id: str
    addresses: tuple[str, ...]
    protocol: int | None
    #: The DNS-SD service instance name it was found under (the table key).
    service_name: str
    #: Wall-clock time (``time.time()``) of the last answer from it.
    last_seen: float = 0.0

    def same_announcement(self, other: Device) -> bool:
        """True when nothing a user or a dialer sees differs (last_seen aside)."""
        return (self.name, self.endpoint_id, self.addresses, self.protocol) == (
            other.name, other.endpoint_id, other.addresses, other.protocol,
        )


def is_endpoint_id(text: str) -> bool:
    """A full endpoint ID: 64 lowercase hex characters (an Ed25519 public key)."""
    return _ENDPOINT_ID.fullmatch(text) is not None


def truncate_utf8(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes without splitting a character."""
    return text.encode()[:limit].decode(errors="ignore")


def instance_name(device_name: str, endpoint_id: str) -> str:
    """The DNS-SD instance label: readable, and unique per endpoint even for equal names.

    ``"Alice's laptop [3fde6c249b46]"``, cut to the 63-byte DNS label limit.
    """
    suffix = f" [{endpoint_id[:NAME_ID_PREFIX]}]"
    label = _LABEL_UNSAFE.sub("-", clean_device_name(device_name)) or "device"
    return truncate_utf8(label, MAX_DNS_LABEL_BYTES - len(suffix.encode())).rstrip() + suffix


def service_name(device_name: str, endpoint_id: str) -> str:
    """The fully qualified service instance name (``<instance>.<SERVICE_TYPE>``)."""
    return f"{instance_name(device_name, endpoint_id)}.{SERVICE_TYPE}"


def host_name(endpoint_id: str) -> str:
    """The mDNS host name the SRV record points at; derived from the ID, so unique."""
    return f"p2p-{endpoint_id[:NAME_ID_PREFIX]}.local."


# --- Socket addresses ----------------------------------------------------------


def parse_socket_address(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """``"10.0.0.2:4000"`` or ``"[fe80::1]:4000"`` -> (ip, port); ValueError if malformed."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"not IP:PORT: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ip = ipaddress.ip_address(host)
        if ip.version != 6:
            raise ValueError(f"brackets around an IPv4 address: {text!r}")
    else:
        ip = ipaddress.ip_address(host)
        if ip.version != 4:
            raise ValueError(f"IPv6 address without brackets: {text!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {text!r}")
    return ip, port


def format_socket_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    """The inverse of ``parse_socket_address`` (canonical spelling)."""
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def valid_addresses(
    candidates: Iterable[str], limit: int = MAX_DEVICE_ADDRESSES
) -> tuple[str, ...]:
    """Well-formed, dialable, de-duplicated addresses in canonical form; at most ``limit``."""
    seen: list[str] = []
    for text in candidates:
        try:
            ip, port = parse_socket_address(text)
        except ValueError:
            continue
        if ip.is_unspecified or ip.is_multicast or getattr(ip, "scope_id", None):
            continue  # a scope (``%eth0``) names the *sender's* interface: useless here
        canonical = format_socket_address(ip, port)
        if canonical not in seen:
            seen.append(canonical)
        if len(seen) >= limit:
            break
    return tuple(seen)


def announceable_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    """The addresses worth telling other hosts, best first.

    Loopback addresses reach only this machine and scoped IPv6 link-local ones
    need the *peer's* interface index, so both are dropped unless nothing else
    is left (a loopback-only node is still found by peers on the same host).
    IPv4 comes first: it is what the TXT record's byte budget should keep.
    """
    candidates = list(addresses)
    valid = valid_addresses(candidates, limit=len(candidates))
    useful = [a for a in valid if not _is_local_only(a)]
    chosen = useful or list(valid)
    chosen.sort(key=lambda a: a.startswith("["))  # stable: IPv4 first, order kept
    return tuple(chosen[:MAX_DEVICE_ADDRESSES])


def _is_local_only(address: str) -> bool:
    ip, _ = parse_socket_address(address)
    return ip.is_loopback or ip.is_link_local


def port_of(addresses: Iterable[str]) -> int | None:
    """The port of the first well-formed address (iroh binds one UDP port per family)."""
    for text in addresses:
        try:
            return parse_socket_address(text)[1]
        except ValueError:
            continue
    return None


def host_ips(addresses: Iterable[str]) -> list[str]:
    """The distinct IPs of socket addresses (for the A/AAAA records)."""
    ips: list[str] = []
    for text in addresses:
        ip = str(parse_socket_address(text)[0])
        if ip not in ips:
            ips.append(ip)
    return ips


# --- TXT record --------------------------------------------------------------


def encode_txt(announcement: Announcement) -> dict[str, str]:
    """The TXT key/values of an announcement; every item fits DNS-SD's 255-byte limit.

    The name is cut on a character boundary; addresses that do not fit are left
    out (the first ones, best first, are kept; the A records still carry the IPs).
    """
    name_budget = MAX_TXT_ITEM_BYTES - len(TXT_KEY_NAME) - 1
    addrs_budget = MAX_TXT_ITEM_BYTES - len(TXT_KEY_ADDRESSES) - 1
    kept: list[str] = []
    used = 0
    for address in announcement.addresses:
        cost = len(address) + (1 if kept else 0)
        if used + cost > addrs_budget:
            break
        kept.append(address)
        used += cost
    return {
        TXT_KEY_VERSION: str(TXT_VERSION),
        TXT_KEY_PROTOCOL: str(announcement.protocol),
        TXT_KEY_ID: announcement.endpoint_id,
        TXT_KEY_NAME: truncate_utf8(announcement.name, name_budget),
        TXT_KEY_ADDRESSES: ADDRESS_SEPARATOR.join(kept),
    }


@dataclass(frozen=True, slots=True)
class DecodedTxt:
    """The trusted-shape view of a peer's TXT record."""

    endpoint_id: str
    name: str
    protocol: int | None
    addresses: tuple[str, ...]


def decode_txt(properties: Mapping[str, str | None]) -> DecodedTxt | None:
    """Read a peer's TXT record; None when it is not a usable p2p-transfer announcement.

    Unknown keys are ignored (later versions may add some); a missing or
    malformed endpoint ID makes the record useless, since it is what a
    connection authenticates.
    """
    endpoint_id = (properties.get(TXT_KEY_ID) or "").strip().lower()
    if not is_endpoint_id(endpoint_id):
        return None
    name = clean_device_name(properties.get(TXT_KEY_NAME) or "") or endpoint_id[:NAME_ID_PREFIX]
    protocol_text = properties.get(TXT_KEY_PROTOCOL) or ""
    protocol = int(protocol_text) if protocol_text.isdigit() and len(protocol_text) < 6 else None
    raw_addresses = (properties.get(TXT_KEY_ADDRESSES) or "").split(ADDRESS_SEPARATOR)
    return DecodedTxt(endpoint_id, name, protocol, valid_addresses(raw_addresses))
