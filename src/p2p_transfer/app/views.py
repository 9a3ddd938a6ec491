"""What the UI's read-only views show, built from the app's parts: plain JSON-ready dicts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from p2p_transfer.app.board import TransferRecord
from p2p_transfer.app.targets import remembered_ticket
from p2p_transfer.discovery import Device
from p2p_transfer.events import RelayEvent, SessionState
from p2p_transfer.localsend.discovery import LocalSendDevice
from p2p_transfer.trust import Pairing
from p2p_transfer.trust.attempts import LockedKey

if TYPE_CHECKING:
    from p2p_transfer.node import Node


def devices_view(
    found: list[Device],
    pairings: list[Pairing],
    discovery: dict[str, Any],
    localsend: list[LocalSendDevice] | None = None,
) -> dict[str, Any]:
    """Discovered devices (with trust), ours and LocalSend ones, and trusted devices (with
    presence, and where they were last reached: a send finds them there when they are not
    on the LAN). A LocalSend device's ``endpoint_id`` is its fingerprint (never trusted)."""
    trusted_ids = {p.endpoint_id for p in pairings}
    online = {d.endpoint_id for d in found}
    return {
        "discovery": discovery,
        "devices": [
            {
                "name": d.name,
                "protocol": "p2p-transfer",
                "endpoint_id": d.endpoint_id,
                "short_id": d.endpoint_id[:12],
                "addresses": list(d.addresses),
                "trusted": d.endpoint_id in trusted_ids,
                "last_seen": d.last_seen or None,
            }
            for d in found
        ] + [
            {
                "name": d.name,
                "protocol": "localsend",
                "endpoint_id": d.fingerprint,
                "short_id": d.fingerprint[:8].upper(),
                "addresses": [d.address],
                "device_model": d.device_model,
                "device_type": d.device_type,
                "trusted": False,
                "last_seen": d.last_seen or None,
            }
            for d in localsend or []
        ],
        "trusted": [
            {
                "name": p.name,
                "endpoint_id": p.endpoint_id,
                "short_id": p.endpoint_id[:12],
                "paired_at": p.paired_at,
                "expires_at": p.expires_at,
                "online": p.endpoint_id in online,
                "addresses": list(p.addresses),
                "reached_at": p.reached_at or None,
                "reachable": p.endpoint_id in online or remembered_ticket(p) is not None,
            }
            for p in pairings
        ],
    }


def locked_view(locked: list[LockedKey]) -> list[dict[str, Any]]:
    """Devices locked out of trying a code, for how long and why (``wrong`` codes typed,
    or codes left ``unanswered``)."""
    return [
        {"endpoint_id": k.key, "short_id": k.key[:12], "seconds": round(k.seconds),
         "cause": k.cause}
        for k in locked
    ]


def wan_view(
    node: Node | None, relay_setting: str, relay: RelayEvent | None, active: list[TransferRecord]
) -> dict[str, Any]:
    """This node's ticket and relay state, and how live transfers reach their peers."""
    return {
        "ticket": node.transport.ticket if node is not None else None,
        "endpoint_id": node.endpoint_id if node is not None else None,
        "addresses": node.transport.addresses if node is not None else [],
        "relay": {
            "setting": relay_setting,
            "connected": relay.connected if relay is not None else None,
            "url": relay.url if relay is not None else None,
            "message": relay.message if relay is not None else "",
        },
        "connections": [
            {
                "transfer": r.id,
                "direction": r.direction,
                "peer_name": r.peer_name,
                "peer_id": r.peer_id,
                "path": r.path or "unknown",
                "rtt_ms": r.rtt_ms,
            }
            for r in active  # connected: not waiting in the outbox, nor still connecting
            if r.state not in (SessionState.QUEUED, SessionState.CONNECTING)
        ],
    }
