"""The UI server: static page, JSON API and one event WebSocket, on 127.0.0.1 only.

Access control, in order (every request; ``guard.py``):
1. ``Host`` must be ``127.0.0.1:<port>`` or ``localhost:<port>`` (defeats DNS rebinding).
2. ``GET /?key=<key>`` with the right key sets the key cookie (HttpOnly,
   SameSite=Strict) and redirects to ``/`` so the key leaves the address bar.
3. Every other request needs that cookie, else 403.
4. ``/api/`` and ``/ws`` also check ``Origin``: a foreign one is 403, and a
   request that changes something (or opens the WebSocket) must carry ours.
   ``Sec-Fetch-Site``, when sent, must be ``same-origin`` or ``none``.

The page holds no logic the API lacks: every button is one API call
(documented in ``docs/API.md``). The API's route groups are in ``routes.py``,
the event WebSocket in ``sockets.py``; this module puts them together and listens.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from p2p_transfer.app.guard import KEY_PARAM, AccessGuard
from p2p_transfer.app.routes import Opener, open_folder, route_groups
from p2p_transfer.app.service import AppService
from p2p_transfer.app.sockets import EventSockets
from p2p_transfer.limits import APP_DEFAULT_PORT, APP_KEY_BITS, APP_MAX_JSON_BODY, CLOSE_GRACE
from p2p_transfer.webpage import StaticPage

__all__ = ["UI_HOST", "AppServer", "open_folder"]

#: The UI is reachable on this address only.
UI_HOST = "127.0.0.1"


class AppServer:
    """Serves the UI for one AppService until ``stop``."""

    def __init__(
        self,
        service: AppService,
        port: int = APP_DEFAULT_PORT,
        opener: Opener = open_folder,
        key: str | None = None,
    ) -> None:
        self.service = service
        self.port = port
        self.key = key or secrets.token_urlsafe(APP_KEY_BITS // 8)
        self._opener = opener
        self._static = StaticPage("p2p_transfer.app")
        self.guard = AccessGuard(self.key, lambda: self.port)
        self.sockets = EventSockets(service.events, service.state)
        self._runner: web.AppRunner | None = None
        self.app = self._make_app()

    @property
    def cookie_name(self) -> str:
        """Per port, so two apps on one machine do not overwrite each other's cookie."""
        return self.guard.cookie_name

    @property
    def base_url(self) -> str:
        return f"http://{UI_HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The link to open: it carries the key once, then the cookie does."""
        return f"{self.base_url}/?{KEY_PARAM}={self.key}"

    @property
    def bound_addresses(self) -> list[str]:
        """The addresses the UI listens on (only 127.0.0.1)."""
        if self._runner is None:
            return []
        return [str(address[0]) for address in self._runner.addresses]

    async def start(self) -> None:
        """Listen on 127.0.0.1 (OSError if the port is taken)."""
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=CLOSE_GRACE
        )
        await runner.setup()
        site = web.TCPSite(runner, UI_HOST, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.port == 0:
            self.port = int(runner.addresses[0][1])  # the port the system chose

    async def stop(self) -> None:
        """Close every UI socket (1001) and stop listening."""
        await self.sockets.close_all()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def _make_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self.guard.middleware], client_max_size=APP_MAX_JSON_BODY
        )
        app.on_response_prepare.append(self.guard.security_headers)
        app.on_startup.append(self.sockets.subscribe)
        app.on_shutdown.append(self.sockets.close_all)
        app.on_cleanup.append(self.sockets.unsubscribe)
        app.router.add_get("/", self._static.index)
        app.router.add_get("/static/{name}", self._static.file)
        app.router.add_get("/ws", self.sockets.handle)
        for group in route_groups(self.service, self._opener):
            group.register(app.router)
        return app
