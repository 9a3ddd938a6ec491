"""Sending: the route to a ``--to``, and the sender that takes it.

A ``--to`` becomes a ticket for our own protocol or a LocalSend device
(``Presence.send_target``); each route has its own sender. A new way of reaching
a receiver (a rendezvous code, say) is a new route here.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_transfer.discovery import looks_like_ticket
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import EventBus, QueuedEvent, SessionState
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import RETRY_FIRST_PAUSE, RETRY_LONGEST_PAUSE
from p2p_transfer.net import Transport
from p2p_transfer.node.config import NodeConfig, endpoint
from p2p_transfer.node.localsend_bridge import LocalSendBridge
from p2p_transfer.node.presence import Presence
from p2p_transfer.transfer import CodePrompt, SendOptions, SendSession, TransferResult
from p2p_transfer.trust import PairingStore

if TYPE_CHECKING:
    from p2p_transfer.localsend import PinPrompt, Target


class Dispatcher:
    """Runs one send: resolves ``to``, then sends over the route it names."""

    def __init__(
        self,
        config: NodeConfig,
        events: EventBus,
        pairings: PairingStore,
        transport: Transport | None,
        presence: Presence,
        localsend: LocalSendBridge,
    ) -> None:
        self._config = config
        self._events = events
        self._pairings = pairings
        self._transport = transport
        self._presence = presence
        self._localsend = localsend

    async def send(
        self,
        lifecycle: Lifecycle,
        to: str | Target,
        paths: list[Path],
        options: SendOptions,
        ask_code: CodePrompt | None,
        ask_pin: PinPrompt | None,
    ) -> TransferResult:
        """A send session's work, from resolving ``to`` to the sender's result."""
        if options.wait > 0:
            lifecycle.advance(SessionState.QUEUED)
            self._events.emit(QueuedEvent(lifecycle.session, str(to).strip(), options.wait))
            target = await self._found(to, options.wait)
        else:
            target = None
        lifecycle.advance(SessionState.CONNECTING)
        if target is None:
            target = await self._presence.send_target(to)
        if not isinstance(target, str):
            return await self._localsend.send(lifecycle, target, paths, options, ask_pin)
        sender = SendSession(
            lifecycle, endpoint(self._transport), self._config.device_name, self._events,
            self._pairings, options, ask_code,
        )
        ticket = isinstance(to, str) and looks_like_ticket(to)
        named = "" if ticket else str(to).strip()
        # After a broken path a name (or HOST:PORT) is looked up again: the receiver may
        # be back on another address.
        redial = None if ticket else functools.partial(self._presence.resolve, named)
        return await sender.run(target, paths, named, redial)

    async def _found(self, to: str | Target, wait: float) -> str | Target:
        """``to`` resolved, looking again (with growing pauses) while it is not found, for
        up to ``wait`` s (``send --wait``); the last failure after that."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + wait
        pause = RETRY_FIRST_PAUSE
        while True:
            try:
                return await self._presence.send_target(to)
            except P2PTransferError:
                if loop.time() + pause >= give_up:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_LONGEST_PAUSE)
