"""``receive --yes-trusted``: offers from a device that comes in on its pairing are accepted
without asking; a device meeting the receiver for the first time (it just typed the code)
is asked about, as the app's setting does."""

from __future__ import annotations

from pathlib import Path

from e2e.cli import CODE, CliProcess


def test_yes_trusted_accepts_a_paired_device_and_asks_about_a_new_one(tmp_path: Path) -> None:
    receiver = CliProcess(["--name", "laptop", "receive", "--dir", str(tmp_path / "inbox"),
                           "--yes-trusted", "--code", CODE, "--bind", "127.0.0.1",
                           "--no-announce", "--json"], tmp_path / "rx")
    note = tmp_path / "note.txt"
    note.write_text("hello\n")
    try:
        ticket = receiver.wait_for("ticket")["ticket"]
        first = CliProcess(["--name", "desk", "send", "--to", ticket, "--code", CODE, "--json",
                            str(note)], tmp_path / "tx")
        # New: it is asked about (and nobody can answer here, so it is declined).
        decision = first.wait_for("decision")
        assert decision["accepted"] is False
        assert decision["reason"] == "the receiver cannot be asked (no terminal); use --yes"
        assert first.wait() == 1
        assert first.wait_for("verified")["by"] == "code"  # but now both hold the pairing
        again = CliProcess(["--name", "desk", "send", "--to", ticket, "--json", str(note)],
                           tmp_path / "tx")
        assert again.wait_for("verified")["by"] == "pairing"
        assert again.wait_for("decision")["accepted"] is True
        assert again.wait() == 0
    finally:
        receiver.stop()
    assert (tmp_path / "inbox" / "note.txt").read_text() == "hello\n"
