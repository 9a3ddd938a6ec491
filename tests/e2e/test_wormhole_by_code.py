"""``receive CODE`` from the real ``wormhole send``, and ``send`` (no ``--to``) to the real
``wormhole receive``: the classic magic-wormhole transfer behind the code commands, with
a real mailbox server and transit relay on loopback."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pexpect
import pytest

from conftest import assert_same_tree, make_tree
from e2e.cli import CliProcess
from e2e.mailbox import MailboxServer, multicast_loopback, namespaces_available
from e2e.terminal import Terminal
from waiting import wait_until_blocking
from wormhole_lab import CLI_TIMEOUT, START_TIMEOUT, WormholeServers, new_code, venv_script


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WormholeServers]:
    with WormholeServers.started(tmp_path_factory.mktemp("wormhole-servers")) as running:
        yield running


def _receive(servers: WormholeServers, home: Path, code: str, target: Path,
             inside: Sequence[str] = ()) -> CliProcess:
    return CliProcess(
        ["receive", code, "--mailbox", servers.mailbox_url, "--transit-relay",
         servers.transit_relay, "--relay", "off", "--dir", str(target), "--yes", "--json"],
        home, inside=inside,
    )


def _send(servers: WormholeServers, home: Path, *args: str,
          inside: Sequence[str] = ()) -> CliProcess:
    return CliProcess(
        ["send", "--mailbox", servers.mailbox_url, "--transit-relay", servers.transit_relay,
         "--relay", "off", "--json", *args],
        home, inside=inside,
    )


def _output(process: subprocess.Popen[str]) -> str:
    """A ``wormhole`` run's output once it ended (killed when too slow)."""
    try:
        output, _ = process.communicate(timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"wormhole did not finish:\n{output}") from None
    return output


