"""First contact as a person sees it in two real terminals (pexpect): the code as the
receiver shows it, typed the way people type it, a wrong one retried in place, and
Ctrl-C at either prompt."""

from __future__ import annotations

import re
from pathlib import Path

from e2e.cli import CODE, start_receiver, start_sender
from e2e.terminal import Terminal, receiving_terminal
from p2p_transfer.limits import MAX_WRONG_CODES


def _sending_terminal(home: Path, ticket: str, source: Path) -> Terminal:
    return Terminal(home, "--name", "desk", "send", "--to", ticket, str(source))


def _note(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "note.txt"
    path.write_text("first contact\n")
    return path


def _shown_code(receiver: Terminal) -> str:
    """The code as the receiving terminal shows it: two groups of three digits."""
    return receiver.expect_line(r"Verification code:\s+(\d{3} \d{3})\s").group(1)


def _full_width(digits: str) -> str:
    """``123`` as ``１２３``."""
    return "".join(chr(ord(d) - ord("0") + ord("０")) for d in digits)


def test_a_code_typed_as_shown_with_its_space_works(tmp_path: Path) -> None:
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", "--yes", "--once")
    sender = _sending_terminal(tmp_path / "tx", ticket, _note(tmp_path / "src"))
    try:
        shown = _shown_code(receiver)
        receiver.expect_line(r"desk \(\w{10}…\) wants to connect")
        sender.expect_line(r"Code shown on laptop: $")
        sender.child.sendline(shown)  # "026 767", as read off the other screen
        sender.expect_line(r"✓ laptop: verified by code")
        receiver.expect_line(r"✓ desk: verified by code")
        sender.expect_line(r"✓ 1 file, .* verified")
        assert sender.wait() == 0
        assert receiver.wait() == 0
    finally:
        sender.stop()
        receiver.stop()
    assert (tmp_path / "inbox" / "note.txt").read_text() == "first contact\n"
    assert "wrong" not in sender.text


def test_a_wrong_code_is_asked_again_and_the_right_one_then_works(tmp_path: Path) -> None:
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", "--yes", "--once")
    sender = _sending_terminal(tmp_path / "tx", ticket, _note(tmp_path / "src"))
    try:
        shown = _shown_code(receiver)
        wrong = "000 000" if shown != "000 000" else "111 111"
        sender.expect_line(r"Code shown on laptop: $")
        sender.child.sendline(wrong)
        # The same connection: the sender is asked again, the receiver keeps its code.
        sender.expect_line(r"✗ That code was wrong\.")
        sender.expect_line(rf"Code shown on laptop \(attempt 2 of {MAX_WRONG_CODES}\): $")
        receiver.expect_line(
            rf"✗ desk typed a wrong code; waiting for attempt 2 of {MAX_WRONG_CODES} "
            rf"\(the code is still {shown}\)"
        )
        sender.child.sendline(shown.replace(" ", "-"))  # "026-767" works too
        sender.expect_line(r"✓ laptop: verified by code")
        sender.expect_line(r"✓ 1 file, .* verified")
        assert sender.wait() == 0
        assert receiver.wait() == 0
    finally:
        sender.stop()
        receiver.stop()
    assert (tmp_path / "inbox" / "note.txt").exists()
    # One code for the whole conversation, shown once in full.
    assert receiver.text.count("wants to connect") == 1
    assert re.findall(r"Verification code:\s+(\d{3} \d{3})", receiver.text) == [shown]
    for terminal in (sender, receiver):
        assert "error" not in terminal.text, terminal.text


def test_ctrl_c_at_the_code_prompt_exits_130_and_tells_the_receiver(tmp_path: Path) -> None:
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", "--yes")
    sender = _sending_terminal(tmp_path / "tx", ticket, _note(tmp_path / "src"))
    try:
        _shown_code(receiver)
        sender.expect_line(r"Code shown on laptop: $")
        sender.ctrl_c()
        assert sender.wait() == 130
        receiver.expect_line(r"✗ cancelled by desk")
    finally:
        sender.stop()
        receiver.stop()
    sender.assert_clean()
    assert sender.text.count("cancelled") == 1, sender.text
    assert sender.text.rstrip().endswith("✗ cancelled"), sender.text


def test_ctrl_c_at_the_accept_prompt_exits_130_and_tells_the_sender(tmp_path: Path) -> None:
    grouped = f"{CODE[:3]}-{CODE[3:]}"  # --code takes a code written as people write it
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", "--code", grouped)
    sender = start_sender(tmp_path / "tx", ticket, _note(tmp_path / "src"))
    try:
        receiver.expect_line(r"Accept 1 file, 14 B from sender\? \[y/N\]: $")
        receiver.ctrl_c()
        assert receiver.wait() == 130
        ended = sender.wait_for("state", lambda e: e["state"] in ("cancelled", "failed"))
        assert (ended["state"], ended["by"]) == ("cancelled", "peer"), ended
    finally:
        sender.stop()
        receiver.stop()
    receiver.assert_clean()
    assert receiver.text.count("cancelled") == 1, receiver.text
    assert not (tmp_path / "inbox" / "note.txt").exists()


def test_a_json_receiver_reports_the_code_as_digits_and_each_attempt(tmp_path: Path) -> None:
    """Scripts read the bare digits, and a second ``code`` event for the retry."""
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox")
    sender = _sending_terminal(tmp_path / "tx", ticket, _note(tmp_path / "src"))
    try:
        sender.expect_line(r"Code shown on receiver: $")
        sender.child.sendline("000000" if CODE != "000000" else "111111")
        sender.expect_line(r"\(attempt 2 of \d\): $")
        sender.child.sendline(_full_width(CODE))  # as a CJK keyboard types it
        assert sender.wait() == 0
        codes = receiver.named("code")
    finally:
        sender.stop()
        receiver.stop()
    assert [(c["code"], c["attempt"], c["max_attempts"]) for c in codes] == [
        (CODE, 1, MAX_WRONG_CODES), (CODE, 2, MAX_WRONG_CODES),
    ]


def test_prompts_left_without_an_answer_are_no_wrong_codes(tmp_path: Path) -> None:
    """Issue 23 (f): a prompt closed (Ctrl-D) and one interrupted (Ctrl-C), then the right
    code: accepted as attempt 1; nobody is told a wrong code was typed."""
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", "--yes")
    source = _note(tmp_path / "src")
    try:
        closed = _sending_terminal(tmp_path / "tx", ticket, source)
        closed.expect_line(r"Code shown on laptop: $")
        closed.child.sendeof()
        assert closed.wait() == 1
        interrupted = _sending_terminal(tmp_path / "tx", ticket, source)
        interrupted.expect_line(r"Code shown on laptop: $")
        interrupted.ctrl_c()
        assert interrupted.wait() == 130
        sender = _sending_terminal(tmp_path / "tx", ticket, source)
        # The first prompt of this send says no attempt number: it is attempt 1.
        sender.expect_line(r"Code shown on laptop: $")
        receiver.expect_line(r"(?s:Verification code:.*){3}")
        shown = re.findall(r"Verification code:\s+(\d{3} \d{3})", receiver.text)
        sender.child.sendline(shown[-1])
        sender.expect_line(r"✓ laptop: verified by code")
        assert sender.wait() == 0
        receiver.expect_line(r"✓ 1 file, 14 B verified into")
    finally:
        receiver.stop()
    for terminal in (closed, interrupted, sender):
        assert "attempt" not in terminal.text and "wrong" not in terminal.text, terminal.text
        terminal.assert_clean()
    assert "wrong code" not in receiver.text
    assert "attempt" not in receiver.text  # each code was shown as a first attempt
    assert (tmp_path / "inbox" / "note.txt").read_text() == "first contact\n"
