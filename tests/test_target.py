"""The disk sides of a transfer: the receiver's target folder and the sender's scan."""

from __future__ import annotations

import errno
import os
import stat
import tracemalloc
from pathlib import Path

import blake3
import pytest

from p2p_transfer.disk import (
    PartFile,
    TargetError,
    TargetFolder,
    describe_os_error,
)
from p2p_transfer.protocol import Entry
from p2p_transfer.transfer.local import (
    FileSource,
    SourceEntry,
    SourceError,
    Sources,
    scan_sources,
)


def digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def target(tmp_path: Path) -> TargetFolder:
    return TargetFolder(tmp_path / "inbox", umask=0o022)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the target that nothing received may touch."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


def receive(
    target: TargetFolder, relative: str, data: bytes, mode: int = 0o644, mtime: float = 1e9
) -> str:
    """Write ``data`` as ``relative`` the way the receiver does; returns the final name."""
    part = target.open_part(relative, None)
    part.write(data)
    assert part.digest == digest(data)
    return target.finish(part, mode, mtime)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- TargetFolder ------------------------------------------------------------------


def test_target_folder_is_created_private(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        TargetFolder(tmp_path / "new" / "inbox")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "new" / "inbox") == 0o700


def test_part_file_is_private(target: TargetFolder) -> None:
    old = os.umask(0)
    try:
        part = target.open_part("docs/report.pdf", None)
    finally:
        os.umask(old)
    try:
        assert target.root / part.path == target.root / "docs" / "report.pdf.part"
        assert mode_of(target.root / part.path) == 0o600
    finally:
        part.close()


def test_finish_renames_the_verified_part(target: TargetFolder) -> None:
    final = receive(target, "a/b/c.txt", b"hello", mtime=1_234_567_890.0)
    assert final == "a/b/c.txt"
    path = target.root / "a" / "b" / "c.txt"
    assert path.read_bytes() == b"hello"
    assert path.stat().st_mtime == 1_234_567_890.0
    assert files_under(target.root) == {"a", "a/b", "a/b/c.txt"}  # no .part left


def test_finish_never_overwrites(target: TargetFolder) -> None:
    (target.root / "photo.jpg").write_bytes(b"original")
    assert receive(target, "photo.jpg", b"new one") == "photo (1).jpg"
    assert receive(target, "photo.jpg", b"newer") == "photo (2).jpg"
    assert (target.root / "photo.jpg").read_bytes() == b"original"
    assert (target.root / "photo (1).jpg").read_bytes() == b"new one"
    assert (target.root / "photo (2).jpg").read_bytes() == b"newer"
    assert not list(target.root.glob("*.part"))
    (target.root / "trip").mkdir()
    (target.root / "trip" / "day 1.jpg").write_bytes(b"original")
    assert receive(target, "trip/day 1.jpg", b"new one") == "trip/day 1 (1).jpg"


def test_finish_does_not_replace_a_folder(target: TargetFolder) -> None:
    (target.root / "notes").mkdir()
    assert receive(target, "notes", b"text") == "notes (1)"
    assert (target.root / "notes").is_dir()


def test_symlink_named_like_the_file_is_not_followed(target: TargetFolder, outside: Path) -> None:
    victim = outside / "victim.txt"
    victim.write_bytes(b"precious")
    (target.root / "a.txt").symlink_to(victim)
    (target.root / "b.txt").symlink_to(outside / "created.txt")  # dangling
    assert receive(target, "a.txt", b"incoming") == "a (1).txt"
    assert receive(target, "b.txt", b"incoming") == "b (1).txt"
    assert victim.read_bytes() == b"precious"
    assert not (outside / "created.txt").exists()
    assert (target.root / "a.txt").is_symlink()
    assert (target.root / "a (1).txt").read_bytes() == b"incoming"


