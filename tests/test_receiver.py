"""A receiver facing peers that break the protocol: clear errors, and it keeps serving."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

import pytest
from iroh import iroh_ffi

from conftest import Peers
from p2p_transfer.events import ErrorEvent
from p2p_transfer.limits import FIRST_MESSAGE_TIMEOUT, MAX_MESSAGE_SIZE
from p2p_transfer.net import Transport
from p2p_transfer.protocol import Hello, encode
from p2p_transfer.trust import load_or_create_secret_key

#: Slack allowed around the receiver's deadlines.
DEADLINE_SLACK = 3.0


async def _raw_client(home: Path) -> Transport:
    home.mkdir(mode=0o700)
    return await Transport.bind(load_or_create_secret_key(home), "127.0.0.1")


async def _send_raw_and_wait_close(peers: Peers, tmp_path: Path, payload: bytes) -> str:
    client = await _raw_client(tmp_path / "hostile")
    try:
        connection = await client.connect(peers.ticket)
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

    closed = await _send_raw_and_wait_close(peers, tmp_path, encode(Verify("123456")))
    assert "expected Hello" in closed


async def test_wrong_protocol_version_is_refused(peers: Peers, tmp_path: Path) -> None:
    closed = await _send_raw_and_wait_close(peers, tmp_path, encode(Hello(99, "future")))
    assert "unsupported protocol version 99" in closed


async def test_silent_peer_is_dropped_after_the_first_message_deadline(
    peers: Peers, tmp_path: Path
) -> None:
    client = await _raw_client(tmp_path / "silent")
    try:
        connection = await client.connect(peers.ticket)
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
        connection = await client.connect(peers.ticket)
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
