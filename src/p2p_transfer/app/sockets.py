"""The UI's one event WebSocket: a snapshot, then every event, per open tab.

Each tab has a bounded queue; a tab too far behind is closed (it reconnects and
gets a fresh snapshot) rather than letting memory grow or slowing the others.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from p2p_transfer.app.guard import json_error
from p2p_transfer.events import Event, EventBus
from p2p_transfer.limits import (
    APP_MAX_UI_CLIENTS,
    APP_WS_MAX_MESSAGE,
    APP_WS_PING_INTERVAL,
    APP_WS_QUEUE_EVENTS,
    CLOSE_GRACE,
)


@dataclass(eq=False)
class _Client:
    """One UI tab's WebSocket and its bounded queue of JSON texts (None: close, too slow)."""

    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(APP_WS_QUEUE_EVENTS + 1)
    )
    overflowed: bool = False


class EventSockets:
    """Open tabs and the events queued for each; ``handle`` serves ``/ws``."""

    def __init__(self, events: EventBus, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._events = events
        self._snapshot = snapshot
        self._clients: set[_Client] = set()
        self._unsubscribe: Callable[[], None] | None = None

    async def subscribe(self, app: web.Application) -> None:
        self._unsubscribe = self._events.subscribe(self.broadcast)

    async def unsubscribe(self, app: web.Application) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def close_all(self, app: web.Application | None = None) -> None:
        """Close every tab's socket (1001, going away)."""
        clients = list(self._clients)
        if clients:
            await asyncio.wait(
                [asyncio.create_task(c.ws.close(code=WSCloseCode.GOING_AWAY)) for c in clients],
                timeout=CLOSE_GRACE,
            )

    def broadcast(self, event: Event) -> None:
        """Queue an event for every tab; a tab too far behind is dropped (it will resync)."""
        if not self._clients:
            return
        text = event.to_json()
        for client in list(self._clients):
            if client.overflowed:
                continue
            if client.queue.qsize() >= APP_WS_QUEUE_EVENTS:
                client.overflowed = True
                client.queue.put_nowait(None)
                continue
            client.queue.put_nowait(text)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws``: the snapshot, then every event until the tab goes."""
        if len(self._clients) >= APP_MAX_UI_CLIENTS:
            return json_error(503, "too many open UI tabs")
        ws = web.WebSocketResponse(
            heartbeat=APP_WS_PING_INTERVAL, max_msg_size=APP_WS_MAX_MESSAGE, compress=False
        )
        await ws.prepare(request)
        client = _Client(ws)
        # The snapshot and the subscription happen with no await between them, so
        # the tab sees every event after its snapshot, and none twice.
        client.queue.put_nowait(json.dumps({"event": "snapshot", **self._snapshot()}))
        self._clients.add(client)
        pump = asyncio.create_task(self._pump(client))
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break  # the tab only listens; anything it sends is ignored
        finally:
            self._clients.discard(client)
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        return ws

    @staticmethod
    async def _pump(client: _Client) -> None:
        while True:
            text = await client.queue.get()
            if text is None:
                await client.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
                return
            try:
                await client.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return
