"""The iroh adapter: the binding fix, tickets, framed streams."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from itertools import groupby
from pathlib import Path
from typing import TypeVar

import blake3
import pytest
from iroh import iroh_ffi

from p2p_transfer.limits import IO_BUFFER_SIZE, MESSAGE_READ_SIZE
from p2p_transfer.net import (
    RELAY_DEFAULT,
    CloseCode,
    DamagedTicket,
    MessageReader,
    MessageWriter,
    Transport,
    Unreachable,
    bind_host,
    binding,
    certificates,
    describe_iroh_error,
    parse_host_port,
    parse_ticket,
    streams,
    ticket_via,
)
from p2p_transfer.net.binding import BindingChangedError, apply_binding_fix, is_binding_fix_applied
from p2p_transfer.net.errors import NetError
from p2p_transfer.net.identify import fetch_ticket
from p2p_transfer.net.keys import public_id, ticket_for
from p2p_transfer.net.transport import _connection_within
from p2p_transfer.protocol import Hello, Verify
from p2p_transfer.trust import load_or_create_secret_key
from p2p_transfer.trust.files import ensure_private_dir
from waiting import hold_for_blocking, next_turn

T = TypeVar("T")


async def _transport(home: Path) -> Transport:
    home.mkdir(mode=0o700)
    return await Transport.bind(load_or_create_secret_key(home), "127.0.0.1")


async def _across(
    tmp_path: Path,
    send: Callable[[iroh_ffi.BiStream], Awaitable[None]],
    receive: Callable[[iroh_ffi.BiStream], Awaitable[T]],
) -> T:
    """One bi stream between two transports on loopback: ``send`` on the end that opens
    it, ``receive`` on the end that accepts it; what ``receive`` returned."""
    a, b = await _transport(tmp_path / "a"), await _transport(tmp_path / "b")
    try:
        async def accept() -> T:
            accepted = await b.accept()
            assert accepted is not None
            return await receive(await accepted.raw.accept_bi())

        receiving = asyncio.create_task(accept())
        connection = await a.connect(b.ticket)  # held: a connection let go of closes
        await send(await connection.raw.open_bi())
        return await receiving
    finally:
        await a.close()
        await b.close()


async def test_binding_fix_is_in_effect_once_a_transport_binds(tmp_path: Path) -> None:
    transport = await _transport(tmp_path / "a")
    try:
        assert is_binding_fix_applied()
        apply_binding_fix()  # idempotent
        assert is_binding_fix_applied()
    finally:
        await transport.close()


def test_a_binding_whose_buffer_write_changed_is_refused_not_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def write(self: object, value: bytes) -> None:  # a new shape: no _reserve, no rbuf
        self.buffer += value  # type: ignore[attr-defined]

    monkeypatch.setattr(binding, "_ORIGINAL_WRITE", write)
    with pytest.raises(BindingChangedError, match="buffer write changed"):
        binding._check_shape()


def test_checking_the_binding_keeps_none_of_its_source_in_memory() -> None:
    """The check reads the generated write's code, not its file's ~10,700 lines."""
    checked = subprocess.run(
        [sys.executable, "-c", (
            "import linecache\n"
            "from iroh import iroh_ffi\n"
            "from p2p_transfer.net.binding import apply_binding_fix\n"
            "apply_binding_fix()\n"
            "print(iroh_ffi.__file__ in linecache.cache)"
        )],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert checked.stdout.strip() == "False"


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "slice"])
async def test_fixed_binding_moves_every_byte(tmp_path: Path, kind: str) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 5)
    buffers = {
        "bytes": payload,
        "bytearray": bytearray(payload),
        "memoryview": memoryview(payload),
        "slice": memoryview(b"xx" + payload + b"yy")[2:-2],
    }

    async def send(stream: iroh_ffi.BiStream) -> None:
        await stream.send().write_all(buffers[kind])
        await stream.send().finish()

    async def receive(stream: iroh_ffi.BiStream) -> bytes:
        data = await stream.recv().read_to_end(len(payload) + 1)
        await stream.send().finish()
        return data

    received = await _across(tmp_path, send, receive)
    assert blake3.blake3(received).digest() == blake3.blake3(payload).digest()


async def test_framed_messages_cross_a_stream(tmp_path: Path) -> None:
    async def send(stream: iroh_ffi.BiStream) -> None:
        writer = MessageWriter(stream.send())
        for message in (Hello(1, "a"), Verify(b"\x00pake", b"proof"), Hello(1, "ü" * 100)):
            await writer.send(message)
        await writer.write(b"12345")
        await writer.finish()

    async def receive(stream: iroh_ffi.BiStream) -> list[object]:
        reader = MessageReader(stream.recv())
        messages = [await reader.read_message() for _ in range(3)]
        raw = await reader.read_exact(5)
        end = await reader.read_message()
        return [*messages, raw, end]

    assert await _across(tmp_path, send, receive) == [
        Hello(1, "a"), Verify(b"\x00pake", b"proof"), Hello(1, "ü" * 100), b"12345", None
    ]


async def test_a_reader_asks_the_stream_for_little_for_tiny_items_and_a_full_buffer_for_large(
    tmp_path: Path,
) -> None:
    """Messages and tiny files are read MESSAGE_READ_SIZE at a time (iroh makes a buffer
    of the size asked for, each read: four streams of tiny files held MBs more); a whole
    of 100 KiB, and a file's run, IO_BUFFER_SIZE at a time (room for several)."""
    tiny, small, run = os.urandom(1024), os.urandom(100 * 1024), os.urandom(3 * IO_BUFFER_SIZE)

    async def send(stream: iroh_ffi.BiStream) -> None:
        writer = MessageWriter(stream.send())
        await writer.write(tiny)
        await writer.send(Hello(1, "a"))
        await writer.write(small + run)
        await writer.finish()

    async def receive(stream: iroh_ffi.BiStream) -> list[list[int]]:
        recv, asked = stream.recv(), [[]]

        class Recorded:
            async def read(self, limit: int) -> bytes:
                asked[-1].append(limit)
                return await recv.read(limit)

        reader = MessageReader(Recorded())
        assert await reader.read_exact(len(tiny)) == tiny
        asked.append([])
        assert await reader.read_message() == Hello(1, "a")
        asked.append([])
        assert await reader.read_exact(len(small)) == small
        asked.append([])
        received = bytearray()
        while len(received) < len(run):
            received += await reader.read_some(min(IO_BUFFER_SIZE, len(run) - len(received)))
        assert received == run
        await stream.send().finish()
        return asked

    for_tiny, for_message, for_small, for_run = await _across(tmp_path, send, receive)
    assert for_tiny[0] == MESSAGE_READ_SIZE
    assert all(limit == MESSAGE_READ_SIZE for limit in for_tiny + for_message)
    assert for_small and all(limit == IO_BUFFER_SIZE for limit in for_small)
    assert for_run[0] == IO_BUFFER_SIZE  # then what is left of the run, up to as much
    assert all(MESSAGE_READ_SIZE < limit <= IO_BUFFER_SIZE for limit in for_run)


