"""``send`` without ``--to`` prints a short code; ``receive CODE`` takes what it brings,
through a real magic-wormhole mailbox server on loopback, over our own path. With
``--wait`` the receiver may come first, and the sender then uses the same code
(``send --code CODE``): through the server, or on the LAN when it has none."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from e2e.cli import CliProcess, throttled
from e2e.mailbox import MailboxServer, multicast_loopback, namespaces_available
from p2p_transfer.limits import LAN_CODE_SEARCH, MiB
from waiting import hold_for_blocking

#: The big file of the folder test, and how many small ones go with it.
BIG_FILE_SIZE = 64 * MiB
SMALL_FILES = 120
#: A wrong code must be told on both sides within this many seconds.
WRONG_CODE_LIMIT = 5.0
#: What starting a receiving process may take on a loaded 2-core machine.
STARTUP_ALLOWANCE = 10.0


def _send(home: Path, mailbox: MailboxServer, *args: str) -> CliProcess:
    return CliProcess(
        ["--name", "desk", "send", "--mailbox", mailbox.url, "--relay", "off", "--json", *args],
        home,
    )


def _receive(home: Path, mailbox: MailboxServer, code: str, target: Path,
             *args: str) -> CliProcess:
    return CliProcess(
        ["--name", "laptop", "receive", code, "--mailbox", mailbox.url, "--dir", str(target),
         "--yes", "--json", *args],
        home,
    )


def _folder(root: Path) -> Path:
    folder = root / "photos"
    (folder / "small").mkdir(parents=True)
    for i in range(SMALL_FILES):
        (folder / "small" / f"{i:03}.txt").write_bytes(os.urandom(100 + i))
    with (folder / "big.bin").open("wb") as out:
        for _ in range(BIG_FILE_SIZE // (8 * MiB)):
            out.write(os.urandom(8 * MiB))
    return folder


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


def test_a_folder_by_code_arrives_whole_over_our_path(tmp_path: Path,
                                                      mailbox: MailboxServer) -> None:
    folder = _folder(tmp_path)
    sender = _send(tmp_path / "tx", mailbox, str(folder))
    try:
        invite = sender.wait_for("invite")
        assert sender.events[0]["event"] == "invite"  # the code is what a script reads first
        assert invite["via"] == "mailbox" and invite["server"] == "127.0.0.1"
        receiver = _receive(tmp_path / "rx", mailbox, invite["code"], tmp_path / "inbox")
        assert receiver.wait(120) == 0, receiver.stderr_lines
        assert sender.wait(60) == 0, sender.stderr_lines
    finally:
        sender.stop()
    assert _tree(tmp_path / "inbox" / "photos") == _tree(folder)
    for side in (sender, receiver):
        assert side.wait_for("rendezvous")["peer"] == "p2p-transfer"
        assert side.wait_for("connection")["path"] == "direct"  # our own path, not wormhole's
        assert side.wait_for("verified")["by"] == "short-code"
    assert not receiver.named("code")  # no 6-digit code shown, none asked
    assert not (tmp_path / "rx" / "pairings.json").exists() or "desk" not in (
        tmp_path / "rx" / "pairings.json").read_text()


def test_ctrl_c_mid_file_then_the_same_send_gets_a_new_code_and_resumes(
    tmp_path: Path, mailbox: MailboxServer
) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    source = folder / "big.bin"
    with source.open("wb") as out:
        for _ in range(BIG_FILE_SIZE // (8 * MiB)):
            out.write(os.urandom(8 * MiB))
    first = _send(tmp_path / "tx", mailbox, "--transport", "quic", "--parallel", "1",
                  str(source))
    code = first.wait_for("invite")["code"]
    receiver = _receive(tmp_path / "rx", mailbox, code, tmp_path / "inbox")
    try:
        with throttled(first.process.pid):
            first.wait_for("progress", lambda e: e["bytes_done"] >= BIG_FILE_SIZE // 4)
            first.process.send_signal(signal.SIGINT)
            assert first.wait() == 130
        assert receiver.wait() != 0
    finally:
        first.stop()
        receiver.stop()
    assert (tmp_path / "inbox" / "big.bin.part").exists()

    again = _send(tmp_path / "tx", mailbox, str(source))
    new_code = again.wait_for("invite")["code"]
    assert new_code != code
    second = _receive(tmp_path / "rx", mailbox, new_code, tmp_path / "inbox")
    try:
        assert second.wait(120) == 0, second.stderr_lines
        assert again.wait(60) == 0, again.stderr_lines
    finally:
        again.stop()
    resumed = second.wait_for("resume")
    assert resumed["bytes"] >= BIG_FILE_SIZE // 4
    done = again.wait_for("done")
    assert 0 < done["bytes_transferred"] <= BIG_FILE_SIZE - resumed["bytes"]
    assert (tmp_path / "inbox" / "big.bin").read_bytes() == source.read_bytes()


def test_a_wrong_code_fails_both_sides_at_once_and_burns_the_code(
    tmp_path: Path, mailbox: MailboxServer
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("for the right person only")
    sender = _send(tmp_path / "tx", mailbox, str(note))
    try:
        code = sender.wait_for("invite")["code"]
        nameplate = code.split("-")[0]
        wrong = _receive(tmp_path / "rx", mailbox, f"{nameplate}-wrong-words",
                         tmp_path / "inbox")
        # Its start-up (a loaded machine's Python and iroh) aside, the guess fails at once...
        assert wrong.wait(WRONG_CODE_LIMIT + STARTUP_ALLOWANCE) == 1
        # ...and the sender is told within the limit.
        assert sender.wait(WRONG_CODE_LIMIT) == 1
        (told,) = wrong.named("error")
        assert told["message"].startswith(f"wrong code: {nameplate}-wrong-words does not match")
        said = sender.wait_for("error")["message"]
        assert said.startswith(f"someone typed a wrong code: {code} is used up now")
        assert sender.wait_for("state", lambda e: e["state"] == "failed")

        # The right code, now: nobody sends with it any more.
        late = _receive(tmp_path / "rx2", mailbox, code, tmp_path / "inbox")
        assert late.wait(30) == 1
        said = late.wait_for("error")["message"]
        assert said.startswith(f"no one is sending with the code {code}"), said
    finally:
        sender.stop()
    assert not (tmp_path / "inbox").exists() or not any((tmp_path / "inbox").iterdir())


def test_a_text_by_code(tmp_path: Path, mailbox: MailboxServer) -> None:
    sender = _send(tmp_path / "tx", mailbox, "--text", "the wifi password is hunter2")
    try:
        code = sender.wait_for("invite")["code"]
        receiver = _receive(tmp_path / "rx", mailbox, code.upper().replace("-", " "),
                            tmp_path / "inbox")
        assert receiver.wait(60) == 0, receiver.stderr_lines
        assert sender.wait(30) == 0
    finally:
        sender.stop()
    assert receiver.wait_for("text")["text"] == "the wifi password is hunter2"


def test_an_unreachable_code_server_is_one_plain_sentence_on_each_side(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("x")
    nowhere = "ws://127.0.0.1:9/v1"
    sender = CliProcess(["send", "--mailbox", nowhere, "--relay", "off", "--json", str(note)],
                        tmp_path / "tx")
    try:
        said = sender.wait_for("log")["message"]
        assert said.startswith("can't reach the code server 127.0.0.1 — offline? On a LAN, "
                               "the code works through local discovery; or use --to"), said
        assert sender.wait_for("invite")["via"] == "lan"  # and it waits there
    finally:
        sender.stop()
    receiver = CliProcess(["receive", "7-guitarist-revenge", "--mailbox", nowhere, "--relay",
                           "off", "--dir", str(tmp_path / "inbox"), "--json"], tmp_path / "rx")
    assert receiver.wait(30) == 1
    message = receiver.wait_for("error")["message"]
    assert message.startswith("can't reach the code server 127.0.0.1 — offline?"), message


@pytest.mark.skipif(not namespaces_available(), reason="needs root and ip")
def test_without_the_code_server_the_code_works_on_the_lan(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("no internet here")
    nowhere = "ws://127.0.0.1:9/v1"  # the code server is down
    with multicast_loopback() as inside:
        sender = _inside(inside, tmp_path / "tx", "--name", "desk", "send", "--mailbox",
                         nowhere, "--relay", "off", "--json", str(note))
        try:
            invite = sender.wait_for("invite")
            assert invite["via"] == "lan"
            receiver = _inside(inside, tmp_path / "rx", "receive", invite["code"], "--mailbox",
                               nowhere, "--dir", str(tmp_path / "inbox"), "--yes", "--json")
            assert receiver.wait(60) == 0, (receiver.events, "".join(receiver.stderr_lines))
            assert sender.wait(30) == 0, sender.stderr_lines
        finally:
            sender.stop()
    for side in (sender, receiver):
        assert side.wait_for("rendezvous")["via"] == "lan"
        assert side.wait_for("verified")["by"] == "short-code"
    assert (tmp_path / "inbox" / "note.txt").read_text() == "no internet here"


def _inside(inside: list[str], home: Path, *args: str) -> CliProcess:
    """The CLI run inside a namespace (``ip netns exec NS``)."""
    return CliProcess(list(args), home, inside=inside)


#: A code chosen beforehand by the people on both sides.
CHOSEN = "7-guitarist-revenge"


def test_receive_wait_with_nobody_sending_says_it_waits_then_how_long_it_waited(
    tmp_path: Path, mailbox: MailboxServer
) -> None:
    receiver = _receive(tmp_path / "rx", mailbox, CHOSEN, tmp_path / "inbox", "--wait", "3")
    assert receiver.wait(3 + STARTUP_ALLOWANCE + WRONG_CODE_LIMIT) == 1
    waiting = receiver.wait_for("code_wait")
    assert (waiting["code"], waiting["wait"], waiting["via"]) == (CHOSEN, 3.0, "mailbox")
    said = receiver.wait_for("error")["message"]
    assert said == (f"no one sent with the code {CHOSEN} within 3 s: check it with the "
                    "sender, or ask for a new one"), said


@pytest.mark.skipif(not namespaces_available(), reason="needs root and ip")
def test_a_receiver_waiting_on_the_server_finds_a_sender_that_offers_the_code_on_the_lan(
    tmp_path: Path
) -> None:
    """The receiver reaches the code server and waits there; the sender, which does not
    (offline), offers the same code on this LAN: the receiver finds it there."""
    note = tmp_path / "note.txt"
    note.write_text("met on the lan")
    with multicast_loopback() as inside:
        server = MailboxServer(tmp_path / "mailbox", inside)
        try:
            receiver = _inside(inside, tmp_path / "rx", "receive", CHOSEN, "--wait", "60",
                               "--mailbox", server.url, "--relay", "off", "--dir",
                               str(tmp_path / "inbox"), "--yes", "--json")
            assert receiver.wait_for("code_wait")["via"] == "mailbox"
            sender = _inside(inside, tmp_path / "tx", "--name", "desk", "send", "--code",
                             CHOSEN, "--mailbox", "ws://127.0.0.1:9/v1", "--relay", "off",
                             "--json", str(note))
            try:
                invite = sender.wait_for("invite")
                assert (invite["code"], invite["via"]) == (CHOSEN, "lan")
                assert receiver.wait(60) == 0, (receiver.events, receiver.stderr_lines)
                assert sender.wait(30) == 0, sender.stderr_lines
            finally:
                sender.stop()
        finally:
            receiver.stop()
            server.stop()
    assert receiver.wait_for("rendezvous")["via"] == "lan"
    assert (tmp_path / "inbox" / "note.txt").read_text() == "met on the lan"


@pytest.mark.skipif(not namespaces_available(), reason="needs root and ip")
def test_without_the_code_server_a_waiting_receiver_keeps_looking_on_the_lan(
    tmp_path: Path
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("no internet, receiver first")
    nowhere = "ws://127.0.0.1:9/v1"
    with multicast_loopback() as inside:
        receiver = _inside(inside, tmp_path / "rx", "receive", CHOSEN, "--wait", "60",
                           "--mailbox", nowhere, "--relay", "off", "--dir",
                           str(tmp_path / "inbox"), "--yes", "--json")
        try:
            assert receiver.wait_for("code_wait")["via"] == "lan"
            hold_for_blocking(LAN_CODE_SEARCH)  # past the search a receiver has without --wait
            assert receiver.process.poll() is None, receiver.events
            sender = _inside(inside, tmp_path / "tx", "--name", "desk", "send", "--code",
                             CHOSEN, "--mailbox", nowhere, "--relay", "off", "--json",
                             str(note))
            try:
                assert receiver.wait(60) == 0, (receiver.events, receiver.stderr_lines)
                assert sender.wait(30) == 0, sender.stderr_lines
            finally:
                sender.stop()
        finally:
            receiver.stop()
    assert receiver.wait_for("rendezvous")["via"] == "lan"
    assert (tmp_path / "inbox" / "note.txt").read_text() == "no internet, receiver first"