def test_symlink_named_like_the_part_is_not_followed(target: TargetFolder, outside: Path) -> None:
    victim = outside / "victim.txt"
    victim.write_bytes(b"precious")
    (target.root / "a.txt.part").symlink_to(victim)
    (target.root / "b.txt.part").symlink_to(outside / "created.txt")  # dangling
    # no resume point is read through the link...
    assert target.find_resume_point("a.txt", 100) is None
    # ...and nothing is written through it
    with pytest.raises(TargetError):
        target.open_part("a.txt", None)
    with pytest.raises(TargetError):
        target.open_part("b.txt", None)
    assert victim.read_bytes() == b"precious"
    assert not (outside / "created.txt").exists()


def test_symlinked_folder_is_not_entered(target: TargetFolder, outside: Path) -> None:
    (target.root / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(TargetError, match="not a folder"):
        target.open_part("sub/x.txt", None)
    with pytest.raises(TargetError, match="not a folder"):
        target.ensure_folder("sub/deeper")
    assert list(outside.iterdir()) == []


def test_file_in_place_of_a_folder(target: TargetFolder) -> None:
    (target.root / "dir").write_bytes(b"i am a file")
    with pytest.raises(TargetError, match="not a folder"):
        target.ensure_folder("dir/sub")


@pytest.mark.parametrize("relative", ["a", "a/b/c", "x y/ünï.txt"])
def test_paths_stay_inside_the_root(target: TargetFolder, relative: str) -> None:
    path = Path(target.location_of(relative))
    assert path.is_relative_to(target.root)
    assert path == target.root.joinpath(*relative.split("/"))


@pytest.mark.parametrize(
    "relative",
    ["a", "a/b", ".hidden/x", "a/.b", "a/./b", "a//b", "a/", "/abs", "a/..", "..", ".", "",
     "a/b/../c", "x y/ünï.txt", "a\\..\\b"],
)
def test_a_path_is_placed_as_normalizing_it_would(target: TargetFolder, relative: str) -> None:
    """The plain path's shortcut gives what the full normalization gives (or refuses)."""
    root = str(target.root)
    expected = os.path.normpath(os.path.join(root, *relative.split("/")))
    if expected != root and not expected.startswith(root + os.sep):
        with pytest.raises(TargetError):
            target.location_of(relative)
    else:
        assert target.location_of(relative) == expected


@pytest.mark.parametrize("relative", ["../escape", "a/../../escape"])
def test_location_of_refuses_traversal_even_unsanitized(
    target: TargetFolder, relative: str
) -> None:
    """Defence in depth: callers sanitize first, but location_of claims to check too."""
    with pytest.raises(TargetError):
        target.location_of(relative)


@pytest.mark.parametrize(
    ("sender_mode", "umask", "expected"),
    [
        (0o644, 0o022, 0o644),
        (0o777, 0o022, 0o755),
        (0o666, 0o077, 0o600),
        (0o755, 0o027, 0o750),
        (0o4755, 0o022, 0o755),  # setuid
        (0o2775, 0o002, 0o775),  # setgid
        (0o1777, 0o022, 0o755),  # sticky
        (0o100644, 0o022, 0o644),  # file-type bits from st_mode
        (0o000, 0o022, 0o000),
    ],
)
def test_final_mode_is_sender_mode_masked(
    tmp_path: Path, sender_mode: int, umask: int, expected: int
) -> None:
    target = TargetFolder(tmp_path / "inbox", umask=umask)
    final = receive(target, "f", b"x", mode=sender_mode)
    assert mode_of(target.root / final) == expected


def test_resume_point_of_a_part(target: TargetFolder) -> None:
    held = os.urandom(100_000)
    (target.root / "big.bin.part").write_bytes(held)
    point = target.find_resume_point("big.bin", 250_000)
    assert point is not None
    assert (point.offset, point.complete_file) == (100_000, False)
    assert point.digest == digest(held)

    rest = os.urandom(150_000)
    part = target.open_part("big.bin", point)
    part.write(rest)
    assert part.digest == digest(held + rest)  # the hash covers the resumed prefix
    assert target.finish(part, 0o644, 1e9) == "big.bin"
    assert (target.root / "big.bin").read_bytes() == held + rest


def test_resume_point_of_an_identical_size_final_file(target: TargetFolder) -> None:
    data = b"already here"
    (target.root / "done.txt").write_bytes(data)
    point = target.find_resume_point("done.txt", len(data))
    assert point is not None
    assert (point.offset, point.complete_file, point.digest) == (len(data), True, digest(data))
    assert target.find_resume_point("done.txt", len(data) + 1) is None


def test_part_is_preferred_over_the_final_file(target: TargetFolder) -> None:
    (target.root / "f").write_bytes(b"0123456789")
    (target.root / "f.part").write_bytes(b"01234")
    point = target.find_resume_point("f", 10)
    assert point is not None and (point.offset, point.complete_file) == (5, False)


@pytest.mark.parametrize("held", [b"", b"x" * 11])
def test_no_resume_from_an_empty_or_oversized_part(target: TargetFolder, held: bytes) -> None:
    (target.root / "f.part").write_bytes(held)
    assert target.find_resume_point("f", 10) is None


def test_no_resume_point_when_nothing_is_held(target: TargetFolder) -> None:
    assert target.find_resume_point("missing/file", 10) is None


def test_resume_points_of_a_whole_offer(target: TargetFolder, outside: Path) -> None:
    """One look per folder finds parts and finished files, in the root and below, and
    names that end in the part suffix themselves; nothing behind a symlinked folder."""
    (target.root / "a.txt.part").write_bytes(b"01234")
    (target.root / "sub").mkdir()
    (target.root / "sub" / "b.bin").write_bytes(b"done")
    (target.root / "sub" / "c.part").write_bytes(b"xy")  # a file called c.part, finished
    (target.root / "linked").symlink_to(outside, target_is_directory=True)
    (outside / "secret.txt").write_bytes(b"secret")
    points = target.find_resume_points(
        [("a.txt", 10), ("sub/b.bin", 4), ("sub/c.part", 2), ("sub/new", 3),
         ("linked/secret.txt", 6), ("nowhere/x", 1)]
    )
    assert {path: (p.offset, p.complete_file) for path, p in points.items()} == {
        "a.txt": (5, False), "sub/b.bin": (4, True), "sub/c.part": (2, True),
    }


def test_a_folder_removed_during_a_transfer_is_made_again(target: TargetFolder) -> None:
    assert receive(target, "photos/2024/a.jpg", b"a") == "photos/2024/a.jpg"
    (target.root / "photos" / "2024" / "a.jpg").unlink()
    (target.root / "photos" / "2024").rmdir()
    (target.root / "photos").rmdir()
    assert receive(target, "photos/2024/b.jpg", b"b") == "photos/2024/b.jpg"
    assert (target.root / "photos" / "2024" / "b.jpg").read_bytes() == b"b"


def test_new_part_replaces_a_stale_one(target: TargetFolder) -> None:
    (target.root / "f.part").write_bytes(b"stale bytes that did not match")
    assert receive(target, "f", b"fresh") == "f"
    assert (target.root / "f").read_bytes() == b"fresh"


def test_discard_removes_the_part(target: TargetFolder) -> None:
    part = target.open_part("bad.bin", None)
    part.write(b"corrupt")
    target.discard(part)
    assert files_under(target.root) == set()
    target.discard(part)  # twice is harmless


def test_part_file_write_handles_large_buffers(target: TargetFolder) -> None:
    data = os.urandom(3 * 1024 * 1024)
    part: PartFile = target.open_part("large", None)
    part.write(data)
    assert part.offset == len(data)
    assert target.finish(part, 0o600, 0.0) == "large"
    assert (target.root / "large").read_bytes() == data


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (errno.ENOSPC, "receiver out of disk space"),
        (errno.EDQUOT, "receiver out of disk space"),
        (errno.EACCES, "receiver cannot write to the target folder"),
        (errno.EROFS, "receiver cannot write to the target folder"),
    ],
)
def test_describe_os_error(code: int, text: str) -> None:
    assert describe_os_error(OSError(code, os.strerror(code))) == text