class WhereItRan:
    """Whether each of a file's disk calls ran on the loop (else in a thread); the
    first on the loop can be made slow, as a disk slowing down under it."""

    def __init__(self, slow_on_loop: float = 0.0) -> None:
        self.on_loop: list[bool] = []
        self._slow_on_loop = slow_on_loop  # seconds the first call on the loop takes

    def note(self) -> None:
        on_loop = threading.current_thread() is threading.main_thread()
        if on_loop and self._slow_on_loop and not any(self.on_loop):
            hold_for_blocking(self._slow_on_loop)
        self.on_loop.append(on_loop)

    def runs(self) -> list[bool]:
        """Where the calls ran, each run of calls in one place once: a batch at least."""
        return [on_loop for on_loop, _ in groupby(self.on_loop)]


class Disk(WhereItRan):
    """A pumped file's writes: its bytes, and where each write ran."""

    def __init__(self, slow_on_loop: float = 0.0) -> None:
        super().__init__(slow_on_loop)
        self.data = bytearray()

    def write(self, view: memoryview) -> None:
        self.note()
        self.data += view


async def _pumped(tmp_path: Path, files: list[bytes], disks: list[Disk]) -> None:
    """``files`` sent back to back over a real stream, each pumped by the receiver into
    its disk."""

    async def send(stream: iroh_ffi.BiStream) -> None:
        for data in files:
            await stream.send().write_all(data)
        await stream.send().finish()

    async def receive(stream: iroh_ffi.BiStream) -> None:
        reader = MessageReader(stream.recv())
        for data, disk in zip(files, disks, strict=True):
            assert await reader.pump(len(data), disk.write, lambda count: None) is None
        await stream.send().finish()

    await _across(tmp_path, send, receive)


