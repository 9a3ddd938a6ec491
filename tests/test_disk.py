"""The one file writer (p2p_transfer.disk): folder handles, no-clobber finishing on any
file system, the hard-link rule, portable names, the sync policy and free space.

Each guarantee has a test that fails without it. Tests marked with the ``exfat``
fixture run on a real exFAT file system (tests/exfat.py).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from conftest import Peers
from p2p_transfer.disk import (
    NameTakenError,
    TargetError,
    TargetFolder,
    UploadFile,
    WholeFile,
    durability,
    free_inodes,
    free_space,
)
from p2p_transfer.disk import place as place_module
from p2p_transfer.disk import target as target_module
from p2p_transfer.disk.place import Way
from p2p_transfer.events import FileDoneEvent
from p2p_transfer.limits import (
    FOLDER_HANDLE_CACHE,
    SYNC_EACH_FILE_FROM,
    SYNC_FOLDERS_ONE_BY_ONE,
    MiB,
)


def digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def receive(target: TargetFolder, relative: str, data: bytes) -> str:
    """Write ``data`` as ``relative`` the way the receiver does; returns the final path."""
    part = target.open_part(relative, None)
    part.write(data)
    return target.finish(part, 0o644, 1e9)


def tree_of(root: Path) -> set[str]:
    """Every path under ``root`` (symlinks listed, not followed)."""
    found = set()
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


@pytest.fixture
def target(tmp_path: Path) -> Iterator[TargetFolder]:
    folder = TargetFolder(tmp_path / "inbox", umask=0o022)
    yield folder
    folder.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the target that nothing received may touch."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- Folder handles -------------------------------------------------------------------


def test_writes_follow_the_folder_handle_not_a_symlink_swapped_in(
    target: TargetFolder, outside: Path
) -> None:
    """A folder renamed away and replaced by a symlink while files arrive: the writer
    keeps writing into the folder it opened (inside the target), never through the link."""
    assert receive(target, "album/a.jpg", b"a") == "album/a.jpg"
    part = target.open_part("album/b.jpg", None)  # in flight during the swap
    (target.root / "album").rename(target.root / "album.old")
    (target.root / "album").symlink_to(outside, target_is_directory=True)
    part.write(b"b")
    assert target.finish(part, 0o644, 1e9) == "album/b.jpg"
    receive(target, "album/c.jpg", b"c")
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (target.root / "album.old").iterdir()) == [
        "a.jpg", "b.jpg", "c.jpg",
    ]


def test_a_folder_deleted_and_replaced_by_a_symlink_is_not_entered(
    target: TargetFolder, outside: Path
) -> None:
    receive(target, "album/a.jpg", b"a")
    (target.root / "album" / "a.jpg").unlink()
    (target.root / "album").rmdir()
    (target.root / "album").symlink_to(outside, target_is_directory=True)
    with pytest.raises(TargetError, match="not a folder"):
        receive(target, "album/b.jpg", b"b")
    with pytest.raises(TargetError, match="not a folder"):
        target.ensure_folder("album/deeper")
    assert target.find_resume_point("album/b.jpg", 1) is None
    assert list(outside.iterdir()) == []


def test_a_folder_evicted_from_the_cache_is_walked_again_without_following_links(
    target: TargetFolder, outside: Path
) -> None:
    """More folders than the handle cache holds: descriptors stay bounded, and a folder
    reopened after eviction is reached from the root again, refusing a swapped-in link."""
    before = open_descriptors()
    folders = [f"tree/d{i:03}" for i in range(3 * FOLDER_HANDLE_CACHE)]
    for folder in folders:
        receive(target, f"{folder}/f.txt", folder.encode())
    assert open_descriptors() - before <= FOLDER_HANDLE_CACHE + 1  # + the root
    first = target.root / folders[0]
    first.rename(target.root / "tree" / "moved")
    first.symlink_to(outside, target_is_directory=True)
    with pytest.raises(TargetError, match="not a folder"):
        receive(target, f"{folders[0]}/g.txt", b"g")
    assert list(outside.iterdir()) == []
    assert receive(target, f"{folders[-1]}/g.txt", b"g") == f"{folders[-1]}/g.txt"


def test_a_target_dropped_without_sync_leaves_no_descriptor_open(tmp_path: Path) -> None:
    before = open_descriptors()
    target = TargetFolder(tmp_path / "inbox")
    for index in range(3):
        part = target.open_part(f"d{index}/big", None)
        part.write(b"x" * SYNC_EACH_FILE_FROM)  # flushed: its folder waits for sync
        target.finish(part, 0o644, None)
    assert open_descriptors() > before
    del target, part
    assert open_descriptors() == before


def test_closing_the_target_keeps_open_parts_usable(target: TargetFolder) -> None:
    part = target.open_part("deep/er/x", None)
    target.close()
    part.write(b"still fine")  # its folder handle is closed only once the part lets go
    part.close()
    assert (target.root / "deep" / "er" / "x.part").read_bytes() == b"still fine"
    with pytest.raises(TargetError, match="closed"):
        target.open_part("y", None)


# --- No clobber ---------------------------------------------------------------------


@pytest.fixture(params=list(Way), ids=[way.value for way in Way])
def way(request: pytest.FixtureRequest, target: TargetFolder) -> Way:
    """Each way of finishing, on this disk: the writer starts with it."""
    target._no_clobber.way = request.param
    return request.param


def test_a_name_taken_after_the_part_was_opened_goes_to_the_next_number(
    target: TargetFolder, way: Way
) -> None:
    part = target.open_part("photo.jpg", None)
    part.write(b"incoming")
    (target.root / "photo.jpg").write_bytes(b"taken meanwhile")
    assert target.finish(part, 0o644, 1e9) == "photo (1).jpg"
    assert (target.root / "photo.jpg").read_bytes() == b"taken meanwhile"
    assert (target.root / "photo (1).jpg").read_bytes() == b"incoming"
    assert tree_of(target.root) == {"photo.jpg", "photo (1).jpg"}
    assert target._no_clobber.way is way


def test_no_way_of_finishing_writes_through_a_symlink(
    target: TargetFolder, outside: Path, way: Way
) -> None:
    victim = outside / "victim.txt"
    victim.write_bytes(b"precious")
    (target.root / "a.txt").symlink_to(victim)
    (target.root / "a (1).txt").symlink_to(outside / "created.txt")  # dangling
    assert receive(target, "a.txt", b"incoming") == "a (2).txt"
    assert victim.read_bytes() == b"precious"
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]


def test_when_link_is_refused_the_writer_falls_back_once_and_remembers(
    target: TargetFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a disk without hard links (exFAT: EPERM) nor RENAME_NOREPLACE (EINVAL), the
    placeholder way is found once; later files go straight to it."""
    calls = {"link": 0, "renameat2": 0}

    def no_link(*args: object, **kwargs: object) -> None:
        calls["link"] += 1
        raise OSError(errno.EPERM, "Operation not permitted")

    def no_renameat2(*args: object) -> None:
        calls["renameat2"] += 1
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(place_module.os, "link", no_link)
    monkeypatch.setattr(place_module, "rename_noreplace", no_renameat2)
    (target.root / "x.bin").write_bytes(b"mine")
    assert receive(target, "x.bin", b"one") == "x (1).bin"
    assert receive(target, "x.bin", b"two") == "x (2).bin"
    assert receive(target, "y.bin", b"three") == "y.bin"
    assert calls == {"link": 1, "renameat2": 1}
    assert target._no_clobber.way is Way.PLACEHOLDER
    assert (target.root / "x.bin").read_bytes() == b"mine"
    assert tree_of(target.root) == {"x.bin", "x (1).bin", "x (2).bin", "y.bin"}


