"""The receiving half of LocalSend put together: certificate, HTTPS server, discovery."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from p2p_transfer.events import EventBus
from p2p_transfer.localsend.client import LocalSendClient
from p2p_transfer.localsend.discovery import DeviceTable, MulticastDiscovery
from p2p_transfer.localsend.identity import load_or_create_certificate
from p2p_transfer.localsend.receiver import LocalSendReceiver, ReceiverSetup, SessionLauncher
from p2p_transfer.localsend.server import LocalSendServer

log = logging.getLogger(__name__)


class LocalSendService:
    """A running LocalSend face: the HTTPS server, and (when announcing) discovery."""

    def __init__(
        self,
        server: LocalSendServer,
        table: DeviceTable,
        client: LocalSendClient,
        discovery: MulticastDiscovery | None,
    ) -> None:
        self.server = server
        self.table = table
        self._client = client
        self.discovery = discovery

    @classmethod
    async def start(
        cls,
        config_dir: Path,
        alias: str,
        events: EventBus,
        setup: ReceiverSetup,
        launch: SessionLauncher,
        *,
        host: str,
        port: int,
        announce: bool,
    ) -> LocalSendService:
        """Serve on ``port`` (OSError if taken); a discovery failure is only logged."""
        certificate = await asyncio.to_thread(load_or_create_certificate, config_dir)
        table = DeviceTable(certificate.fingerprint)
        receiver = LocalSendReceiver(setup, events, launch)
        server = LocalSendServer(
            certificate, alias, receiver, host=host, port=port,
            on_register=lambda info, ip: table.add(info, ip),
        )
        await server.start()
        client = LocalSendClient(server.info())
        discovery = None
        if announce:
            discovery = MulticastDiscovery(server.info_for_announce, table, client)
            try:
                await discovery.start(announce=True)
            except OSError as exc:
                log.warning("LocalSend devices will not find this one by multicast: %s", exc)
                discovery = None
        return cls(server, table, client, discovery)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def fingerprint(self) -> str:
        return self.server.certificate.fingerprint

    async def close(self) -> None:
        if self.discovery is not None:
            await self.discovery.close()
        await self.server.stop()
        await self._client.close()
