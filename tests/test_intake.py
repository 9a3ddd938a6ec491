"""What the receiver finds of an offer before deciding on it: what it holds, what the
offer would add (files, folders, inodes), and why it would not fit."""

from __future__ import annotations

from pathlib import Path

from p2p_transfer.disk import TargetFolder
from p2p_transfer.limits import ENTRY_DISK_COST
from p2p_transfer.protocol import Entry, Manifest
from p2p_transfer.transfer.intake import PreparedOffer


def _manifest(*entries: Entry) -> Manifest:
    manifest = Manifest()
    for entry in entries:
        manifest.append(entry)
    return manifest


def _file(path: str, size: int) -> Entry:
    return Entry(path, "file", size, 0o644, 0.0)


def _folder(path: str) -> Entry:
    return Entry(path, "dir", 0, 0o755, 0.0)


def test_a_new_tree_counts_every_file_and_folder_also_those_not_listed(tmp_path: Path) -> None:
    manifest = _manifest(
        _folder("album"), _file("album/a.jpg", 10), _file("album/2024/deep/b.jpg", 20),
    )
    prepared = PreparedOffer.survey(TargetFolder(tmp_path), manifest)
    # album, album/2024, album/2024/deep (made to write b.jpg), and the two files
    assert prepared.new_entries == 5
    assert prepared.needed_bytes == 30 and prepared.resume == {}
    assert list(tmp_path.iterdir()) == []  # nothing made while looking


def test_what_is_held_counts_neither_bytes_nor_entries(tmp_path: Path) -> None:
    (tmp_path / "album").mkdir()
    (tmp_path / "album" / "a.jpg").write_bytes(b"x" * 10)  # identical size: held
    (tmp_path / "album" / "b.jpg.part").write_bytes(b"y" * 5)  # a part to resume
    manifest = _manifest(
        _folder("album"), _file("album/a.jpg", 10), _file("album/b.jpg", 20),
        _file("album/c.jpg", 30),
    )
    prepared = PreparedOffer.survey(TargetFolder(tmp_path), manifest)
    assert sorted(prepared.resume) == [1, 2]
    assert prepared.held_bytes == 15 and prepared.needed_bytes == 45
    assert prepared.new_entries == 1  # c.jpg only
    assert prepared.shortage(max_size=45 + ENTRY_DISK_COST) == ""
    assert prepared.shortage(max_size=45) == (
        f"offer of {45 + ENTRY_DISK_COST} bytes: 45 of data and 1 new files and folders at "
        f"{ENTRY_DISK_COST} bytes each exceeds the receiver's limit of 45 bytes"
    )


def test_folders_are_made_only_when_asked(tmp_path: Path) -> None:
    prepared = PreparedOffer.survey(
        TargetFolder(tmp_path), _manifest(_folder("a"), _folder("a/b"), _folder("c"))
    )
    assert prepared.new_entries == 3
    prepared.make_folders()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "a", "a/b", "c",
    ]
