"""``share --public``: the same server through an ngrok tunnel (optional extra ``[public]``).

Checks happen before anything listens, so a missing token or SDK fails at once
with one clear line. The SDK is imported only here and only when asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
from types import ModuleType
from typing import Any

from p2p_transfer.errors import LocalFault

#: The environment variable the ngrok SDK reads its credential from.
AUTHTOKEN_ENV = "NGROK_AUTHTOKEN"


class PublicShareError(LocalFault):
    """``--public`` cannot work here; the message is one line for the user."""


def load_ngrok() -> ModuleType:
    """The ngrok SDK, after checking the token is set; PublicShareError otherwise."""
    if not os.environ.get(AUTHTOKEN_ENV):
        raise PublicShareError(
            f"--public needs an ngrok authtoken: set {AUTHTOKEN_ENV} "
            "(from your ngrok dashboard) and try again"
        )
    try:
        return importlib.import_module("ngrok")
    except ImportError:
        raise PublicShareError(
            "--public needs the ngrok SDK: pip install 'p2p-transfer[public]'"
        ) from None


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call an SDK function off the event loop; await it if it hands back an awaitable."""
    result = await asyncio.to_thread(fn, *args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


class PublicTunnel:
    """An open ngrok tunnel forwarding to the local share server."""

    def __init__(self, ngrok: ModuleType, listener: Any) -> None:
        self._ngrok = ngrok
        self._listener = listener
        #: ``https://…`` (without the token path).
        self.base_url: str = str(listener.url()).rstrip("/")

    @classmethod
    async def open(cls, ngrok: ModuleType, host: str, port: int) -> PublicTunnel:
        """Forward the tunnel to ``host:port``; raises PublicShareError with ngrok's reason."""
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            listener = await _call(ngrok.forward, target, authtoken_from_env=True)
        except Exception as exc:
            raise PublicShareError(f"could not open the public tunnel: {exc}") from exc
        return cls(ngrok, listener)

    async def close(self) -> None:
        """Take the public URL down (errors are ignored: we are stopping anyway)."""
        with contextlib.suppress(Exception):
            await _call(self._ngrok.disconnect, self.base_url)
