"""Ctrl-C anywhere, as a person sees it in real pseudo-terminals (pexpect): while
connecting, mid-file on either side, at the share's upload question and in ``devices``,
the program says one line and exits 130, and the other side is told."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from pathlib import Path

import aiohttp

from e2e.cli import CODE, CliProcess, throttled
from e2e.terminal import Terminal, receiving_terminal
from p2p_transfer.limits import MiB

#: Large enough to be mid-file when Ctrl-C is pressed.
FILE_SIZE = 256 * MiB
#: The receivers here accept at once, with a fixed code.
ACCEPTING = ("--yes", "--code", CODE)
#: What the sender says of an interrupted transfer, and of what it kept.
SENDER_KEPT = r"cancelled — about \d+(\.\d)? [KMG]iB kept; run the same command to continue"




def _sending_terminal(home: Path, ticket: str, source: Path) -> Terminal:
    """``send`` for a person; QUIC, which is slow enough here to be caught mid-file."""
    return Terminal(home, "--name", "desk", "send", "--to", ticket, "--code", CODE,
                    "--transport", "quic", str(source))


def _said_after_ctrl_c(terminal: Terminal) -> list[str]:
    """The lines shown after ``^C``, less the progress bars' last redraw and the rest of a
    ticket's lines still on their way when the key was pressed."""
    return [
        line for line in terminal.after(r"\^C").strip().splitlines()
        if "━" not in line and not line.startswith("or: p2p-transfer send --to")
    ]


def _big_file(folder: Path) -> Path:
    path = folder / "big.bin"
    with path.open("wb") as out:
        for _ in range(FILE_SIZE // (16 * MiB)):
            out.write(os.urandom(16 * MiB))
    return path


def test_ctrl_c_on_the_sender_mid_file_then_the_same_command_resumes(tmp_path: Path) -> None:
    source = _big_file(tmp_path)
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", *ACCEPTING)
    try:
        sender = _sending_terminal(tmp_path / "tx", ticket, source)
        with throttled(sender.child.pid):
            # Bytes have moved, as both sides say (each tells what it kept).
            sender.expect_line(r"Sending 0/1 file .* [1-9][0-9.]*/256\.0 MiB")
            receiver.expect_line(r"Receiving 0/1 file")
            sender.ctrl_c()
            assert sender.wait() == 130
        # One line each: what was kept and how to go on; who cancelled and what stays.
        (said,) = _said_after_ctrl_c(sender)
        assert re.fullmatch(f"✗ {SENDER_KEPT}", said), sender.text
        sender.assert_clean()
        receiver.expect_line(r"✗ desk cancelled; partial files kept for resume")
        assert "error" not in receiver.text

        again = _sending_terminal(tmp_path / "tx", ticket, source)
        again.expect_line(r"✓ 1 file, 256 MiB verified in [0-9.]+ s \(\d+(\.\d)? [KMG]iB already")
        assert again.wait() == 0
        again.assert_clean()
        receiver.expect_line(r"✓ 1 file, 256 MiB verified into")
        # Said on both sides when the offer is answered, before any data moves.
        resumed = r"resuming: \d+(\.\d)? [KMG]iB already there\n"
        rerun = receiver.after("kept for resume")
        for side, bars in ((again.text, "Sending"), (rerun, "Receiving")):
            said = re.search(resumed, side)
            assert said is not None and said.start() < side.index(bars), side
    finally:
        receiver.stop()
    assert (tmp_path / "inbox" / "big.bin").read_bytes() == source.read_bytes()


def test_ctrl_c_on_the_receiver_mid_file(tmp_path: Path) -> None:
    source = _big_file(tmp_path)
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", *ACCEPTING)
    sender = _sending_terminal(tmp_path / "tx", ticket, source)
    try:
        with throttled(sender.child.pid):
            sender.expect_line(r"Sending 0/1 file .* [1-9][0-9.]*/256\.0 MiB")
            receiver.expect_line(r"Receiving 0/1 file")
            receiver.ctrl_c()
            assert receiver.wait() == 130
        assert _said_after_ctrl_c(receiver) == ["✗ cancelled; partial files kept for resume"]
        receiver.assert_clean()
        # The sender hears it at once, from whom, and what it can do.
        sender.expect_line(r"✗ cancelled by laptop — about \d+(\.\d)? [KMG]iB kept; run the same")
        assert sender.wait() == 1
        assert "error" not in sender.text
        sender.assert_clean()
    finally:
        sender.stop()
        receiver.stop()
    assert (tmp_path / "inbox" / "big.bin.part").exists()


def test_ctrl_c_while_connecting_to_a_receiver_that_is_gone(tmp_path: Path) -> None:
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", *ACCEPTING)
    receiver.ctrl_c()  # waiting for senders: one line, 130 (nothing was cancelled)
    assert receiver.wait() == 130
    assert _said_after_ctrl_c(receiver) == ["stopped"]
    receiver.assert_clean()
    note = tmp_path / "note.txt"
    note.write_text("hello")
    sender = _sending_terminal(tmp_path / "tx", ticket, note)
    sender.expect_line(r"trying to reach [0-9a-f]{10}…")  # after 2 s of silence
    sender.ctrl_c()
    assert sender.wait() == 130
    assert _said_after_ctrl_c(sender) == ["✗ cancelled"]
    sender.assert_clean()


def test_ctrl_c_at_the_share_upload_question(tmp_path: Path) -> None:
    share = Terminal(tmp_path / "home", "share", "--bind", "127.0.0.1", "--dir",
                     str(tmp_path / "uploads"))
    url = share.expect_line(r"Share link: (http://\S+)").group(1)
    closed: list[int | None] = []

    async def upload() -> None:
        async with aiohttp.ClientSession() as client:
            socket = await client.ws_connect(
                url + "/ws", headers={"Origin": f"http://{url.split('/')[2]}"}
            )
            await socket.send_str(
                json.dumps({"type": "file_info", "file_name": "a.txt", "file_size": 3})
            )
            await socket.receive(timeout=30)  # the share's answer: it is stopped
            closed.append(socket.close_code)

    browser = threading.Thread(target=asyncio.run, args=(upload(),))
    browser.start()
    try:
        share.expect_line(r"Accept 'a\.txt' \(3 B\) from 127\.0\.0\.1\? \[y/N\] ")
        share.ctrl_c()
        assert share.wait() == 130
    finally:
        browser.join(30)
        share.stop()
    assert _said_after_ctrl_c(share) == ["cancelled"]
    share.assert_clean()
    assert closed == [1001]  # the browser is told: going away
    assert not list((tmp_path / "uploads").iterdir())


def test_ctrl_c_while_devices_listens(tmp_path: Path) -> None:
    devices = Terminal(tmp_path / "home", "devices", "--timeout", "60")
    devices.expect_line(r"looking for devices on this network \(60 s\)…")
    devices.ctrl_c()
    assert devices.wait(10) == 130
    assert _said_after_ctrl_c(devices) == ["cancelled"]
    devices.assert_clean()


def test_names_that_would_lie_show_as_they_are(tmp_path: Path) -> None:
    """A sender named ``\u202eevil\u200b`` sends ``\u202egnp.exe`` (which would show as if
    it ended in ``.png``): the receiving person reads ``evil`` and ``gnp.exe``, and no
    format character reaches the screen."""
    receiver, ticket = receiving_terminal(tmp_path / "rx", tmp_path / "inbox", *ACCEPTING)
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
