"""What a person reads in a terminal, through a real pseudo-terminal (pexpect)."""

from __future__ import annotations

import os
from pathlib import Path

from e2e.cli import CODE, CliProcess, start_sender
from e2e.terminal import Terminal
from p2p_transfer.limits import MiB

#: Large enough to be mid-file when Ctrl-C is pressed.
FILE_SIZE = 256 * MiB


def _receiving_terminal(home: Path, inbox: Path) -> tuple[Terminal, str]:
    """``receive`` for a person, on loopback; returns it and the ticket it prints."""
    terminal = Terminal(home, "--name", "laptop", "receive", "--dir", str(inbox), "--yes",
                        "--code", CODE, "--bind", "127.0.0.1", "--no-announce")
    ticket = terminal.expect_line(r"send --to (endpoint[a-z0-9]+) FILE").group(1)
    return terminal, ticket


def _big_file(folder: Path) -> Path:
    path = folder / "big.bin"
    with path.open("wb") as out:
        for _ in range(FILE_SIZE // (16 * MiB)):
            out.write(os.urandom(16 * MiB))
    return path


def test_receiver_reads_who_cancelled(tmp_path: Path) -> None:
    receiver, ticket = _receiving_terminal(tmp_path / "rx", tmp_path / "inbox")
    try:
        sender = start_sender(tmp_path / "tx", ticket, _big_file(tmp_path),
                              extra=("--transport", "quic"))
        sender.wait_for("progress", lambda e: e["bytes_done"] > 0)
        sender.process.send_signal(2)  # the sending user presses Ctrl-C
        assert sender.wait() == 130
        receiver.expect_line(r"✗ cancelled by sender")
        assert "error" not in receiver.text
    finally:
        receiver.stop()


def test_ctrl_c_on_the_receiver_says_cancelled_once_and_exits_130(tmp_path: Path) -> None:
    receiver, ticket = _receiving_terminal(tmp_path / "rx", tmp_path / "inbox")
    try:
        sender = start_sender(tmp_path / "tx", ticket, _big_file(tmp_path),
                              extra=("--transport", "quic"))
        sender.wait_for("progress", lambda e: e["bytes_done"] > 0)
        receiver.expect_line(r"Receiving")
        receiver.ctrl_c()
        assert receiver.wait() == 130
        assert receiver.text.count("cancelled") == 1, receiver.text
        assert "Traceback" not in receiver.text
        ended = sender.wait_for("state", lambda e: e["state"] == "cancelled")
        assert (ended["by"], ended["peer_name"]) == ("peer", "laptop")
    finally:
        receiver.stop()


def test_names_that_would_lie_show_as_they_are(tmp_path: Path) -> None:
    """A sender named ``\u202eevil\u200b`` sends ``\u202egnp.exe`` (which would show as if
    it ended in ``.png``): the receiving person reads ``evil`` and ``gnp.exe``, and no
    format character reaches the screen."""
    receiver, ticket = _receiving_terminal(tmp_path / "rx", tmp_path / "inbox")
    try:
        payload = tmp_path / "\u202egnp.exe"
        payload.write_text("an executable")
        sender = CliProcess(
            ["--name", "\u202eevil\u200b", "send", "--to", ticket, "--code", CODE, "--json",
             str(payload)],
            tmp_path / "tx",
        )
        assert sender.wait() == 0, sender.stderr_lines
        receiver.expect_line(r"evil \(")
        receiver.expect_line(r"gnp\.exe")
        assert not {"\u202e", "\u200b"} & set(receiver.text), receiver.text
        assert (tmp_path / "inbox" / "gnp.exe").read_text() == "an executable"
    finally:
        receiver.stop()
