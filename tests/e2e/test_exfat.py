"""Receiving onto a real exFAT file system (a USB stick's): no hard links, and names
with ``?`` refused. Real ``receive`` and ``send`` processes; the browser share's
upload onto exFAT is in test_share_browser.py."""

from __future__ import annotations

import os
from pathlib import Path

from e2e.cli import start_receiver, start_sender
from p2p_transfer.limits import MiB

#: Issue 11's folder: one big file, many small ones and a name FAT forbids.
BIG_FILE_SIZE = 64 * MiB
SMALL_FILES = 200


def _album(root: Path) -> Path:
    album = root / "album"
    (album / "small").mkdir(parents=True)
    with (album / "big.bin").open("wb") as out:
        for _ in range(BIG_FILE_SIZE // (4 * MiB)):
            out.write(os.urandom(4 * MiB))
    for index in range(SMALL_FILES):
        (album / "small" / f"{index:03}.txt").write_bytes(os.urandom(index * 37))
    (album / "what?.txt").write_text("a question\n")
    return album


def test_a_folder_received_onto_exfat_arrives_whole_and_never_overwrites(
    exfat: Path, tmp_path: Path
) -> None:
    album = _album(tmp_path / "src")
    receiver, ticket = start_receiver(tmp_path / "rx", exfat)
    try:
        sender = start_sender(tmp_path / "tx", ticket, album)
        assert sender.wait(120) == 0, sender.stderr_lines
        receiver.wait_for("done", lambda e: e["ok"], timeout=60)
        done = {e["saved_as"] or e["path"] for e in receiver.named("file_done")}
        assert len(done) == SMALL_FILES + 2
        assert "album/what_.txt" in done  # the name exFAT took, as reported
        # ... to the sender too, which can say it.
        assert {"path": "album/what?.txt", "saved_as": "album/what_.txt"}.items() <= next(
            e for e in sender.named("file_done") if e["saved_as"]
        ).items()
        assert (exfat / "album" / "big.bin").read_bytes() == (album / "big.bin").read_bytes()
        for index in range(SMALL_FILES):
            name = f"small/{index:03}.txt"
            assert (exfat / "album" / name).read_bytes() == (album / name).read_bytes()
        assert (exfat / "album" / "what_.txt").read_bytes() == b"a question\n"

        other = tmp_path / "other" / "album"
        other.mkdir(parents=True)
        (other / "what?.txt").write_text("a different question, same name\n")
        again = start_sender(tmp_path / "tx", ticket, other)
        assert again.wait(60) == 0, again.stderr_lines
        receiver.wait_for("file_done", lambda e: e["saved_as"] == "album/what_ (1).txt")
    finally:
        receiver.stop()
    assert (exfat / "album" / "what_.txt").read_bytes() == b"a question\n"
    assert (exfat / "album" / "what_ (1).txt").read_text() == "a different question, same name\n"
    assert not [p for p in (exfat / "album").rglob("*") if p.name.endswith(".part")]
