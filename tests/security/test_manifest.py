"""Hostile manifests: sizes refused before allocation, names that try to leave the
target folder, and symlinks in the target that must never be followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from conftest import Peers
from e2e.cli import CODE as CLI_CODE
from e2e.cli import start_receiver
from p2p_transfer.limits import (
    MANIFEST_ENTRIES_HELD,
    MAX_MANIFEST_ENTRIES,
    MAX_OFFER_BYTES,
    MAX_PATH_BYTES,
    MAX_PATH_DEPTH,
    SMALL_FILE_SIZE,
    MiB,
)
from p2p_transfer.net import NetError
from p2p_transfer.protocol import (
    PART_SUFFIX,
    Accept,
    AnyMessage,
    DataHeader,
    DataTrailer,
    Decline,
    Entry,
    FileResult,
    ManifestPage,
    Offer,
    Summary,
    Verified,
    Welcome,
    encode,
    paginate,
)
from p2p_transfer.transfer.continuations import CONTINUATIONS_FILE_NAME
from security.conftest import HostileFactory, errors_of, trusted_conversation
from security.hostile import (
    Conversation,
    HostileClient,
    dir_entry,
    file_entry,
    files_in,
    rss_bytes,
)
from waiting import wait_until

#: How much the receiving process may grow while refusing a huge manifest.
HUGE_MANIFEST_RSS_SLACK = 32 * 1024 * 1024


async def _deliver(conversation: Conversation, entries: list[Entry], data: bytes) -> list:
    """Offer ``entries`` and send ``data`` for every file; returns the results and summary."""
    answer, _ = await conversation.offer(entries)
    assert isinstance(answer, Accept), answer
    stream = await conversation.open_data()
    digest = blake3.blake3(data).hexdigest()
    for index, entry in enumerate(entries):
        if entry.kind == "file":
            await stream.send(DataHeader(index, 0, len(data)))
            await stream.write(data)
            await stream.send(DataTrailer(index, digest))
    await stream.finish()
    replies = []
    while not replies or not isinstance(replies[-1], Summary):
        reply = await conversation.read()
        assert isinstance(reply, FileResult | Summary), reply
        replies.append(reply)
    return replies


#: What a receiver itself keeps in its config dir while a transfer it accepted runs
#: (the continuation it granted, transfer/continuations.py): its own state, no peer's.
RECEIVER_STATE = {CONTINUATIONS_FILE_NAME}


def _snapshot(root: Path, skip: Path) -> set[str]:
    """Every path under ``root`` except inside ``skip`` and the receiver's own state."""
    return {
        str(p.relative_to(root)) for p in root.rglob("*")
        if skip not in (p, *p.parents) and p.name not in RECEIVER_STATE
    }


# --- Sizes refused before anything is allocated ------------------------------------------


async def test_ten_million_entries_refused_before_allocation(
    peers: Peers, hostile: HostileFactory
) -> None:
    conversation = await trusted_conversation(peers, hostile)
    before = rss_bytes()
    await conversation.send(Offer("huge", 10_000_000, 10_000_000, 10_000_000, 10_000_000))
    # The pages it would take never get a chance to matter; send a few anyway (the
    # receiver may have hung up already: then the stream is stopped).
    with contextlib.suppress(NetError):
        for _ in range(3):
            await conversation.send(ManifestPage([file_entry(f"f{i}", 1) for i in range(2000)]))
    closed = await conversation.closed()
    assert f"offer of 10000000 entries exceeds {MAX_MANIFEST_ENTRIES}" in closed, closed
    assert rss_bytes() - before < HUGE_MANIFEST_RSS_SLACK
    await wait_until(lambda: any("10000000 entries" in m for m in errors_of(peers)),
                     what="its error")


@pytest.mark.parametrize(
    ("offer", "reason"),
    [
        (Offer("t", 1, 1, MAX_OFFER_BYTES + 1, 1), f"exceeds {MAX_OFFER_BYTES}"),
        (Offer("t", 1, 1, -1, 1), "negative size"),
        (Offer("t", 1, 2, 1, 1), "more files than entries"),
        (Offer("t", 2, 2, 2, 3), "more pages than entries"),
        (Offer("t", -5, 0, 0, 0), "entries exceeds"),
    ],
    ids=["too-big", "negative", "files>entries", "pages>entries", "negative-entries"],
)
async def test_impossible_offer_headers(
    peers: Peers, hostile: HostileFactory, offer: Offer, reason: str
) -> None:
    conversation = await trusted_conversation(peers, hostile)
    await conversation.send(offer)
    closed = await conversation.closed()
    assert reason in closed, closed