def test_every_name_taken_is_a_clear_error(
    target: TargetFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(place_module, "MAX_NAME_ALTERNATIVES", 2)
    for name in ("n", "n (1)", "n (2)"):
        (target.root / name).write_bytes(b"x")
    part = target.open_part("n", None)
    with pytest.raises(NameTakenError, match="too many files"):
        target.finish(part, 0o644, 1e9)
    target.discard(part)
    assert tree_of(target.root) == {"n", "n (1)", "n (2)"}


def test_a_part_replaced_while_receiving_is_not_given_a_name(target: TargetFolder) -> None:
    part = target.open_part("f.bin", None)
    part.write(b"ours")
    os.unlink(target.root / "f.bin.part")
    (target.root / "f.bin.part").write_bytes(b"someone else's")
    with pytest.raises(TargetError, match="replaced"):
        target.finish(part, 0o644, 1e9)
    target.discard(part)  # leaves the other file alone
    assert tree_of(target.root) == {"f.bin.part"}


# --- Parts with more than one link --------------------------------------------------


def test_a_hard_linked_part_is_neither_hashed_nor_written_through(
    target: TargetFolder, outside: Path
) -> None:
    """Someone hard-linked ``f.part`` to a file outside. It is no resume point (its hash
    would reveal the outside file); what happens instead: the part's name is removed
    (the outside file keeps its data) and a fresh part receives the file."""
    secret = outside / "secret.txt"
    secret.write_bytes(b"secret data")
    os.link(secret, target.root / "f.txt.part")
    assert target.find_resume_point("f.txt", 100) is None
    assert receive(target, "f.txt", b"received") == "f.txt"
    assert secret.read_bytes() == b"secret data"
    assert secret.stat().st_nlink == 1
    assert (target.root / "f.txt").read_bytes() == b"received"


def test_a_part_hard_linked_after_the_offer_is_not_appended_to(
    target: TargetFolder, outside: Path
) -> None:
    (target.root / "f.txt.part").write_bytes(b"held ")
    point = target.find_resume_point("f.txt", 100)
    assert point is not None and point.offset == 5
    secret = outside / "secret.txt"
    secret.write_bytes(b"held secret")
    os.unlink(target.root / "f.txt.part")
    os.link(secret, target.root / "f.txt.part")
    with pytest.raises(TargetError, match="changed since the offer"):
        target.open_part("f.txt", point)
    assert secret.read_bytes() == b"held secret"


def test_a_hard_linked_finished_file_is_not_hashed(target: TargetFolder, outside: Path) -> None:
    secret = outside / "secret.txt"
    secret.write_bytes(b"secret")
    os.link(secret, target.root / "same.txt")
    assert target.find_resume_point("same.txt", len(b"secret")) is None


def test_a_fifo_named_like_a_part_neither_blocks_nor_resumes(target: TargetFolder) -> None:
    os.mkfifo(target.root / "f.part")
    assert target.find_resume_point("f", 10) is None
    with pytest.raises(TargetError, match="not a file"):
        target.open_part("f", None)


# --- Two writers never share a part -------------------------------------------------


def test_a_part_in_use_is_never_replaced_by_another_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(target_module, "PART_RELEASE_WAIT", 0.05)
    first = TargetFolder(tmp_path / "inbox")
    second = TargetFolder(tmp_path / "inbox")
    part = first.open_part("f.bin", None)
    part.write(b"first writer's bytes")
    assert second.find_resume_point("f.bin", 100) is None
    with pytest.raises(TargetError, match="being written by another transfer"):
        second.open_part("f.bin", None)
    assert first.finish(part, 0o644, 1e9) == "f.bin"
    assert (tmp_path / "inbox" / "f.bin").read_bytes() == b"first writer's bytes"


def test_a_part_let_go_of_soon_is_resumed_by_the_next_writer(tmp_path: Path) -> None:
    """A superseded session may still be closing its part: the next one waits for it."""
    first = TargetFolder(tmp_path / "inbox")
    part = first.open_part("f.bin", None)
    part.write(b"0123")
    closing = threading.Timer(0.1, part.close)
    closing.start()
    point = TargetFolder(tmp_path / "inbox").find_resume_point("f.bin", 10)
    closing.join()
    assert point is not None and point.offset == 4


# --- Uploads (files that arrive whole) ----------------------------------------------


def test_uploads_of_one_name_at_once_get_distinct_names_and_parts(tmp_path: Path) -> None:
    folder = tmp_path / "uploads"
    folder.mkdir()
    first, second = UploadFile(folder, "notes.txt", 0o022), UploadFile(folder, "notes.txt", 0o022)
    first.write(b"first")
    second.write(b"second")
    assert tree_of(folder) == {"notes.txt.part", "notes (1).txt.part"}
    assert second.finish() == "notes (1).txt"
    assert first.finish() == "notes.txt"
    assert (folder / "notes.txt").read_bytes() == b"first"
    assert (folder / "notes (1).txt").read_bytes() == b"second"
    assert (folder / "notes.txt").stat().st_mode & 0o777 == 0o644


def test_a_failed_upload_leaves_nothing(tmp_path: Path) -> None:
    upload = UploadFile(tmp_path, "x.bin")
    upload.write(b"half")
    upload.discard()
    assert list(tmp_path.iterdir()) == []


def test_an_exact_upload_takes_its_own_name_in_its_folder_or_none(tmp_path: Path) -> None:
    """A file dropped into the app keeps its path in the batch: a second of that path is
    refused, when it starts and when it would be named."""
    first = UploadFile(tmp_path, "album/sub/a.txt", exact=True)
    second = UploadFile(tmp_path, "album/sub/a.txt", exact=True)  # at once: a part of its own
    first.write(b"first")
    second.write(b"second")
    assert first.finish(durable=False) == "album/sub/a.txt"
    with pytest.raises(NameTakenError, match="exists already"):
        second.finish(durable=False)
    second.discard()
    with pytest.raises(NameTakenError, match="exists already"):
        UploadFile(tmp_path, "album/sub/a.txt", exact=True)
    assert tree_of(tmp_path) == {"album", "album/sub", "album/sub/a.txt"}
    assert (tmp_path / "album/sub/a.txt").read_bytes() == b"first"
    assert (tmp_path / "album/sub/a.txt").stat().st_mode & 0o777 == 0o600


def test_an_exact_upload_is_not_kept_from_its_name_by_a_file_named_like_its_part(
    tmp_path: Path,
) -> None:
    """``x.part`` (a browser's unfinished download) dropped before ``x``: both arrive."""
    for name, data in (("x.part", b"partial download"), ("x", b"whole")):
        upload = UploadFile(tmp_path, name, exact=True)
        upload.write(data)
        assert upload.finish(durable=False) == name
    assert (tmp_path / "x.part").read_bytes() == b"partial download"
    assert (tmp_path / "x").read_bytes() == b"whole"
    assert tree_of(tmp_path) == {"x", "x.part"}


def test_an_exact_upload_never_writes_through_a_symlinked_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "album").symlink_to(outside)
    with pytest.raises(TargetError, match="not a folder"):
        UploadFile(batch, "album/a.txt", exact=True)
    assert list(outside.iterdir()) == []


