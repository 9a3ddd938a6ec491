"""What the two web front ends (share page, app UI) have in common: strict headers
and their static files, shipped in the package and served from memory."""

from __future__ import annotations

import ipaddress
from importlib import resources
from pathlib import Path

from aiohttp import web
from yarl import URL

#: Everything a page may load comes from its own server; nothing inline, nothing framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
#: No other window (one that opened the page, or one it opens) gets a handle on it. Browsers
#: apply it only on a trustworthy origin (https, or loopback) and log an error for it on any
#: other (a share link on a LAN address over plain http): sent only where it applies.
OPENER_POLICY = {"Cross-Origin-Opener-Policy": "same-origin"}


def trustworthy_origin(host: str, secure: bool) -> bool:
    """Whether a page reached as ``host`` (``HOST[:PORT]``, as the Host header says it), over
    https when ``secure``, is a potentially trustworthy origin (W3C Secure Contexts 3.2)."""
    if secure:
        return True
    try:
        name = URL.build(scheme="http", authority=host).host or ""
    except (ValueError, TypeError):
        return False
    name = name.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False
#: Content types of the files a page is made of.
STATIC_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


class StaticPage:
    """A page's files (``package``/static), read once and served from memory (they are small)."""

    def __init__(self, package: str) -> None:
        self._files: dict[str, tuple[bytes, str]] = {}
        for entry in resources.files(package).joinpath("static").iterdir():
            suffix = Path(entry.name).suffix
            if entry.is_file() and suffix in STATIC_TYPES:
                self._files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])

    def response(self, name: str) -> web.Response:
        """The file ``name``, or 404."""
        if name not in self._files:
            raise web.HTTPNotFound()
        body, content_type = self._files[name]
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    async def index(self, request: web.Request) -> web.StreamResponse:
        """Handler: the page itself."""
        return self.response("index.html")

    async def file(self, request: web.Request) -> web.StreamResponse:
        """Handler: ``.../static/{name}``."""
        return self.response(request.match_info["name"])
