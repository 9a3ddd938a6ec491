"""The LocalSend door under load, against the real HTTPS server: one request must not
freeze the receiver, bodies and connections are bounded from the first byte, and a
request whose body never comes is dropped (issue 24, findings 1 to 4).

The receiver is ``p2p-transfer receive`` in a child process when the test measures
it (its event loop, memory or descriptors); the attackers are sockets of this process
from loopback addresses of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import statistics
import struct
import time
from pathlib import Path

import pytest

from e2e.cli import CODE
from p2p_transfer.limits import (
    LOCALSEND_HANDSHAKE_TIMEOUT,
    LOCALSEND_MAX_CONNECTIONS,
    LOCALSEND_MAX_CONNECTIONS_PER_IP,
    LOCALSEND_MAX_FILES,
    LOCALSEND_MAX_JSON_BODY,
    KiB,
    MiB,
)
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.transfer import SendOptions
from security.conftest import wait_until
from security.localsend_door import (
    API,
    SENDER,
    file_entry,
    http_client,
    open_descriptors,
    open_tcp,
    open_tls,
    prepare_body,
    process_status,
    request_head,
    served_localsend,
    start_localsend_receiver,
    unread_by_server,
)

# --- Finding 1: one offer must not freeze the receiver ---------------------------------

#: A paired native send of this size...
HONEST_SEND = 1 * MiB
#: ...finishes within this many times its unloaded time while the offer below arrives.
RESPONSIVE_FACTOR = 2.0
#: Rounds of one send unloaded and one during such an offer, one after the other (so a
#: machine whose load changes meanwhile weighs on both alike); their medians compared.
ROUNDS = 9
#: The offer: the most files one may announce, 500 of one name in each of 40 folders
#: (every one but the first of a folder needs a number: quadratic numbering took ~7 s).
NUMBERED_FOLDERS = 40


def _offer_that_is_planned_in_full() -> bytes:
    """LOCALSEND_MAX_FILES entries that all need planning; the last one's sha256 is
    malformed, so the offer would be refused (400) only after every entry was planned
    and leaves no session behind."""
    files = {
        f"f{i}": file_entry(f"f{i}", f"d{i % NUMBERED_FOLDERS}/a.txt", 1)
        for i in range(LOCALSEND_MAX_FILES)
    }
    files[f"f{LOCALSEND_MAX_FILES - 1}"]["sha256"] = "not a sha256"
    return prepare_body(files)


async def test_a_paired_send_is_not_held_up_by_a_20000_entry_localsend_offer(
    tmp_path: Path,
) -> None:
    receiver, port = start_localsend_receiver(tmp_path / "rx-home", tmp_path / "inbox")
    sender = await Node.start(NodeConfig(tmp_path / "tx-home", "sender", "127.0.0.1"))
    unloaded: list[float] = []
    loaded: list[float] = []
    try:
        ticket = receiver.wait_for("ticket")["ticket"]
        sources = []
        for index in range(1 + 2 * ROUNDS):
            source = tmp_path / f"honest-{index}.bin"
            source.write_bytes(os.urandom(HONEST_SEND))
            sources.append(source)

        async def timed_send(source: Path) -> float:
            started = time.monotonic()
            result = await sender.send(ticket, [source], SendOptions(code=CODE))
            assert result.ok, result.message
            return time.monotonic() - started

        await timed_send(sources[0])  # pairs: the sends below are a paired device's
        offer = _offer_that_is_planned_in_full()
        head = request_head("POST", "prepare-upload", len(offer))
        for round_ in range(ROUNDS):
            unloaded.append(await timed_send(sources[1 + 2 * round_]))
            reader, writer = await open_tls(port, "127.0.0.9")
            client_port = int(writer.get_extra_info("sockname")[1])
            writer.write(head + offer)
            await writer.drain()
            # Once the receiver has read the whole offer, it plans it: send meanwhile.
            await wait_until(lambda p=client_port: unread_by_server(port, p) == 0,
                             timeout=30, what="the receiver to read the offer")
            loaded.append(await timed_send(sources[2 + 2 * round_]))
            assert not reader.at_eof()  # still planning: the send went on meanwhile
            # The sender leaves (a reset): the receiver stops planning its offer.
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            writer.transport.abort()
            await wait_until(lambda p=client_port: unread_by_server(port, p) is None,
                             timeout=30, what="the receiver to let the offer go")
    finally:
        await sender.close()
        receiver.stop()
    assert statistics.median(loaded) <= RESPONSIVE_FACTOR * statistics.median(unloaded), (
        f"unloaded {unloaded}, during the offers {loaded}"
    )


# --- Finding 2: bodies and offers within a memory budget --------------------------------

#: Bodies sent at once, from this many addresses (the issue's attack).
BODY_FLOOD = 100
BODY_FLOOD_ADDRESSES = 5
#: Each just under the largest body read, so none is refused for its size alone.
BODY_FLOOD_SIZE = LOCALSEND_MAX_JSON_BODY - KiB
#: The receiving process's peak resident memory (VmHWM) meanwhile, all of it counted
#: (LOCALSEND.md; measured 120-195 MiB from ~63 at rest, 556 MiB without the budget).
BODY_FLOOD_PEAK_RSS = 250 * MiB


def _largest_offer_body() -> bytes:
    """LOCALSEND_MAX_FILES files, padded to BODY_FLOOD_SIZE bytes; the last file's sha256
    is malformed, so an offer read and planned in full is refused (400) and leaves no
    session behind."""
    files = {f"f{i:05}": file_entry(f"f{i:05}", f"album/IMG_{i:05}.jpeg", 1)
             for i in range(LOCALSEND_MAX_FILES)}
    files[f"f{LOCALSEND_MAX_FILES - 1:05}"]["sha256"] = "not a sha256"
    body = {"info": SENDER, "files": files, "padding": ""}
    room = BODY_FLOOD_SIZE - len(json.dumps(body).encode())
    assert room >= 0
    body["padding"] = "x" * room
    encoded = json.dumps(body).encode()
    assert len(encoded) == BODY_FLOOD_SIZE
    return encoded


async def _post_and_read_status(port: int, source: str, head: bytes, body: bytes) -> int:
    """Send a request whole; the status of the answer (0: the connection was cut)."""
    try:
        reader, writer = await open_tls(port, source)
    except (OSError, ssl.SSLError):
        return 0
    try:
        writer.write(head + body)
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 60)
        parts = line.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    except (OSError, ssl.SSLError, TimeoutError):
        return 0
    finally:
        writer.close()


async def test_a_hundred_largest_bodies_at_once_stay_within_the_memory_budget(
    tmp_path: Path,
) -> None:
    """BODY_FLOOD offers of the largest size at once, from BODY_FLOOD_ADDRESSES addresses:
    the receiving process stays under BODY_FLOOD_PEAK_RSS, and serves an honest device
    afterwards."""
    receiver, port = start_localsend_receiver(tmp_path / "rx-home", tmp_path / "inbox")
    try:
        body = _largest_offer_body()
        head = request_head("POST", "prepare-upload", len(body))
        sources = [f"127.0.0.{11 + i % BODY_FLOOD_ADDRESSES}" for i in range(BODY_FLOOD)]
        statuses = await asyncio.gather(
            *(_post_and_read_status(port, source, head, body) for source in sources)
        )
        peak = process_status(receiver.process.pid, "VmHWM")
        assert set(statuses) <= {400, 503, 0}, statuses  # planned and refused, or not read
        assert peak <= BODY_FLOOD_PEAK_RSS, f"peak {peak / MiB:.0f} MiB"
        async with http_client() as http:
            offer = await http.post(f"https://127.0.0.1:{port}{API}/prepare-upload", json={
                "info": SENDER, "files": {"a": file_entry("a", "a.txt", 1)},
            })
            assert offer.status == 200, await offer.text()
    finally:
        receiver.stop()


# --- Finding 3: half-open connections are counted ---------------------------------------

#: TCP connections that never start TLS, from this many addresses.
HALF_OPEN = 1200
HALF_OPEN_ADDRESSES = 5
#: Descriptors the receiver may hold beyond its count before the flood and the cap: a
#: connection just accepted and one just dropped, on their way in and out, and a few
#: the process opens of its own meanwhile.
HALF_OPEN_FD_SLACK = 8
#: What the receiver's peak memory may grow by for each connection it holds: a TLS
#: layer's buffers are ~300 KB (measured: +30 MiB for the cap; 1,200 held: +356 MiB).
HALF_OPEN_MEMORY_EACH = 512 * KiB


def _accept_queue(port: int) -> int:
    """Connections waiting for the server's accept on ``port`` (its listen queue)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, state, queues = fields[1], fields[3], fields[4]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    return int(queues.split(":")[1], 16)
    raise AssertionError(f"nothing listens on {port}")