# --- Sync policy ----------------------------------------------------------------------


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the writer flushed, in order, around the names it gave."""
    calls: list[str] = []
    monkeypatch.setattr(target_module, "flush_data", lambda fd: calls.append("fdatasync"))
    monkeypatch.setattr(durability, "sync_file_system", lambda fd: calls.append("syncfs"))
    monkeypatch.setattr(durability, "_sync_folder", lambda fd: calls.append("fsync folder"))
    real_place = target_module.NoClobber.place

    def place(self: object, *args: object) -> str:
        calls.append("name")
        return real_place(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(target_module.NoClobber, "place", place)
    return calls


def test_small_files_are_flushed_together_by_one_sync(
    target: TargetFolder, syncs: list[str]
) -> None:
    for index in range(3):
        receive(target, f"small-{index}", b"x" * 4096)
    target.sync()
    target.sync()  # nothing new: no second flush
    assert syncs == ["name", "name", "name", "syncfs"]


def test_a_big_file_is_flushed_before_it_gets_its_name(
    target: TargetFolder, syncs: list[str]
) -> None:
    """No syncfs (which would flush other programs' data too): its folder's fsync."""
    receive(target, "big", b"x" * SYNC_EACH_FILE_FROM)
    target.sync()
    assert syncs == ["fdatasync", "name", "fsync folder"]


def test_many_folders_of_flushed_files_are_synced_together(
    target: TargetFolder, syncs: list[str]
) -> None:
    for index in range(SYNC_FOLDERS_ONE_BY_ONE + 1):
        part = target.open_part(f"d{index}/f", None)
        part.write(b"x")
        target.finish(part, 0o644, None, flush=True)
    target.sync()
    assert syncs[-1] == "syncfs" and "fsync folder" not in syncs


def test_an_upload_is_on_disk_before_it_is_reported_complete(
    tmp_path: Path, syncs: list[str]
) -> None:
    upload = UploadFile(tmp_path, "x.bin")
    upload.write(b"data")
    upload.finish()
    assert syncs == ["fdatasync", "name", "fsync folder"]


async def test_the_receiver_syncs_before_it_reports_the_transfer_done(
    peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_sync = TargetFolder.sync

    def sync(self: TargetFolder) -> None:
        synced.append(len(list(self.root.rglob("*.txt"))))
        real_sync(self)

    monkeypatch.setattr(TargetFolder, "sync", sync)
    folder = tmp_path / "notes"
    folder.mkdir()
    for index in range(5):
        (folder / f"{index}.txt").write_text(f"note {index}")
    assert (await peers.send(folder)).ok
    assert synced == [5]  # once, with every file already named


# --- Small files written whole ---------------------------------------------------------


def store_whole(
    target: TargetFolder, relative: str, data: bytes, mode: int, mtime: float | None
) -> str | None:
    """One file through ``store_wholes``: the path it got, None without unnamed files."""
    stored = target.store_wholes([WholeFile(relative, data, mode, mtime)])[0]
    if isinstance(stored, TargetError):
        raise stored
    return stored


def test_a_small_file_written_whole_takes_its_name_in_one_step(target: TargetFolder) -> None:
    """Verified in memory, written unnamed and linked in: no part is ever seen."""
    assert store_whole(target, "docs/a.txt", b"hello", 0o755, 1_234_567_890.0) == "docs/a.txt"
    path = target.root / "docs" / "a.txt"
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert path.stat().st_mtime == 1_234_567_890.0
    assert tree_of(target.root) == {"docs", "docs/a.txt"}


def test_a_small_file_written_whole_never_replaces_anything(
    target: TargetFolder, outside: Path
) -> None:
    (target.root / "a.txt").write_bytes(b"original")
    (target.root / "notes").mkdir()
    (target.root / "link.txt").symlink_to(outside / "victim.txt")
    assert store_whole(target, "a.txt", b"new", 0o644, None) == "a (1).txt"
    assert store_whole(target, "notes", b"text", 0o644, None) == "notes (1)"
    assert store_whole(target, "link.txt", b"x", 0o644, None) == "link (1).txt"
    assert (target.root / "a.txt").read_bytes() == b"original"
    assert (target.root / "a (1).txt").read_bytes() == b"new"
    assert list(outside.iterdir()) == []


def test_a_batch_of_small_files_is_stored_in_order_and_one_failure_stops_no_other(
    target: TargetFolder,
) -> None:
    (target.root / "docs").mkdir()
    (target.root / "docs" / "a.txt").write_bytes(b"original")
    (target.root / "blocked").write_bytes(b"a file where a folder would go")
    stored = target.store_wholes([
        WholeFile("docs/a.txt", b"one", 0o644, None),
        WholeFile("blocked/b.txt", b"two", 0o644, None),
        WholeFile("photos/c.jpg", b"three", 0o600, 1_234_567_890.0),
        WholeFile("docs/d.txt", b"four", 0o644, None),
    ])
    assert stored[0] == "docs/a (1).txt" and stored[2:] == ["photos/c.jpg", "docs/d.txt"]
    assert isinstance(stored[1], TargetError)
    assert (target.root / "docs" / "a (1).txt").read_bytes() == b"one"
    assert (target.root / "docs" / "a.txt").read_bytes() == b"original"
    photo = target.root / "photos" / "c.jpg"
    assert photo.read_bytes() == b"three" and stat.S_IMODE(photo.stat().st_mode) == 0o600
    assert photo.stat().st_mtime == 1_234_567_890.0


def test_a_small_file_gets_its_mode_also_where_the_process_umask_takes_more(
    tmp_path: Path,
) -> None:
    """The create gives the mode less the process umask; a bit that takes away, and the
    target's umask does not, is set after."""
    previous = os.umask(0o077)
    try:
        target = TargetFolder(tmp_path / "inbox", umask=0o022)
        assert store_whole(target, "a.txt", b"x", 0o755, None) == "a.txt"
        target.close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "inbox" / "a.txt").stat().st_mode) == 0o755


