"""The LocalSend bridge: this node as a LocalSend device, both ways.

LocalSend devices send to us through the HTTPS service (their offers become
receive sessions of the node, launched into the inbox), and we send to them
with LocalSend's own client. The LocalSend modules (and aiohttp) load only
when one of these is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_transfer.events import EventBus, LocalSendReadyEvent
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import LOCALSEND_PORT
from p2p_transfer.net import bind_host
from p2p_transfer.node.config import NodeConfig
from p2p_transfer.node.sessions import SessionWork
from p2p_transfer.transfer import SendOptions, TransferResult

if TYPE_CHECKING:
    from p2p_transfer.localsend import (
        DeviceInfo,
        LocalSendService,
        PinPrompt,
        ReceiverSetup,
        Target,
    )


class LocalSendBridge:
    """The LocalSend service (while it runs) and sends to LocalSend devices."""

    def __init__(
        self,
        config: NodeConfig,
        events: EventBus,
        launch: Callable[[SessionWork], asyncio.Task[TransferResult | None]],
    ) -> None:
        """``launch`` runs a LocalSend device's offer as a receive session of the node."""
        self._config = config
        self._events = events
        self._launch = launch
        #: The running service, after ``start``.
        self.service: LocalSendService | None = None

    async def start(
        self, setup: ReceiverSetup, port: int, *, announce: bool = True
    ) -> LocalSendService:
        """Serve LocalSend devices on ``port`` (HTTPS): their offers are receive sessions
        of the node, asked through ``setup.decide``; with ``announce``, announce this
        device on the LAN and answer others' announcements. OSError if the port is taken."""
        from p2p_transfer.localsend import LocalSendService  # aiohttp, only when used

        config = self._config
        self.service = await LocalSendService.start(
            config.config_dir, config.device_name, self._events, setup, self._launch,
            host=bind_host(config.bind_addr or "0.0.0.0"), port=port, announce=announce,
        )
        self._events.emit(LocalSendReadyEvent(
            config.device_name, self.service.port, self.service.fingerprint,
            self.service.discovery is not None,
        ))
        return self.service

    async def info(self, announce: bool | None = None) -> DeviceInfo:
        """How we describe ourselves to LocalSend devices: our certificate's fingerprint if
        we have one (so a scan never lists ourselves), else one made once and kept, so a
        receiver sees the same sender on every send (a sender needs no certificate)."""
        from p2p_transfer.localsend.identity import own_info, sender_fingerprint

        if self.service is not None:
            return self.service.info_for_announce(announce)
        fingerprint = await asyncio.to_thread(sender_fingerprint, self._config.config_dir)
        return own_info(self._config.device_name, fingerprint, LOCALSEND_PORT, announce=announce)

    async def send(
        self,
        lifecycle: Lifecycle,
        target: Target,
        paths: list[Path],
        options: SendOptions,
        ask_pin: PinPrompt | None,
    ) -> TransferResult:
        """Send ``paths`` (or ``options.text``) to a LocalSend device, as LocalSend does."""
        from p2p_transfer.localsend import LocalSendClient, LocalSendSender

        client = LocalSendClient(await self.info())
        try:
            sender = LocalSendSender(lifecycle, self._events, client, target, options, ask_pin)
            return await sender.run(paths)
        finally:
            await client.close()

    async def close(self) -> None:
        if self.service is not None:
            await self.service.close()
