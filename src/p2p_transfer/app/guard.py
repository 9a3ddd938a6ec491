"""The UI server's access control, run before every handler (see ``server.py``'s order).

On its own so the rules a browser attack must get past read in one place: the
``Host`` check (DNS rebinding), the per-run key and its cookie, ``Origin`` and
``Sec-Fetch-Site`` on the API; and the app's refusals mapped to HTTP statuses.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from p2p_transfer.app.errors import AppError
from p2p_transfer.app.files import PathMissing, PathRefused
from p2p_transfer.webpage import OPENER_POLICY
from p2p_transfer.webpage import SECURITY_HEADERS as PAGE_SECURITY_HEADERS

#: Host names a browser may use for the UI.
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

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, message: str) -> web.Response:
    """The API's error body."""
    return web.json_response({"error": message}, status=status)


class AccessGuard:
    """Lets a request through only from our page, with the key; maps app refusals."""

    def __init__(self, key: str, port: Callable[[], int]) -> None:
        self.key = key
        #: The port is known only once listening (0: the system chooses).
        self._port = port

    @property
    def cookie_name(self) -> str:
        """Per port, so two apps on one machine do not overwrite each other's cookie."""
        return f"p2p_app_key_{self._port()}"

    def _allowed_hosts(self) -> set[str]:
        port = self._port()
        hosts = {f"{name}:{port}" for name in _LOCAL_NAMES}
        if port == _HTTP_DEFAULT_PORT:  # browsers leave the default port out
            hosts |= set(_LOCAL_NAMES)
        return hosts

    def _allowed_origins(self) -> set[str]:
        return {f"http://{host}" for host in self._allowed_hosts()}

    def _has_key(self, request: web.Request) -> bool:
        cookie = request.cookies.get(self.cookie_name, "")
        return hmac.compare_digest(cookie.encode(), self.key.encode())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Host, key (or the key link that sets its cookie), Origin; then the handler."""
        if request.host not in self._allowed_hosts():
            return web.Response(status=403, text="unexpected Host header")
        if request.path == "/" and KEY_PARAM in request.query:
            return self._key_link(request.query.get(KEY_PARAM, ""))
        if not self._has_key(request):
            if request.path.startswith(("/api/", "/ws")):
                return json_error(403, "missing or wrong key: open the link the app printed")
            return web.Response(status=403, text=_FORBIDDEN_PAGE, content_type="text/html")
        if request.path.startswith(("/api/", "/ws")):
            refusal = self._origin_refusal(request)
            if refusal:
                return json_error(403, refusal)
        try:
            return await handler(request)
        except AppError as exc:
            return json_error(exc.status, str(exc))
        except PathMissing as exc:
            return json_error(404, str(exc))
        except PathRefused as exc:
            return json_error(403, str(exc))

    def _key_link(self, given: str) -> web.Response:
        """The right key sets the cookie and leaves the address bar; a wrong one is 403."""
        if not hmac.compare_digest(given.encode(), self.key.encode()):
            return web.Response(status=403, text=_FORBIDDEN_PAGE, content_type="text/html")
        response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(self.cookie_name, self.key, httponly=True, samesite="Strict", path="/")
        return response

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
    async def security_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
        """Strict headers on every response, errors included."""
        response.headers.update(SECURITY_HEADERS)
