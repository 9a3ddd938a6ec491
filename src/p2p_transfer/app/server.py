"""The UI server: static page, JSON API and one event WebSocket, on 127.0.0.1 only.

Access control, in order (every request):
1. ``Host`` must be ``127.0.0.1:<port>`` or ``localhost:<port>`` (defeats DNS rebinding).
2. ``GET /?key=<key>`` with the right key sets the key cookie (HttpOnly,
   SameSite=Strict) and redirects to ``/`` so the key leaves the address bar.
3. Every other request needs that cookie, else 403.
4. ``/api/`` and ``/ws`` also check ``Origin``: a foreign one is 403, and a
   request that changes something (or opens the WebSocket) must carry ours.
   ``Sec-Fetch-Site``, when sent, must be ``same-origin`` or ``none``.

The page holds no logic the API lacks: every button is one API call
(documented in ``docs/API.md``).
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import segno
from aiohttp import WSCloseCode, WSMsgType, web

from p2p_transfer.app.events import page_meta
from p2p_transfer.app.files import NoSuchBatch, PathMissing, PathRefused, StagingError
from p2p_transfer.app.service import AppError, AppService, NotFoundError
from p2p_transfer.events import Event
from p2p_transfer.limits import (
    APP_DEFAULT_PORT,
    APP_HISTORY_DEFAULT_ROWS,
    APP_KEY_BITS,
    APP_MAX_JSON_BODY,
    APP_MAX_UI_CLIENTS,
    APP_STAGING_DATA_TIMEOUT,
    APP_WS_MAX_MESSAGE,
    APP_WS_PING_INTERVAL,
    APP_WS_QUEUE_EVENTS,
    CLOSE_GRACE,
    IO_BUFFER_SIZE,
)
from p2p_transfer.webpage import OPENER_POLICY, StaticPage
from p2p_transfer.webpage import SECURITY_HEADERS as PAGE_SECURITY_HEADERS

#: The UI is reachable on this address only.
UI_HOST = "127.0.0.1"
#: Host names a browser may use for it.
_LOCAL_NAMES = ("127.0.0.1", "localhost")
KEY_PARAM = "key"
_HTTP_DEFAULT_PORT = 80
#: The UI is on loopback only, an origin where browsers apply the opener policy.
SECURITY_HEADERS = {**PAGE_SECURITY_HEADERS, **OPENER_POLICY, "Cache-Control": "no-store"}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORBIDDEN_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>p2p-transfer</title>"
    "<h1>Not allowed</h1><p>Open the link that <code>p2p-transfer app</code> printed "
    "(it carries this session's key).</p></html>"
)
#: Pixels per QR module in the SVGs.
_QR_SCALE = 6
#: Quiet-zone modules around a QR code (scanners need some).
_QR_BORDER = 2

Opener = Callable[[Path], Awaitable[bool]]


async def open_folder(folder: Path) -> bool:
    """Show a folder in the system's file manager; False when there is no way to."""
    if sys.platform == "win32":  # pragma: no cover - not tested on this platform
        os.startfile(folder)  # type: ignore[attr-defined]
        return True
    command = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(command) is None:
        return False
    await asyncio.create_subprocess_exec(
        command, str(folder), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    return True


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@dataclass(eq=False)
class _Client:
    """One UI tab's WebSocket and its bounded queue of JSON texts (None: close, too slow)."""

    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(APP_WS_QUEUE_EVENTS + 1)
    )
    overflowed: bool = False


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
        self._clients: set[_Client] = set()
        self._runner: web.AppRunner | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.app = self._make_app()

    # --- lifecycle -------------------------------------------------------------

    @property
    def cookie_name(self) -> str:
        """Per port, so two apps on one machine do not overwrite each other's cookie."""
        return f"p2p_app_key_{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{UI_HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The link to open: it carries the key once, then the cookie does."""
        return f"{self.base_url}/?{KEY_PARAM}={self.key}"

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
        await self._close_clients()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=APP_MAX_JSON_BODY)
        app.on_response_prepare.append(self._security_headers)
        app.on_startup.append(self._subscribe)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._unsubscribe_events)
        get, post = app.router.add_get, app.router.add_post
        put, delete = app.router.add_put, app.router.add_delete
        get("/", self._static.index)
        get("/static/{name}", self._static.file)
        get("/ws", self._websocket)
        get("/api/meta", self._meta)
        get("/api/state", self._state)
        get("/api/settings", self._get_settings)
        put("/api/settings", self._put_settings)
        get("/api/devices", self._devices)
        post("/api/doctor", self._doctor)
        delete("/api/pairings", self._forget_all)
        delete("/api/pairings/{endpoint_id}", self._forget)
        post("/api/lockouts/{endpoint_id}/unlock", self._unlock)
        get("/api/files", self._files)
        post("/api/staging", self._new_batch)
        get("/api/staging/{batch}", self._get_batch)
        delete("/api/staging/{batch}", self._drop_batch)
        put("/api/staging/{batch}/files", self._stage_file)
        post("/api/send", self._send)
        post("/api/send-by-code", self._send_by_code)
        post("/api/receive-by-code", self._receive_by_code)
        get("/api/transfers/{id}/qr.svg", self._code_qr)
        get("/api/transfers", self._transfers)
        post("/api/transfers/{id}/cancel", self._cancel)
        post("/api/transfers/{id}/retry", self._retry)
        get("/api/history", self._history)
        delete("/api/history", self._clear_history)
        post("/api/history/{id}/open", self._open_history)
        post("/api/open-downloads", self._open_downloads)
        get("/api/prompts", self._prompts)
        post("/api/prompts/{id}", self._answer)
        get("/api/share", self._share)
        post("/api/share/start", self._share_start)
        post("/api/share/stop", self._share_stop)
        put("/api/share/files", self._share_files)
        get("/api/share/qr.svg", self._share_qr)
        get("/api/wan", self._wan)
        get("/api/wan/qr.svg", self._ticket_qr)
        post("/api/tickets/inspect", self._inspect_ticket)
        return app

    async def _subscribe(self, app: web.Application) -> None:
        self._unsubscribe = self.service.events.subscribe(self._broadcast)

    async def _unsubscribe_events(self, app: web.Application) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def _on_shutdown(self, app: web.Application) -> None:
        await self._close_clients()

    async def _close_clients(self) -> None:
        clients = list(self._clients)
        if clients:
            await asyncio.wait(
                [asyncio.create_task(c.ws.close(code=WSCloseCode.GOING_AWAY)) for c in clients],
                timeout=CLOSE_GRACE,
            )

    # --- access control --------------------------------------------------------

    def _allowed_hosts(self) -> set[str]:
        hosts = {f"{name}:{self.port}" for name in _LOCAL_NAMES}
        if self.port == _HTTP_DEFAULT_PORT:  # browsers leave the default port out
            hosts |= set(_LOCAL_NAMES)
        return hosts

    def _allowed_origins(self) -> set[str]:
        return {f"http://{host}" for host in self._allowed_hosts()}

    @property
    def bound_addresses(self) -> list[str]:
        """The addresses the UI listens on (only 127.0.0.1)."""
        if self._runner is None:
            return []
        return [str(address[0]) for address in self._runner.addresses]

    def _has_key(self, request: web.Request) -> bool:
        cookie = request.cookies.get(self.cookie_name, "")
        return hmac.compare_digest(cookie.encode(), self.key.encode())

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.host not in self._allowed_hosts():
            return web.Response(status=403, text="unexpected Host header")
        if request.path == "/" and KEY_PARAM in request.query:
            given = request.query.get(KEY_PARAM, "")
            if not hmac.compare_digest(given.encode(), self.key.encode()):
                return web.Response(status=403, text=_FORBIDDEN_PAGE, content_type="text/html")
            response = web.Response(status=303, headers={"Location": "/"})
            response.set_cookie(
                self.cookie_name, self.key, httponly=True, samesite="Strict", path="/"
            )
            return response
        if not self._has_key(request):
            if request.path.startswith(("/api/", "/ws")):
                return _error(403, "missing or wrong key: open the link the app printed")
            return web.Response(status=403, text=_FORBIDDEN_PAGE, content_type="text/html")
        if request.path.startswith(("/api/", "/ws")):
            refusal = self._origin_refusal(request)
            if refusal:
                return _error(403, refusal)
        try:
            return await handler(request)
        except AppError as exc:
            return _error(exc.status, str(exc))
        except PathMissing as exc:
            return _error(404, str(exc))
        except PathRefused as exc:
            return _error(403, str(exc))

    def _origin_refusal(self, request: web.Request) -> str:
        """Why the request's origin is refused, or "" when it is ours."""
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
        origin = request.headers.get("Origin")
        if origin is not None:
            return "" if origin in self._allowed_origins() else "foreign Origin refused"
        unsafe = request.method not in _SAFE_METHODS or request.path == "/ws"
        return "this request must carry the page's Origin" if unsafe else ""

    @staticmethod
    async def _security_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
        response.headers.update(SECURITY_HEADERS)

    # --- page ------------------------------------------------------------------

    # --- events ----------------------------------------------------------------

    def _broadcast(self, event: Event) -> None:
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

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if len(self._clients) >= APP_MAX_UI_CLIENTS:
            return _error(503, "too many open UI tabs")
        ws = web.WebSocketResponse(
            heartbeat=APP_WS_PING_INTERVAL, max_msg_size=APP_WS_MAX_MESSAGE, compress=False
        )
        await ws.prepare(request)
        client = _Client(ws)
        # The snapshot and the subscription happen with no await between them, so
        # the tab sees every event after its snapshot, and none twice.
        client.queue.put_nowait(json.dumps({"event": "snapshot", **self.service.state()}))
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

    # --- API -------------------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise AppError("the body must be a JSON object") from None
        if not isinstance(data, dict):
            raise AppError("the body must be a JSON object")
        return data

    @staticmethod
    async def _meta(request: web.Request) -> web.StreamResponse:
        return web.json_response(page_meta())

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.service.state())

    async def _get_settings(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.service.settings.to_dict())

    async def _put_settings(self, request: web.Request) -> web.StreamResponse:
        settings = await self.service.update_settings(await self._body(request))
        return web.json_response(settings.to_dict())

    async def _devices(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.service.devices())

    async def _forget(self, request: web.Request) -> web.StreamResponse:
        removed = self.service.forget(request.match_info["endpoint_id"])
        return web.json_response({"removed": removed})

    async def _unlock(self, request: web.Request) -> web.StreamResponse:
        self.service.unlock(request.match_info["endpoint_id"])
        return web.json_response({"unlocked": True})

    async def _forget_all(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"removed": self.service.forget_all()})

    async def _files(self, request: web.Request) -> web.StreamResponse:
        path = request.query.get("path") or None
        hidden = request.query.get("hidden", "") in ("1", "true", "yes")
        listing = await asyncio.to_thread(self.service.files.list, path, hidden)
        return web.json_response(listing)

    async def _new_batch(self, request: web.Request) -> web.StreamResponse:
        batch = await self.service.new_staging_batch()
        return web.json_response({"batch": batch}, status=201)

    async def _get_batch(self, request: web.Request) -> web.StreamResponse:
        batch = request.match_info["batch"]
        return web.json_response({"batch": batch, "items": self.service.staged(batch)})

    async def _drop_batch(self, request: web.Request) -> web.StreamResponse:
        await self.service.drop_staging_batch(request.match_info["batch"])
        return web.json_response({"removed": True})

    async def _stage_file(self, request: web.Request) -> web.StreamResponse:
        relative = request.query.get("path", "")
        size = request.content_length
        if size is None:
            raise AppError("send the file with a Content-Length")
        try:
            stored = await self.service.staging.write(
                request.match_info["batch"], relative, size, _chunks(request)
            )
        except NoSuchBatch as exc:
            raise NotFoundError(str(exc)) from None
        except StagingError as exc:
            raise AppError(str(exc)) from None
        return web.json_response({"path": stored, "size": size}, status=201)

    async def _send(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        paths = body.get("paths", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise AppError("paths: a list of absolute paths")
        to, device, batch = body.get("to"), body.get("device"), body.get("staging")
        text = body.get("text")
        for name, value in (("to", to), ("device", device), ("staging", batch), ("text", text)):
            if value is not None and not isinstance(value, str):
                raise AppError(f"{name}: text")
        devices = body.get("devices", [])
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise AppError("devices: a list of device IDs")
        targets: list[tuple[str | None, str | None]] = [(None, d) for d in [device, *devices] if d]
        if to and to.strip():
            targets.append((to, None))
        snapshots = self.service.start_send(targets, paths, batch, text)
        return web.json_response(
            {"transfer": _asdict(snapshots[0]), "transfers": [_asdict(s) for s in snapshots]},
            status=202,
        )

    async def _send_by_code(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        paths = body.get("paths", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise AppError("paths: a list of absolute paths")
        batch, text = body.get("staging"), body.get("text")
        for name, value in (("staging", batch), ("text", text)):
            if value is not None and not isinstance(value, str):
                raise AppError(f"{name}: text")
        snapshot = self.service.start_send_by_code(paths, batch, text)
        return web.json_response({"transfer": _asdict(snapshot)}, status=202)

    async def _receive_by_code(self, request: web.Request) -> web.StreamResponse:
        code = (await self._body(request)).get("code")
        if not isinstance(code, str) or not code.strip():
            raise AppError("code: type the code the sending device shows")
        return web.json_response({"code": self.service.receive_by_code(code)}, status=202)

    async def _code_qr(self, request: web.Request) -> web.StreamResponse:
        record = self.service.board.get(request.match_info["id"])
        if record is None or not record.code:
            raise NotFoundError("no code for this transfer (yet)")
        # magic-wormhole's form, which phone apps (Warp) scan, as the CLI's QR code.
        return _qr_response(f"wormhole-transfer:{record.code}")

    async def _transfers(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"transfers": [_asdict(s) for s in self.service.board.snapshots()]}
        )

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        snapshot = self.service.cancel(request.match_info["id"])
        return web.json_response({"transfer": _asdict(snapshot)})

    async def _retry(self, request: web.Request) -> web.StreamResponse:
        snapshot = self.service.retry(request.match_info["id"])
        return web.json_response({"transfer": _asdict(snapshot)}, status=202)

    async def _doctor(self, request: web.Request) -> web.StreamResponse:
        checks = await self.service.check_network()
        return web.json_response({"checks": [
            {"name": c.check, "status": c.status, "detail": c.detail, "advice": c.advice}
            for c in checks
        ]})

    async def _history(self, request: web.Request) -> web.StreamResponse:
        try:
            limit = int(request.query.get("limit", APP_HISTORY_DEFAULT_ROWS))
        except ValueError:
            raise AppError("limit: a whole number") from None
        entries = await self.service.history.list(limit)
        return web.json_response({"history": [e.to_dict() for e in entries]})

    async def _clear_history(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"removed": await self.service.history.clear()})

    async def _open_history(self, request: web.Request) -> web.StreamResponse:
        entry = await self.service.history_entry(request.match_info["id"])
        if not entry.folder:
            raise NotFoundError("this transfer has no folder to open")
        return await self._open(Path(entry.folder))

    async def _open_downloads(self, request: web.Request) -> web.StreamResponse:
        folder = self.service.settings.download_path
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        return await self._open(folder)

    async def _open(self, folder: Path) -> web.StreamResponse:
        if not folder.is_dir():
            raise NotFoundError(f"{folder} no longer exists")
        if not await self._opener(folder):
            return _error(501, "no file manager to open folders with on this system")
        return web.json_response({"opened": str(folder)})

    async def _prompts(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"prompts": [p.event.to_dict() for p in self.service.prompts.pending()]}
        )

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.service.answer(request.match_info["id"], await self._body(request))
        return web.json_response({"answered": True})

    async def _share(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.service.share_state().to_dict())

    async def _share_start(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        paths = body.get("paths")
        if paths is not None and (
            not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)
        ):
            raise AppError("paths: a list of absolute paths")
        state = await self.service.start_share(paths)
        return web.json_response(state.to_dict())

    async def _share_files(self, request: web.Request) -> web.StreamResponse:
        paths = (await self._body(request)).get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise AppError("paths: a list of absolute paths")
        return web.json_response((await self.service.set_share_files(paths)).to_dict())

    async def _share_stop(self, request: web.Request) -> web.StreamResponse:
        return web.json_response((await self.service.stop_share()).to_dict())

    async def _share_qr(self, request: web.Request) -> web.StreamResponse:
        url = self.service.share_url
        if url is None:
            raise NotFoundError("the share is not running")
        return _qr_response(url)

    async def _wan(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.service.wan())

    async def _ticket_qr(self, request: web.Request) -> web.StreamResponse:
        return _qr_response(self.service.running_node.transport.ticket)

    async def _inspect_ticket(self, request: web.Request) -> web.StreamResponse:
        ticket = (await self._body(request)).get("ticket")
        if not isinstance(ticket, str) or not ticket.strip():
            raise AppError("ticket: paste a ticket")
        return web.json_response(self.service.inspect_ticket(ticket))


async def _chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body in buffers, each read under the staging data deadline."""
    while True:
        try:
            async with asyncio.timeout(APP_STAGING_DATA_TIMEOUT):
                chunk = await request.content.read(IO_BUFFER_SIZE)
        except TimeoutError:
            raise StagingError(f"no data for {APP_STAGING_DATA_TIMEOUT:.0f} s") from None
        if not chunk:
            return
        yield chunk


def _qr_response(text: str) -> web.Response:
    """An SVG QR code (dark on white: scanners want light around dark, also in dark mode)."""
    buffer = io.BytesIO()
    segno.make(text, error="m").save(
        buffer, kind="svg", scale=_QR_SCALE, border=_QR_BORDER, dark="#111111", light="#ffffff",
        xmldecl=False, svgns=True,
    )
    return web.Response(body=buffer.getvalue(), content_type="image/svg+xml")


def _asdict(value: Any) -> dict[str, Any]:
    return asdict(value)
