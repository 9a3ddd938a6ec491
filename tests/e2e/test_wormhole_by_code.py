"""``receive CODE`` from the real ``wormhole send``, and ``send`` (no ``--to``) to the real
``wormhole receive``: the classic magic-wormhole transfer behind the code commands, with
a real mailbox server and transit relay on loopback."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import assert_same_tree, make_tree
from e2e.cli import CliProcess
from wormhole_lab import CLI_TIMEOUT, WormholeServers, new_code


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WormholeServers]:
    with WormholeServers.started(tmp_path_factory.mktemp("wormhole-servers")) as running:
        yield running


def _receive(servers: WormholeServers, home: Path, code: str, target: Path) -> CliProcess:
    return CliProcess(
        ["receive", code, "--mailbox", servers.mailbox_url, "--transit-relay",
         servers.transit_relay, "--relay", "off", "--dir", str(target), "--yes", "--json"],
        home,
    )


def _send(servers: WormholeServers, home: Path, *args: str) -> CliProcess:
    return CliProcess(
        ["send", "--mailbox", servers.mailbox_url, "--transit-relay", servers.transit_relay,
         "--relay", "off", "--json", *args],
        home,
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


def _from_wormhole_send(
    servers: WormholeServers, tmp_path: Path, *send_args: str
) -> CliProcess:
    """``wormhole send ARGS`` received by ``p2p-transfer receive CODE --yes``."""
    code = new_code()
    sender = servers.run_cli("send", "--hide-progress", "--no-qr", "--code", code, *send_args)
    receiver = _receive(servers, tmp_path / "rx", code, tmp_path / "inbox")
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
    servers: WormholeServers, tmp_path: Path, *send_args: str
) -> tuple[CliProcess, str]:
    """``p2p-transfer send ARGS``'s code typed into ``wormhole receive --accept-file``."""
    sender = _send(servers, tmp_path / "tx", *send_args)
    out = tmp_path / "out"
    out.mkdir()
    try:
        code = sender.wait_for("invite")["code"]
        receiver = subprocess.Popen(
            servers.cli("receive", "--hide-progress", "--accept-file", code), cwd=out,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
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