async def test_more_entries_than_declared(peers: Peers, hostile: HostileFactory) -> None:
    conversation = await trusted_conversation(peers, hostile)
    await conversation.send(Offer("t", 2, 2, 2, 1))
    await conversation.send(ManifestPage([file_entry(f"f{i}", 1) for i in range(2000)]))
    closed = await conversation.closed()
    assert "more manifest entries than declared" in closed, closed


# --- Names -----------------------------------------------------------------------------------

HOSTILE_NAMES = [
    ("../escape.txt", "escape.txt"),
    ("../../../../../../tmp/escape.txt", "tmp/escape.txt"),
    ("/etc/passwd", "etc/passwd"),
    ("//server/share/x", "server/share/x"),
    ("C:\\Windows\\System32\\evil.dll", "C_/Windows/System32/evil.dll"),
    ("c:relative.txt", "c_relative.txt"),
    ("a/./b/../c.txt", "a/b/c.txt"),
    ("..\\..\\windows.txt", "windows.txt"),
    ("nul\x00byte.txt", "nul_byte.txt"),
    ("bell\x07esc\x1b[2Jcsi\x9b.txt", "bell_esc_[2Jcsi_.txt"),
    ("new\nline\r.txt", "new_line_.txt"),
    ("CON", "_CON"),
    ("nul.txt", "_nul.txt"),
    ("COM1.log", "_COM1.log"),
    ("lpt9", "_lpt9"),
    ("CONIN$", "_CONIN$"),
    ("trailing dots...", "trailing dots"),
    ("   spaces   ", "spaces"),
    ('wild<>:"|?*card', 'wild<>_"|?*card'),  # only a disk that refuses them maps the rest
]


@pytest.mark.parametrize(("raw", "lands_as"), HOSTILE_NAMES, ids=[n for n, _ in HOSTILE_NAMES])
async def test_hostile_name_lands_inside_the_target(
    peers: Peers, hostile: HostileFactory, tmp_path: Path, raw: str, lands_as: str
) -> None:
    conversation = await trusted_conversation(peers, hostile)
    outside_before = _snapshot(tmp_path, peers.target)
    replies = await _deliver(conversation, [file_entry(raw, 7)], b"payload")
    assert isinstance(replies[0], FileResult) and replies[0].ok, replies
    assert files_in(peers.target) == [lands_as]
    landed = peers.target / lands_as
    assert landed.read_bytes() == b"payload"
    assert peers.target.resolve() in landed.resolve().parents
    assert _snapshot(tmp_path, peers.target) == outside_before


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "has no usable name"),
        ("../..", "has no usable name"),
        ("/./\\/.", "has no usable name"),
        ("x" * (MAX_PATH_BYTES + 1), f"path longer than {MAX_PATH_BYTES} bytes"),
        ("/".join(["d"] * (MAX_PATH_DEPTH + 1)), f"path deeper than {MAX_PATH_DEPTH} folders"),
    ],
    ids=["empty", "only-dots", "only-separators", "4097-bytes", "too-deep"],
)
async def test_unusable_path_refuses_the_offer(
    peers: Peers, hostile: HostileFactory, raw: str, reason: str
) -> None:
    conversation = await trusted_conversation(peers, hostile)
    await conversation.send(Offer("t", 1, 1, 1, 1), ManifestPage([file_entry(raw, 1)]))
    closed = await conversation.closed()
    assert "protocol error" in closed and reason in closed, closed
    assert files_in(peers.target) == []


async def test_path_of_4096_bytes_arrives_by_folder_handles(
    peers: Peers, hostile: HostileFactory
) -> None:
    """A path at the byte limit is longer than PATH_MAX once joined to the target, but
    the writer opens folders one component at a time by handle: the file arrives,
    verified, where it belongs."""
    component = "d" * 200
    depth = MAX_PATH_BYTES // (len(component) + 1)
    path = "/".join([component] * depth)
    path += "/" + "f" * (MAX_PATH_BYTES - len(path) - 1)
    assert len(path.encode()) == MAX_PATH_BYTES
    conversation = await trusted_conversation(peers, hostile)
    replies = await _deliver(conversation, [file_entry(path, 3)], b"abc")
    assert isinstance(replies[0], FileResult) and replies[0].ok, replies
    assert _read_by_handles(peers.target, path) == b"abc"


