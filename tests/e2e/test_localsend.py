"""LocalSend interop against ``localsendd``, an independent LocalSend implementation.

Each test runs in a private network namespace of its own (``LocalSendLab``):
localsendd sends to our ``receive`` and we send to localsendd, both ways
byte-identical, with declines, PINs, discovery and text messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.apps import AppProcess
from e2e.localsend_lab import TRANSFER_TIMEOUT, LocalSendLab
from e2e.terminal import Terminal
from e2e.test_app_sessions import ApiClient
from netns import Lab
from waiting import wait_until, wait_until_blocking

#: The port our receiver listens on (LocalSend's default, as localsendctl dials it).
OUR_PORT = 53317
#: localsendd's port (another, so both run in one namespace).
THEIR_PORT = 53318
EIGHT_MIB = 8 * 1024 * 1024


@pytest.fixture
def ls(netns_lab: Lab, tmp_path: Path) -> LocalSendLab:
    return LocalSendLab(netns_lab, tmp_path)


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[Path, list[Path]]]:
    """An 8 MiB file, and a folder of 20 files of different sizes."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(EIGHT_MIB))
    folder = tmp_path / "folder"
    folder.mkdir()
    for n in range(20):
        (folder / f"part-{n:02}.dat").write_bytes(os.urandom(1000 * n + 1))
    yield big, sorted(folder.iterdir())


