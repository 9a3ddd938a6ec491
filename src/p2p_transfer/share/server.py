"""The share server: one token URL, a static page, an upload WebSocket and downloads.

Everything lives under ``/<token>/``; any other path is a plain 404, so the
server reveals nothing to someone without the link. Every response carries
strict security headers (CSP without ``unsafe-inline``, no framing, no
sniffing, no referrer) and no CORS header.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from yarl import URL

from p2p_transfer.events import EventBus, ShareUrlEvent
from p2p_transfer.lifecycle import new_session_id
from p2p_transfer.limits import (
    CLOSE_GRACE,
    SHARE_CHUNK_SIZE,
    SHARE_MAX_MESSAGE_SIZE,
    SHARE_MIN_CHUNK_SIZE,
    SHARE_RETRY_AFTER,
    SHARE_TOKEN_BITS,
)
from p2p_transfer.protocol.names import clean_device_name
from p2p_transfer.share.address import (
    UNSPECIFIED,
    NoLanAddressError,
    default_bind_address,
    url_host,
)
from p2p_transfer.share.browser import browser_summary
from p2p_transfer.share.config import ShareConfig
from p2p_transfer.share.download import Downloads, describe_items, shared_items
from p2p_transfer.share.limiter import ConnectionLimiter, LimitedSite
from p2p_transfer.share.upload import UploadGate, UploadSession
from p2p_transfer.webpage import (
    OPENER_POLICY,
    SECURITY_HEADERS,
    StaticPage,
    trustworthy_origin,
)

_NOT_FOUND_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Not found</title>"
    "<h1>Not found</h1><p>This address does not exist. Check the link you were given.</p></html>"
)
_TOO_MANY = "Too many connections from your address; close other tabs or try again."


def same_origin(origin: str, host: str, scheme: str | None = "http") -> bool:
    """Whether a WebSocket's ``Origin`` is the page served from ``host`` (over ``scheme``).

    ``scheme=None`` accepts http and https: behind a TLS-terminating proxy that
    does not say which one the browser used.
    """
    try:
        parsed = URL(origin)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return False
        if scheme is not None and parsed.scheme != scheme:
            return False
        target = URL.build(scheme=parsed.scheme, authority=host)
    except (ValueError, TypeError):
        return False
    return (
        target.host is not None
        and parsed.host.lower() == target.host.lower()
        and parsed.port == target.port
    )


def not_found() -> web.Response:
    """The same plain 404 for every path that lacks the token."""
    return web.Response(status=404, text=_NOT_FOUND_PAGE, content_type="text/html")


class ShareServer:
    """Serves the share page, uploads and downloads until ``stop``; events go to ``bus``."""

    def __init__(
        self,
        config: ShareConfig,
        bus: EventBus | None = None,
        session_ids: Callable[[], str] = new_session_id,
    ) -> None:
        """Check the configuration now (missing PATHs fail before anything listens).

        Each upload is a session: ``session_ids`` gives it its ID (the Node's, in the app).
        """
        self.config = config
        self.bus = bus or EventBus()
        self._session_ids = session_ids
        #: 128 random bits; the only secret between the host and the browsers.
        self.token = secrets.token_urlsafe(SHARE_TOKEN_BITS // 8)
        self.upload_dir: Path | None = None
        if config.upload_dir is not None:
            self.upload_dir = Path(config.upload_dir).expanduser().resolve(strict=True)
            if not self.upload_dir.is_dir():
                raise NotADirectoryError(f"{config.upload_dir} is not a folder")
        self._downloads = Downloads(shared_items(config.shared), self.bus)
        self._gate = UploadGate(config.max_pending_uploads, config.max_active_uploads)
        self._limiter = ConnectionLimiter(config.max_connections, config.max_connections_per_ip)
        # Clients behind a trusted proxy are counted per request, by forwarded address.
        self._forwarded = ConnectionLimiter(config.max_connections, config.max_connections_per_ip)
        self.trusted_proxies: set[str] = set(config.trusted_proxies)
        self._static = StaticPage("p2p_transfer.share")
        self._runner: web.AppRunner | None = None
        self._site: LimitedSite | None = None
        self._url: str | None = None

    # --- lifecycle -----------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://<address>:<port>/<token>``, the link to give (after ``start``)."""
        if self._url is None:
            raise RuntimeError("the share server is not started")
        return self._url

    @property
    def address(self) -> tuple[str, int]:
        """The address and port listened on (after ``start``)."""
        if self._site is None:
            raise RuntimeError("the share server is not started")
        return self._site.bound

    async def start(self) -> None:
        """Listen and emit ``ShareUrlEvent``; raises OSError if the port is taken."""
        host = self.config.bind if self.config.bind is not None else default_bind_address()
        app = self._make_app()
        # Idle keep-alive connections go after the handshake deadline: slots are scarce.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=CLOSE_GRACE,
            keepalive_timeout=self.config.handshake_timeout,
        )
        await runner.setup()
        site = LimitedSite(
            runner, host, self.config.port, self._limiter,
            has_token=self.has_token,
            trusted_proxies=self.trusted_proxies,
            head_timeout=self.config.handshake_timeout,
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        bound_host, port = site.bound
        if host in UNSPECIFIED:
            try:
                bound_host = default_bind_address()
            except NoLanAddressError:
                bound_host = "127.0.0.1"
        self._url = f"http://{url_host(bound_host)}:{port}/{self.token}"
        self.bus.emit(ShareUrlEvent(url=self._url, token=self.token))

    async def stop(self) -> None:
        """Close upload sockets (1001), cut downloads after a grace period, stop listening."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        if self._site is not None:
            await self._site.stop()  # no new connections while the others close
        await self._close_sessions()
        await runner.cleanup()

    async def __aenter__(self) -> ShareServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- app -----------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=SHARE_MAX_MESSAGE_SIZE)
        app.on_response_prepare.append(self._security_headers)
        app.on_shutdown.append(self._close_sessions)
        app.router.add_get("/{token}", self._redirect)
        app.router.add_get("/{token}/", self._static.index)
        app.router.add_get("/{token}/static/{name}", self._static.file)
        app.router.add_get("/{token}/api/info", self._info)
        app.router.add_get("/{token}/ws", self._websocket)
        app.router.add_get("/{token}/files/{index}/{filename}", self._download)
        return app

    def client_ip(self, request: web.BaseRequest) -> str:
        """The browser's address; behind a trusted proxy, the one it forwarded (shown to
        the host, so cleaned like a device name)."""
        peer = request.remote or "unknown"
        if peer in self.trusted_proxies:
            forwarded = request.headers.get("X-Forwarded-For", "")
            last = clean_device_name(forwarded.rsplit(",", 1)[-1])
            if last:
                return last
        return peer

    def has_token(self, target: str) -> bool:
        """Whether a request target (``/<token>/...``) is under this share's token."""
        path = target.split("?", 1)[0]
        segment = path.split("/", 2)[1] if path.startswith("/") else ""
        return hmac.compare_digest(segment.encode(), self.token.encode())

    @web.middleware
    async def _guard(self, request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        """Token first (else 404), then the per-address count for proxied clients."""
        if not self.has_token(request.path):
            return not_found()
        if self._site is not None:
            self._site.prove(request)  # its connection keeps its slot (see limiter.py)
        slot: str | None = None
        if (request.remote or "") in self.trusted_proxies:
            slot = self.client_ip(request)
            if self._forwarded.try_acquire(slot) is not None:
                return web.Response(
                    status=503, text=_TOO_MANY, headers={"Retry-After": str(SHARE_RETRY_AFTER)}
                )
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return not_found()
        finally:
            if slot is not None:
                self._forwarded.release(slot)

    async def _security_headers(
        self, request: web.BaseRequest, response: web.StreamResponse
    ) -> None:
        response.headers.update(SECURITY_HEADERS)
        if trustworthy_origin(*self._origin_as_seen(request)):
            response.headers.update(OPENER_POLICY)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.popall("Access-Control-Allow-Origin", None)

    def _origin_as_seen(self, request: web.BaseRequest) -> tuple[str, bool]:
        """The host the browser asked for, and whether over https: behind a trusted proxy
        (the public share), as the proxy forwards them."""
        if (request.remote or "") in self.trusted_proxies:
            return (request.headers.get("X-Forwarded-Host", request.host),
                    request.headers.get("X-Forwarded-Proto", "") == "https")
        return request.host, request.secure

    async def _close_sessions(self, app: web.Application | None = None) -> None:
        """Say "going away" (1001) on every upload socket, each within the close grace."""
        sessions = list(self._gate.sessions)
        if sessions:
            await asyncio.wait(
                [asyncio.create_task(s.close()) for s in sessions], timeout=CLOSE_GRACE
            )

    # --- handlers ------------------------------------------------------------

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/{self.token}/")

    async def _info(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({
            "device_name": self.config.device_name,
            "upload": {
                "enabled": self.upload_dir is not None,
                "max_size": self.config.max_size,
                "chunk_size": SHARE_CHUNK_SIZE,
                "min_chunk_size": SHARE_MIN_CHUNK_SIZE,
            },
            "files": await describe_items(self._downloads.items),
        })

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self.upload_dir is None:
            raise web.HTTPNotFound()
        origin = request.headers.get("Origin", "")
        host, scheme = request.host, "http"
        if (request.remote or "") in self.trusted_proxies:
            host = request.headers.get("X-Forwarded-Host", host)
            scheme = request.headers.get("X-Forwarded-Proto")
        if not same_origin(origin, host, scheme):
            return web.Response(
                status=403, text="Cross-site WebSocket refused: the Origin must be this page."
            )
        ws = web.WebSocketResponse(
            max_msg_size=SHARE_MAX_MESSAGE_SIZE,
            heartbeat=self.config.ping_interval,
            compress=False,
            # Closing waits at most this long for the browser's own close (a socket the
            # server ends is muted meanwhile: see UploadSession._fail_socket).
            timeout=CLOSE_GRACE,
        )
        await ws.prepare(request)
        site = self._site
        session = UploadSession(
            ws, self.config, self.upload_dir, self._gate, self.bus, self.client_ip(request),
            self._session_ids, mute=lambda: site.mute(request) if site is not None else None,
            browser=browser_summary(request.headers.get("User-Agent", "")),
        )
        await session.run()
        return ws

    async def _download(self, request: web.Request) -> web.StreamResponse:
        return await self._downloads.handle(request, self.client_ip(request))