def test_a_small_file_goes_through_a_part_where_there_are_no_unnamed_files(
    exfat: Path,
) -> None:
    """exFAT (FUSE) has no O_TMPFILE: nothing is written, the caller uses a part."""
    target = TargetFolder(exfat / "inbox")
    try:
        assert store_whole(target, "a.txt", b"hello", 0o644, None) is None
        assert tree_of(exfat / "inbox") == set()
        assert receive(target, "a.txt", b"hello") == "a.txt"
    finally:
        target.close()


# --- Names a file system refuses ------------------------------------------------------


def test_names_are_kept_where_the_file_system_takes_them(target: TargetFolder) -> None:
    assert receive(target, 'why?/what? <"*|>.txt', b"q") == 'why?/what? <"*|>.txt'
    assert (target.root / "why?" / 'what? <"*|>.txt').read_bytes() == b"q"


def test_refused_names_arrive_under_their_portable_name_on_exfat(exfat: Path) -> None:
    target = TargetFolder(exfat / "inbox")
    try:
        assert receive(target, "why?/what?.txt", b"q") == "why_/what_.txt"
        assert receive(target, "why?/what?.txt", b"r") == "why_/what_ (1).txt"
        assert receive(target, 'a<b>"c"|d*.txt', b"s") == "a_b__c__d_.txt"
    finally:
        target.close()
    assert sorted(tree_of(exfat / "inbox")) == [
        "a_b__c__d_.txt", "why_", "why_/what_ (1).txt", "why_/what_.txt",
    ]


