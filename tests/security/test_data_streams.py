"""No unverified delivery: file data is taken only after verification and acceptance,
only for files of the accepted offer, only within their declared sizes, and only
finished when its BLAKE3 matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import blake3
import pytest

from conftest import Peers
from p2p_transfer.events import DecisionEvent, ErrorEvent, FileDoneEvent, OfferEvent
from p2p_transfer.limits import FIRST_MESSAGE_TIMEOUT, MAX_PARALLEL_FILES, SMALL_FILE_SIZE
from p2p_transfer.net import MessageWriter, NetError
from p2p_transfer.protocol import (
    PART_SUFFIX,
    Accept,
    DataHeader,
    DataTrailer,
    Decline,
    FileResult,
    Offer,
    Summary,
    Welcome,
)
from p2p_transfer.transfer import Decision, IncomingOffer
from p2p_transfer.transfer import data_paths as data_paths_module
from p2p_transfer.transfer import receiver as receiver_module
from security.conftest import HostileFactory, reserve, trusted_conversation
from security.hostile import Conversation, dir_entry, file_entry, files_in
from waiting import hold_for, wait_until

PROMPT = FIRST_MESSAGE_TIMEOUT - 2
#: A file big enough to go through a ``.part`` (bigger than the one-step small-file path).
LARGE = SMALL_FILE_SIZE * 4


def _digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


async def _send_file(
    stream_writer: MessageWriter, index: int, data: bytes, digest: str = ""
) -> None:
    await stream_writer.send(DataHeader(index, 0, len(data)))
    await stream_writer.write(data)
    await stream_writer.send(DataTrailer(index, digest or _digest(data)))


async def _results(conversation: Conversation, count: int) -> list[FileResult]:
    results = []
    while len(results) < count:
        message = await conversation.read()
        assert isinstance(message, FileResult), message
        results.append(message)
    return results


async def _accepted(
    peers: Peers, hostile: HostileFactory, entries: list, name: str = "hostile"
) -> Conversation:
    conversation = await trusted_conversation(peers, hostile, name)
    answer, _ = await conversation.offer(entries)
    assert isinstance(answer, Accept), answer
    return conversation


# --- Data before verification or acceptance ------------------------------------------


@pytest.mark.parametrize("when", ["before-hello", "before-code", "before-offer"])
async def test_data_stream_before_acceptance_is_refused_at_once(
    peers: Peers, hostile: HostileFactory, when: str
) -> None:
    """A data stream opened before Accept ends the connection; nothing is written."""
    client = await hostile(trusted_by=peers if when == "before-offer" else None)
    conversation = await client.connect(peers.ticket)
    if when != "before-hello":
        welcome = await conversation.hello()
        assert isinstance(welcome, Welcome)
        assert welcome.code_required is (when == "before-code")
    started = time.monotonic()
    stream = await conversation.open_data()
    await _send_file(stream, 0, b"unsolicited payload")
    closed = await conversation.closed()
    assert time.monotonic() - started < PROMPT
    assert "protocol error" in closed and "data stream before" in closed, closed
    assert files_in(peers.target) == []
    assert not peers.receiver.pairings.is_trusted(client.endpoint_id) or when == "before-offer"


async def test_data_stream_while_the_user_decides_is_refused(
    peers: Peers, hostile: HostileFactory
) -> None:
    deciding = asyncio.Event()

    async def slow_user(offer: IncomingOffer) -> Decision:
        deciding.set()
        await hold_for(30)  # the user takes their time
        return Decision(True)

    await reserve(peers, slow_user, auto_accept=False)
    client = await hostile(trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    await conversation.hello()
    await conversation.send(Offer("early", 1, 1, 5, 1))
    from p2p_transfer.protocol import ManifestPage

    await conversation.send(ManifestPage([file_entry("early.txt", 5)]))
    await asyncio.wait_for(deciding.wait(), 5)
    stream = await conversation.open_data()
    await _send_file(stream, 0, b"early")
    closed = await conversation.closed()
    assert "data stream before" in closed, closed
    assert files_in(peers.target) == []


async def test_flood_of_streams_before_hello_is_cut_off(
    peers: Peers, hostile: HostileFactory
) -> None:
    """iroh grants 100 streams each way before the receiver says anything; using them ends
    the connection at once instead of letting ~1 MiB per stream pile up in its buffers."""
    client = await hostile()
    conversation = await client.connect(peers.ticket)
    streams = [await conversation.open_data() for _ in range(20)]
    chunk = os.urandom(64 * 1024)
    for _ in range(64):
        await asyncio.gather(*(asyncio.wait_for(s.write(chunk), 5) for s in streams))
    closed = await conversation.closed()
    assert "data stream before" in closed, closed
    assert all(s.cut_off for s in streams)  # the 4 MiB each never went out


async def test_second_control_stream_is_refused(peers: Peers, hostile: HostileFactory) -> None:
    client = await hostile(trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    await conversation.hello()
    extra = await conversation.open_extra_bi()
    await extra.write(b"\x00\x00\x00\x05hello")
    closed = await conversation.closed()
    assert "protocol error" in closed and "one control stream" in closed, closed


# --- Data for files that were not offered ---------------------------------------------


@pytest.mark.parametrize(("index", "label"), [(7, "unknown"), (0, "folder"), (-1, "negative")])
async def test_data_for_a_file_not_in_the_offer(
    peers: Peers, hostile: HostileFactory, index: int, label: str
) -> None:
    conversation = await _accepted(peers, hostile, [dir_entry("d"), file_entry("d/a.txt", 3)])
    stream = await conversation.open_data()
    await _send_file(stream, index, b"abc")
    closed = await conversation.closed()
    assert f"data for unknown or repeated file {index}" in closed, (label, closed)
    assert files_in(peers.target) == []


async def test_same_file_twice_on_one_stream(peers: Peers, hostile: HostileFactory) -> None:
    conversation = await _accepted(peers, hostile, [file_entry("a.txt", 3), file_entry("b", 1)])
    stream = await conversation.open_data()
    await _send_file(stream, 0, b"abc")
    await _send_file(stream, 0, b"xyz")
    closed = await conversation.closed()
    assert "data for unknown or repeated file 0" in closed, closed
    assert (peers.target / "a.txt").read_bytes() == b"abc"  # the first, verified copy stays
    assert files_in(peers.target) == ["a.txt"]


async def test_same_file_on_two_streams_at_once(peers: Peers, hostile: HostileFactory) -> None:
    """Overlapping writers for one index: the second is refused; no interleaved file."""
    data = os.urandom(LARGE)
    conversation = await _accepted(peers, hostile, [file_entry("big.bin", LARGE)])
    first = await conversation.open_data()
    await first.send(DataHeader(0, 0, LARGE))
    await first.write(data[: LARGE // 2])
    await wait_until(lambda: (peers.target / ("big.bin" + PART_SUFFIX)).exists(), what="part")
    second = await conversation.open_data()
    await _send_file(second, 0, os.urandom(LARGE))
    closed = await conversation.closed()
    assert "data for unknown or repeated file 0" in closed, closed
    assert not (peers.target / "big.bin").exists()
    part = (peers.target / ("big.bin" + PART_SUFFIX)).read_bytes()
    assert data.startswith(part)  # only the first writer's bytes, in order: resumable


async def test_more_data_streams_than_allowed(peers: Peers, hostile: HostileFactory) -> None:
    count = MAX_PARALLEL_FILES + 1
    conversation = await _accepted(
        peers, hostile, [file_entry(f"f{i}.bin", LARGE) for i in range(count)]
    )
    streams = [await conversation.open_data() for _ in range(count)]
    for index, stream in enumerate(streams):
        await stream.send(DataHeader(index, 0, LARGE))
        await stream.write(b"x" * 1024)
    closed = await conversation.closed()
    assert f"more than {MAX_PARALLEL_FILES} data streams" in closed, closed
    assert not [name for name in files_in(peers.target) if not name.endswith(PART_SUFFIX)]


# --- Sizes and hashes that lie -------------------------------------------------------------


@pytest.mark.parametrize("size", [100, LARGE])
async def test_header_longer_than_the_declared_size(
    peers: Peers, hostile: HostileFactory, size: int
) -> None:
    conversation = await _accepted(peers, hostile, [file_entry("f.bin", size)])
    stream = await conversation.open_data()
    await stream.send(DataHeader(0, 0, size + 1))
    await stream.write(b"x" * (size + 1))
    closed = await conversation.closed()
    assert "file 0: data does not match the offer" in closed, closed
    assert files_in(peers.target) == []


@pytest.mark.parametrize("size", [100, LARGE])
async def test_bytes_beyond_the_declared_length(
    peers: Peers, hostile: HostileFactory, size: int
) -> None:
    """Extra bytes after a file are read as the next frame: a protocol error, file not kept."""
    data = os.urandom(size)
    conversation = await _accepted(peers, hostile, [file_entry("f.bin", size)])
    stream = await conversation.open_data()
    await stream.send(DataHeader(0, 0, size))
    await stream.write(data + b"\xff" * 4096)
    await stream.send(DataTrailer(0, _digest(data)))
    closed = await conversation.closed()
    assert "protocol error" in closed, closed
    assert not (peers.target / "f.bin").exists()


@pytest.mark.parametrize("size", [100, LARGE])
async def test_stream_ends_before_the_declared_length(
    peers: Peers, hostile: HostileFactory, size: int
) -> None:
    data = os.urandom(size)
    conversation = await _accepted(peers, hostile, [file_entry("f.bin", size)])
    stream = await conversation.open_data()
    await stream.send(DataHeader(0, 0, size))
    await stream.write(data[: size // 2])
    await stream.finish()
    closed = await conversation.closed()
    assert "stream ended" in closed, closed
    assert not (peers.target / "f.bin").exists()
    part = peers.target / ("f.bin" + PART_SUFFIX)
    assert not part.exists() or data.startswith(part.read_bytes())


@pytest.mark.parametrize("size", [100, LARGE])
async def test_lying_hash_is_never_finished(
    peers: Peers, hostile: HostileFactory, size: int
) -> None:
    conversation = await _accepted(peers, hostile, [file_entry("f.bin", size)])
    stream = await conversation.open_data()
    await _send_file(stream, 0, os.urandom(size), digest=_digest(b"something else"))
    await stream.finish()
    (result,) = await _results(conversation, 1)
    assert not result.ok and "BLAKE3 mismatch" in result.error
    summary = await conversation.read()
    assert isinstance(summary, Summary) and summary.files_failed == 1
    assert files_in(peers.target) == []  # neither the file nor its part
    assert not peers.receiver_events(FileDoneEvent)


async def test_a_lying_small_file_in_a_batch_leaves_no_trace_and_the_rest_arrive(
    peers: Peers, hostile: HostileFactory
) -> None:
    """Small files are verified in memory before anything is written: the one whose
    hash lies leaves neither a file nor a part, its neighbours arrive under their names,
    and one whose name is taken by a different file arrives beside it, never over it."""
    peers.target.mkdir(parents=True, exist_ok=True)
    (peers.target / "taken.bin").write_bytes(b"the receiver's own file")
    datas = [os.urandom(100 + index) for index in range(4)]
    names = ["a.bin", "liar.bin", "c.bin", "taken.bin"]
    entries = [file_entry(name, len(data)) for name, data in zip(names, datas, strict=True)]
    conversation = await _accepted(peers, hostile, entries)
    stream = await conversation.open_data()
    for index, data in enumerate(datas):
        lie = _digest(b"something else") if names[index] == "liar.bin" else ""
        await _send_file(stream, index, data, digest=lie)
    await stream.finish()
    results = sorted(await _results(conversation, 4), key=lambda result: result.index)
    assert [result.ok for result in results] == [True, False, True, True]
    assert results[3].saved_as == "taken (1).bin"
    assert "BLAKE3 mismatch" in results[1].error
    assert files_in(peers.target) == ["a.bin", "c.bin", "taken (1).bin", "taken.bin"]
    assert (peers.target / "a.bin").read_bytes() == datas[0]
    assert (peers.target / "c.bin").read_bytes() == datas[2]
    assert (peers.target / "taken (1).bin").read_bytes() == datas[3]
    assert (peers.target / "taken.bin").read_bytes() == b"the receiver's own file"
    done = {event.path: event.saved_as for event in peers.receiver_events(FileDoneEvent)}
    assert done == {"a.bin": "", "c.bin": "", "taken.bin": "taken (1).bin"}


async def test_lying_offer_totals(peers: Peers, hostile: HostileFactory) -> None:
    from p2p_transfer.protocol import ManifestPage

    client = await hostile(trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    await conversation.hello()
    await conversation.send(Offer("lie", 1, 1, 10, 1), ManifestPage([file_entry("a", 10**9)]))
    closed = await conversation.closed()
    assert "manifest does not match the offer's declared totals" in closed
    assert not peers.receiver_events(OfferEvent)


async def test_offer_larger_than_the_disk_is_declined(
    peers: Peers, hostile: HostileFactory
) -> None:
    client = await hostile(trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    await conversation.hello()
    answer, _ = await conversation.offer([file_entry("huge.bin", 1 << 49)])
    assert isinstance(answer, Decline) and "not enough disk space" in answer.reason
    assert files_in(peers.target) == []


# --- Slow and stalled senders -------------------------------------------------------------


async def test_stalled_data_ends_the_connection(
    peers: Peers, hostile: HostileFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data_paths_module, "DATA_STALL_TIMEOUT", 1.0)
    data = os.urandom(LARGE)
    conversation = await _accepted(peers, hostile, [file_entry("stall.bin", LARGE)])
    stream = await conversation.open_data()
    await stream.send(DataHeader(0, 0, LARGE))
    await stream.write(data[:1000])
    started = time.monotonic()
    closed = await conversation.closed()
    assert "no data for 1 s" in closed, closed
    assert 0.5 <= time.monotonic() - started <= 3.0
    error = await peers.wait_for_receiver(ErrorEvent)  # the session lets go, then says why
    assert isinstance(error, ErrorEvent) and "no data for 1 s" in error.message
    assert files_in(peers.target) == ["stall.bin" + PART_SUFFIX]  # kept for a resume
    assert data.startswith((peers.target / ("stall.bin" + PART_SUFFIX)).read_bytes())


async def test_accepted_but_no_stream_ever_opened(
    peers: Peers, hostile: HostileFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data_paths_module, "DATA_STALL_TIMEOUT", 1.0)
    conversation = await _accepted(peers, hostile, [file_entry("never.bin", 10)])
    closed = await conversation.closed()
    assert "no data for 1 s" in closed, closed


async def test_steady_stream_of_empty_files_is_not_a_stall(
    peers: Peers, hostile: HostileFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files settling count as progress even when they carry no bytes."""
    monkeypatch.setattr(data_paths_module, "DATA_STALL_TIMEOUT", 1.0)
    count = 6
    conversation = await _accepted(
        peers, hostile, [file_entry(f"empty-{i}", 0) for i in range(count)]
    )
    stream = await conversation.open_data()
    for index in range(count):
        await _send_file(stream, index, b"")
        await hold_for(0.4)  # a file every 0.4 s: 2.4 s in all, each gap within the 1 s
    await stream.finish()
    results = await _results(conversation, count)
    assert all(r.ok for r in results)
    assert isinstance(await conversation.read(), Summary)
    assert len(files_in(peers.target)) == count


