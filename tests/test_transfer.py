"""Sender and receiver sessions between two real nodes on loopback."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from conftest import CODE, Peers, assert_same_tree, fails_with, make_tree
from p2p_transfer.events import (
    CodeEvent,
    DialingEvent,
    DoneEvent,
    Event,
    FileDoneEvent,
    FileFailedEvent,
    OfferEvent,
    OfferSentEvent,
    ProgressEvent,
    ResumeEvent,
    TextEvent,
    VerifiedEvent,
)
from p2p_transfer.limits import MAX_TEXT_BYTES, MAX_WRONG_CODES, WRONG_CODE_DELAY, MiB
from p2p_transfer.net import CloseCode, PeerClose, Transport, Unreachable
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.protocol import (
    PART_SUFFIX,
    Accept,
    DataTrailer,
    Entry,
    Hello,
    Message,
    Summary,
    Verify,
    Welcome,
)
from p2p_transfer.transfer import (
    Decision,
    Declined,
    IncomingOffer,
    ReceiveOptions,
    SendOptions,
    TransferError,
    TransferResult,
    WrongCode,
)
from p2p_transfer.transfer import file_sender as file_sender_module
from p2p_transfer.transfer import intake as intake_module
from p2p_transfer.transfer import sender as sender_module
from p2p_transfer.transfer.local import SourceEntry, Sources
from p2p_transfer.trust import load_or_create_secret_key
from p2p_transfer.trust.pake import CodeExchange


async def test_tree_arrives_byte_identical(peers: Peers, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    result = await peers.send(tree)
    assert result.ok, result.message
    assert_same_tree(tree, peers.target / "tree")
    done = await peers.wait_for_receiver(DoneEvent)
    assert isinstance(done, DoneEvent) and done.ok and done.files == result.files
    assert (peers.target / "tree" / "empty folder").is_dir()
    assert not list(peers.target.rglob("*" + PART_SUFFIX))


async def test_receiver_sees_offer_and_code(peers: Peers, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    await peers.send(tree)
    offer = peers.receiver_events(OfferEvent)[0]
    assert isinstance(offer, OfferEvent)
    assert offer.sender == "tx" and offer.files == sum(1 for p in tree.rglob("*") if p.is_file())
    assert offer.bytes == sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    code = peers.receiver_events(CodeEvent)[0]
    assert isinstance(code, CodeEvent) and code.code == CODE


async def test_trusted_peer_skips_the_code(peers: Peers, tmp_path: Path) -> None:
    first = tmp_path / "first.txt"
    first.write_text("one")
    assert (await peers.send(first)).ok
    second = tmp_path / "second.txt"
    second.write_text("two")
    result = await peers.send(second, code=None)  # no code needed now
    assert result.ok
    verified = peers.receiver_events(VerifiedEvent)
    assert [e.by for e in verified if isinstance(e, VerifiedEvent)] == ["code", "pairing"]
    assert len(peers.receiver_events(CodeEvent)) == 1
    assert peers.receiver.pairings.is_trusted(peers.sender.endpoint_id)
    assert peers.sender.pairings.is_trusted(peers.receiver.endpoint_id)


async def test_wrong_code_is_refused_after_a_delay(peers: Peers, tmp_path: Path) -> None:
    source = tmp_path / "secret.txt"
    source.write_text("not for you")
    started = time.monotonic()
    wrong = "000000" if CODE != "000000" else "111111"
    error = await fails_with(WrongCode, peers.send(source, code=wrong), "wrong verification code")
    assert isinstance(error, WrongCode) and error.attempts_left == MAX_WRONG_CODES - 1
    assert time.monotonic() - started >= WRONG_CODE_DELAY
    assert not (peers.target / "secret.txt").exists()
    assert not peers.receiver.pairings.is_trusted(peers.sender.endpoint_id)


async def test_missing_code_is_a_clear_error(peers: Peers, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    await fails_with(TransferError, peers.send(source, code=None), "verification code")


async def test_existing_different_file_is_never_overwritten(peers: Peers, tmp_path: Path) -> None:
    peers.target.mkdir(parents=True)
    (peers.target / "report.txt").write_text("mine")
    source = tmp_path / "report.txt"
    source.write_text("theirs")
    assert (await peers.send(source)).ok
    assert (peers.target / "report.txt").read_text() == "mine"
    assert (peers.target / "report (1).txt").read_text() == "theirs"
    # Both sides can say where it went: the receiver tells the sender in its FileResult.
    for side in (peers.sender_events, peers.receiver_events):
        (done,) = side(FileDoneEvent)
        assert isinstance(done, FileDoneEvent)
        assert (done.path, done.saved_as) == ("report.txt", "report (1).txt")


async def test_a_file_that_keeps_its_name_has_no_saved_as(peers: Peers, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("notes")
    assert (await peers.send(source)).ok
    for side in (peers.sender_events, peers.receiver_events):
        assert [(e.path, e.saved_as) for e in side(FileDoneEvent)] == [("notes.txt", "")]


async def test_the_offer_says_what_is_already_there(peers: Peers, tmp_path: Path) -> None:
    folder = tmp_path / "album"
    folder.mkdir()
    for name in ("same.jpg", "partial.jpg", "new.jpg"):
        (folder / name).write_bytes(os.urandom(1000))
    (peers.target / "album").mkdir(parents=True)
    (peers.target / "album" / "same.jpg").write_bytes((folder / "same.jpg").read_bytes())
    (peers.target / "album" / ("partial.jpg" + PART_SUFFIX)).write_bytes(b"x")
    assert (await peers.send(folder)).ok
    (offer,) = peers.receiver_events(OfferEvent)
    assert isinstance(offer, OfferEvent)
    assert (offer.files, offer.already_there, offer.partly_there) == (3, 1, 1)
    (sent,) = peers.sender_events(OfferSentEvent)
    assert isinstance(sent, OfferSentEvent)
    assert (sent.peer_name, sent.files, sent.bytes, sent.folders) == ("rx", 3, 3000, 1)


async def test_identical_file_is_not_sent_again(peers: Peers, tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(200_000))
    assert (await peers.send(source)).ok
    again = await peers.send(source)
    assert again.ok and again.bytes_transferred == 0
    assert sorted(p.name for p in peers.target.iterdir()) == ["data.bin"]
    # Both summaries say it: already there, identical, skipped.
    for side in (peers.sender_events, peers.receiver_events):
        first, second = side(DoneEvent)
        assert isinstance(first, DoneEvent) and isinstance(second, DoneEvent)
        assert (first.files_identical, second.files_identical) == (0, 1)
        resumed = side(ResumeEvent)
        assert [(e.files, e.bytes, e.whole_files, e.whole_bytes) for e in resumed] == [
            (1, 200_000, 1, 200_000)
        ]


async def test_resume_sends_only_the_missing_bytes(peers: Peers, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    source = tmp_path / "movie.bin"
    source.write_bytes(data)
    held = 2 * 1024 * 1024 + 11
    peers.target.mkdir(parents=True)
    (peers.target / ("movie.bin" + PART_SUFFIX)).write_bytes(data[:held])
    result = await peers.send(source)
    assert result.ok
    assert result.bytes_transferred == len(data) - held
    assert (peers.target / "movie.bin").read_bytes() == data
    done = await peers.wait_for_receiver(FileDoneEvent)
    assert isinstance(done, FileDoneEvent) and done.resumed_from == held
    # Both sides say so when the offer is answered, before any byte moves.
    for events in (peers.events["sender"], peers.events["receiver"]):
        kinds = [e for e in events if isinstance(e, ResumeEvent | ProgressEvent)]
        assert isinstance(kinds[0], ResumeEvent), kinds
        assert (kinds[0].files, kinds[0].bytes, kinds[0].whole_files) == (1, held, 0)


async def test_resume_from_a_mismatched_part_restarts(peers: Peers, tmp_path: Path) -> None:
    data = os.urandom(1024 * 1024)
    source = tmp_path / "doc.bin"
    source.write_bytes(data)
    peers.target.mkdir(parents=True)
    (peers.target / ("doc.bin" + PART_SUFFIX)).write_bytes(os.urandom(4096))
    result = await peers.send(source)
    assert result.ok and result.bytes_transferred == len(data)
    assert (peers.target / "doc.bin").read_bytes() == data


async def test_lying_hash_is_never_finalized(
    peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_encode = file_sender_module.encode

    def lying_encode(message: object) -> bytes:
        if isinstance(message, DataTrailer) and message.blake3:
            message = DataTrailer(message.index, "0" * 64)
        return real_encode(message)  # type: ignore[arg-type]

    monkeypatch.setattr(file_sender_module, "encode", lying_encode)
    source = tmp_path / "claimed.bin"
    source.write_bytes(os.urandom(100_000))
    result = await peers.send(source)
    assert not result.ok
    assert "BLAKE3 mismatch" in result.message
    assert not (peers.target / "claimed.bin").exists()
    assert not (peers.target / ("claimed.bin" + PART_SUFFIX)).exists()


@pytest.mark.parametrize(
    ("hostile_name", "lands_as"),
    [
        ("../escape.txt", "escape.txt"),
        ("/etc/absolute.txt", "etc/absolute.txt"),
        ("C:\\Windows\\drive.txt", "C_/Windows/drive.txt"),
        ("CON", "_CON"),
        ("bell\x07\x1b[31m.txt", "bell__[31m.txt"),
        ("nested/../../../../up.txt", "nested/up.txt"),
    ],
)
async def test_hostile_names_stay_inside_the_target(
    peers: Peers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hostile_name: str,
    lands_as: str,
) -> None:
    source = tmp_path / "payload.txt"
    source.write_text("payload")

    def hostile_scan(paths: list[Path], follow_symlinks: bool = False) -> Sources:
        entry = Entry(hostile_name, "file", source.stat().st_size, 0o644, 0.0)
        return Sources([SourceEntry(entry, str(source))])

    monkeypatch.setattr(sender_module, "scan_sources", hostile_scan)
    result = await peers.send(source)
    assert result.ok, result.message
    landed = [p for p in peers.target.rglob("*") if p.is_file()]
    assert [p.relative_to(peers.target).as_posix() for p in landed] == [lands_as]
    assert all(peers.target in p.resolve().parents for p in landed)
    assert not (tmp_path / "escape.txt").exists()


async def _accept(offer: IncomingOffer) -> Decision:
    return Decision(True)


async def test_names_that_would_lie_on_screen_arrive_plain(tmp_path: Path) -> None:
    """U+202E makes ``\u202egnp.exe`` look like a ``.png`` and zero-width characters hide
    in names; none arrives, in file names or in device names either way. A name of only
    dots stays in its folder, as ``_``."""
    sender = await Node.start(NodeConfig(tmp_path / "tx-home", "\u202eevil\u200b", "127.0.0.1"))
    receiver = await Node.start(NodeConfig(tmp_path / "rx-home", "r\u200bx\u2066", "127.0.0.1"))
    seen: list[Event] = []
    receiver.events.subscribe(seen.append)
    sender.events.subscribe(seen.append)
    tree = tmp_path / "names"
    (tree / "inner").mkdir(parents=True)
    (tree / "\u202egnp.exe").write_text("an executable")
    (tree / "photo\u200b.jpg").write_text("a photo")
    (tree / "...").write_text("only dots")
    (tree / "inner" / "...").write_text("dots, deeper")
    inbox = tmp_path / "inbox"
    serving = asyncio.create_task(receiver.serve(
        ReceiveOptions(target=inbox, auto_accept=True, fixed_code=CODE), _accept
    ))
    try:
        result = await sender.send(
            receiver.transport.ticket, [tree], SendOptions(code=CODE)
        )
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await sender.close()
        await receiver.close()
    assert result.ok, result.message
    assert sorted(p.relative_to(inbox).as_posix() for p in inbox.rglob("*")) == [
        "names", "names/_", "names/gnp.exe", "names/inner", "names/inner/_", "names/photo.jpg",
    ]
    assert (inbox / "names" / "_").read_text() == "only dots"
    assert (inbox / "names" / "inner" / "_").read_text() == "dots, deeper"
    (offer,) = [e for e in seen if isinstance(e, OfferEvent)]
    assert offer.sender == "evil"
    names = {e.peer_name for e in seen if isinstance(e, VerifiedEvent)}
    assert names == {"evil", "rx"}


async def test_long_name_is_shortened_keeping_its_extension(
    peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "payload.txt"
    source.write_text("payload")
    long_name = "n" * 300 + ".txt"

    def scan(paths: list[Path], follow_symlinks: bool = False) -> Sources:
        return Sources([SourceEntry(Entry(long_name, "file", 7, 0o644, 0.0), str(source))])

    monkeypatch.setattr(sender_module, "scan_sources", scan)
    assert (await peers.send(source)).ok
    (landed,) = list(peers.target.iterdir())
    assert landed.name.endswith(".txt") and len(landed.name.encode()) <= 255
    assert landed.read_text() == "payload"


async def test_offer_over_max_size_is_declined(peers: Peers, tmp_path: Path) -> None:
    peers.serve_task.cancel()  # type: ignore[union-attr]
    import asyncio

    from p2p_transfer.transfer import Decision, ReceiveOptions

    async def accept(offer: object) -> Decision:
        return Decision(True)

    peers.serve_task = asyncio.create_task(
        peers.receiver.serve(
            ReceiveOptions(peers.target, auto_accept=True, fixed_code=CODE, max_size=1000), accept
        )
    )
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(5000))
    await fails_with(Declined, peers.send(source), "exceeds the receiver's limit")
    assert not (peers.target / "big.bin").exists()


async def test_offer_larger_than_free_space_is_declined(
    peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake_module, "free_space", lambda folder: 10)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(5000))
    await fails_with(Declined, peers.send(source), "not enough disk space")
    assert not (peers.target / "big.bin").exists()


async def test_many_small_files_share_streams(peers: Peers, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(500):
        (folder / f"{i:04}.txt").write_bytes(os.urandom(i % 97))
    result = await peers.send(folder)
    assert result.ok and result.files == 500
    assert_same_tree(folder, peers.target / "many")


async def test_unreadable_source_is_a_clear_error(peers: Peers, tmp_path: Path) -> None:
    await fails_with(TransferError, peers.send(tmp_path / "missing.txt"), "cannot read")
    assert not peers.receiver_events(OfferEvent)  # listed while dialing: nothing offered


@pytest.mark.parametrize("transport", ["auto", "quic"])
async def test_a_file_gone_after_the_offer_fails_alone_and_the_rest_arrive(
    peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    """Big and small files (read in batches), lost between the offer and their turn."""
    folder = tmp_path / "batch"
    folder.mkdir()
    sizes = {"a-gone.bin": 2 * MiB, "b-kept.bin": 3 * MiB + 5, "c-gone.txt": 100,
             "d-kept.txt": 200, "e-kept.bin": 2 * MiB}
    kept = {}
    for name, size in sizes.items():
        (folder / name).write_bytes(data := os.urandom(size))
        if "kept" in name:
            kept[name] = data
    real_scan = sender_module.scan_sources

    def scan_then_lose_some(paths: list[Path], follow_symlinks: bool = False) -> Sources:
        found = real_scan(paths, follow_symlinks)
        for name in sizes:
            if "gone" in name:
                (folder / name).unlink()  # deleted while the receiver decides
        return found

    monkeypatch.setattr(sender_module, "scan_sources", scan_then_lose_some)
    result = await peers.sender.send(
        peers.ticket, [folder], SendOptions(code=CODE, transport=transport)  # type: ignore[arg-type]
    )
    assert not result.ok and (result.files, result.files_failed) == (3, 2)
    assert {p.name: p.read_bytes() for p in (peers.target / "batch").iterdir()} == kept
    failed = peers.sender_events(FileFailedEvent)  # as read, then as the receiver judged it
    gone = {"batch/a-gone.bin", "batch/c-gone.txt"}
    assert {event.path for event in failed} == gone  # type: ignore[attr-defined]
    assert {e.path for e in failed if "cannot read" in e.message} == gone  # type: ignore[attr-defined]


async def test_a_pairing_held_by_one_side_only_asks_for_the_code_again(
    peers: Peers, tmp_path: Path
) -> None:
    first = tmp_path / "first.txt"
    first.write_text("one")
    assert (await peers.send(first)).ok
    peers.sender.pairings.clear()  # the sending user forgot the receiver
    second = tmp_path / "second.txt"
    second.write_text("two")
    await fails_with(TransferError, peers.send(second, code=None), "verification code")
    assert (await peers.send(second)).ok  # with the code it goes, and pairs again
    assert peers.sender.pairings.is_trusted(peers.receiver.endpoint_id)


async def test_a_receiver_that_stopped_cannot_be_reached_and_the_sender_says_why(
    peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    assert (await peers.send(source)).ok  # now paired: the sender knows its name
    ticket = peers.ticket
    await peers.receiver.close()
    connect = Transport.connect
    monkeypatch.setattr(  # the real deadline is 15 s
        Transport, "connect", lambda self, to: connect(self, to, timeout=1.0)
    )
    result = await peers.sender.send(ticket, [source], SendOptions(code=CODE))
    assert isinstance(result.error, Unreachable)
    assert str(result.error) == (
        f"cannot reach rx (no answer in 1 s): {sender_module.UNREACHABLE_CAUSES}"
    )
    dialing = peers.sender_events(DialingEvent)
    assert [(e.peer_id, e.peer_name) for e in dialing][-1] == (peers.receiver.endpoint_id, "rx")


# --- A receiver out of turn ------------------------------------------------------------


async def _receiver_out_of_turn(
    rogue: Transport, sender_id: str, answer: Message, after_code: bool
) -> PeerClose | None:
    """A receiver that answers Hello (or, ``after_code``, the sender's Verify) with
    ``answer``; how the sender closed the connection."""
    connection = await rogue.accept()
    assert connection is not None
    reader, writer = await connection.accept_control()
    assert isinstance(await reader.read_message(), Hello)
    if after_code:
        exchange = CodeExchange(CODE, receiver_id=rogue.endpoint_id, sender_id=sender_id)
        await writer.send(Welcome(1, "rogue", True, exchange.message, 1, MAX_WRONG_CODES))
        assert isinstance(await reader.read_message(), Verify)
    await writer.send(answer)
    await connection.wait_closed(5)
    return connection.peer_close()


@pytest.mark.parametrize(
    ("after_code", "answer", "reason"),
    [
        (False, Accept(0), "expected Welcome, got Accept"),
        (False, Summary(1, 0, 1), "expected Welcome, got Summary"),
        (True, Welcome(1, "rogue", False), "expected Verified, got Welcome"),
        (True, Accept(0), "expected Verified, got Accept"),
    ],
    ids=["accept-for-welcome", "summary-for-welcome", "welcome-again", "accept-unverified"],
)
async def test_a_receiver_answering_out_of_turn_ends_the_send_with_a_protocol_error(
    peers: Peers, tmp_path: Path, after_code: bool, answer: Message, reason: str
) -> None:
    """The sender checks the receiver's turns with the same table: one line, sent back."""
    home = tmp_path / "rogue"
    home.mkdir()
    rogue = await Transport.bind(load_or_create_secret_key(home), "127.0.0.1")
    source = tmp_path / "kept.txt"
    source.write_text("never sent to a receiver out of turn")
    try:
        serving = asyncio.create_task(_receiver_out_of_turn(
            rogue, peers.sender.transport.endpoint_id, answer, after_code
        ))
        sending = peers.sender.send(rogue.ticket, [source], SendOptions(code=CODE))
        await fails_with(TransferError, sending, f"^protocol error: {reason}$")
        close = await asyncio.wait_for(serving, 10)
    finally:
        await rogue.close()
    assert close is not None and close.code == CloseCode.PROTOCOL_ERROR
    assert close.reason == f"protocol error: {reason}"
    assert not peers.sender.pairings.is_trusted(rogue.endpoint_id)


# --- Text messages -------------------------------------------------------------------


async def send_text(peers: Peers, text: str, code: str | None = CODE) -> TransferResult:
    return await peers.sender.send(peers.ticket, [], SendOptions(code=code, text=text))


async def test_a_text_arrives_as_a_text_event_and_nothing_is_written(peers: Peers) -> None:
    result = await send_text(peers, "hello ✓\nsecond line")
    assert result.ok, result.message
    text = await peers.wait_for_receiver(TextEvent)
    assert isinstance(text, TextEvent)
    assert (text.text, text.sender, text.via) == ("hello ✓\nsecond line", "tx", "p2p-transfer")
    (offer,) = peers.receiver_events(OfferEvent)
    assert isinstance(offer, OfferEvent)
    assert offer.text and offer.preview == "hello ✓…" and offer.bytes == len(
        "hello ✓\nsecond line".encode()
    )
    sent = [e for e in peers.sender_events(DoneEvent) if isinstance(e, DoneEvent)]
    assert len(sent) == 1 and sent[0].text and sent[0].ok
    assert sent[0].bytes_total == offer.bytes
    (offer_sent,) = peers.sender_events(OfferSentEvent)
    assert isinstance(offer_sent, OfferSentEvent) and offer_sent.text
    assert not peers.target.exists() or not any(peers.target.iterdir())


async def test_a_text_of_the_largest_size_arrives_whole_across_pages(peers: Peers) -> None:
    text = "✓" * (MAX_TEXT_BYTES // 3) + "x" * (MAX_TEXT_BYTES % 3)  # 3-byte characters
    assert len(text.encode()) == MAX_TEXT_BYTES
    assert (await send_text(peers, text)).ok
    received = await peers.wait_for_receiver(TextEvent)
    assert isinstance(received, TextEvent) and received.text == text


async def test_a_text_over_the_limit_is_refused_before_anyone_is_dialed(peers: Peers) -> None:
    await fails_with(
        TransferError, send_text(peers, "x" * (MAX_TEXT_BYTES + 1)),
        r"65,537 bytes, over the 65,536 \(64.0 KiB\) a text message holds; send it as a file",
    )
    await fails_with(TransferError, send_text(peers, " \n "), "the text is empty")
    assert not peers.sender_events(DialingEvent)


async def test_a_text_from_an_unknown_device_still_needs_the_code(peers: Peers) -> None:
    await fails_with(TransferError, send_text(peers, "secret", code=None), "verification code")
    wrong = "000000" if CODE != "000000" else "111111"
    await fails_with(WrongCode, send_text(peers, "secret", code=wrong))
    assert not peers.receiver_events(TextEvent)
    assert not peers.receiver_events(OfferEvent)


async def test_a_declined_text_is_never_sent_beyond_its_first_line(
    peers: Peers, tmp_path: Path
) -> None:
    peers.serve_task.cancel()  # type: ignore[union-attr]
    asked: list[IncomingOffer] = []

    async def decline(offer: IncomingOffer) -> Decision:
        asked.append(offer)
        return Decision(False, "not now")

    peers.serve_task = asyncio.create_task(
        peers.receiver.serve(ReceiveOptions(peers.target, fixed_code=CODE), decline)
    )
    await fails_with(Declined, send_text(peers, "first line\nthe password"), "not now")
    (offer,) = asked
    assert offer.text and offer.preview == "first line…" and offer.files == 0
    assert not peers.receiver_events(TextEvent)


async def test_a_send_has_text_or_files_not_both(peers: Peers, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    sending = peers.sender.send(peers.ticket, [source], SendOptions(code=CODE, text="hi"))
    await fails_with(TransferError, sending, "either a text or files")