def test_resume_finds_the_part_of_a_refused_name_again_on_exfat(exfat: Path) -> None:
    first = TargetFolder(exfat / "inbox")
    part = first.open_part("why?/what?.txt", None)
    part.write(b"0123")
    part.close()
    first.close()
    assert tree_of(exfat / "inbox") == {"why_", "why_/what_.txt.part"}
    later = TargetFolder(exfat / "inbox")  # a new session knows nothing yet
    try:
        point = later.find_resume_point("why?/what?.txt", 10)
        assert point is not None and point.offset == 4 and point.digest == digest(b"0123")
        part = later.open_part("why?/what?.txt", point)
        part.write(b"456789")
        assert later.finish(part, 0o644, 1e9) == "why_/what_.txt"
    finally:
        later.close()
    assert (exfat / "inbox" / "why_" / "what_.txt").read_bytes() == b"0123456789"


def test_exfat_finishes_by_placeholder_without_clobbering(exfat: Path) -> None:
    """exFAT has no hard links (EPERM) and no RENAME_NOREPLACE (EINVAL): the writer
    takes the name with an exclusive placeholder; an existing name is never replaced,
    also when it differs only in case (exFAT is case-blind)."""
    (exfat / "Photo.JPG").write_bytes(b"original")
    target = TargetFolder(exfat)
    try:
        assert receive(target, "photo.jpg", b"new") == "photo (1).jpg"
        assert target._no_clobber.way is Way.PLACEHOLDER
        assert receive(target, "other.bin", b"other") == "other.bin"
    finally:
        target.close()
    assert (exfat / "Photo.JPG").read_bytes() == b"original"
    assert (exfat / "photo (1).jpg").read_bytes() == b"new"
    assert sorted(p.name for p in exfat.iterdir()) == ["Photo.JPG", "other.bin", "photo (1).jpg"]