async def test_twelve_hundred_half_open_connections_stay_under_the_cap(
    tmp_path: Path,
) -> None:
    receiver, port = start_localsend_receiver(tmp_path / "rx-home", tmp_path / "inbox")
    pid = receiver.process.pid
    opened: list[asyncio.StreamWriter] = []
    try:
        async with http_client() as http:  # the HTTP server loads on its first connection
            assert (await http.get(f"https://127.0.0.1:{port}{API}/info")).status == 200
        resting = open_descriptors(pid)
        rss_before = process_status(pid, "VmRSS")
        most = resting

        async def half_open(index: int) -> None:
            source = f"127.0.0.{21 + index % HALF_OPEN_ADDRESSES}"
            with contextlib.suppress(OSError, TimeoutError):
                _, writer = await asyncio.wait_for(open_tcp(port, source), 30)
                opened.append(writer)

        flood = asyncio.gather(*(half_open(i) for i in range(HALF_OPEN)))
        while not flood.done() or _accept_queue(port):
            most = max(most, open_descriptors(pid))
            await asyncio.wait([flood], timeout=0.01)
        await flood
        most = max(most, open_descriptors(pid))
        grew = process_status(pid, "VmHWM") - rss_before
        assert len(opened) > LOCALSEND_MAX_CONNECTIONS
        assert most - resting <= LOCALSEND_MAX_CONNECTIONS + HALF_OPEN_FD_SLACK, (
            f"{most - resting} descriptors more than at rest"
        )
        assert grew <= LOCALSEND_MAX_CONNECTIONS * HALF_OPEN_MEMORY_EACH, f"+{grew / MiB:.0f} MiB"
        async with http_client("127.0.0.2") as http:  # an honest device still gets in
            info = await http.get(f"https://127.0.0.1:{port}{API}/info")
            assert info.status == 200
    finally:
        for writer in opened:
            writer.close()
        receiver.stop()


