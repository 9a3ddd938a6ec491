"""Browser-like uploads to a ``p2p-transfer share`` link: ``python -m bench.peers.share_upload``.

``URL FILE NAME...``: one WebSocket client per NAME, all at once, each
uploading FILE under that name exactly as the share page does (docs/SHARE.md):
the handshake carries the page's ``Origin``; a text ``file_info``; wait for
``accepted``; binary frames of 256 KiB; wait for ``complete``. Prints
``{"event": "done", "files", "bytes", "seconds"}`` once every upload is
complete, or exits 1 with the reason on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench.config import CHUNK_SIZE

#: The page's frame size (``upload.chunk_size`` of ``api/info``).
FRAME_SIZE = CHUNK_SIZE
#: Seconds to wait for any one server message (the host's answer is automatic: --yes).
MESSAGE_TIMEOUT = 60.0
#: Larger than any server message; the server's own limits are what is measured.
MAX_MESSAGE = 1 << 20


class UploadError(RuntimeError):
    """The server refused or broke off an upload."""


def ws_url(page_url: str) -> tuple[str, str]:
    """``http://host:port/TOKEN`` → (``ws://host:port/TOKEN/ws``, page origin ``http://host:port``)."""
    parts = urlsplit(page_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/")
    return f"{scheme}://{parts.netloc}{path}/ws", f"{parts.scheme}://{parts.netloc}"


async def next_message(ws: aiohttp.ClientWebSocketResponse, wanted: str) -> dict[str, Any]:
    """The next text message of type ``wanted``, skipping ``progress``; else UploadError."""
    while True:
        message = await ws.receive(timeout=MESSAGE_TIMEOUT)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise UploadError(f"socket closed waiting for {wanted!r}: {message.type.name}")
        data = json.loads(message.data)
        kind = data.get("type")
        if kind == wanted:
            return data
        if kind != "progress":
            raise UploadError(f"expected {wanted!r}, got {data}")


async def upload(page_url: str, path: Path, name: str) -> int:
    """Upload ``path`` as ``name`` over one WebSocket; return the bytes sent."""
    url, origin = ws_url(page_url)
    size = path.stat().st_size
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers={"Origin": origin}, max_msg_size=MAX_MESSAGE) as ws,
    ):
        await ws.send_str(json.dumps({"type": "file_info", "file_name": name, "file_size": size}))
        await next_message(ws, "accepted")
        with open(path, "rb") as source:
            while chunk := source.read(FRAME_SIZE):
                await ws.send_bytes(chunk)
        await next_message(ws, "complete")
    return size


async def upload_all(page_url: str, path: Path, names: list[str]) -> int:
    """Every upload at once; the total bytes sent."""
    sizes = await asyncio.gather(*(upload(page_url, path, name) for name in names))
    return sum(sizes)


def main(argv: list[str] | None = None) -> int:
    """Upload, then print the ``done`` line."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers.share_upload")
    parser.add_argument("url", help="the share link, http://HOST:PORT/TOKEN")
    parser.add_argument("file", type=Path)
    parser.add_argument("names", nargs="+", help="one concurrent upload per name")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        total = asyncio.run(upload_all(args.url, args.file, args.names))
    except (UploadError, aiohttp.ClientError, OSError, TimeoutError) as error:
        print(f"share_upload: {error}", file=sys.stderr)
        return 1
    done = {
        "event": "done",
        "files": len(args.names),
        "bytes": total,
        "seconds": time.monotonic() - started,
    }
    print(json.dumps(done), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
