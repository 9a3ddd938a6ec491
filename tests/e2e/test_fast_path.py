"""The LAN fast path end to end: which channel carries the data, fallback, resume across paths.

File data goes over TLS on TCP when the QUIC path is direct (``--transport
auto``), over QUIC streams with ``--transport quic`` or when TCP cannot
connect; the ``connection`` event's ``data_path`` says which, on both sides.
In-process nodes prove the choice, real CLI processes prove the JSON contract
and resume, and network namespaces (root) prove the fallback behind a
firewall that drops TCP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import CODE as NODE_CODE
from conftest import Peers, assert_same_tree, fails_with, make_tree
from e2e.cli import CODE, start_receiver, start_sender
from netns import Host, JsonLines, Lab
from p2p_transfer.events import ConnectionEvent, DoneEvent, Event
from p2p_transfer.net import NetError
from p2p_transfer.net.tcp import DataListener
from p2p_transfer.transfer import (
    Decision,
    IncomingOffer,
    ReceiveOptions,
    SendOptions,
)
from p2p_transfer.transfer.session import DataTransport

MiB = 1024 * 1024
#: Big enough that a SIGKILL lands mid-file even at TCP speed on loopback.
RESUME_FILE_SIZE = 160 * MiB
#: The first sender is killed once it reports this share of the file sent.
KILL_AT = 1 / 3
#: A resumed run must move at most this share of the file again.
RESUMED_AT_MOST = 0.75
#: Seconds for the resumed transfer (a few at most on a 2-core machine).
RESUME_TIMEOUT = 120.0
#: Seconds for a process's next expected event in a namespace.
LAB_EVENT_TIMEOUT = 30.0


# --- helpers -------------------------------------------------------------------------


def data_paths(events: list[Event]) -> list[str]:
    """The ``data_path`` of every connection event that names one."""
    return [e.data_path for e in events if isinstance(e, ConnectionEvent) and e.data_path]


def json_data_paths(events: list[dict[str, Any]], session: str | None = None) -> list[str]:
    """The same from JSON lines, optionally only for one session."""
    return [
        e["data_path"] for e in events
        if e.get("event") == "connection" and e.get("data_path")
        and (session is None or e.get("session") == session)
    ]


async def _accept(offer: IncomingOffer) -> Decision:
    return Decision(True)


async def serve_with(peers: Peers, transport: DataTransport) -> None:
    """Restart the receiver's serving loop with another ``transport`` option."""
    assert peers.serve_task is not None
    peers.serve_task.cancel()
    await asyncio.gather(peers.serve_task, return_exceptions=True)
    options = ReceiveOptions(
        target=peers.target, auto_accept=True, fixed_code=NODE_CODE, transport=transport
    )
    peers.serve_task = asyncio.create_task(peers.receiver.serve(options, _accept))


@pytest.fixture
def opened_listeners(monkeypatch: pytest.MonkeyPatch) -> list[DataListener]:
    """Every DataListener this process opens from now on."""
    opened: list[DataListener] = []
    original = DataListener.open

    async def recording(cls: type[DataListener], host: str) -> DataListener:
        listener = await original(host)
        opened.append(listener)
        return listener

    monkeypatch.setattr(DataListener, "open", classmethod(recording))
    return opened


