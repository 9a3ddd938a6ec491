"""A text message as people send and read it: typed after ``--text`` or piped in, asked
about by its first line, shown plain under a header line (pexpect) so a copy from the
screen is the text, links as terminal hyperlinks, ``--copy`` to the clipboard, and a
``text`` event for scripts."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from e2e.cli import CODE, CliProcess, start_receiver
from e2e.terminal import Terminal, receiving_terminal


def test_a_text_goes_through_the_code_and_the_question_and_is_shown_plain(
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
        receiver.expect_line(r"Text from desk:\nhello ✓\ncall me back \?\[31mplease\n")
        assert "│" not in receiver.text  # no box: a copy from the screen is the text
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


#: A long link, as people send them (tracking parameters and all): 200 characters.
LONG_URL = "https://example.org/a/very/long/path?" + "&".join(
    f"k{i:02d}=v{i:02d}" for i in range(40)
)
LONG_URL = LONG_URL[:200]


def _receiving_a_text(tmp_path: Path, text: str, *extra: str) -> Terminal:
    """A person's ``receive`` that accepts (fixed code, --yes); a scripted sender sends
    ``text`` to it; returns the receiver's terminal once both ended."""
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", "--once",
                                          "--yes", "--code", CODE, *extra)
    sender = CliProcess(["--name", "desk", "send", "--to", ticket, "--code", CODE, "--json",
                         "--text", text], tmp_path / "tx")
    try:
        assert sender.wait() == 0
        assert receiver.wait() == 0
    finally:
        sender.stop()
        receiver.stop()
    receiver.assert_clean()
    return receiver


def test_a_long_link_is_shown_whole_on_one_line_and_is_a_link(tmp_path: Path) -> None:
    """Issue 23 (d): a 200-character URL on a 100-column screen is one logical line, the
    URL and nothing else, after a header line; the terminal gets it as a hyperlink."""
    assert len(LONG_URL) == 200
    receiver = _receiving_a_text(tmp_path, LONG_URL)
    lines = receiver.after(r"Text from desk:\n").splitlines()
    assert lines[0] == LONG_URL  # unbroken: no line break of ours inside, nothing around
    links = re.findall(r"\x1b\]8;[^;\x1b]*;([^\x1b\x07]*)\x1b\\", receiver.seen)
    assert LONG_URL in links  # OSC 8: the link goes where the text says
    assert "│" not in receiver.text and "╭" not in receiver.text


def test_copy_puts_the_text_on_the_clipboard_through_the_terminal(tmp_path: Path) -> None:
    text = "the wifi password is hunter2 \x1b]52;c;ZXZpbA==\x07"  # and an attempt to inject
    receiver = _receiving_a_text(tmp_path, text, "--copy")
    copied = re.findall(r"\x1b\]52;c;([A-Za-z0-9+/=]*)\x07", receiver.seen)
    # Only ours, the text as shown: its own escapes stay harmless on the clipboard too.
    assert [base64.b64decode(c).decode() for c in copied] == [
        text.replace("\x1b", "?").replace("\x07", "?")
    ]
    receiver.expect_line(r"copied to the clipboard through the terminal")
    # Shown, the text's own escape is harmless.
    receiver.expect_line(r"the wifi password is hunter2 \?\]52;c;ZXZpbA==\?")


def test_copy_with_json_is_refused_with_what_to_do(tmp_path: Path) -> None:
    receiver = CliProcess(["receive", "--copy", "--json"], tmp_path / "rx")
    try:
        assert receiver.wait() == 2
    finally:
        receiver.stop()
    assert "take the text from the text event" in "".join(receiver.stderr_lines)
