"""Issue 23 (e): a download folder that cannot take files is said at once when ``receive``
starts, and an offer of files is declined with that reason, which the sender sees: never
a question first, never "failed verification" after."""

from __future__ import annotations

from pathlib import Path

from e2e.cli import CODE, CliProcess
from e2e.terminal import receiving_terminal
from immutable import immutable_folder


def test_an_unwritable_folder_is_said_at_start_and_declines_offers(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hello\n")
    with immutable_folder(tmp_path / "inbox") as inbox:
        # --yes too: not even an offer accepted without asking may go to such a folder.
        receiver, ticket = receiving_terminal(tmp_path / "rx", inbox, "--once", "--yes",
                                              "--code", CODE)
        sender = CliProcess(["--name", "desk", "send", "--to", ticket, "--code", CODE,
                             "--json", str(note)], tmp_path / "tx")
        try:
            said = receiver.text.split("is ready to receive")[0]
            assert f"✗ download folder: cannot save into {inbox} (Operation not permitted)" \
                in said.replace("\n", " ")
            decision = sender.wait_for("decision")
            assert decision["accepted"] is False
            assert decision["reason"] == (
                "the receiver cannot save files: its download folder is not writable "
                "(Operation not permitted); its user must choose another folder or fix "
                "this one"
            )
            assert sender.wait() == 1
            receiver.expect_line(r"declined: the receiver cannot save files")
            assert receiver.wait() == 1
        finally:
            sender.stop()
            receiver.stop()
        assert "failed verification" not in receiver.text
        assert "Accept 1 file" not in receiver.text
        assert not any(sender.named("progress"))
        receiver.assert_clean()
        assert list(inbox.iterdir()) == []