def test_an_upload_onto_exfat_takes_the_next_free_name(exfat: Path) -> None:
    for data in (b"first", b"second"):
        upload = UploadFile(exfat, "what?.txt", 0o022)
        upload.write(data)
        upload.finish()
    assert (exfat / "what_.txt").read_bytes() == b"first"
    assert (exfat / "what_ (1).txt").read_bytes() == b"second"


# --- Free space -----------------------------------------------------------------------


def test_free_space_and_inodes_are_known_on_a_usual_disk(tmp_path: Path) -> None:
    space, inodes = free_space(tmp_path), free_inodes(tmp_path)
    assert space is not None and space > 0 and inodes is not None and inodes > 0
    assert free_space(tmp_path / "not" / "yet" / "made") is not None  # its parent's


def test_a_file_system_that_reports_no_totals_has_unknown_room(
    tmp_path: Path, no_disk_totals: None
) -> None:
    """Some FUSE drivers report 0 blocks (btrfs: 0 inodes): unknown, not full."""
    assert free_space(tmp_path) is None
    assert free_inodes(tmp_path) is None
    assert free_space(tmp_path / "not" / "yet" / "made") is None


async def test_an_offer_is_accepted_when_the_disk_does_not_say_its_free_space(
    peers: Peers, tmp_path: Path, no_disk_totals: None
) -> None:
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(5000))
    assert (await peers.send(source)).ok
    assert (peers.target / "f.bin").read_bytes() == source.read_bytes()


