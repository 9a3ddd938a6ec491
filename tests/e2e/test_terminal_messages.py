"""What the terminal says at each step, read through real pseudo-terminals (pexpect):
tickets as pasted, damaged or mistyped; waiting for the other side; a file that got
another name; a file already there; the receiver's hints."""

from __future__ import annotations

import re
from pathlib import Path

from e2e.cli import CODE
from e2e.terminal import Terminal, receiving_terminal
from netns import Lab
from p2p_transfer.limits import CONNECT_TIMEOUT
from p2p_transfer.net import DamagedTicket, parse_ticket
from p2p_transfer.transfer.sender import UNREACHABLE_CAUSES

#: Seconds a send to nobody takes to give up: the connect deadline and the start-up.
GIVE_UP_TIMEOUT = CONNECT_TIMEOUT + 20




def _sending_terminal(home: Path, to: str, *paths: Path) -> Terminal:
    return Terminal(home, "--name", "desk", "send", "--to", to, "--code", CODE, *map(str, paths))


def _words(text: str) -> str:
    """Text as one line: a long message wraps at the terminal's width."""
    return " ".join(text.split())


def test_a_damaged_ticket_says_so_in_one_plain_sentence(tmp_path: Path) -> None:
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", "--code", CODE)
    receiver.stop()
    note = tmp_path / "note.txt"
    note.write_text("hello")
    # Cut short; a letter misread as a digit tickets never have.
    for damaged in (ticket[:-6], ticket[:40] + "0" + ticket[41:]):
        sender = _sending_terminal(tmp_path / "tx", damaged, note)
        assert sender.wait() == 1
        assert sender.text.strip() == (
            "error: this ticket is damaged — copy it again from the receiving device"
        ), sender.text


def test_a_wrapped_ticket_in_capitals_works_and_a_renamed_file_is_named_on_both_sides(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "report.txt").write_text("mine")
    source = tmp_path / "src" / "report.txt"
    source.parent.mkdir()
    source.write_text("theirs!")
    receiver, ticket = receiving_terminal(tmp_path / "rx", inbox, "--code", CODE, "--once")
    # As copied from a terminal that wrapped it, then typed in capitals by someone.
    pasted = f"  {ticket[:40]}\n{ticket[40:80]}\n  {ticket[80:]}\n".upper()
    sender = _sending_terminal(tmp_path / "tx", pasted, source)
    try:
        # The sender says whom it waits for, what it offered, and for how long.
        sender.expect_line(r"waiting for laptop to accept \(1 file, 7 B\)… \d:\d\d:\d\d")
        receiver.expect_line(r"desk offers 1 file, 7 B: report\.txt\n")
        receiver.expect_line(r"Accept 1 file, 7 B from desk\? \[y/N\]: $")
        receiver.child.sendline("y")
        sender.expect_line(r"✓ laptop accepted")
        for side in (sender, receiver):
            side.expect_line(r"report\.txt: saved as report \(1\)\.txt\n")
            side.expect_line(r"✓ 1 file, 7 B verified")
        assert sender.wait() == 0
        assert receiver.wait() == 0
    finally:
        sender.stop()
        receiver.stop()
    assert sender.text.count("connected (direct") == 1  # not once more for its data path
    assert (inbox / "report (1).txt").read_text() == "theirs!"
    assert (inbox / "report.txt").read_text() == "mine"


def test_a_file_already_there_is_skipped_and_both_sides_say_so(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("the same note\n")
    receiver, ticket = receiving_terminal(
        tmp_path / "rx", tmp_path / "inbox", "--code", CODE, "--yes"
    )
    try:
        first = _sending_terminal(tmp_path / "tx", ticket, note)
        assert first.wait() == 0
        again = _sending_terminal(tmp_path / "tx", ticket, note)
        assert again.wait() == 0
        receiver.expect_line(
            r"desk offers 1 file, 14 B: note\.txt \(1 already there: skipped if identical\)"
        )
        # The summary line ends with the inbox's path: it may wrap anywhere after it.
        receiver.expect_line(r"\(1\s+file\s+already\s+there,\s+identical:\s+skipped\)")
        for side in (again, receiver):
            side.expect_line(r"1 file \(14 B\) already there: skipped if identical\n")
            assert re.search(  # wrapped at the terminal's width on the receiver
                r"✓ 1 file, 14 B verified [^✓]* \(1 file already there, identical: skipped\)",
                _words(side.text),
            ), side.text
    finally:
        receiver.stop()
    assert "already there" not in first.text
    assert sorted(p.name for p in (tmp_path / "inbox").iterdir()) == ["note.txt"]


def _typo_in_the_id(ticket: str) -> str:
    """The ticket with one character of its endpoint ID changed so that it still decodes:
    another device's ID (not every change does: not every 32 bytes are a key)."""
    wanted = str(parse_ticket(ticket).id())
    for at in range(len("endpoint") + 4, len(ticket)):
        for letter in "ab":
            typo = ticket[:at] + letter + ticket[at + 1 :]
            try:
                addr = parse_ticket(typo)
            except DamagedTicket:
                continue
            if str(addr.id()) != wanted and addr.direct_addresses() == parse_ticket(
                ticket
            ).direct_addresses():
                return typo
    raise AssertionError("no one-letter typo of this ticket decodes")


def test_a_typo_in_the_tickets_id_says_whom_it_tries_and_why_it_may_fail(
    tmp_path: Path,
) -> None:
    receiver, ticket = receiving_terminal(
        tmp_path / "rx", tmp_path / "inbox", "--code", CODE, "--yes"
    )
    typo = _typo_in_the_id(ticket)
    wrong_id = str(parse_ticket(typo).id())[:10]
    note = tmp_path / "note.txt"
    note.write_text("hello")
    try:
        sender = _sending_terminal(tmp_path / "tx", typo, note)
        assert sender.wait(GIVE_UP_TIMEOUT) == 1
    finally:
        receiver.stop()
    # The device at the ticket's address proves another key, at once; a path that does
    # not get that far ends in the connect deadline. Either way: plain words and causes.
    why = (r"(another device answers at its address: is the ticket mistyped\?"
           rf"|no answer in {CONNECT_TIMEOUT:.0f} s)")
    said = _words(sender.text)
    assert re.fullmatch(
        rf"(trying to reach {wrong_id}… )?error: cannot reach {wrong_id}… \({why}\): "
        + re.escape(UNREACHABLE_CAUSES), said
    ), said
    assert "::" not in sender.text and "Error" not in sender.text
    assert "desk" not in receiver.text  # the receiver never heard of it


def test_the_name_hint_only_when_announced_on_the_lan(netns_lab: Lab, tmp_path: Path) -> None:
    (host,) = netns_lab.lan(1)
    for announce in (True, False):
        receiver = Terminal(
            tmp_path / "rx", "--name", "laptop", "receive", "--dir", str(tmp_path / "inbox"),
            "--bind", host.address, *(() if announce else ("--no-announce",)),
            inside=host.argv(),
        )
        try:
            # The HOST:PORT lines come last, after the hint if there is one.
            receiver.expect_line(rf"or: p2p-transfer send --to {re.escape(host.address)}:\d+")
            hint = "or, on this network: p2p-transfer send --to laptop FILE..."
            assert (hint in receiver.text) is announce, receiver.text
            receiver.ctrl_c()
            assert receiver.wait() == 130
        finally:
            receiver.stop()