async def test_a_pump_writes_on_the_loop_once_the_disk_proved_quick_also_for_the_next_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "INLINE_DISK_BUDGET", 2.0)  # any write here is quick
    monkeypatch.setattr(streams, "PUMP_HANDOVER_WAIT", 60.0)  # no pause writes in between
    files = [os.urandom(4 * streams.PUMP_BUFFER_SIZE + 7), os.urandom(3 * 1024 * 1024)]
    disks = [Disk(), Disk()]
    await _pumped(tmp_path, files, disks)
    assert [bytes(disk.data) for disk in disks] == files
    assert disks[0].runs() == [False, True]  # the disk's pace unknown: the first in a thread
    assert disks[1].runs() == [True]  # the stream's pace carries over to its next file


async def test_after_a_slow_write_on_the_loop_the_next_goes_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "INLINE_DISK_BUDGET", 0.2)
    monkeypatch.setattr(streams, "PUMP_HANDOVER_WAIT", 60.0)
    data = os.urandom(6 * streams.PUMP_BUFFER_SIZE)
    disk = Disk(slow_on_loop=0.5)
    await _pumped(tmp_path, [data], [disk])
    assert bytes(disk.data) == data
    # thread (pace unknown); loop, slowly; thread (after it); loop again (quick again)
    assert disk.runs()[:4] == [False, True, False, True]


class SourceFile(WhereItRan):
    """A sent file's reads: from ``data``, and where each read ran."""

    def __init__(self, data: bytes, slow_on_loop: float = 0.0) -> None:
        super().__init__(slow_on_loop)
        self._data = memoryview(data)
        self._at = 0

    def read(self, view: memoryview) -> None:
        self.note()
        view[:] = self._data[self._at : self._at + len(view)]
        self._at += len(view)


async def _pumped_out(tmp_path: Path, sources: list[SourceFile], sizes: list[int]) -> bytes:
    """The files of ``sources`` pumped back to back by the sender over a real stream;
    what the receiver read."""

    async def send(stream: iroh_ffi.BiStream) -> None:
        writer = MessageWriter(stream.send())
        for source, size in zip(sources, sizes, strict=True):
            assert await writer.pump(size, source.read, lambda count: None) is None
        await writer.finish()

    async def receive(stream: iroh_ffi.BiStream) -> bytes:
        data = await stream.recv().read_to_end(sum(sizes) + 1)
        await stream.send().finish()
        return data

    return await _across(tmp_path, send, receive)


async def test_a_sender_reads_on_the_loop_once_the_disk_proved_quick_also_for_the_next_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "INLINE_DISK_BUDGET", 2.0)  # any read here is quick
    files = [os.urandom(4 * streams.PUMP_BUFFER_SIZE + 7), os.urandom(3 * 1024 * 1024)]
    sources = [SourceFile(data) for data in files]
    assert await _pumped_out(tmp_path, sources, [len(data) for data in files]) == b"".join(files)
    assert sources[0].runs() == [False, True]  # the disk's pace unknown: the first in a thread
    assert sources[1].runs() == [True]  # the stream's pace carries over to its next file


async def test_after_a_slow_read_on_the_loop_the_next_goes_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "INLINE_DISK_BUDGET", 0.2)
    data = os.urandom(6 * streams.PUMP_BUFFER_SIZE)
    source = SourceFile(data, slow_on_loop=0.5)
    assert await _pumped_out(tmp_path, [source], [len(data)]) == data
    # thread (pace unknown); loop, slowly; thread (after it); loop again (quick again)
    assert source.runs()[:4] == [False, True, False, True]


def test_the_rsa_key_is_made_by_a_child_that_loads_nothing_of_ours() -> None:
    """The child pays for Python and ``cryptography`` only: importing our network
    package (asyncio, iroh) cost it ~0.1 CPU-s of a fresh receiver's start."""
    made = subprocess.run(
        [sys.executable, "-P", "-X", "importtime", str(certificates._RSA_PROGRAM),
         "LocalSend User", "86400", "864000"],
        capture_output=True, check=True,
    )  # fmt: skip
    cert, key = certificates.rsa_self_signed_apart(
        "LocalSend User", datetime.timedelta(days=1), datetime.timedelta(days=10)
    )
    for output in (made.stdout, cert + key):
        assert output.startswith(b"-----BEGIN CERTIFICATE-----")
        assert b"-----BEGIN PRIVATE KEY-----" in output
    imported = {
        line.rpartition("|")[2].strip().split(".")[0]
        for line in made.stderr.decode().splitlines()
        if line.startswith("import time:")
    }
    assert "cryptography" in imported
    assert not imported & {"p2p_transfer", "iroh", "asyncio", "nacl"}


