"""Reachability: how peers reach this node — the relay, the ticket, HOST:PORT queries.

A ticket carries the node's ID and addresses (and relay); ``send --to HOST:PORT``
learns it from a small TCP responder on the QUIC port's number.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from p2p_transfer.events import DiscoveryErrorEvent, EventBus, RelayEvent, TicketEvent
from p2p_transfer.limits import RELAY_ONLINE_TIMEOUT
from p2p_transfer.net import RELAY_OFF, IdentityResponder, Transport
from p2p_transfer.node.config import NodeConfig, endpoint


class Reachability:
    """The ways in to this node's endpoint, and what peers need to know to use them."""

    def __init__(self, config: NodeConfig, events: EventBus, transport: Transport | None) -> None:
        self._config = config
        self._events = events
        self._transport = transport
        self._identity: IdentityResponder | None = None
        self._relay_task: asyncio.Task[None] | None = None

    async def connect_relay(self) -> RelayEvent | None:
        """With a relay chosen, wait briefly for it and say whether it is reachable."""
        if self._config.relay == RELAY_OFF:
            return None
        transport = endpoint(self._transport)
        connected = await transport.wait_for_relay(RELAY_ONLINE_TIMEOUT)
        message = (
            f"relay connected: {transport.relay_url}" if connected else
            f"relay unreachable after {RELAY_ONLINE_TIMEOUT:.0f} s (no internet?); "
            "using direct addresses only"
        )
        event = RelayEvent(self._config.relay, connected, transport.relay_url, message)
        self._events.emit(event)
        return event

    def connect_relay_in_background(self, announced: Callable[[], bool]) -> None:
        """``connect_relay`` without holding up the ticket: direct addresses work at once
        (a LAN with no internet is not slowed down), and once the relay answers, a new
        ticket that also names it follows."""

        async def connect() -> None:
            event = await self.connect_relay()
            if event is not None and event.connected:
                self.announce_ticket(announced())

        self._relay_task = asyncio.create_task(connect(), name="relay")

    def announce_ticket(self, announced: bool) -> TicketEvent:
        """Emit (and return) the ticket event peers need to reach this node, saying
        whether it is ``announced`` on the LAN."""
        transport = endpoint(self._transport)
        event = TicketEvent(
            transport.ticket, transport.endpoint_id, self._config.device_name,
            transport.addresses, announced=announced,
        )
        self._events.emit(event)
        return event

    async def answer_address_queries(self) -> None:
        """Let ``send --to HOST:PORT`` learn our ticket (TCP, same port number as QUIC)."""
        transport = endpoint(self._transport)
        local = transport.local_udp_socket
        if local is None:
            return
        try:
            self._identity = await IdentityResponder.start(*local, transport.ticket)
        except OSError as exc:
            self._events.emit(
                DiscoveryErrorEvent(f"--to HOST:PORT will not work: TCP port {local[1]}: "
                                    f"{exc.strerror or exc}")
            )

    async def close(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
        if self._identity is not None:
            await self._identity.close()
