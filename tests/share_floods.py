"""Floods against the share server: slow connections, and tiny WebSocket frames.

``SlowFlood``: many TCP connections that trickle a request head and never finish it,
reopened as soon as the server drops them (a "slow-loris"). Loopback is all of
127/8, so one machine can flood from several source addresses. Use it from async
code (``async with SlowFlood(...)``) or from a synchronous test, such as one
driving Chromium, with ``SlowFlood.in_thread(...)``.

``frame_flood``: an upload whose data comes as 1-byte WebSocket frames, written as
fast as the socket takes them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

from waiting import hold_for, wait_until

#: What a flooding connection sends, one byte at a time: a request head never finished.
_TRICKLE = b"GET /" + b"a" * 4000


class SlowFlood:
    """``per_address`` connections from each of ``addresses`` to ``host:port``."""

    def __init__(
        self, host: str, port: int, addresses: list[str], per_address: int, interval: float
    ) -> None:
        self.host, self.port = host, port
        self.addresses = addresses
        self.per_address = per_address
        self.interval = interval
        #: Connections opened, and of those, dropped by the server, so far.
        self.opened = 0
        self.dropped = 0
        self.open_now = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> SlowFlood:
        self._tasks = [
            asyncio.create_task(self._hold(address))
            for address in self.addresses
            for _ in range(self.per_address)
        ]
        await self.wait_until_open(len(self._tasks))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_until_open(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` connections were opened (the server may drop some at once)."""
        await wait_until(
            lambda: self.opened >= count, timeout, every=0.01,
            what=lambda: f"{count} flooding connections to open; {self.opened} so far",
        )

    async def _hold(self, address: str) -> None:
        """Keep one connection open, trickling bytes; reopen it whenever it is dropped."""
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, local_addr=(address, 0)
                )
            except OSError:
                await hold_for(0.05)  # the flood's pace when the server refuses it
                continue
            self.opened += 1
            self.open_now += 1
            closed = asyncio.ensure_future(reader.read())  # ends when the server closes
            try:
                for byte in _TRICKLE:
                    writer.write(bytes([byte]))
                    done, _ = await asyncio.wait({closed}, timeout=self.interval)
                    if done:
                        break
            except OSError:
                pass
            finally:
                self.open_now -= 1
                self.dropped += 1
                if closed.done() and not closed.cancelled():
                    closed.exception()  # a reset is how the server drops it: expected
                closed.cancel()
                writer.close()

    @classmethod
    @contextlib.contextmanager
    def in_thread(
        cls, host: str, port: int, addresses: list[str], per_address: int, interval: float
    ) -> Iterator[SlowFlood]:
        """The flood on an event loop of its own, for a synchronous test."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        flood = cls(host, port, addresses, per_address, interval)
        try:
            asyncio.run_coroutine_threadsafe(flood.__aenter__(), loop).result(30)
            yield flood
        finally:
            asyncio.run_coroutine_threadsafe(flood.__aexit__(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def client_frame(opcode: int, payload: bytes, mask: bytes = b"\x5a\xa5\x0f\xf0") -> bytes:
    """One masked WebSocket frame, as a browser sends it (RFC 6455 5.2)."""
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, 0x80 | length])
    elif length < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack(">H", length)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack(">Q", length)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return head + mask + masked


def frame_flood(share_url: str, frames: int) -> int:
    """Announce a file of ``frames`` bytes and send it as 1-byte binary frames, as fast as
    the socket takes them, then close; returns how many frames the socket took before
    the server ended it (blocking: run it in a thread)."""
    url = urlsplit(share_url)
    assert url.hostname is not None and url.port is not None
    with socket.create_connection((url.hostname, url.port)) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((
            f"GET {url.path}/ws HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: http://{url.netloc}\r\n\r\n"
        ).encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        assert b" 101 " in answer.split(b"\r\n", 1)[0], answer
        info = {"type": "file_info", "file_name": "flood.bin", "file_size": frames}
        sock.sendall(client_frame(1, json.dumps(info).encode()))
        while b"accepted" not in answer:
            answer += sock.recv(4096)
        burst = 100_000
        blob = client_frame(2, b"x") * burst
        sent = 0
        with contextlib.suppress(OSError):  # the server ends it: a reset
            while sent < frames:
                sock.sendall(blob if frames - sent >= burst else blob[: 7 * (frames - sent)])
                sent += min(burst, frames - sent)
    return sent