def _a_ticket() -> str:
    """Always the same ticket, so each kind of damage below is the same every run."""
    return ticket_for(public_id(bytes(range(32))), ["127.0.0.1:4000"])


def _changed(ticket: str, at: int) -> str:
    return ticket[:at] + ("a" if ticket[at] != "a" else "b") + ticket[at + 1 :]


def test_a_ticket_pasted_wrapped_indented_or_in_capitals_is_the_same_ticket() -> None:
    ticket = _a_ticket()
    wanted = parse_ticket(ticket)
    for pasted in (
        f"  {ticket}\n",
        f"{ticket[:30]}\n{ticket[30:60]}\r\n{ticket[60:]}",  # copied from a wrapped terminal
        f"{ticket[:40]}  {ticket[40:]}\t",
        ticket.upper(),
    ):
        addr = parse_ticket(pasted)
        assert str(addr.id()) == str(wanted.id())
        assert addr.direct_addresses() == wanted.direct_addresses()


@pytest.mark.parametrize(
    "damage", ["cut short", "a character changed", "a piece missing", "not base32"]
)
def test_a_damaged_ticket_is_one_plain_sentence_with_the_details_aside(damage: str) -> None:
    ticket = _a_ticket()
    damaged = {
        "cut short": ticket[:-5],
        "a character changed": _changed(ticket, 30),
        "a piece missing": ticket[:30] + ticket[50:],
        "not base32": ticket[:40] + "!" + ticket[41:],
    }[damage]
    with pytest.raises(DamagedTicket) as caught:
        parse_ticket(damaged)
    assert str(caught.value) == "this ticket is damaged — copy it again from the receiving device"
    assert "ParseError::" in caught.value.detail  # for --json and bug reports only


def test_iroh_errors_are_described_without_internal_type_names() -> None:
    try:
        iroh_ffi.EndpointTicket.from_string("endpoint" + "a" * 40)
    except iroh_ffi.IrohError as exc:
        error = exc
    assert "::" in error.message()
    described = describe_iroh_error(error)
    assert described and "::" not in described and "Error" not in described


async def test_connecting_to_nobody_fails_within_the_timeout(tmp_path: Path) -> None:
    a, b = await _transport(tmp_path / "a"), await _transport(tmp_path / "b")
    ticket = b.ticket
    await b.close()
    try:
        with pytest.raises(Unreachable, match="no answer in 1 s"):
            await a.connect(ticket, timeout=1.0)
    finally:
        await a.close()


async def test_a_connect_cancelled_as_it_completes_stays_cancelled() -> None:
    """iroh's connect finishes rather than stops when cancelled, and Python 3.11's
    ``wait_for`` would then hand the connection to a caller that was cancelled: a
    Ctrl-C (or a test's cleanup) that lands then must not be lost."""
    closed: list[int] = []

    class Connection:
        def close(self, code: int, reason: bytes) -> None:
            closed.append(code)

    handshake_done = asyncio.Event()

    async def connect() -> Connection:
        await handshake_done.wait()
        return Connection()

    connecting = asyncio.create_task(_connection_within(connect(), 30))  # type: ignore[arg-type]
    await next_turn()  # the connect is under way
    handshake_done.set()
    connecting.cancel()  # in the same turn of the loop
    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert closed == [CloseCode.CANCELLED]  # and the unwanted connection is closed


def test_endpoint_id_is_the_public_key(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir(mode=0o700)
    key = load_or_create_secret_key(home)
    assert str(iroh_ffi.SecretKey.from_bytes(key).public()) == str(
        iroh_ffi.SecretKey.from_bytes(load_or_create_secret_key(home)).public()
    )


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("192.168.1.5:4000", ("192.168.1.5", 4000)),
        ("laptop.local:51234", ("laptop.local", 51234)),
        ("[fe80::1]:4000", ("fe80::1", 4000)),
        ("laptop", None),
        ("1.2.3.4:0", None),
        ("1.2.3.4:70000", None),
        ("endpointabc", None),
        ("a b:1", None),
    ],
)
def test_host_port_parsing(text: str, parsed: tuple[str, int] | None) -> None:
    assert parse_host_port(text) == parsed