def _read_by_handles(root: Path, relative: str) -> bytes:
    """A file's bytes, reached folder by folder (its whole path may exceed PATH_MAX)."""
    *folders, name = relative.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for folder in folders:
            inner = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as file:
        return file.read()


@pytest.mark.parametrize(
    ("paths", "landed"),
    [
        (["same.txt", "same.txt"], ["same (1).txt", "same.txt"]),
        (["caf\u00e9.txt", "cafe\u0301.txt"], ["caf\u00e9 (1).txt", "caf\u00e9.txt"]),
        (["dir/x", "dir\\x"], ["dir/x", "dir/x (1)"]),
        (["a:b", "a_b"], ["a_b", "a_b (1)"]),
        (["../up", "up"], ["up", "up (1)"]),
    ],
    ids=["exact", "unicode-normalization", "separator", "sanitized-alike", "dot-dot"],
)
async def test_colliding_paths_never_overwrite_each_other(
    peers: Peers, hostile: HostileFactory, paths: list[str], landed: list[str]
) -> None:
    """Two entries that name one file get distinct names: both arrive, neither is lost."""
    conversation = await trusted_conversation(peers, hostile)
    contents = [b"first", b"second"]
    entries = [file_entry(p, len(c)) for p, c in zip(paths, contents, strict=True)]
    answer, _ = await conversation.offer(entries)
    assert isinstance(answer, Accept), answer
    stream = await conversation.open_data()
    for index, data in enumerate(contents):
        await stream.send(DataHeader(index, 0, len(data)))
        await stream.write(data)
        await stream.send(DataTrailer(index, blake3.blake3(data).hexdigest()))
    await stream.finish()
    replies = [await conversation.read() for _ in range(3)]
    assert all(isinstance(r, FileResult) and r.ok for r in replies[:2]), replies
    assert files_in(peers.target) == sorted(landed)
    assert sorted((peers.target / name).read_bytes() for name in landed) == sorted(contents)


async def test_folder_and_file_of_one_name_refuse_the_offer(
    peers: Peers, hostile: HostileFactory
) -> None:
    conversation = await trusted_conversation(peers, hostile)
    await conversation.send(
        Offer("t", 2, 1, 1, 1), ManifestPage([file_entry("d", 1), dir_entry("d")])
    )
    closed = await conversation.closed()
    assert "has the name of a file" in closed, closed
    assert files_in(peers.target) == []


async def test_file_named_like_another_files_part(
    peers: Peers, hostile: HostileFactory
) -> None:
    """``x`` and ``x.part`` in one offer: neither may destroy the other."""
    big = os.urandom(SMALL_FILE_SIZE * 2)
    small = b"i am a file whose name ends in .part"
    conversation = await trusted_conversation(peers, hostile)
    entries = [file_entry("x.part", len(small)), file_entry("x", len(big))]
    answer, _ = await conversation.offer(entries)
    if isinstance(answer, Decline):  # refusing the pair outright is also safe
        assert "x.part" in answer.reason
        return
    assert isinstance(answer, Accept), answer
    stream = await conversation.open_data()
    for index, data in enumerate([small, big]):
        await stream.send(DataHeader(index, 0, len(data)))
        await stream.write(data)
        await stream.send(DataTrailer(index, blake3.blake3(data).hexdigest()))
    await stream.finish()
    replies = []
    while not replies or not isinstance(replies[-1], Summary):
        replies.append(await conversation.read())
    ok = {r.index for r in replies if isinstance(r, FileResult) and r.ok}
    held = {p.read_bytes() for p in peers.target.iterdir() if p.is_file()}
    # Whatever was reported as received is on disk, byte for byte.
    assert all({0: small, 1: big}[i] in held for i in ok), (ok, files_in(peers.target))


# --- Symlinks in the target folder -------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("do not touch")
    return folder