def test_describe_other_os_errors_uses_the_system_text() -> None:
    assert describe_os_error(OSError(errno.EIO, "Input/output error")) == "Input/output error"


# --- scan_sources --------------------------------------------------------------------


def entries_of(paths: list[Path], follow: bool = False) -> list[tuple[str, str, int]]:
    return [(s.entry.path, s.entry.kind, s.entry.size) for s in scan_sources(paths, follow)]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "album"
    (root / "2024" / "summer").mkdir(parents=True)
    (root / "2024" / "summer" / "beach.jpg").write_bytes(b"b" * 10)
    (root / "2024" / "notes.txt").write_bytes(b"n" * 3)
    (root / "empty folder").mkdir()
    (root / "empty.txt").write_bytes(b"")
    (root / "ünïcødé 文件.txt").write_bytes(b"u")
    return root


def test_scan_nested_folders_keeps_empty_ones(tree: Path) -> None:
    assert entries_of([tree]) == [
        ("album", "dir", 0),
        ("album/2024", "dir", 0),
        ("album/2024/notes.txt", "file", 3),
        ("album/2024/summer", "dir", 0),
        ("album/2024/summer/beach.jpg", "file", 10),
        ("album/empty folder", "dir", 0),
        ("album/empty.txt", "file", 0),
        ("album/ünïcødé 文件.txt", "file", 1),
    ]


