"""Whether a folder can take received files is found out by trying, as root too."""

from __future__ import annotations

from pathlib import Path

from immutable import immutable_folder
from p2p_transfer.disk.writable import PROBE_PREFIX, write_problem


def test_a_folder_that_takes_files_has_no_problem_and_keeps_no_probe(tmp_path: Path) -> None:
    assert write_problem(tmp_path) == ""
    assert write_problem(tmp_path / "not" / "made" / "yet") == ""  # its parent is tried
    assert not any(p.name.startswith(PROBE_PREFIX) for p in tmp_path.iterdir())
    assert not (tmp_path / "not").exists()  # nothing made on the way


def test_an_immutable_folder_is_not_writable_even_for_root(tmp_path: Path) -> None:
    with immutable_folder(tmp_path / "inbox") as inbox:
        assert write_problem(inbox) == "Operation not permitted"
        assert write_problem(inbox / "sub") == "Operation not permitted"


def test_a_file_in_the_way_is_named(tmp_path: Path) -> None:
    (tmp_path / "inbox").write_text("a file, not a folder")
    assert write_problem(tmp_path / "inbox" / "sub") == "inbox is not a folder"