async def test_symlink_named_like_the_incoming_file(
    peers: Peers, hostile: HostileFactory, outside: Path
) -> None:
    peers.target.mkdir(parents=True, exist_ok=True)
    (peers.target / "report.txt").symlink_to(outside / "secret.txt")
    conversation = await trusted_conversation(peers, hostile)
    replies = await _deliver(conversation, [file_entry("report.txt", 7)], b"payload")
    assert isinstance(replies[0], FileResult) and replies[0].ok
    assert (outside / "secret.txt").read_text() == "do not touch"
    assert (peers.target / "report.txt").is_symlink()
    assert (peers.target / "report (1).txt").read_bytes() == b"payload"


@pytest.mark.parametrize("size", [7, SMALL_FILE_SIZE * 2], ids=["small", "large"])
async def test_symlink_named_like_the_part_file(
    peers: Peers, hostile: HostileFactory, outside: Path, size: int
) -> None:
    peers.target.mkdir(parents=True, exist_ok=True)
    (peers.target / ("report.txt" + PART_SUFFIX)).symlink_to(outside / "secret.txt")
    conversation = await trusted_conversation(peers, hostile)
    answer, resume = await conversation.offer([file_entry("report.txt", size)])
    assert isinstance(answer, Accept)
    assert resume == {}  # the symlink was not read to offer a resume point
    data = os.urandom(size)
    stream = await conversation.open_data()
    await stream.send(DataHeader(0, 0, size))
    await stream.write(data)
    await stream.send(DataTrailer(0, blake3.blake3(data).hexdigest()))
    result = await conversation.read()
    assert isinstance(result, FileResult)
    if size <= SMALL_FILE_SIZE:  # written whole under its name: the part's name is not used
        assert result.ok
        assert (peers.target / "report.txt").read_bytes() == data
    else:
        assert not result.ok
        assert "exists and is not a file" in result.error or "symlink" in result.error
        assert not (peers.target / "report.txt").exists()
    assert (outside / "secret.txt").read_text() == "do not touch"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (peers.target / ("report.txt" + PART_SUFFIX)).is_symlink()


async def test_symlinked_folder_is_not_entered(
    peers: Peers, hostile: HostileFactory, outside: Path
) -> None:
    peers.target.mkdir(parents=True, exist_ok=True)
    (peers.target / "docs").symlink_to(outside, target_is_directory=True)
    conversation = await trusted_conversation(peers, hostile)
    replies = await _deliver(conversation, [file_entry("docs/new.txt", 7)], b"payload")
    result = replies[0]
    assert isinstance(result, FileResult) and not result.ok
    assert "not a folder" in result.error, result.error
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


async def test_symlinked_folder_leaks_no_hash_of_outside_files(
    peers: Peers, hostile: HostileFactory, outside: Path
) -> None:
    """Resume points are never computed through a symlink: the sender must not learn
    the BLAKE3 of a file outside the target (a confirmation oracle for guessed contents)."""
    peers.target.mkdir(parents=True, exist_ok=True)
    (peers.target / "docs").symlink_to(outside, target_is_directory=True)
    secret = (outside / "secret.txt").read_bytes()
    (outside / ("partial.txt" + PART_SUFFIX)).write_bytes(secret[:4])
    conversation = await trusted_conversation(peers, hostile)
    entries = [file_entry("docs/secret.txt", len(secret)), file_entry("docs/partial.txt", 100)]
    answer, resume = await conversation.offer(entries)
    assert isinstance(answer, Accept)
    assert resume == {}, resume


async def test_folder_entry_where_a_file_exists_is_a_clear_refusal(
    peers: Peers, hostile: HostileFactory, tmp_path: Path
) -> None:
    peers.target.mkdir(parents=True, exist_ok=True)
    (peers.target / "docs").write_text("a file, not a folder")
    conversation = await trusted_conversation(peers, hostile)
    answer, _ = await conversation.offer([dir_entry("docs"), file_entry("docs/a.txt", 1)])
    assert isinstance(answer, Decline), answer
    assert "docs" in answer.reason and "not a folder" in answer.reason
    assert (peers.target / "docs").read_text() == "a file, not a folder"
    source = tmp_path / "after.txt"
    source.write_text("still serving")
    assert (await peers.send(source)).ok


# --- Memory: the largest offers, many at once -------------------------------------------------