@pytest.mark.parametrize(
    ("bind", "host"),
    [("127.0.0.1", "127.0.0.1"), ("127.0.0.1:0", "127.0.0.1"), ("0.0.0.0:4000", "0.0.0.0"),
     ("::1", "::1"), ("[::1]", "::1"), ("[::]:4000", "::")],
)
def test_the_host_of_a_bind_address_is_without_its_port(bind: str, host: str) -> None:
    """LocalSend listens on its own port, on the host ``--bind`` names."""
    assert bind_host(bind) == host


async def test_ticket_via_puts_the_known_address_first(tmp_path: Path) -> None:
    transport = await _transport(tmp_path / "a")
    try:
        rerouted = ticket_via(transport.ticket, "10.1.2.3:4567")
        addr = parse_ticket(rerouted)
        assert str(addr.id()) == transport.endpoint_id
        assert addr.direct_addresses()[0] == "10.1.2.3:4567"
    finally:
        await transport.close()


async def test_a_ticket_names_the_one_relay_before_it_answers_and_none_of_several(
    tmp_path: Path,
) -> None:
    """Offline (as here) no relay ever answers: a node with one relay names it anyway (it
    is where the node will be); with iroh's several, which one is iroh's pick, not ours."""
    key = load_or_create_secret_key(ensure_private_dir(tmp_path / "a"))
    one = await Transport.bind(key, "127.0.0.1", "https://relay.example.org")
    several = await Transport.bind(key, "127.0.0.1", RELAY_DEFAULT)
    try:
        assert one.relay_url is None and several.relay_url is None  # not reached
        assert parse_ticket(one.ticket).relay_url() == "https://relay.example.org/"
        assert parse_ticket(several.ticket).relay_url() is None
        assert one.endpoint_id == several.endpoint_id
    finally:
        await one.close()
        await several.close()


async def test_a_host_port_that_refuses_is_said_in_a_sentence_not_a_python_tuple() -> None:
    """``--to HOST:PORT`` where nothing listens: what to check, not asyncio's
    ``Connect call failed ('127.0.0.1', 9)`` (the app showed it on its error card)."""
    with socket.socket() as unused:  # a port nothing listens on: bound, never listening
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        with pytest.raises(NetError) as failed:
            await fetch_ticket("127.0.0.1", port)
    message = str(failed.value)
    assert message == (
        f"cannot reach 127.0.0.1:{port}: nothing there accepts the connection; check the port, "
        "and that p2p-transfer receive or the app runs on that device"
    )
    assert "Connect call" not in message and "(" not in message


_HOST_ROUTES = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
)
_NO_ROUTES = _HOST_ROUTES.splitlines(keepends=True)[0]
#: What a namespace with only loopback holds: IPv6's default is a reject route on lo.
_REJECT6 = (
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
)
_DEFAULT6 = (
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"
)


@pytest.mark.parametrize(("routes", "routes6", "internet"), [
    (_HOST_ROUTES, _REJECT6, True),
    (_NO_ROUTES, _DEFAULT6, True),
    (_NO_ROUTES, _REJECT6, False),
    (_NO_ROUTES, "", False),
])
def test_a_default_route_is_one_that_is_up_and_leaves_the_machine(
    tmp_path: Path, routes: str, routes6: str, internet: bool
) -> None:
    from p2p_transfer.net.interfaces import has_default_route

    (tmp_path / "route").write_text(routes)
    (tmp_path / "ipv6_route").write_text(routes6)
    assert has_default_route(tmp_path / "route", tmp_path / "ipv6_route") is internet
    assert has_default_route(tmp_path / "absent", tmp_path / "absent6")  # unknown: True


def test_a_namespace_with_only_loopback_has_no_route_off_the_machine() -> None:
    """The kernel's own tables, in a network namespace made here (a LAN with no internet
    is like it: a code's receiver does not wait for a relay that cannot answer)."""
    import subprocess
    import sys

    from conftest import requires_root

    requires_root()
    probe = "from p2p_transfer.net.interfaces import has_default_route as h; print(h())"
    said = subprocess.run(["unshare", "--net", sys.executable, "-c", probe],
                          capture_output=True, text=True, check=True).stdout
    assert said.strip() == "False"
