"""A receiver facing peers that break the protocol: clear errors, and it keeps serving."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from iroh import iroh_ffi

from conftest import Peers
from p2p_transfer.events import CodeEvent, ErrorEvent, StateEvent
from p2p_transfer.limits import FIRST_MESSAGE_TIMEOUT, MAX_MESSAGE_SIZE
from p2p_transfer.net import Transport
from p2p_transfer.protocol import Hello, encode
from p2p_transfer.trust import load_or_create_secret_key
from waiting import wait_until

#: Slack allowed around the receiver's deadlines.
DEADLINE_SLACK = 3.0


async def _raw_client(home: Path) -> Transport:
    home.mkdir(mode=0o700)
    return await Transport.bind(load_or_create_secret_key(home), "127.0.0.1")


async def _send_raw_and_wait_close(peers: Peers, tmp_path: Path, payload: bytes) -> str:
    client = await _raw_client(tmp_path / "hostile")
    try:
        connection = (await client.connect(peers.ticket)).raw
        stream = await connection.open_bi()
        await stream.send().write_all(payload)
        return await asyncio.wait_for(connection.closed(), 10)
    finally:
        await client.close()


async def _honest_send_still_works(peers: Peers, tmp_path: Path) -> None:
    source = tmp_path / "honest.txt"
    source.write_text("still here")
    assert (await peers.send(source)).ok
    assert (peers.target / "honest.txt").read_text() == "still here"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (struct.pack(">I", MAX_MESSAGE_SIZE + 1), "exceeds"),
        (struct.pack(">I", 0xFFFFFFFF) + b"x" * 10, "exceeds"),
        (struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1", "malformed"),
        (encode(Hello(1, "x")).replace(b"hello", b"hullo"), "invalid message"),
        (struct.pack(">I", 0), "empty message"),
    ],
    ids=["oversized", "huge-negative", "garbage-body", "unknown-type", "empty"],
)
async def test_bad_first_frame_closes_with_a_clear_reason(
    peers: Peers, tmp_path: Path, payload: bytes, reason: str
) -> None:
    closed = await _send_raw_and_wait_close(peers, tmp_path, payload)
    assert "protocol error" in closed and reason in closed
    errors = [e for e in peers.receiver_events(ErrorEvent) if isinstance(e, ErrorEvent)]
    assert any(reason in e.message for e in errors)
    await _honest_send_still_works(peers, tmp_path)


async def test_message_out_of_order_is_refused(peers: Peers, tmp_path: Path) -> None:
    from p2p_transfer.protocol import Verify

    closed = await _send_raw_and_wait_close(peers, tmp_path, encode(Verify(b"pake", b"proof")))
    assert "expected Hello" in closed


async def test_wrong_protocol_version_is_refused(peers: Peers, tmp_path: Path) -> None:
    closed = await _send_raw_and_wait_close(peers, tmp_path, encode(Hello(99, "future")))
    assert "unsupported protocol version 99" in closed


async def test_silent_peer_is_dropped_after_the_first_message_deadline(
    peers: Peers, tmp_path: Path
) -> None:
    client = await _raw_client(tmp_path / "silent")
    try:
        connection = (await client.connect(peers.ticket)).raw
        started = time.monotonic()
        reason = await asyncio.wait_for(
            connection.closed(), FIRST_MESSAGE_TIMEOUT + DEADLINE_SLACK
        )
        elapsed = time.monotonic() - started
        assert "no hello within 5 s" in reason
        assert FIRST_MESSAGE_TIMEOUT - 1 <= elapsed <= FIRST_MESSAGE_TIMEOUT + DEADLINE_SLACK
    finally:
        await client.close()
    await _honest_send_still_works(peers, tmp_path)


async def test_partial_first_frame_is_dropped_too(peers: Peers, tmp_path: Path) -> None:
    client = await _raw_client(tmp_path / "slow")
    try:
        connection = (await client.connect(peers.ticket)).raw
        stream = await connection.open_bi()
        await stream.send().write_all(encode(Hello(1, "slow"))[:3])
        reason = await asyncio.wait_for(
            connection.closed(), FIRST_MESSAGE_TIMEOUT + DEADLINE_SLACK
        )
        assert "no hello" in reason
    except iroh_ffi.IrohError:
        pytest.fail("connection failed for another reason")
    finally:
        await client.close()


async def _hello_and_wait_for_welcome(client: Transport, ticket: str) -> tuple[Any, object]:
    from p2p_transfer.net import MessageReader, MessageWriter

    connection = (await client.connect(ticket)).raw
    stream = await connection.open_bi()
    await MessageWriter(stream.send()).send(Hello(1, "waiting"))
    reply = await MessageReader(stream.recv()).read_message()
    return (connection, stream), reply


async def test_one_address_waits_for_two_codes_the_next_replaces_the_oldest(
    peers: Peers, tmp_path: Path
) -> None:
    from p2p_transfer.limits import MAX_PENDING_VERIFICATIONS_PER_ADDRESS
    from p2p_transfer.protocol import Welcome

    count = MAX_PENDING_VERIFICATIONS_PER_ADDRESS + 1
    clients = [await _raw_client(tmp_path / f"c{i}") for i in range(count)]
    try:
        replies, connections = [], []  # keep connections referenced: dropping one closes it
        for client in clients:
            connection, reply = await _hello_and_wait_for_welcome(client, peers.ticket)
            connections.append(connection)
            replies.append(reply)
        assert all(isinstance(r, Welcome) and r.code_required for r in replies)
        oldest = connections[0][0]
        reason = await asyncio.wait_for(oldest.closed(), 5)
        assert "too many verifications waiting; this one made room for a newer one" in reason
        assert all(c.close_reason() is None for c, _ in connections[1:])
    finally:
        for client in clients:
            await client.close()
    # Closed waiters free their places: an honest peer gets through.
    await wait_until(
        lambda: not _waiting_for_a_code(peers), 5.0, what="the closed waiters' sessions to end"
    )
    await _honest_send_still_works(peers, tmp_path)


def _waiting_for_a_code(peers: Peers) -> set[str]:
    """The receiver's sessions that showed a code and have not ended."""
    events = peers.events["receiver"]
    shown = {e.session for e in events if isinstance(e, CodeEvent)}
    return shown - {e.session for e in events if isinstance(e, StateEvent) and e.state.final}


async def test_code_not_entered_in_time_closes_the_connection(
    peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from p2p_transfer.transfer import code_check as code_check_module

    monkeypatch.setattr(code_check_module, "CODE_ENTRY_TIMEOUT", 1.0)
    client = await _raw_client(tmp_path / "slow-typist")
    try:
        (connection, _stream), _ = await _hello_and_wait_for_welcome(client, peers.ticket)
        closed = connection.closed()
        reason = await asyncio.wait_for(closed, 1.0 + DEADLINE_SLACK)
        assert "verification code not entered in time" in reason
    finally:
        await client.close()
