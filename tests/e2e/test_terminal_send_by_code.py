"""A send by code as a person sees it (pexpect): the code, its QR, the waiting line and
the devices of this network to pick by number; ``receive CODE`` with a mistyped word;
``receive CODE --wait`` started before its sender (``send --code CODE``), and stopped
with Ctrl-C while it waits."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import CODE, CliProcess
from e2e.mailbox import MailboxServer, multicast_loopback, namespaces_available
from e2e.terminal import Terminal
from waiting import hold_for_blocking

#: A code chosen by the people on both sides (words of the list: nothing to correct).
CHOSEN = "7-guitarist-revenge"
#: How long after the receiver the sender starts (the scenario).
SENDER_LATER = 5.0

pytestmark = pytest.mark.skipif(not namespaces_available(), reason="needs root and ip")


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[tuple[list[str], MailboxServer]]:
    """A namespace with multicast on loopback, and a mailbox server inside it."""
    with multicast_loopback() as inside:
        server = MailboxServer(tmp_path / "mailbox", inside)
        try:
            yield inside, server
        finally:
            server.stop()


def _sender(home: Path, lan: tuple[list[str], MailboxServer], source: Path) -> Terminal:
    inside, mailbox = lan
    return Terminal(home, "--name", "desk", "send", "--mailbox", mailbox.url, "--relay", "off",
                    str(source), inside=inside)


def test_the_senders_screen_and_a_pick_by_number(
    tmp_path: Path, lan: tuple[list[str], MailboxServer]
) -> None:
    source = tmp_path / "note.txt"
    source.write_text("picked, not coded")
    inside, _ = lan
    receiver = subprocess.Popen(
        [*inside, sys.executable, "-m", "p2p_transfer", "--config-dir", str(tmp_path / "rx"),
         "--name", "laptop", "receive", "--dir", str(tmp_path / "inbox"), "--yes", "--code",
         CODE, "--relay", "off", "--no-localsend", "--once", "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        sender = _sender(tmp_path / "tx", lan, source)
        code = sender.expect_line(r"Code: (\d+-[a-z]+-[a-z]+)\n").group(1)
        sender.expect_line(rf"On the other device: p2p-transfer receive {code}\n")
        sender.expect_line(r"Waiting for the code to be used… \(Ctrl-C to cancel\)")
        assert "▀" in sender.text or "█" in sender.text  # the QR code, drawn above
        sender.expect_line(r"Or send to a device on this network: type its number and Enter\.")
        sender.expect_line(r"  1\. laptop\n")
        sender.child.sendline("1")
        sender.expect_line(r"Sending to laptop; the code is cancelled\.")
        sender.expect_line(r"Code shown on laptop")
        sender.child.sendline(CODE)
        sender.expect_line(r"✓ 1 file, \d+ B verified")
        assert sender.wait() == 0
        sender.assert_clean()
        assert receiver.wait(30) == 0
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    assert (tmp_path / "inbox" / "note.txt").read_text() == "picked, not coded"


def test_receive_with_a_mistyped_word_is_offered_the_right_one_then_told_plainly(
    tmp_path: Path, lan: tuple[list[str], MailboxServer]
) -> None:
    source = tmp_path / "note.txt"
    source.write_text("x")
    inside, mailbox = lan
    sender = _sender(tmp_path / "tx", lan, source)
    code = sender.expect_line(r"Code: (\d+-[a-z]+-[a-z]+)\n").group(1)
    number, first, second = code.split("-")
    typo = f"{number} {first[:-1].upper()} {second}"  # a letter short, spaces, capitals
    receiver = Terminal(tmp_path / "rx", "receive", typo, "--mailbox", mailbox.url, "--relay",
                        "off", "--dir", str(tmp_path / "inbox"), inside=inside)
    receiver.expect_line(
        rf"'{first[:-1]}' is not a word of a code; did you mean "
        rf"{number}-[a-z]+-{second}\? \[y/N\]: "
    )
    receiver.child.sendline("n")  # as typed, then: one guess, and it was wrong
    said = receiver.expect_line(r"error: ([\s\S]*?new\s+one)").group(1)
    assert " ".join(said.split()) == (  # one sentence, however the terminal wraps it
        f"wrong code: {number}-{first[:-1]}-{second} does not match the sender's, and it is "
        "used up now — ask for a new one"
    ), receiver.text
    assert receiver.wait() == 1
    sender.expect_line(rf"error: someone typed a wrong code: {code} is used up\s+now")
    assert sender.wait() == 1
    for side in (sender, receiver):
        side.assert_clean()


def test_receive_waits_for_a_sender_that_starts_later_with_the_code(
    tmp_path: Path, mailbox: MailboxServer
) -> None:
    """``receive 7-guitarist-revenge --wait 60`` first: it says whom it waits for and for how
    long; ``send --code 7-guitarist-revenge`` 5 s later, and the file arrives."""
    note = tmp_path / "note.txt"
    note.write_text("the receiver was first")
    inbox = tmp_path / "inbox"
    receiver = Terminal(tmp_path / "rx", "--name", "laptop", "receive", CHOSEN, "--wait", "60",
                        "--yes", "--mailbox", mailbox.url, "--relay", "off", "--dir", str(inbox))
    sender: CliProcess | None = None
    try:
        receiver.expect_line(
            rf"waiting for the sender of {CHOSEN} \(up to 1:00; Ctrl-C to stop\)…"
        )
        hold_for_blocking(SENDER_LATER)  # the scenario: the sender comes this much later
        assert receiver.child.isalive(), receiver.text
        sender = CliProcess(["--name", "desk", "send", "--code", CHOSEN, "--mailbox",
                             mailbox.url, "--relay", "off", "--json", str(note)], tmp_path / "tx")
        assert sender.wait_for("invite")["code"] == CHOSEN
        receiver.expect_line(r"code used; met through the code server")
        receiver.expect_line(r"✓ 1 file, \d+ B verified into")
        assert receiver.wait() == 0, receiver.text
        assert sender.wait(30) == 0, sender.stderr_lines
        receiver.assert_clean()
    finally:
        receiver.stop()
        if sender is not None:
            sender.stop()
    assert (inbox / "note.txt").read_text() == "the receiver was first"


def test_ctrl_c_while_receive_waits_for_the_sender_exits_130(
    tmp_path: Path, mailbox: MailboxServer
) -> None:
    receiver = Terminal(tmp_path / "rx", "receive", CHOSEN, "--wait", "10m", "--mailbox",
                        mailbox.url, "--relay", "off", "--dir", str(tmp_path / "inbox"))
    try:
        receiver.expect_line(rf"waiting for the sender of {CHOSEN} \(up to 10:00; Ctrl-C")
        receiver.ctrl_c()
        assert receiver.wait() == 130, receiver.text
        assert receiver.after(r"Ctrl-C to stop\)…").strip().endswith("stopped"), receiver.text
        receiver.assert_clean()
    finally:
        receiver.stop()
