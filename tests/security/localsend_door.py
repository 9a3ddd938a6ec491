"""Hostile LocalSend clients against the real HTTPS server (``receive``'s LocalSend door).

``served_localsend`` runs a node serving LocalSend on 127.0.0.1 in this process;
``start_localsend_receiver`` runs ``p2p-transfer receive`` in a child process, for
tests that measure the server's own memory and descriptors. The clients are
plain sockets or aiohttp, each from the loopback address it is given (any of
127.0.0.0/8 works on Linux), doing what an attacker on the LAN could.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from e2e.cli import CODE, CliProcess
from p2p_transfer.events import Event
from p2p_transfer.localsend.receiver import ReceiverSetup
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.transfer import Decision, IncomingOffer, ReceiveOptions

API = "/api/localsend/v2"
#: How a LocalSend sender describes itself (the fingerprint is only a claim).
SENDER: dict[str, Any] = {
    "alias": "mallory", "version": "2.1", "deviceModel": "Evil", "deviceType": "mobile",
    "fingerprint": "AB" * 32, "port": 53317, "protocol": "https",
}


def file_entry(file_id: str, name: str, size: int, **extra: Any) -> dict[str, Any]:
    """One file of a ``prepare-upload`` body."""
    return {"id": file_id, "fileName": name, "size": size,
            "fileType": "application/octet-stream", **extra}


def prepare_body(files: dict[str, dict[str, Any]], info: dict[str, Any] | None = None) -> bytes:
    """A ``prepare-upload`` body as a LocalSend sender sends it."""
    return json.dumps({"info": info or SENDER, "files": files}).encode()


def client_tls() -> ssl.SSLContext:
    """What LocalSend clients do: accept the self-signed certificate (pinning aside)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def http_client(source: str = "127.0.0.1") -> aiohttp.ClientSession:
    """An HTTPS client whose connections come from ``source``."""
    connector = aiohttp.TCPConnector(ssl=False, limit=0, local_addr=(source, 0))
    return aiohttp.ClientSession(connector=connector)


async def always_accept(offer: IncomingOffer) -> Decision:
    return Decision(True)


@dataclass
class ServedLocalSend:
    """A node serving LocalSend on 127.0.0.1 in this process, and what it emitted."""

    node: Node
    target: Path
    offers: list[IncomingOffer] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.node.localsend is not None
        return self.node.localsend.port

    def url(self, route: str) -> str:
        return f"https://127.0.0.1:{self.port}{API}/{route}"

    def emitted(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def served_localsend(
    tmp_path: Path,
    decide: Callable[[IncomingOffer], Awaitable[Decision]] = always_accept,
    *,
    pin: str | None = None,
    name: str = "us",
) -> AsyncIterator[ServedLocalSend]:
    """A node of its own (config in ``tmp_path / name``) serving LocalSend, no multicast;
    every offer asked about is kept in ``offers`` before ``decide`` answers it."""
    target = tmp_path / f"{name}-inbox"
    node = Node.without_endpoint(NodeConfig(tmp_path / f"{name}-home", name,
                                            bind_addr="127.0.0.1"))
    served = ServedLocalSend(node, target)
    node.events.subscribe(served.events.append)

    async def asked(offer: IncomingOffer) -> Decision:
        served.offers.append(offer)
        return await decide(offer)

    await node.start_localsend(
        ReceiverSetup(ReceiveOptions(target=target), asked, pin=pin), 0, announce=False
    )
    try:
        yield served
    finally:
        await node.close()


def free_port() -> int:
    """A TCP port nobody listens on right now (for a child process to take)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_localsend_receiver(home: Path, target: Path, *extra: str) -> tuple[CliProcess, int]:
    """``receive --yes`` on loopback serving LocalSend (no announcements); returns the
    process and its LocalSend port once it listens."""
    port = free_port()
    receiver = CliProcess(
        ["--name", "receiver", "receive", "--dir", str(target), "--yes", "--code", CODE,
         "--bind", "127.0.0.1", "--no-announce", "--localsend-port", str(port), "--json",
         *extra],
        home,
    )
    receiver.wait_for("localsend")
    return receiver, port


def process_status(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` memory figure (``VmRSS``, ``VmHWM``), in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} for process {pid}")


def unread_by_server(port: int, client_port: int) -> int | None:
    """Bytes the server on ``port`` has not read yet from the connection of
    ``client_port`` (its socket's receive queue); None when there is no such one."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote, queues = fields[1], fields[2], fields[4]
                if (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)) == (
                    port, client_port
                ):
                    return int(queues.split(":")[1], 16)
    return None


def open_descriptors(pid: int) -> int:
    """How many file descriptors process ``pid`` holds."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def open_tcp(
    port: int, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain TCP connection to the LocalSend port from ``source`` (no TLS)."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def open_tls(
    port: int, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection to the LocalSend port from ``source``, handshake done."""
    return await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0), ssl=client_tls(), server_hostname="x"
    )


def request_head(method: str, route: str, length: int | None = None, **query: str) -> bytes:
    """An HTTP/1.1 request head for a LocalSend route."""
    target = f"{API}/{route}"
    if query:
        target += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    if length is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
