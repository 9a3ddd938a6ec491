"""A text message as people send and read it: typed after ``--text`` or piped in, asked
about by its first line, shown in a box (pexpect), and a ``text`` event for scripts."""

from __future__ import annotations

from pathlib import Path

from e2e.cli import CODE, CliProcess, start_receiver
from e2e.terminal import Terminal, receiving_terminal


def test_a_text_goes_through_the_code_and_the_question_and_is_shown_in_a_box(
    tmp_path: Path,
) -> None:
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", "--once")
    message = "hello ✓\ncall me back \x1b[31mplease"
    sender = Terminal(tmp_path / "tx", "--name", "desk", "send", "--to", ticket,
                      "--text", message)
    try:
        # First contact: a text needs the code like files do.
        code = receiver.expect_line(r"Verification code:\s+(\d{3} \d{3})\s").group(1)
        sender.expect_line(r"Code shown on laptop: $")
        sender.child.sendline(code)
        # The question shows the first line and the size, nothing more of the text.
        receiver.expect_line(r"desk wants to send a text \(34 B\): hello ✓…\n")
        receiver.expect_line(r"Accept a text \(34 B\) from desk\? \[y/N\]: $")
        assert "call me back" not in receiver.text
        sender.expect_line(r"waiting for laptop to accept the text \(34 B\)…")
        receiver.child.sendline("y")
        receiver.expect_line(r"Text from desk")
        receiver.expect_line(r"│ hello ✓ +│")
        receiver.expect_line(r"│ call me back \?\[31mplease +│")  # no escape reaches the tty
        sender.expect_line(r"✓ text \(34 B\) delivered to laptop")
        assert sender.wait() == 0
        assert receiver.wait() == 0
    finally:
        sender.stop()
        receiver.stop()
    assert "\x1b[31m" not in receiver.seen
    sender.assert_clean()
    receiver.assert_clean()
    assert not (tmp_path / "inbox").exists() or not any((tmp_path / "inbox").iterdir())


def test_a_text_piped_in_arrives_as_a_text_event(tmp_path: Path) -> None:
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox", "--once")
    sender = CliProcess(["--name", "sender", "send", "--to", ticket, "--code", CODE, "--json",
                         "--text", "-"], tmp_path / "tx", stdin=True)
    try:
        assert sender.process.stdin is not None
        sender.process.stdin.write("line one ✓\n\tline two\n")
        sender.process.stdin.close()
        text = receiver.wait_for("text")
        assert text == {"event": "text", "session": text["session"], "from": "sender",
                        "text": "line one ✓\n\tline two", "via": "p2p-transfer"}
        offer = receiver.wait_for("offer")
        assert (offer["text"], offer["preview"], offer["files"]) == (True, "line one ✓…", 0)
        assert sender.wait() == 0 and receiver.wait() == 0
        done = sender.wait_for("done")
        assert done["ok"] and done["text"] and done["bytes_total"] == len(
            "line one ✓\n\tline two".encode()
        )
    finally:
        sender.stop()
        receiver.stop()