#: Paired keys and offers each for the flood below: more offers than the budget holds
#: in all (MANIFEST_ENTRIES_HELD) and for one key (MANIFEST_ENTRIES_HELD_PER_PEER).
FLOOD_KEYS = 4
FLOOD_OFFERS_PER_KEY = 2
#: The receiving process's peak (VmHWM) while they come, all of it counted.
FLOOD_PEAK_RSS = 300 * MiB
#: How far above its size before the flood the receiver may stay once they are gone
#: (what the allocators keep; measured: 55 MiB before, ~220 at the peak, ~80 after).
FLOOD_LEFT_OVER_RSS = 40 * MiB


def _status_kib(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` memory figure (``VmRSS``, ``VmHWM``), in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def _largest_offer(top: str) -> tuple[Offer, bytes]:
    """An offer of MAX_MANIFEST_ENTRIES entries (a photo library in ``top``) and its pages,
    framed for the wire."""
    per_folder = 1000
    folders = MAX_MANIFEST_ENTRIES // per_folder

    def entries() -> Iterator[Entry]:
        for folder in range(folders):
            path = f"{top}/{2000 + folder // 12}/{folder % 12 + 1:02}"
            yield dir_entry(path)
            for index in range(per_folder - 1):
                yield file_entry(f"{path}/IMG_{index:05}.jpeg", 1)

    pages = [encode(ManifestPage(page)) for page in paginate(entries())]
    files = MAX_MANIFEST_ENTRIES - folders
    return Offer(top, MAX_MANIFEST_ENTRIES, files, files, len(pages)), b"".join(pages)


async def test_the_largest_offers_at_once_stay_within_the_memory_budget(
    tmp_path: Path, hostile: HostileFactory
) -> None:
    """8 offers of 200,000 entries at once, 2 from each of 4 paired keys, to a receiving
    process: it holds 3 (the budget), declines the rest before keeping an entry, stays
    under FLOOD_PEAK_RSS at its peak and comes back near its size once they are gone."""
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox", "--no-announce")
    try:
        pid = receiver.process.pid
        clients = [await hostile(f"paired-{index}") for index in range(FLOOD_KEYS)]
        for client in clients:  # each pairs with the receiver once, by its code
            pairing = await client.connect(ticket)
            assert isinstance(await pairing.verify(CLI_CODE), Verified)
            pairing.close()
        offers = [_largest_offer(f"Pictures of {index}") for index in range(FLOOD_KEYS)]
        resting = _status_kib(pid, "VmRSS")

        async def offer_from(
            client: HostileClient, offer: Offer, pages: bytes
        ) -> tuple[Conversation, AnyMessage | None]:
            conversation = await client.connect(ticket)
            assert isinstance(await conversation.hello(), Welcome)
            await conversation.send(offer)
            await conversation.send_raw(pages)
            return conversation, await conversation.read(timeout=120)

        answers = await asyncio.gather(*(
            offer_from(client, *offer)
            for client, offer in zip(clients, offers, strict=True)
            for _ in range(FLOOD_OFFERS_PER_KEY)
        ))
        peak = _status_kib(pid, "VmHWM")
        held = [c for c, answer in answers if isinstance(answer, Accept)]
        declined = [answer for _, answer in answers if isinstance(answer, Decline)]
        assert len(held) == MANIFEST_ENTRIES_HELD // MAX_MANIFEST_ENTRIES, answers
        assert len(declined) == len(answers) - len(held), answers
        assert {d.reason for d in declined} <= {
            "the receiver is taking too many large offers; try again when they are done",
            "this device's other offers to the receiver are too large to take another now; "
            "send again when they are done",
        }
        assert peak <= FLOOD_PEAK_RSS, f"peak {peak / MiB:.0f} MiB"

        for conversation in held:
            conversation.close()
        deadline = time.monotonic() + 30
        await wait_until(
            lambda: len([s for s in receiver.named("state") if s["state"] == "failed"])
            >= len(held), deadline - time.monotonic(), every=0.1,
            what="the held offers to end",
        )
        # The sessions have ended; the connections' buffers go as iroh lets go of them.
        await wait_until(
            lambda: _status_kib(pid, "VmRSS") <= resting + FLOOD_LEFT_OVER_RSS,
            deadline - time.monotonic(), every=0.2,
            what=lambda: (
                f"the memory to go back: {_status_kib(pid, 'VmRSS') / MiB:.0f} MiB after the "
                f"flood, {resting / MiB:.0f} MiB before; peak {peak / MiB:.0f} MiB"
            ),
        )
    finally:
        receiver.stop()
