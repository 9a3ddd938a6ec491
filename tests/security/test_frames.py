"""Bad framing and messages out of order, at every stage of the conversation.

Each case must end only the hostile connection, with the reason in one line,
quickly (not when some deadline happens to expire), and leave the receiver
serving honest peers.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from conftest import Peers
from p2p_transfer.limits import FIRST_MESSAGE_TIMEOUT, MAX_MESSAGE_SIZE
from p2p_transfer.protocol import (
    Accept,
    DataHeader,
    DataTrailer,
    Hello,
    ManifestPage,
    Message,
    Offer,
    Summary,
    Verify,
    Welcome,
    encode,
)
from security.conftest import HostileFactory, errors_of
from security.hostile import Conversation, file_entry, files_in
from waiting import wait_until

#: A refusal must come well before any deadline could have produced it.
PROMPT = FIRST_MESSAGE_TIMEOUT - 2

BAD_FRAMES = {
    # A declared length over the limit, with no body at all: refused without waiting for it.
    "oversized": (struct.pack(">I", MAX_MESSAGE_SIZE + 1), "exceeds the 65536-byte limit"),
    # The largest u32 (what -1 becomes): just as refused, never read or allocated.
    "negative": (struct.pack(">I", 0xFFFFFFFF), "message length 4294967295 exceeds"),
    "empty": (struct.pack(">I", 0), "empty message"),
    "garbage": (struct.pack(">I", 6) + b"\xc1\xff\x00\x93\xa1\xc1", "malformed message"),
    "not-a-map": (struct.pack(">I", 4) + b"\x93\x01\x01\x01", "invalid message"),
    "unknown-type": (encode(Hello(1, "x")).replace(b"hello", b"hullo"), "invalid message"),
}


async def _honest_send_still_works(peers: Peers, tmp_path: Path, name: str = "honest.txt") -> None:
    source = tmp_path / name
    source.write_text("still serving")
    result = await peers.send(source)
    assert result.ok, result.message
    assert (peers.target / name).read_text() == "still serving"


async def _at_stage(stage: str, conversation: Conversation) -> None:
    """Bring a (trusted) hostile conversation to ``stage``."""
    if stage == "first":
        return
    welcome = await conversation.hello()
    assert isinstance(welcome, Welcome) and not welcome.code_required
    if stage == "before-offer":
        return
    answer, _ = await conversation.offer([file_entry("victim.bin", 1000)])
    assert isinstance(answer, Accept)


@pytest.mark.parametrize("stage", ["first", "before-offer", "data-stream"])
@pytest.mark.parametrize("frame", list(BAD_FRAMES))
async def test_bad_frame_ends_only_that_connection(
    peers: Peers, tmp_path: Path, hostile: HostileFactory, stage: str, frame: str
) -> None:
    payload, reason = BAD_FRAMES[frame]
    client = await hostile(trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    await _at_stage(stage, conversation)
    started = time.monotonic()
    if stage == "data-stream":
        stream = await conversation.open_data()
        await stream.write(payload)
    else:
        await conversation.send_raw(payload)
    closed = await conversation.closed()
    assert time.monotonic() - started < PROMPT
    assert "protocol error" in closed and reason in closed, closed
    await wait_until(lambda: any(reason in m for m in errors_of(peers)), what="its error")
    assert files_in(peers.target) in ([], ["victim.bin.part"])
    await _honest_send_still_works(peers, tmp_path)


@pytest.mark.parametrize("stage", ["first", "before-offer", "data-stream"])
async def test_truncated_frame_then_end_of_stream(
    peers: Peers, tmp_path: Path, hostile: HostileFactory, stage: str
) -> None:
    """Half a frame and a clean end of stream: a protocol error at once, no hang."""
    client = await hostile(trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    await _at_stage(stage, conversation)
    frame = encode(DataHeader(0, 0, 1000) if stage == "data-stream" else Hello(1, "cut"))
    if stage == "data-stream":
        stream = await conversation.open_data()
        await stream.write(frame[: len(frame) // 2])
        await stream.finish()
    else:
        await conversation.send_raw(frame[: len(frame) // 2])
        await conversation.finish_control()
    started = time.monotonic()
    closed = await conversation.closed()
    assert time.monotonic() - started < PROMPT
    assert "stream ended" in closed, closed
    assert not (peers.target / "victim.bin").exists()
    await _honest_send_still_works(peers, tmp_path)


OUT_OF_ORDER: list[tuple[str, Message, str]] = [
    ("first", Verify(b"pake", b"proof"), "expected Hello, got Verify"),
    ("first", Offer("t", 1, 1, 1, 1), "expected Hello, got Offer"),
    ("first", DataHeader(0, 0, 1), "expected Hello, got DataHeader"),
    ("first", Welcome(1, "me", False), "expected Hello, got Welcome"),
    ("first", Summary(1, 0, 1), "expected Hello, got Summary"),
    ("before-offer", Hello(1, "again"), "expected Offer, got Hello"),
    ("before-offer", ManifestPage([file_entry("a", 1)]), "expected Offer, got ManifestPage"),
    ("before-offer", Accept(0), "expected Offer, got Accept"),
    ("data-stream", Offer("t2", 1, 1, 1, 1), "unexpected Offer during transfer"),
    ("data-stream", DataHeader(0, 0, 1000), "unexpected DataHeader during transfer"),
]


@pytest.mark.parametrize(
    ("stage", "message", "reason"), OUT_OF_ORDER, ids=[r for _, _, r in OUT_OF_ORDER]
)
async def test_message_out_of_order_on_the_control_stream(
    peers: Peers, hostile: HostileFactory, stage: str, message: Message, reason: str
) -> None:
    client = await hostile(trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    await _at_stage(stage, conversation)
    await conversation.send(message)
    closed = await conversation.closed()
    assert "protocol error" in closed and reason in closed, closed
    assert files_in(peers.target) == []


async def test_verify_skipped_when_a_code_is_required(
    peers: Peers, hostile: HostileFactory
) -> None:
    """An unpaired peer that sends its offer instead of the code gets no further."""
    client = await hostile()
    conversation = await client.connect(peers.ticket)
    welcome = await conversation.hello()
    assert isinstance(welcome, Welcome) and welcome.code_required
    await conversation.send(Offer("t", 1, 1, 5, 1), ManifestPage([file_entry("x.txt", 5)]))
    closed = await conversation.closed()
    assert "expected Verify, got Offer" in closed
    assert not peers.receiver.pairings.is_trusted(client.endpoint_id)
    assert files_in(peers.target) == []


async def test_trailer_before_any_data_on_a_data_stream(
    peers: Peers, hostile: HostileFactory
) -> None:
    client = await hostile(trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    await _at_stage("data-stream", conversation)
    stream = await conversation.open_data()
    await stream.send(DataTrailer(0, "0" * 64))
    closed = await conversation.closed()
    assert "expected file data, got DataTrailer" in closed
    assert files_in(peers.target) == []
