"""Devices as the UI sees them: discovered, trusted, locked out; the network check; tickets.

Trust and lock-outs live in the node's stores (pairings, attempt limits); this part
reads and changes them for the API, and answers "why can't they see each other?".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2p_transfer.app.board import TransferBoard
from p2p_transfer.app.errors import AppError, NotFoundError
from p2p_transfer.app.node_control import NodeControl
from p2p_transfer.app.settings import Settings
from p2p_transfer.app.targets import Targets, pasted
from p2p_transfer.app.views import devices_view, locked_view, wan_view
from p2p_transfer.doctor import DoctorOptions, diagnose
from p2p_transfer.events import CheckEvent
from p2p_transfer.net import NetError, parse_ticket
from p2p_transfer.trust import AttemptLimiter


class DeviceControl:
    """Lists, forgets and unlocks devices; checks the network; reads tickets."""

    def __init__(
        self,
        nodes: NodeControl,
        config_dir: Path,
        discovery: bool,
        settings: Callable[[], Settings],
        board: TransferBoard,
        targets: Targets,
    ) -> None:
        self._nodes = nodes
        self._config_dir = config_dir
        self._discovery = discovery
        self._settings = settings
        self._board = board
        self._targets = targets
        self._doctor_lock = asyncio.Lock()

    def devices(self) -> dict[str, Any]:
        """Discovered devices (with trust), trusted devices (with presence), and devices
        locked out after too many failed codes (which the user may let try again)."""
        node = self._nodes.node
        settings = self._settings()
        view = devices_view(
            self._nodes.devices(),
            node.pairings.list() if node is not None else [],
            {
                "enabled": self._discovery,
                "running": self._nodes.browser is not None,
                "error": self._nodes.discovery_error,
                "localsend": settings.localsend,
                "localsend_error": self._nodes.localsend_error,
            },
            self._nodes.localsend_devices(),
        )
        view["locked_out"] = locked_view(AttemptLimiter(self._config_dir).locked_keys())
        return view

    async def check_network(self) -> list[CheckEvent]:
        """``p2p-transfer doctor`` for the app's node: why devices can't see or reach each
        other (one run at a time; a second caller waits for it and gets its own)."""
        node = self._nodes.running
        settings = self._settings()
        options = DoctorOptions(settings.download_path, self._config_dir, settings.relay)
        async with self._doctor_lock:
            return [check async for check in diagnose(options, node)]

    def forget(self, endpoint_id: str) -> int:
        """Forget one trusted device by its full endpoint ID; returns how many were removed."""
        node = self._nodes.running
        matches = [p for p in node.pairings.list() if p.endpoint_id == endpoint_id.lower()]
        if not matches:
            raise NotFoundError("no trusted device has that ID")
        return len(node.pairings.remove(matches[0].endpoint_id))

    def forget_all(self) -> int:
        """Forget every trusted device."""
        return self._nodes.running.pairings.clear()

    def unlock(self, endpoint_id: str) -> None:
        """Let a locked-out device try a code again at once (``pair unlock``); the node's
        limits read the change from their file."""
        limiter = AttemptLimiter(self._config_dir)
        if endpoint_id.lower() not in {k.key for k in limiter.locked_keys()}:
            raise NotFoundError("no locked-out device has that ID")
        limiter.unlock(endpoint_id.lower())

    def wan(self) -> dict[str, Any]:
        """This node's ticket and relay state, and how live transfers reach their peers."""
        return wan_view(
            self._nodes.node, self._settings().relay, self._nodes.relay, self._board.active()
        )

    def inspect_ticket(self, ticket: str) -> dict[str, Any]:
        """What a ticket names (ID, addresses, relay) and whether that device is trusted."""
        try:
            addr = parse_ticket(pasted(ticket))
        except NetError as exc:
            raise AppError(str(exc)) from None
        peer_id = str(addr.id())
        node = self._nodes.node
        return {
            "endpoint_id": peer_id,
            "addresses": list(addr.direct_addresses()),
            "relay_url": addr.relay_url(),
            "trusted": node is not None and node.pairings.is_trusted(peer_id),
            "name": self._targets.known_name(peer_id),
            "is_self": node is not None and node.endpoint_id == peer_id,
        }
