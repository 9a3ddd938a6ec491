"""One ``send`` to several receivers, each its own session: the files reach every one,
a decline of one leaves the others whole, codes are asked one after the other naming
the device, and the summary says how it went for each (pexpect and JSON)."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import assert_same_tree, make_tree
from e2e.cli import CODE, CliProcess, start_receiver
from e2e.terminal import Terminal
from p2p_transfer.cli.render import counted
from p2p_transfer.units import format_size


def _named_receiver(home: Path, name: str, inbox: Path, *extra: str) -> tuple[CliProcess, str]:
    """A JSON receiver called ``name`` on loopback; returns it and its ticket."""
    receiver = CliProcess(["--name", name, "receive", "--dir", str(inbox), "--bind",
                           "127.0.0.1", "--no-announce", "--no-localsend", "--json", *extra], home)
    return receiver, receiver.wait_for("ticket")["ticket"]


def test_one_send_delivers_a_folder_byte_identical_to_two_receivers(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    first, first_ticket = start_receiver(tmp_path / "rx1", tmp_path / "inbox1", "--once",
                                         "--no-localsend")
    second, second_ticket = start_receiver(tmp_path / "rx2", tmp_path / "inbox2", "--once",
                                           "--no-localsend")
    sender = CliProcess(["--name", "sender", "send", "--to", first_ticket, "--to", second_ticket,
                         "--code", CODE, "--json", str(tree)], tmp_path / "tx")
    try:
        assert sender.wait() == 0, sender.stderr_lines
        assert first.wait() == 0 and second.wait() == 0
    finally:
        for process in (sender, first, second):
            process.stop()
    assert_same_tree(tree, tmp_path / "inbox1" / "tree")
    assert_same_tree(tree, tmp_path / "inbox2" / "tree")
    # Each receiver was its own session, and the summary names both, in the order given.
    (summary,) = sender.named("summary")
    files = sum(1 for p in tree.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    assert summary["ok"] is True
    assert [r["to"] for r in summary["receivers"]] == [first_ticket, second_ticket]
    assert [(r["state"], r["files"], r["bytes"], r["peer_name"]) for r in summary["receivers"]] \
        == [("done", files, size, "receiver")] * 2
    sessions = {r["session"] for r in summary["receivers"]}
    assert len(sessions) == 2
    assert {e["session"] for e in sender.named("done")} == sessions


def test_one_receiver_declines_the_other_gets_everything_and_the_exit_code_says_so(
    tmp_path: Path,
) -> None:
    tree = make_tree(tmp_path / "src")
    willing, willing_ticket = _named_receiver(tmp_path / "rx1", "alpha", tmp_path / "inbox1",
                                              "--yes", "--code", CODE, "--once")
    # No terminal and no --yes: this receiver cannot ask anyone, so it declines.
    unwilling, unwilling_ticket = _named_receiver(tmp_path / "rx2", "beta", tmp_path / "inbox2",
                                                  "--code", CODE, "--once")
    sender = CliProcess(["--name", "desk", "send", "--to", willing_ticket, "--to",
                         unwilling_ticket, "--code", CODE, "--json", str(tree)], tmp_path / "tx")
    try:
        assert sender.wait() == 1  # not every receiver got every file
    finally:
        for process in (sender, willing, unwilling):
            process.stop()
    assert_same_tree(tree, tmp_path / "inbox1" / "tree")
    assert not (tmp_path / "inbox2" / "tree").exists()
    (summary,) = sender.named("summary")
    assert summary["ok"] is False
    alpha, beta = summary["receivers"]
    assert (alpha["peer_name"], alpha["state"], alpha["message"]) == ("alpha", "done", "")
    assert (beta["peer_name"], beta["state"]) == ("beta", "declined")
    assert beta["message"] == "the receiver cannot be asked (no terminal); use --yes"


def test_the_summary_lines_on_the_terminal_after_a_decline(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    willing, willing_ticket = _named_receiver(tmp_path / "rx1", "alpha", tmp_path / "inbox1",
                                              "--yes", "--code", CODE, "--once")
    unwilling = Terminal(tmp_path / "rx2", "--name", "beta", "receive", "--dir",
                         str(tmp_path / "inbox2"), "--code", CODE, "--bind", "127.0.0.1",
                         "--no-announce", "--no-localsend", "--once")
    unwilling_ticket = unwilling.expect_line(r"send --to (endpoint[a-z0-9]+) FILE").group(1)
    sender = Terminal(tmp_path / "tx", "--name", "desk", "send", "--to", willing_ticket,
                      "--to", unwilling_ticket, "--code", CODE, str(tree))
    files = counted(sum(1 for p in tree.rglob("*") if p.is_file()), "file")
    size = format_size(sum(p.stat().st_size for p in tree.rglob("*") if p.is_file()))
    try:
        unwilling.expect_line(rf"Accept {files}, {re.escape(size)} from desk\? \[y/N\]: $")
        unwilling.child.sendline("n")
        assert sender.wait() == 1
        assert unwilling.wait() == 1
        assert willing.wait() == 0
    finally:
        for process in (sender, unwilling, willing):
            process.stop()
    summary = [line.strip() for line in sender.after(r"receivers got everything:\n").splitlines()
               if line.strip()]
    assert "1 of 2 receivers got everything:" in sender.text
    assert summary == [f"✓ alpha: {files}, {size}", "✗ beta: declined by the receiver"]
    # While it ran, each line about one receiver said which (alpha's bars may be redrawn
    # just before a line printed above them: the lines are found by their ends).
    assert re.search(r"beta: declined by the receiver$", sender.text, re.M)
    assert "declined: declined" not in sender.text  # said once
    assert re.search(rf"alpha: ✓ {files}, {re.escape(size)} verified in", sender.text)
    sender.assert_clean()
    assert_same_tree(tree, tmp_path / "inbox1" / "tree")


def _note_to_two_receivers(
    tmp_path: Path, names: tuple[str, str]
) -> tuple[tuple[CliProcess, ...], Terminal]:
    """Two first-contact receivers (``--yes --once``) named ``names``, and a person's
    ``send`` of a note to both, its codes not yet typed."""
    note = tmp_path / "note.txt"
    note.write_text("to both\n")
    receivers, tickets = zip(*(
        _named_receiver(tmp_path / name, name, tmp_path / f"in-{name}", "--yes", "--once")
        for name in names
    ), strict=True)
    sender = Terminal(tmp_path / "tx", "--name", "desk", "send", "--to", tickets[0], "--to",
                      tickets[1], str(note))
    return receivers, sender


def test_codes_are_asked_one_after_the_other_naming_the_device(tmp_path: Path) -> None:
    names = ("alpha", "beta")
    receivers, sender = _note_to_two_receivers(tmp_path, names)
    try:
        codes = {
            name: receiver.wait_for("code")["code"]
            for name, receiver in zip(names, receivers, strict=True)
        }
        first = sender.expect_line(r"Code shown on (alpha|beta): $").group(1)
        # Both receivers show a code now, yet only one question is on the screen.
        assert sender.text.count("Code shown on") == 1
        sender.child.sendline(codes[first])
        other = "beta" if first == "alpha" else "alpha"
        sender.expect_line(rf"Code shown on {other}: $")
        asked = sender.text  # the second question came after the first was answered
        answered = asked.index(f"Code shown on {first}: {codes[first]}\n")
        assert asked.index(f"Code shown on {other}") > answered
        sender.child.sendline(codes[other])
        assert sender.wait() == 0
        for receiver in receivers:
            assert receiver.wait() == 0
    finally:
        sender.stop()
        for receiver in receivers:
            receiver.stop()
    for name in ("alpha", "beta"):
        assert (tmp_path / f"in-{name}" / "note.txt").read_text() == "to both\n"
    assert "2 of 2 receivers got everything:" in sender.text


def test_ctrl_c_at_a_code_prompt_cancels_every_receiver_with_a_line_each(
    tmp_path: Path,
) -> None:
    receivers, sender = _note_to_two_receivers(tmp_path, ("alpha", "beta"))
    try:
        for receiver in receivers:  # both connected: no line of a connection still to come
            receiver.wait_for("code")
        asked = sender.expect_line(r"Code shown on (alpha|beta): $").group(1)
        sender.ctrl_c()
        assert sender.wait() == 130
        for receiver in receivers:
            state = receiver.wait_for("state", lambda e: e["state"] == "cancelled")
            assert state["message"] == "desk cancelled"
    finally:
        sender.stop()
        for receiver in receivers:
            receiver.stop()
    # The question's line ends at ^C; then a line for each receiver, none run together.
    said = [line for line in sender.after(r"\^C").splitlines() if line.strip()]
    assert len(said) == 2 and all(line.endswith(": ✗ cancelled") for line in said), said
    assert f"{asked}: ✗ cancelled" in said
    assert sender.text.count("Code shown on") == 1
    sender.assert_clean()
