"""The receiving half of LocalSend put together: certificate, port, HTTPS server, discovery.

The port is bound and announced at once, but the HTTP stack (aiohttp: ~14 MB of
memory and ~0.2 s of CPU to load) only when the first LocalSend device connects
(its connection waits in the listen queue meanwhile) or announces itself: most
runs of ``receive`` never meet one.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_transfer.events import EventBus
from p2p_transfer.localsend.discovery import DeviceTable, MulticastDiscovery
from p2p_transfer.localsend.identity import Certificate, load_or_create_certificate, own_info
from p2p_transfer.localsend.messages import DeviceInfo
from p2p_transfer.localsend.receiver import LocalSendReceiver, ReceiverSetup, SessionLauncher

if TYPE_CHECKING:
    from p2p_transfer.localsend.client import LocalSendClient
    from p2p_transfer.localsend.server import LocalSendServer

log = logging.getLogger(__name__)


class LocalSendService:
    """A running LocalSend face: the listening port, the HTTPS server behind it, and
    (when announcing) discovery."""

    def __init__(
        self,
        certificate: Certificate,
        alias: str,
        listener: socket.socket,
        receiver: LocalSendReceiver,
    ) -> None:
        self.certificate = certificate
        self.alias = alias
        self.receiver = receiver
        self.table = DeviceTable(certificate.fingerprint)
        self.discovery: MulticastDiscovery | None = None
        self._listener = listener
        self._server: LocalSendServer | None = None
        self._client: LocalSendClient | None = None
        self._starting: asyncio.Task[None] | None = None

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
        """Listen on ``port`` (OSError if taken); a discovery failure is only logged."""
        certificate = await asyncio.to_thread(load_or_create_certificate, config_dir)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family)
        listener.setblocking(False)
        service = cls(certificate, alias, listener, LocalSendReceiver(setup, events, launch))
        asyncio.get_running_loop().add_reader(listener.fileno(), service._first_connection)
        if announce:
            discovery = MulticastDiscovery(service.info_for_announce, service.table, service.client)
            try:
                await discovery.start(announce=True)
            except OSError as exc:
                log.warning("LocalSend devices will not find this one by multicast: %s", exc)
            else:
                service.discovery = discovery
        return service

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint

    def info_for_announce(self, announce: bool | None) -> DeviceInfo:
        """Our info for a multicast message (``announce``: true, or false for a reply)."""
        return own_info(self.alias, self.fingerprint, self.port, announce=announce)

    def client(self) -> LocalSendClient:
        """The client that answers announcements with ``register``, made on first use."""
        if self._client is None:
            from p2p_transfer.localsend.client import LocalSendClient

            self._client = LocalSendClient(self.info_for_announce(None))
        return self._client

    def _first_connection(self) -> None:
        asyncio.get_running_loop().remove_reader(self._listener.fileno())
        self._starting = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        """Load the HTTP server (in a thread: the loop keeps serving) and let it accept."""
        module = await asyncio.to_thread(importlib.import_module, "p2p_transfer.localsend.server")
        server: LocalSendServer = module.LocalSendServer(
            self.certificate, self.alias, self.receiver, sock=self._listener,
            on_register=lambda info, ip: self.table.add(info, ip),
        )
        await server.start()
        self._server = server

    async def close(self) -> None:
        if self.discovery is not None:
            await self.discovery.close()
        if self._starting is None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
        else:
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._starting
        if self._server is not None:
            await self._server.stop()
        self._listener.close()
        if self._client is not None:
            await self._client.close()