async def test_declined_offer_gets_no_data_in(peers: Peers, hostile: HostileFactory) -> None:
    async def no(offer: IncomingOffer) -> Decision:
        return Decision(False, "not today")

    await reserve(peers, no, auto_accept=False)
    client = await hostile(trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    await conversation.hello()
    answer, _ = await conversation.offer([file_entry("x.txt", 3)])
    assert isinstance(answer, Decline) and answer.reason == "not today"
    with contextlib.suppress(NetError):  # the receiver may hang up before the stream opens
        stream = await conversation.open_data()
        await _send_file(stream, 0, b"abc")
    await conversation.closed()
    assert files_in(peers.target) == []
    decision = peers.receiver_events(DecisionEvent)[-1]
    assert isinstance(decision, DecisionEvent) and not decision.accepted


@pytest.mark.parametrize("outcome", ["declined", "done"])
async def test_peer_that_lingers_after_the_last_word_is_hung_up_on(
    peers: Peers, hostile: HostileFactory, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    """After Decline or Summary the receiver waits briefly for the sender to close, then
    closes itself: a peer that just sits there holds no connection."""
    monkeypatch.setattr(receiver_module, "SUMMARY_CLOSE_WAIT", 0.5)
    if outcome == "declined":

        async def no(offer: IncomingOffer) -> Decision:
            return Decision(False, "not today")

        await reserve(peers, no, auto_accept=False)
    client = await hostile(trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    await conversation.hello()
    answer, _ = await conversation.offer([file_entry("x.txt", 3)])
    if outcome == "done":
        assert isinstance(answer, Accept)
        stream = await conversation.open_data()
        await _send_file(stream, 0, b"abc")
        await stream.finish()
        await _results(conversation, 1)
        assert isinstance(await conversation.read(), Summary)
    started = time.monotonic()
    closed = await conversation.closed()
    assert time.monotonic() - started < 3
    assert ("declined: not today" if outcome == "declined" else "transfer complete") in closed


# --- Two sessions, one file ----------------------------------------------------------------


async def test_another_device_cannot_write_a_file_being_received(
    peers: Peers, hostile: HostileFactory
) -> None:
    data = os.urandom(LARGE)
    first = await _accepted(peers, hostile, [file_entry("shared.bin", LARGE)], name="first")
    stream = await first.open_data()
    await stream.send(DataHeader(0, 0, LARGE))
    await stream.write(data[: LARGE // 2])
    await wait_until(lambda: (peers.target / ("shared.bin" + PART_SUFFIX)).exists(), what="part")

    other = await hostile("other", trusted_by=peers)
    conversation = await other.connect(peers.ticket)
    await conversation.hello()
    answer, _ = await conversation.offer([file_entry("shared.bin", LARGE)])
    assert isinstance(answer, Decline), answer
    assert "being received from another device" in answer.reason

    await stream.write(data[LARGE // 2 :])
    await stream.send(DataTrailer(0, _digest(data)))
    await stream.finish()
    (result,) = await _results(first, 1)
    assert result.ok
    assert (peers.target / "shared.bin").read_bytes() == data


async def test_same_device_reconnecting_takes_over_and_resumes(
    peers: Peers, hostile: HostileFactory
) -> None:
    """A sender restarted while its old connection still looks alive: the new one takes
    over the file, the old one is closed, and nothing already received is lost."""
    data = os.urandom(LARGE)
    client = await hostile("restarting", trusted_by=peers)
    old = await client.connect(peers.ticket)
    await old.hello()
    answer, _ = await old.offer([file_entry("movie.bin", LARGE)])
    assert isinstance(answer, Accept)
    stream = await old.open_data()
    await stream.send(DataHeader(0, 0, LARGE))
    await stream.write(data[: LARGE // 2])
    part = peers.target / ("movie.bin" + PART_SUFFIX)
    await wait_until(lambda: part.exists() and part.stat().st_size > 0, what="part bytes")

    new = await client.connect(peers.ticket)
    await new.hello()
    answer, resume = await new.offer([file_entry("movie.bin", LARGE)])
    assert isinstance(answer, Accept), answer
    assert "replaced by a new connection" in await old.closed()
    offset = resume[0].offset
    assert 0 < offset <= LARGE // 2 and resume[0].blake3 == _digest(data[:offset])
    resumed = await new.open_data()
    await resumed.send(DataHeader(0, offset, LARGE - offset))
    await resumed.write(data[offset:])
    await resumed.send(DataTrailer(0, _digest(data)))
    await resumed.finish()
    (result,) = await _results(new, 1)
    assert result.ok
    assert (peers.target / "movie.bin").read_bytes() == data