def test_scan_records_mode_mtime_and_source(tree: Path) -> None:
    beach = tree / "2024" / "summer" / "beach.jpg"
    beach.chmod(0o640)
    os.utime(beach, (1e9, 1_500_000_000.5))
    found = {s.entry.path: s for s in scan_sources([tree])}
    source = found["album/2024/summer/beach.jpg"]
    assert source.source == str(beach)
    assert source.entry == Entry("album/2024/summer/beach.jpg", "file", 10, 0o640, 1_500_000_000.5)


def test_every_entry_is_read_from_where_it_was_found(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sources keeps no path per entry; each must still lead to its own file, for a
    folder given by an absolute path, by ``.``, with a trailing slash, and a lone file."""
    single = tmp_path / "single.bin"
    single.write_bytes(b"s")
    monkeypatch.chdir(tree / "2024")
    found = scan_sources([tree, Path("."), Path("summer/"), single])
    assert [s.entry.path for s in found if s.entry.path.startswith("2024")] == [
        "2024", "2024/notes.txt", "2024/summer", "2024/summer/beach.jpg",
    ]
    for item in found:
        assert os.path.samefile(item.source, tree.parent / _where(item.entry.path))
    assert found[-1].source == str(single)
    assert found[-1] == found[len(found) - 1]
    for beyond in (len(found), -len(found) - 1):
        with pytest.raises(IndexError):
            found[beyond]
        with pytest.raises(IndexError):
            found.source(beyond)


def _where(relative: str) -> str:
    """Where the test tree keeps an entry scanned under the names given above."""
    top, _, rest = relative.partition("/")
    folder = {"album": "album", "2024": "album/2024", "summer": "album/2024/summer",
              "single.bin": "single.bin"}[top]
    return f"{folder}/{rest}" if rest else folder


def test_sources_given_as_entries_keep_each_ones_own_path(tmp_path: Path) -> None:
    """Entries whose source does not follow from their path (a renamed file) keep it."""
    items = [
        SourceEntry(Entry("a", "dir", 0, 0o755, 0.0), "/x/a"),
        SourceEntry(Entry("a/b.txt", "file", 1, 0o644, 0.0), "/x/a/b.txt"),
        SourceEntry(Entry("renamed.txt", "file", 2, 0o644, 0.0), "/y/original.txt"),
        SourceEntry(Entry("a/c.txt", "file", 3, 0o644, 0.0), "/x/a/c.txt"),
    ]
    assert list(Sources(items)) == items
    assert Sources(items)[1:3] == items[1:3]


def test_a_tree_of_many_files_is_held_in_little_memory(tmp_path: Path) -> None:
    """A sender holds its whole listing while it sends: 100,000 files must fit the
    80 MB a side may use, so ~100 bytes a file, not the ~400 of an object each."""
    root = tmp_path / "many"
    for folder in range(20):
        (root / f"d{folder:02d}").mkdir(parents=True)
        for index in range(500):
            (root / f"d{folder:02d}" / f"file-{index:06d}.txt").write_bytes(b"")
    tracemalloc.start()
    try:
        found = scan_sources([root])
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(found) == 10_021
    assert held / len(found) < 150


def test_scan_single_files_and_folders_together(tree: Path, tmp_path: Path) -> None:
    single = tmp_path / "single.bin"
    single.write_bytes(b"12345")
    assert entries_of([single, tree / "empty folder"]) == [
        ("single.bin", "file", 5),
        ("empty folder", "dir", 0),
    ]


def test_scan_dot_uses_the_folder_name(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "2024" / "summer")
    assert entries_of([Path(".")]) == [("summer", "dir", 0), ("summer/beach.jpg", "file", 10)]


def test_scan_skips_symlinks_unless_followed(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"s" * 7)
    (tree / "link.txt").symlink_to(outside / "secret.txt")
    (tree / "linked dir").symlink_to(outside, target_is_directory=True)
    (tree / "dangling").symlink_to(tmp_path / "nowhere")

    plain = entries_of([tree])
    assert not any("link" in path or "dangling" in path for path, _, _ in plain)

    followed = entries_of([tree], follow=True)
    assert ("album/link.txt", "file", 7) in followed
    assert ("album/linked dir", "dir", 0) in followed
    assert ("album/linked dir/secret.txt", "file", 7) in followed
    assert not any("dangling" in path for path, _, _ in followed)


def test_top_level_symlink_needs_follow(tree: Path, tmp_path: Path) -> None:
    link = tmp_path / "shortcut"
    link.symlink_to(tree, target_is_directory=True)
    with pytest.raises(SourceError, match="follow-symlinks"):
        scan_sources([link])
    assert entries_of([link], follow=True)[0] == ("shortcut", "dir", 0)


@pytest.mark.timeout(10)
def test_symlink_loop_does_not_hang(tree: Path) -> None:
    (tree / "2024" / "summer" / "back to top").symlink_to(tree, target_is_directory=True)
    (tree / "self").symlink_to(tree / "self")  # a link to itself cannot be stat'ed
    followed = entries_of([tree], follow=True)
    paths = [path for path, _, _ in followed]
    assert len(paths) == len(set(paths))
    assert "album/2024/summer/beach.jpg" in paths
    assert not any(path.startswith("album/2024/summer/back to top/") for path in paths)


def test_two_paths_with_the_same_name_are_refused(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "report.pdf").write_bytes(b"x")
    with pytest.raises(SourceError, match=r"report\.pdf"):
        scan_sources([tmp_path / "a" / "report.pdf", tmp_path / "b" / "report.pdf"])


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"cannot read .*missing"):
        scan_sources([tmp_path / "missing"])


def test_special_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="not a regular file"):
        scan_sources([fifo])


def test_file_source_resumes_from_a_checked_prefix(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    source = FileSource(path)
    try:
        assert source.hash_prefix(100_000) == digest(data[:100_000])
        rest = bytearray(200_000)
        source.fill(memoryview(rest))  # goes on where the checked prefix ends
        assert rest == data[100_000:]
        assert source.hasher.hexdigest() == digest(data)  # prefix + rest, no second pass
        assert source.hash_prefix(len(data) + 1) == ""  # a prefix longer than the file
    finally:
        source.close()


def test_file_source_notices_a_shrunken_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    source = FileSource(path)
    try:
        os.truncate(path, 50)
        with pytest.raises(SourceError, match="changed while being sent"):
            source.fill(memoryview(bytearray(100)))
    finally:
        source.close()