# --- End to end: a folder swapped for a symlink while a transfer runs ----------------


@pytest.mark.parametrize("swap", ["renamed", "deleted"])
async def test_a_folder_swapped_for_a_symlink_during_a_transfer_redirects_nothing(
    peers: Peers, tmp_path: Path, outside: Path, swap: str
) -> None:
    """Between two files of ``tree/sub``, ``sub`` is renamed away (or deleted) and a
    symlink to a folder outside takes its place. Later files go into the folder the
    receiver opened, or fail; the outside folder stays empty."""
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "sub" / "0-first.bin").write_bytes(os.urandom(2 * MiB))
    for index in range(1, 4):
        (tree / "sub" / f"{index}-big.bin").write_bytes(os.urandom(MiB))
    for index in range(20):
        (tree / "sub" / f"small-{index:02}.txt").write_text(f"small {index}")
        (tree / "sub" / "deeper" / f"{index:02}.txt").write_text(f"deeper {index}")
    sub = peers.target / "tree" / "sub"
    swapped: list[str] = []

    def swap_at_first_file(event: object) -> None:
        if isinstance(event, FileDoneEvent) and not swapped:
            swapped.append(event.path)
            if swap == "renamed":
                sub.rename(sub.with_name("sub.old"))
            else:
                shutil.rmtree(sub)
            sub.symlink_to(outside, target_is_directory=True)

    peers.receiver.events.subscribe(swap_at_first_file)
    result = await peers.send(tree, parallel=1)
    assert swapped == ["tree/sub/0-first.bin"]
    assert list(outside.iterdir()) == []
    if swap == "renamed":
        assert result.ok, result.message
        assert (sub.with_name("sub.old") / "3-big.bin").read_bytes() == (
            tree / "sub" / "3-big.bin"
        ).read_bytes()
    else:
        assert not result.ok


# --- Import weight ----------------------------------------------------------------------


def test_the_writer_and_the_share_load_without_iroh_or_the_transfer_layer() -> None:
    code = (
        "import sys, p2p_transfer.disk, p2p_transfer.share\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] == 'iroh'\n"
        "         or m.startswith(('p2p_transfer.transfer', 'p2p_transfer.net'))]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