def write_big_file(path: Path, size: int) -> Path:
    """``size`` bytes of cheap, non-repeating data (rotations of one random MiB)."""
    block = os.urandom(MiB)
    with path.open("wb") as handle:
        for i in range(size // MiB):
            handle.write(block[i % 251 :] + block[: i % 251])
    return path


# --- in-process: the choice of path ---------------------------------------------------


async def test_default_transfer_carries_data_over_tcp(
    peers: Peers, tmp_path: Path, opened_listeners: list[DataListener]
) -> None:
    tree = make_tree(tmp_path / "src")
    result = await peers.send(tree)
    assert result.ok, result.message
    await peers.wait_for_receiver(DoneEvent)
    assert data_paths(peers.events["sender"]) == ["tcp"]
    assert data_paths(peers.events["receiver"]) == ["tcp"]
    assert_same_tree(tree, peers.target / "tree")
    assert len(opened_listeners) == 1 and opened_listeners[0].has_accepted


@pytest.mark.parametrize("side", ["sender", "receiver", "both"])
async def test_transport_quic_carries_data_over_quic(
    peers: Peers, tmp_path: Path, opened_listeners: list[DataListener], side: str
) -> None:
    """Either side's ``--transport quic`` keeps the data on QUIC streams."""
    if side in ("receiver", "both"):
        await serve_with(peers, "quic")
    sender_transport: DataTransport = "quic" if side in ("sender", "both") else "auto"
    tree = make_tree(tmp_path / "src")
    result = await peers.sender.send(
        peers.ticket, [tree], SendOptions(code=NODE_CODE, transport=sender_transport)
    )
    assert result.ok, result.message
    await peers.wait_for_receiver(DoneEvent)
    assert data_paths(peers.events["sender"]) == ["quic"]
    assert data_paths(peers.events["receiver"]) == ["quic"]
    assert_same_tree(tree, peers.target / "tree")
    if side == "sender":
        # The receiver offered TCP (it cannot know the sender's choice), nobody came.
        # (That the port closes at the first QUIC data: security/test_tcp_path.py.)
        assert len(opened_listeners) == 1 and not opened_listeners[0].has_accepted
    else:
        assert opened_listeners == []  # a receiver on QUIC alone never listens on TCP


async def test_a_receiver_on_tcp_alone_refuses_data_over_quic(
    peers: Peers, tmp_path: Path
) -> None:
    """``receive --transport tcp`` means it: a sender on QUIC alone is told why, and
    nothing is written."""
    await serve_with(peers, "tcp")
    source = tmp_path / "tcp-only.txt"
    source.write_text("the receiver insists on TCP\n")
    await fails_with(
        NetError,
        peers.sender.send(peers.ticket, [source], SendOptions(code=NODE_CODE, transport="quic")),
        r"only over TCP \(--transport tcp\)",
    )
    assert not any(p.is_file() for p in peers.target.rglob("*"))
    # The same receiver takes the default sender, over TCP.
    result = await peers.send(source)
    assert result.ok, result.message
    assert data_paths(peers.events["sender"])[-1] == "tcp"
    assert (peers.target / "tcp-only.txt").read_bytes() == source.read_bytes()


# --- CLI processes: the JSON contract and resume across paths ---------------------------


@pytest.mark.parametrize(
    ("transport", "expected"), [(None, "tcp"), ("quic", "quic")], ids=["default", "quic"]
)
def test_cli_reports_the_data_path_on_both_sides(
    tmp_path: Path, transport: str | None, expected: str
) -> None:
    tree = make_tree(tmp_path / "src")
    option = ("--transport", transport) if transport else ()
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox", "--once", *option)
    try:
        sender = start_sender(tmp_path / "tx", ticket, tree, extra=option)
        assert sender.wait() == 0, sender.stderr_lines
        assert receiver.wait() == 0, receiver.stderr_lines
    finally:
        receiver.stop()
    assert json_data_paths(sender.events) == [expected]
    assert json_data_paths(receiver.events) == [expected]
    assert_same_tree(tree, tmp_path / "inbox" / "tree")


@pytest.mark.parametrize(
    ("first", "second", "first_path", "second_path"),
    [("auto", "quic", "tcp", "quic"), ("quic", "auto", "quic", "tcp")],
    ids=["tcp-then-quic", "quic-then-tcp"],
)
def test_resume_across_data_paths(
    tmp_path: Path, first: str, second: str, first_path: str, second_path: str
) -> None:
    """Killed (-9) mid-file on one path, resumed on the other: only the rest moves."""
    source = write_big_file(tmp_path / "big.bin", RESUME_FILE_SIZE)
    inbox = tmp_path / "inbox"
    receiver, ticket = start_receiver(tmp_path / "rx", inbox)
    try:
        killed = start_sender(
            tmp_path / "tx", ticket, source, extra=("--transport", first, "--parallel", "1")
        )
        killed.wait_for("progress", lambda e: e["bytes_done"] >= RESUME_FILE_SIZE * KILL_AT)
        killed.process.send_signal(signal.SIGKILL)
        killed.wait()
        assert json_data_paths(killed.events) == [first_path]
        assert not (inbox / "big.bin").exists()
        assert (inbox / "big.bin.part").exists()

        resumed = start_sender(tmp_path / "tx", ticket, source, extra=("--transport", second))
        assert resumed.wait(RESUME_TIMEOUT) == 0, resumed.stderr_lines
        done = resumed.wait_for("done")
        assert done["bytes_total"] == RESUME_FILE_SIZE
        assert 0 < done["bytes_transferred"] <= RESUME_FILE_SIZE * RESUMED_AT_MOST
        assert json_data_paths(resumed.events) == [second_path]
        received = receiver.wait_for(
            "file_done", lambda e: e["resumed_from"] > 0, timeout=RESUME_TIMEOUT
        )
        assert json_data_paths(receiver.events, received["session"]) == [second_path]
    finally:
        receiver.stop()
    assert (inbox / "big.bin").read_bytes() == source.read_bytes()
    assert not (inbox / "big.bin.part").exists()


# --- network namespaces: a firewall that drops TCP ------------------------------------


def lab_cli(host: Host, home: Path, *args: str) -> JsonLines:
    """``p2p-transfer --config-dir HOME ARGS`` inside ``host``'s namespace."""
    return host.spawn(sys.executable, "-m", "p2p_transfer", "--config-dir", str(home), *args)


@dataclass
class BlockedLan:
    """Two hosts on a LAN whose receiver host drops incoming TCP, and its receiver."""

    lab: Lab
    receiver_host: Host
    sender_host: Host
    receiver: JsonLines
    ticket: str


@pytest.fixture
def tcp_blocked(netns_lab: Lab, tmp_path: Path) -> BlockedLan:
    """A one-shot JSON receiver on host a, behind a firewall that drops TCP; b sends."""
    a, b = netns_lab.lan(2)
    netns_lab.block_tcp(a)
    receiver = lab_cli(a, tmp_path / "a-home", "--name", "Alice", "receive", "--dir",
                       str(tmp_path / "inbox"), "--once", "--yes", "--code", CODE,
                       "--bind", a.address, "--json")
    ticket = receiver.expect_event("ticket", LAB_EVENT_TIMEOUT)["ticket"]
    return BlockedLan(netns_lab, a, b, receiver, ticket)


def test_tcp_blocked_falls_back_to_quic(tcp_blocked: BlockedLan, tmp_path: Path) -> None:
    lan = tcp_blocked
    tree = make_tree(tmp_path / "src")
    sender = lab_cli(lan.sender_host, tmp_path / "b-home", "--name", "Bob", "send", "--to",
                     lan.ticket, "--code", CODE, "--json", str(tree))
    done = sender.expect_event("done", LAB_EVENT_TIMEOUT)
    assert done["ok"] is True, sender.seen
    assert sender.wait(LAB_EVENT_TIMEOUT) == 0, sender.stderr
    assert json_data_paths(sender.seen) == ["quic"]
    lan.receiver.expect_event("connection", LAB_EVENT_TIMEOUT, data_path="quic")
    assert lan.receiver.expect_event("done", LAB_EVENT_TIMEOUT)["ok"] is True
    assert lan.receiver.wait(LAB_EVENT_TIMEOUT) == 0, lan.receiver.stderr
    assert json_data_paths(lan.receiver.seen) == ["quic"]
    assert_same_tree(tree, tmp_path / "inbox" / "tree")
    # The sender did try TCP, and the firewall ate it.
    assert lan.lab.blocked_tcp_packets(lan.receiver_host) > 0


def test_transport_tcp_with_tcp_blocked_fails_clearly(
    tcp_blocked: BlockedLan, tmp_path: Path
) -> None:
    lan = tcp_blocked
    source = tmp_path / "only-over-tcp.txt"
    source.write_text("never over QUIC\n")
    sender = lab_cli(lan.sender_host, tmp_path / "b-home", "--name", "Bob", "send", "--to",
                     lan.ticket, "--code", CODE, "--transport", "tcp", "--json", str(source))
    error = sender.expect_event("error", LAB_EVENT_TIMEOUT)
    assert error["message"].startswith("no TCP data path to the receiver (--transport tcp)")
    assert "no TCP data connection within 2 s" in error["message"]
    assert sender.wait(LAB_EVENT_TIMEOUT) == 1
    lan.receiver.expect_event("error", LAB_EVENT_TIMEOUT)
    assert not any(p.is_file() for p in (tmp_path / "inbox").rglob("*"))
    assert lan.lab.blocked_tcp_packets(lan.receiver_host) > 0