def _wormhole(
    servers: WormholeServers, *args: str, cwd: Path | None = None, inside: Sequence[str] = ()
) -> subprocess.Popen[str]:
    """The real ``wormhole`` CLI pointed at the test's servers."""
    return subprocess.Popen(
        [*inside, *servers.cli(*args)], cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _from_wormhole_send(
    servers: WormholeServers, tmp_path: Path, *send_args: str, inside: Sequence[str] = ()
) -> CliProcess:
    """``wormhole send ARGS`` received by ``p2p-transfer receive CODE --yes``."""
    code = new_code()
    sender = _wormhole(servers, "send", "--hide-progress", "--no-qr", "--code", code,
                       *send_args, inside=inside)
    receiver = _receive(servers, tmp_path / "rx", code, tmp_path / "inbox", inside)
    try:
        assert receiver.wait(CLI_TIMEOUT) == 0, "".join(receiver.stderr_lines)
    finally:
        receiver.stop()
    output = _output(sender)
    assert sender.returncode == 0, output
    assert receiver.wait_for("rendezvous")["peer"] == "magic-wormhole"
    done = receiver.wait_for("done")
    assert done["ok"] and done["via"] == "magic-wormhole" and done["verified"] is False
    return receiver


def test_a_file_from_wormhole_send(servers: WormholeServers, tmp_path: Path) -> None:
    source = tmp_path / "report.bin"
    source.write_bytes(os.urandom(1024 * 1024 + 7))
    receiver = _from_wormhole_send(servers, tmp_path, str(source))
    assert (tmp_path / "inbox" / "report.bin").read_bytes() == source.read_bytes()
    offer = receiver.wait_for("offer")
    assert offer["via"] == "magic-wormhole" and offer["files"] == 1


def test_a_folder_from_wormhole_send(servers: WormholeServers, tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    _from_wormhole_send(servers, tmp_path, str(tree))
    assert_same_tree(tree, tmp_path / "inbox" / "tree")
    assert sorted(p.name for p in (tmp_path / "inbox").iterdir()) == ["tree"]  # no zip left


def test_a_text_from_wormhole_send(servers: WormholeServers, tmp_path: Path) -> None:
    receiver = _from_wormhole_send(servers, tmp_path, "--text", "the wifi password is hunter2")
    text = receiver.wait_for("text")
    assert text["text"] == "the wifi password is hunter2" and text["via"] == "magic-wormhole"


def _to_wormhole_receive(
    servers: WormholeServers, tmp_path: Path, *send_args: str, inside: Sequence[str] = ()
) -> tuple[CliProcess, str]:
    """``p2p-transfer send ARGS``'s code typed into ``wormhole receive --accept-file``."""
    sender = _send(servers, tmp_path / "tx", *send_args, inside=inside)
    out = tmp_path / "out"
    out.mkdir(parents=True)
    try:
        code = sender.wait_for("invite")["code"]
        receiver = _wormhole(servers, "receive", "--hide-progress", "--accept-file", code,
                             cwd=out, inside=inside)
        output = _output(receiver)
        assert receiver.returncode == 0, output
        assert sender.wait(CLI_TIMEOUT) == 0, "".join(sender.stderr_lines)
    finally:
        sender.stop()
    assert sender.wait_for("rendezvous")["peer"] == "magic-wormhole"
    done = sender.wait_for("done")
    assert done["ok"] and done["via"] == "magic-wormhole" and done["verified"] is False
    return sender, output


def test_a_file_to_wormhole_receive(servers: WormholeServers, tmp_path: Path) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(os.urandom(2 * 1024 * 1024 + 3))
    _to_wormhole_receive(servers, tmp_path, str(source))
    assert (tmp_path / "out" / "photo.jpg").read_bytes() == source.read_bytes()


def test_a_folder_to_wormhole_receive(servers: WormholeServers, tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    _to_wormhole_receive(servers, tmp_path, str(tree))
    assert_same_tree(tree, tmp_path / "out" / "tree")


@contextlib.contextmanager
def _relay_only(state: Path) -> Iterator[tuple[WormholeServers, list[str]]]:
    """The servers in a namespace of their own where a new TCP connection to anything but
    the mailbox server and the transit relay is refused: direct transit hints cannot
    connect, so the data can only go through the relay. Yields the servers and the
    prefix that runs a command in there."""
    relay_port = _free_port()
    with multicast_loopback() as inside:
        mailbox = MailboxServer(state / "mailbox", inside)
        relay = subprocess.Popen(
            [*inside, venv_script("twist"), "transitrelay",
             f"--port=tcp:{relay_port}:interface=127.0.0.1"],
            cwd=state, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            _listening(inside, relay, relay_port)
            rules = (
                "table inet relayonly {\n chain out {\n"
                "  type filter hook output priority 0;\n"
                f"  ct state new tcp dport != {{ {mailbox.port}, {relay_port} }} "
                "reject with tcp reset\n }\n}\n"
            )
            subprocess.run([*inside, "nft", "-f", "-"], input=rules, text=True, check=True,
                           capture_output=True, timeout=10)
            yield WormholeServers(mailbox.port, relay_port, [mailbox.process, relay]), inside
        finally:
            relay.terminate()
            relay.wait(10)
            mailbox.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(inside: Sequence[str], process: subprocess.Popen[bytes], port: int) -> None:
    probe = [*inside, sys.executable, "-c",
             f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)"]

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError("the transit relay exited at start")
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0

    wait_until_blocking(up, START_TIMEOUT, what=f"the transit relay listening on {port}")


@pytest.mark.skipif(not namespaces_available(), reason="needs root, ip and nft")
def test_through_the_transit_relay_only_both_ways(tmp_path: Path) -> None:
    source = tmp_path / "relayed.bin"
    source.write_bytes(os.urandom(512 * 1024 + 1))
    with _relay_only(tmp_path) as (servers, inside):
        receiver = _from_wormhole_send(servers, tmp_path / "in", str(source), inside=inside)
        sender, _ = _to_wormhole_receive(servers, tmp_path / "out", str(source), inside=inside)
    assert (tmp_path / "in" / "inbox" / "relayed.bin").read_bytes() == source.read_bytes()
    assert (tmp_path / "out" / "out" / "relayed.bin").read_bytes() == source.read_bytes()
    relay = f"127.0.0.1:{servers.relay_port}"
    for side in (receiver, sender):
        connection = side.wait_for("connection")
        assert (connection["path"], connection["remote_addr"]) == ("relay", relay)


def test_the_receivers_screen_for_a_code_from_wormhole_send(
    servers: WormholeServers, tmp_path: Path
) -> None:
    """In a terminal: the question names a magic-wormhole client; the result says the way
    and what it checked, never "verified"."""
    source = tmp_path / "notes.txt"
    source.write_text("from a wormhole user\n")
    code = new_code()
    sender = _wormhole(servers, "send", "--hide-progress", "--no-qr", "--code", code,
                       str(source))
    screen = Terminal(
        tmp_path / "rx", "receive", code, "--mailbox", servers.mailbox_url, "--transit-relay",
        servers.transit_relay, "--relay", "off", "--dir", str(tmp_path / "inbox"),
    )
    try:
        screen.expect_line(r"code used \(a magic-wormhole client\)")
        screen.expect_line(
            r"Accept 1 file, 21 B from a magic-wormhole client \(`wormhole send`; checked by a "
            r"SHA-256 of the whole transfer\)\? \[y/N\]"
        )
        screen.child.sendline("y")
        # The line wraps at the terminal's width: any space may be a line break.
        screen.expect_line(r"\s+".join((
            r"✓ 1 file, 21 B received via magic-wormhole into", r"\S+", r"in [\d.]+ s —",
            "SHA-256 of the whole transfer, acknowledged by the receiver",
        )).replace(" ", r"\s+"))
        screen.child.expect(pexpect.EOF)
        screen.child.close()
    finally:
        screen.child.terminate(force=True)
    assert screen.child.exitstatus == 0, screen.text
    output = _output(sender)
    assert sender.returncode == 0, output
    screen.assert_clean()
    assert "verified" not in screen.text.lower().replace("not verified", "")
    assert (tmp_path / "inbox" / "notes.txt").read_text() == "from a wormhole user\n"


def test_a_text_to_wormhole_receive(servers: WormholeServers, tmp_path: Path) -> None:
    _, output = _to_wormhole_receive(servers, tmp_path, "--text", "meet at 6, door code 4711")
    assert "meet at 6, door code 4711" in output