def _received(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


# --- localsendd → us --------------------------------------------------------------


def test_localsendd_sends_a_file_and_twenty_files_to_receive_yes(
    ls: LocalSendLab, tmp_path: Path, files: tuple[Path, list[Path]]
) -> None:
    big, folder = files
    target = tmp_path / "inbox"
    ours = ls.ours(tmp_path / "home", "--name", "ours", "receive", "--yes", "--dir", str(target))
    ours.expect_event("localsend", 20, port=OUR_PORT)
    alpha = ls.localsendd("alpha", THEIR_PORT)

    sent = alpha.ctl("send", str(big), "--to", "127.0.0.1", "--wait")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    done = ours.expect_event("done", TRANSFER_TIMEOUT, via="localsend")
    assert done["ok"] and done["files"] == 1
    sent = alpha.ctl("send", *map(str, folder), "--to", "127.0.0.1", "--wait")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    done = ours.expect_event("done", TRANSFER_TIMEOUT, via="localsend")
    assert done["ok"] and done["files"] == 20

    expected = {p.name: p.read_bytes() for p in [big, *folder]}
    assert _received(target) == expected  # byte-identical, nothing else (no .part left)
    offer = next(e for e in ours.seen if e.get("event") == "offer")
    assert offer["via"] == "localsend" and offer["from"] == "alpha"
    assert offer["device_model"] and offer["sender_id"]


def test_a_declined_offer_gives_localsendd_403(ls: LocalSendLab, tmp_path: Path) -> None:
    source = tmp_path / "note.txt"
    source.write_text("no thanks\n")
    target = tmp_path / "inbox"
    terminal = Terminal(tmp_path / "home", "--name", "ours", "receive", "--dir", str(target),
                        inside=ls.wrap)
    try:
        terminal.expect_line(r"LocalSend devices can send here too")
        alpha = ls.localsendd("alpha", THEIR_PORT)
        alpha.host.popen(  # localsendctl waits for the outcome while we answer
            "sh", "-c", f"{alpha.ctl_command} send {source} --to 127.0.0.1 --wait "
                        f"> {tmp_path / 'ctl.out'} 2>&1",
        )
        terminal.expect_line(r"alpha \(via LocalSend · Linux · [0-9A-F]{8}\) offers 1 file")
        terminal.expect_line(r"Accept 1 file, 10 B from alpha via LocalSend .*"
                             r"LocalSend does not prove who sends\)\? \[y/N\]")
        terminal.child.sendline("n")
        terminal.expect_line(r"\ndeclined by the receiver")
        # localsendd maps the answer's status: 403 is "declined".
        ctl_out = tmp_path / "ctl.out"
        shown = _wait_for(lambda: ctl_out.read_text() if ctl_out.exists() else "", "Last result")
        assert "Last result: declined (127.0.0.1) - 127.0.0.1 declined the transfer." in shown
        assert not target.exists() or not any(target.iterdir())
    finally:
        terminal.stop()


def test_a_pin_on_our_side_stops_localsendd_without_it(
    ls: LocalSendLab, tmp_path: Path
) -> None:
    source = tmp_path / "secret.bin"
    source.write_bytes(os.urandom(100_000))
    target = tmp_path / "inbox"
    ours = ls.ours(tmp_path / "home", "receive", "--yes", "--dir", str(target),
                   "--localsend-pin", "4321")
    ours.expect_event("localsend", 20)
    alpha = ls.localsendd("alpha", THEIR_PORT)

    refused = alpha.ctl("send", str(source), "--to", "127.0.0.1", "--wait")
    assert refused.returncode == 1
    assert "Last result: pin_required" in refused.stdout  # our 401
    assert not target.exists() or not any(target.iterdir())

    accepted = alpha.ctl("send", str(source), "--to", "127.0.0.1", "--pin", "4321", "--wait")
    assert accepted.returncode == 0, accepted.stdout
    ours.expect_event("done", TRANSFER_TIMEOUT, via="localsend", ok=True)
    assert (target / "secret.bin").read_bytes() == source.read_bytes()


# --- us → localsendd --------------------------------------------------------------


def test_send_to_localsendd_by_address(
    ls: LocalSendLab, tmp_path: Path, files: tuple[Path, list[Path]]
) -> None:
    big, folder = files
    beta = ls.localsendd("beta", THEIR_PORT)
    sender = ls.ours(tmp_path / "home", "send", "--to", f"localsend:127.0.0.1:{THEIR_PORT}",
                     str(big), str(folder[0].parent))
    done = sender.expect_event("done", TRANSFER_TIMEOUT)
    assert done["ok"] and done["files"] == 21 and done["via"] == "localsend"
    assert sender.wait(TRANSFER_TIMEOUT) == 0
    # localsendd keeps only each file's name (it flattens folders).
    assert _received(beta.downloads) == {p.name: p.read_bytes() for p in [big, *folder]}


def test_an_empty_file_refused_by_localsendd_is_said_as_such(
    ls: LocalSendLab, tmp_path: Path
) -> None:
    """localsendd takes no file without bytes (HTTP 500): the sender says that it was the
    empty file, not only a status; the other files of the folder arrive (each under its
    relative path in ``fileName``, which localsendd itself cuts to the name)."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_text("a\n")
    (tree / "empty.txt").write_bytes(b"")
    beta = ls.localsendd("beta", THEIR_PORT)
    sender = ls.ours(tmp_path / "home", "send", "--to", f"localsend:127.0.0.1:{THEIR_PORT}",
                     str(tree))
    failed = sender.expect_event("file_failed", TRANSFER_TIMEOUT, path="tree/empty.txt")
    # The device is named by its alias (or, before it is learned, its address).
    assert re.fullmatch(r"(beta|127\.0\.0\.1) refused this empty file: some LocalSend apps "
                        r"take none \(HTTP 500.*\)", failed["message"]), failed
    done = sender.expect_event("done", TRANSFER_TIMEOUT)
    assert (done["files"], done["files_failed"]) == (1, 1)
    assert sender.wait(TRANSFER_TIMEOUT) == 1
    assert _received(beta.downloads) == {"a.txt": b"a\n"}


def test_send_to_localsendd_that_wants_a_pin_prompts_for_it(
    ls: LocalSendLab, tmp_path: Path
) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(os.urandom(300_000))
    beta = ls.localsendd("beta", THEIR_PORT, pin="1234")
    terminal = Terminal(tmp_path / "home", "send", "--to", f"localsend:127.0.0.1:{THEIR_PORT}",
                        str(source), inside=ls.wrap)
    try:
        # Named by its alias (asked with register), not by the address typed.
        terminal.expect_line(r"PIN for beta \(LocalSend\): ")
        terminal.child.sendline("9999")
        terminal.expect_line(r"Wrong PIN\. PIN for beta \(LocalSend\): ")
        terminal.child.sendline("1234")
        terminal.expect_line(r"✓ 1 file, 293 KiB sent via LocalSend")
        assert terminal.wait() == 0
    finally:
        terminal.stop()
    assert (beta.downloads / "photo.jpg").read_bytes() == source.read_bytes()


# --- discovery ----------------------------------------------------------------------


def test_devices_lists_localsendd_and_localsendctl_lists_us(
    ls: LocalSendLab, tmp_path: Path
) -> None:
    alpha = ls.localsendd("alpha", THEIR_PORT)
    listing = ls.host.run(
        "sh", "-c", f"{sys.executable} -m p2p_transfer --config-dir {tmp_path / 'lister'} "
                    "devices --json --timeout 2",
        timeout=TRANSFER_TIMEOUT,
    )
    devices = [json.loads(line) for line in listing.stdout.splitlines()]
    (found,) = [d for d in devices if d.get("protocol") == "localsend"]
    assert found["name"] == "alpha"
    assert found["addresses"][0].endswith(f":{THEIR_PORT}")
    fingerprint = alpha.ctl("status").stdout.split("fingerprint", 1)[1].split()[0]
    assert found["fingerprint"] == fingerprint

    ours = ls.ours(tmp_path / "home", "--name", "our-laptop", "receive", "--yes")
    ready = ours.expect_event("localsend", 20)
    listed = _wait_for(lambda: alpha.ctl("devices").stdout, "our-laptop")
    assert "our-laptop" in listed and "https" in listed
    # Our own announcement never lists us to ourselves.
    again = ls.host.run(
        "sh", "-c", f"{sys.executable} -m p2p_transfer --config-dir {tmp_path / 'home'} "
                    "devices --json --timeout 2",
        timeout=TRANSFER_TIMEOUT,
    )
    names = [json.loads(line).get("fingerprint") for line in again.stdout.splitlines()]
    assert ready["fingerprint"] not in names


def test_a_name_lookup_says_when_another_program_holds_the_localsend_port(
    ls: LocalSendLab, tmp_path: Path
) -> None:
    """With the app (here: any listener) on TCP 53317, LocalSend devices answer it, not a
    ``send`` looking for them: the sender says so, not only that no device has the name."""
    holder = ls.host.popen(sys.executable, "-c", (
        "import socket, sys\n"
        f"s = socket.create_server(('0.0.0.0', {OUR_PORT}))\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    ))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        note = tmp_path / "note.txt"
        note.write_text("hi")
        sender = ls.ours(tmp_path / "home", "send", "--to", "phone", str(note))
        said = sender.expect_event("log", TRANSFER_TIMEOUT, source="localsend")
        assert said["message"] == (
            f"LocalSend devices cannot be found from here: they answer on TCP port {OUR_PORT}, "
            "which another program holds (`p2p-transfer app` perhaps); send to one with "
            "--to localsend:HOST, or from that program"
        )
        assert "phone" in sender.expect_event("error", TRANSFER_TIMEOUT)["message"]
        assert sender.wait(TRANSFER_TIMEOUT) == 1
    finally:
        holder.kill()
        holder.wait()


def test_send_to_a_localsend_device_by_name(ls: LocalSendLab, tmp_path: Path) -> None:
    source = tmp_path / "hello.txt"
    source.write_text("hello LocalSend\n")
    beta = ls.localsendd("beta-phone", THEIR_PORT)
    sender = ls.ours(tmp_path / "home", "send", "--to", "beta-phone", str(source))
    assert sender.expect_event("done", TRANSFER_TIMEOUT)["ok"]
    assert (beta.downloads / "hello.txt").read_text() == "hello LocalSend\n"


# --- text -------------------------------------------------------------------------


#: A text message as the official app sends it (one text/plain entry, the text in
#: ``preview``), through localsendd's own HTTPS client: localsendd has no command for text.
_SEND_TEXT = """
import json, sys
from localsendd.identity import SelfInfo
from localsendd.net import post_json
info = SelfInfo(53399, alias="alpha", encryption=True, fingerprint="F" * 64).as_dict()
text = sys.argv[1]
body = {"info": info, "files": {"t1": {"id": "t1", "fileName": "t1.txt",
        "size": len(text.encode()), "fileType": "text/plain", "preview": text}}}
status, _, _ = post_json("127.0.0.1", 53317, "/api/localsend/v2/prepare-upload",
                         json.dumps(body).encode(), 30, "https")
print(status)
"""


def test_a_text_message_arrives_as_a_text_event_and_shows_in_the_terminal(
    ls: LocalSendLab, tmp_path: Path
) -> None:
    ours = ls.ours(tmp_path / "home", "receive", "--yes", "--dir", str(tmp_path / "inbox"))
    ours.expect_event("localsend", 20)
    message = "the wifi password is hunter2\nsecond line"
    status = ls.host.run(sys.executable, "-c", _SEND_TEXT, message, timeout=TRANSFER_TIMEOUT)
    assert status.stdout.strip() == "204"  # shown; nothing to upload
    text = ours.expect_event("text", 20)
    assert text == {"event": "text", "session": text["session"], "from": "alpha",
                    "text": message, "via": "localsend"}
    assert not (tmp_path / "inbox").exists() or not any((tmp_path / "inbox").iterdir())
    ours.proc.terminate()

    terminal = Terminal(tmp_path / "home2", "receive", "--yes", inside=ls.wrap)
    try:
        terminal.expect_line(r"LocalSend devices can send here too")
        ls.host.run(sys.executable, "-c", _SEND_TEXT, "call me back \x1b[31mplease", timeout=30)
        # Plain under its header line (no box), and no escape reaches the tty.
        terminal.expect_line(r"Text from alpha via LocalSend:\ncall me back \?\[31mplease\n")
    finally:
        terminal.stop()


def test_send_text_to_localsend_devices_as_their_text_message(
    ls: LocalSendLab, tmp_path: Path
) -> None:
    message = "the wifi password is hunter2 ✓"
    # localsendd keeps a text message as a file: it asks for the bytes, and gets them.
    beta = ls.localsendd("beta", THEIR_PORT)
    sender = ls.ours(tmp_path / "tx", "send", "--to", f"localsend:127.0.0.1:{THEIR_PORT}",
                     "--text", message)
    done = sender.expect_event("done", TRANSFER_TIMEOUT)
    assert (done["ok"], done["text"], done["via"]) == (True, True, "localsend")
    (stored,) = beta.downloads.iterdir()
    assert stored.suffix == ".txt" and stored.read_text() == message
    # One that shows texts (ours, as LocalSend's apps do) answers at once: nothing to upload.
    ours = ls.ours(tmp_path / "rx", "--name", "ours", "receive", "--yes", "--dir",
                   str(tmp_path / "inbox"))
    ours.expect_event("localsend", 20, port=OUR_PORT)
    sender = ls.ours(tmp_path / "tx", "send", "--to", f"localsend:127.0.0.1:{OUR_PORT}",
                     "--text", message)
    assert sender.expect_event("done", TRANSFER_TIMEOUT)["ok"]
    text = ours.expect_event("text", 20)
    assert (text["text"], text["via"]) == (message, "localsend")
    offer = next(e for e in ours.seen if e.get("event") == "offer")
    assert (offer["text"], offer["preview"]) == (True, message)
    assert not (tmp_path / "inbox").exists() or not any((tmp_path / "inbox").iterdir())


# --- helpers ------------------------------------------------------------------------


def _wait_for(read: Callable[[], str], needle: str, timeout: float = TRANSFER_TIMEOUT) -> str:
    """What ``read`` returns once it holds ``needle``."""

    def holding() -> str:
        text = read()
        return text if needle in text else ""

    return wait_until_blocking(
        holding, timeout, every=0.2, what=lambda: f"{needle!r} in {read()!r}"
    )


# --- the desktop app ----------------------------------------------------------------


def test_the_app_receives_from_localsendd_through_its_dialog(
    ls: LocalSendLab, tmp_path: Path, files: tuple[Path, list[Path]]
) -> None:
    big, folder = files
    app = AppProcess(tmp_path, "carol", wrap=ls.wrap)
    try:
        url = app.wait_for("ui_url")["url"]
        alpha = ls.localsendd("alpha", THEIR_PORT)
        ls.run_inside(lambda: _drive_app(ls, app, url, alpha.ctl_command, big, folder, tmp_path))
    finally:
        app.stop()
    expected = {p.name: p.read_bytes() for p in [big, *folder]}
    assert _received(app.downloads) == expected  # the declined file never arrived


async def _running(ui: ApiClient) -> None:
    async def node_running() -> bool:
        return (await ui.call("GET", "/api/state"))[1]["node"]["state"] == "running"

    await wait_until(node_running, 30, every=0.1, what="the app's node to start")
    status, devices = await ui.call("GET", "/api/devices")
    assert status == 200 and devices["discovery"]["localsend_error"] == ""


async def _drive_app(
    ls: LocalSendLab, app: AppProcess, url: str, ctl: str, big: Path, folder: list[Path],
    tmp_path: Path,
) -> None:
    """Three offers from localsendd: accept the file, accept the 20, decline the last."""
    unwanted = tmp_path / "unwanted.txt"
    unwanted.write_text("no\n")
    ui = ApiClient(app, url)
    await ui.start()
    try:
        await _running(ui)  # its LocalSend server starts before the node says "running"
        answered: set[str] = set()
        for n, (paths, accept) in enumerate([([big], True), (folder, True), ([unwanted], False)]):
            out = tmp_path / f"ctl-{n}.out"
            sender = ls.host.popen("sh", "-c", f"{ctl} send {' '.join(map(str, paths))} "
                                              f"--to 127.0.0.1 --wait > {out} 2>&1")
            count = len(paths)
            prompt = await ui.wait_for(
                "offer_prompt",
                lambda e, count=count: e["via"] == "localsend" and e["files"] == count
                and e["prompt_id"] not in answered,
            )
            answered.add(prompt["prompt_id"])
            assert prompt["from"] == "alpha" and prompt["device_model"]
            status, _ = await ui.call("POST", f"/api/prompts/{prompt['prompt_id']}",
                                      {"accept": accept})
            assert status == 200
            code = await asyncio.to_thread(sender.wait, TRANSFER_TIMEOUT)
            shown = out.read_text()
            if accept:
                assert code == 0, shown
                final = await ui.final(prompt["session"])
                assert final["state"] == "done" and final["files_done"] == count
            else:
                assert "declined (127.0.0.1)" in shown  # our 403
        # A text message: the dialog asks, then the app has it for its card (and new tabs).
        texting = ls.host.popen(sys.executable, "-c", _SEND_TEXT, "see you at 8")
        prompt = await ui.wait_for("offer_prompt", lambda e: e["text"] is True)
        await ui.call("POST", f"/api/prompts/{prompt['prompt_id']}", {"accept": True})
        assert await asyncio.to_thread(texting.wait, TRANSFER_TIMEOUT) == 0
        text = await ui.wait_for("text")
        assert (text["from"], text["text"], text["via"]) == ("alpha", "see you at 8", "localsend")
        _, state = await ui.call("GET", "/api/state")
        assert [t["text"] for t in state["texts"]] == ["see you at 8"]
    finally:
        await ui.close()
