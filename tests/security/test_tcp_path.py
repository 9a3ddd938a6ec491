"""The LAN fast path (file data over TLS on TCP): a stranger who finds the data port
gets nothing in, the token works once, and the channel obeys the same file rules.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import blake3
import pytest

from conftest import CODE, Peers
from p2p_transfer.events import ConnectionEvent, StateEvent
from p2p_transfer.limits import TCP_MAX_PENDING_CONNECTIONS, MiB
from p2p_transfer.net import MessageWriter, NetError
from p2p_transfer.net import tcp as tcp_module
from p2p_transfer.net.tcp import DataListener, TcpEndpointInfo, TlsChannel, connect_data_channel
from p2p_transfer.protocol import Accept, DataHeader, DataTrailer, FileResult, Summary
from p2p_transfer.transfer import SendOptions
from security.conftest import HostileFactory, trusted_conversation
from security.hostile import Conversation, file_entry, files_in
from waiting import wait_until

HOST = "127.0.0.1"


async def _accepted_with_tcp(
    peers: Peers, hostile: HostileFactory, entries: list
) -> tuple[Conversation, TcpEndpointInfo]:
    conversation = await trusted_conversation(peers, hostile)
    answer, _ = await conversation.offer(entries)
    assert isinstance(answer, Accept) and answer.tcp_port, answer
    return conversation, TcpEndpointInfo(answer.tcp_port, answer.tcp_fingerprint, answer.tcp_token)


async def _send_over(channel: TlsChannel, index: int, data: bytes) -> None:
    writer = MessageWriter(channel)
    await writer.send(DataHeader(index, 0, len(data)))
    await writer.write(data)
    await writer.send(DataTrailer(index, blake3.blake3(data).hexdigest()))
    await writer.finish()


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((HOST, port)) == 0


async def test_data_port_admits_only_the_token_and_only_once(
    peers: Peers, hostile: HostileFactory
) -> None:
    data = os.urandom(100_000)
    conversation, info = await _accepted_with_tcp(peers, hostile, [file_entry("f.bin", len(data))])
    wrong = TcpEndpointInfo(info.port, info.fingerprint, bytes(len(info.token)))
    with pytest.raises(NetError, match="refused by the receiver"):
        await connect_data_channel(HOST, wrong)
    assert files_in(peers.target) == []

    channel = await connect_data_channel(HOST, info)  # the right token still works
    assert not _port_open(info.port)  # ...once: the listener is gone at once
    with pytest.raises(NetError):
        await connect_data_channel(HOST, info)
    await _send_over(channel, 0, data)
    result = await conversation.read()
    assert isinstance(result, FileResult) and result.ok, result
    assert isinstance(await conversation.read(), Summary)
    assert (peers.target / "f.bin").read_bytes() == data
    assert not _port_open(info.port)


async def test_tcp_channel_obeys_the_file_rules(peers: Peers, hostile: HostileFactory) -> None:
    conversation, info = await _accepted_with_tcp(peers, hostile, [file_entry("a.txt", 3)])
    channel = await connect_data_channel(HOST, info)
    with contextlib.suppress(NetError):  # the receiver may cut us off mid-write: fine
        await _send_over(channel, 5, b"abc")
    closed = await conversation.closed()
    assert "data for unknown or repeated file 5" in closed, closed
    assert files_in(peers.target) == []
    await wait_until(  # its data port is closed before its final state
        lambda: any(
            isinstance(e, StateEvent) and e.state.final for e in peers.receiver_events(StateEvent)
        ),
        what="the receiver's session to end",
    )
    assert not _port_open(info.port)


async def test_data_port_closes_when_the_sender_uses_quic(
    peers: Peers, hostile: HostileFactory
) -> None:
    """A sender that takes QUIC instead leaves no TCP port open for the rest of the transfer."""
    first, second = b"over quic", b"and more"
    conversation, info = await _accepted_with_tcp(
        peers, hostile, [file_entry("q1.txt", len(first)), file_entry("q2.txt", len(second))]
    )
    assert _port_open(info.port)
    stream = await conversation.open_data()
    for index, data in enumerate((first, second)):
        await stream.send(DataHeader(index, 0, len(data)))
        await stream.write(data)
        await stream.send(DataTrailer(index, blake3.blake3(data).hexdigest()))
        if index == 0:
            result = await conversation.read()
            assert isinstance(result, FileResult) and result.ok
            assert not _port_open(info.port)  # while the transfer still runs
            with pytest.raises(NetError):
                await connect_data_channel(HOST, info)  # the token died with the listener
    await stream.finish()
    result = await conversation.read()
    assert isinstance(result, FileResult) and result.ok


async def test_strangers_holding_the_data_port_cannot_stop_a_send(
    peers: Peers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Strangers who found the port fill every pending place before the sender comes:
    the sender's TCP connection is turned away, and the file goes over QUIC instead."""
    strangers: list[socket.socket] = []
    listeners: list[DataListener] = []
    original = DataListener.open.__func__  # type: ignore[attr-defined]

    async def open_and_crowd(cls: type[DataListener], host: str) -> DataListener:
        listener = await original(cls, host)
        assert listener.info is not None
        for _ in range(TCP_MAX_PENDING_CONNECTIONS):
            stranger = socket.create_connection((HOST, listener.info.port))
            strangers.append(stranger)  # connected, then silent: no TLS, no token
        await wait_until(
            lambda: listener.pending == TCP_MAX_PENDING_CONNECTIONS,
            what="the strangers to hold every pending place",
        )
        listeners.append(listener)
        return listener

    monkeypatch.setattr(tcp_module.DataListener, "open", classmethod(open_and_crowd))
    source = tmp_path / "crowded.bin"
    data = os.urandom(4 * MiB)
    source.write_bytes(data)
    try:
        result = await peers.sender.send(peers.ticket, [source], SendOptions(code=CODE))
    finally:
        for stranger in strangers:
            with contextlib.suppress(OSError):
                stranger.close()
    assert result.ok, result.message
    assert (peers.target / "crowded.bin").read_bytes() == data
    assert listeners and listeners[0].refused >= 1
    paths = [e.data_path for e in peers.receiver_events(ConnectionEvent)
             if isinstance(e, ConnectionEvent)]
    assert paths == ["quic"], paths