# --- Finding 4: a body that never arrives --------------------------------------------------

#: Connections that send a whole request head and one byte of its body, from this many
#: addresses: every place the server has.
SLOW_BODIES_ADDRESSES = LOCALSEND_MAX_CONNECTIONS // LOCALSEND_MAX_CONNECTIONS_PER_IP
#: How long after LOCALSEND_HANDSHAKE_TIMEOUT they may stay open, at most.
SLOW_BODY_GRACE = 3.0


async def test_a_hundred_bodies_that_never_arrive_are_dropped_and_let_a_device_in(
    tmp_path: Path,
) -> None:
    """Every place is taken by a ``register`` whose body stops after one byte: an honest
    device is served at once (not after they go), and each of them is dropped within
    LOCALSEND_HANDSHAKE_TIMEOUT of connecting (plus SLOW_BODY_GRACE)."""
    async with served_localsend(tmp_path) as served:

        async def slow_body(index: int) -> tuple[float, asyncio.StreamReader,
                                                 asyncio.StreamWriter]:
            source = f"127.0.0.{31 + index % SLOW_BODIES_ADDRESSES}"
            reader, writer = await open_tls(served.port, source)
            opened = time.monotonic()  # the server accepted it before this
            writer.write(request_head("POST", "register", 100) + b"{")
            await writer.drain()
            return opened, reader, writer

        slow = await asyncio.gather(*(slow_body(i) for i in range(LOCALSEND_MAX_CONNECTIONS)))
        first = min(opened for opened, _, _ in slow)
        async with http_client() as http:  # an honest device
            info = await http.get(served.url("info"))
            assert info.status == 200, await info.text()
            offer = await http.post(served.url("prepare-upload"), json={
                "info": SENDER, "files": {"a": file_entry("a", "a.txt", 1)},
            })
            assert offer.status == 200, await offer.text()
        assert time.monotonic() - first < LOCALSEND_HANDSHAKE_TIMEOUT  # during, not after

        async def held_for(opened: float, reader: asyncio.StreamReader) -> float:
            with contextlib.suppress(OSError, ssl.SSLError):
                while await reader.read(65536):
                    pass
            return time.monotonic() - opened

        limit = LOCALSEND_HANDSHAKE_TIMEOUT + SLOW_BODY_GRACE
        try:
            held = await asyncio.wait_for(
                asyncio.gather(*(held_for(opened, reader) for opened, reader, _ in slow)),
                limit + SLOW_BODY_GRACE,
            )
        finally:
            for _, _, writer in slow:
                writer.close()
        assert max(held) <= limit, sorted(held)[-5:]
        async with http_client() as http:  # and the server goes on serving
            assert (await http.get(served.url("info"))).status == 200


@pytest.fixture(autouse=True)
def _enough_descriptors() -> None:
    """The floods above open over a thousand sockets in this process."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
