"""The CLI contract across real processes: events, exit codes, resume and cancel."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_same_tree, make_tree
from e2e.cli import CliProcess, start_receiver, start_sender

#: Big enough that a kill lands mid-file on loopback.
RESUME_FILE_SIZE = 192 * 1024 * 1024


def test_send_receive_tree_with_json_contract(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox", "--once")
    try:
        ticket_event = receiver.named("ticket")[0]
        assert ticket_event["endpoint_id"] and ticket_event["name"] == "receiver"
        sender = start_sender(tmp_path / "tx", ticket, tree)
        assert sender.wait() == 0, sender.stderr_lines
        assert receiver.wait() == 0, receiver.stderr_lines
    finally:
        receiver.stop()
    assert_same_tree(tree, tmp_path / "inbox" / "tree")
    files = [p for p in tree.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    assert receiver.named("code")[0]["code"] == "246810"
    offer = receiver.named("offer")[0]
    assert (offer["files"], offer["bytes"], offer["from"]) == (len(files), total, "sender")
    for side in (sender, receiver):
        done = side.named("done")[-1]
        assert done["files"] == len(files) and done["bytes_total"] == total
        assert done["bytes_transferred"] == total and done["seconds"] >= 0
        assert {e["path"].rsplit("/", 1)[-1] for e in side.named("file_done")} == {
            p.name for p in files
        }
        assert all(len(e["blake3"]) == 64 for e in side.named("file_done"))
        progress = side.named("progress")
        assert progress and progress[-1]["bytes_done"] == total
        assert {"bytes_done", "bytes_total", "rate"} <= progress[-1].keys()


def test_wrong_code_fails_with_clear_message(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox")
    try:
        sender = CliProcess(
            ["send", "--to", ticket, "--code", "999999", "--json", str(source)], tmp_path / "tx"
        )
        assert sender.wait() == 1
        assert "wrong verification code" in sender.wait_for("error")["message"]
    finally:
        receiver.stop()
    assert not (tmp_path / "inbox" / "a.txt").exists()


def test_invalid_ticket_is_a_one_line_error(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    damaged = "endpointnotavalidticket0000"  # looks like a ticket, so it is parsed as one
    sender = CliProcess(["send", "--to", damaged, "--json", str(source)], tmp_path / "tx")
    assert sender.wait() == 1
    error = sender.wait_for("error")
    assert error["message"] == "this ticket is damaged — copy it again from the receiving device"
    assert "ParseError::" in error["detail"]  # iroh's words, for scripts and bug reports


def test_unknown_device_name_is_a_one_line_error(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    sender = CliProcess(["send", "--to", "nobody-here", "--json", str(source)], tmp_path / "tx")
    assert sender.wait() == 1
    message = sender.wait_for("error")["message"]
    assert message.startswith("no device named 'nobody-here'") and "ticket" in message


def _big_file(tmp_path: Path) -> Path:
    source = tmp_path / "big.bin"
    with source.open("wb") as handle:
        block = os.urandom(1024 * 1024)
        for i in range(RESUME_FILE_SIZE // len(block)):
            handle.write(block[i % 7 :] + block[: i % 7])
    return source


def test_killed_sender_resumes_where_it_stopped(tmp_path: Path) -> None:
    source = _big_file(tmp_path)
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox")
    try:
        first = start_sender(tmp_path / "tx", ticket, source, extra=("--parallel", "1"))
        first.wait_for("progress", lambda e: e["bytes_done"] >= RESUME_FILE_SIZE // 2)
        first.process.send_signal(signal.SIGKILL)
        first.wait()
        assert not (tmp_path / "inbox" / "big.bin").exists()
        assert (tmp_path / "inbox" / "big.bin.part").exists()

        second = start_sender(tmp_path / "tx", ticket, source)
        assert second.wait(120) == 0, second.stderr_lines
        done = second.wait_for("done")
        assert done["bytes_total"] == RESUME_FILE_SIZE
        assert 0 < done["bytes_transferred"] < RESUME_FILE_SIZE * 0.75
    finally:
        receiver.stop()
    received = tmp_path / "inbox" / "big.bin"
    assert received.read_bytes() == source.read_bytes()
    assert not (tmp_path / "inbox" / "big.bin.part").exists()


def test_ctrl_c_on_sender_reaches_receiver_within_a_second(tmp_path: Path) -> None:
    source = _big_file(tmp_path)
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox")
    try:
        sender = start_sender(tmp_path / "tx", ticket, source, extra=("--parallel", "1"))
        sender.wait_for("progress", lambda e: e["bytes_done"] > 0)
        interrupted = time.monotonic()
        sender.process.send_signal(signal.SIGINT)
        ended = receiver.wait_for("state", lambda e: e["state"] == "cancelled", timeout=5)
        assert ended["by"] == "peer" and ended["peer_name"] == "sender", receiver.events
        assert time.monotonic() - interrupted < 1.5
        assert sender.wait() == 130
        assert sender.named("state")[-1]["state"] == "cancelled"
        assert sender.named("state")[-1]["by"] == "local"
        assert not receiver.named("error")  # a cancel is not a failure
    finally:
        receiver.stop()
    assert not (tmp_path / "inbox" / "big.bin").exists()


def test_ctrl_c_on_receiver_reaches_sender(tmp_path: Path) -> None:
    source = _big_file(tmp_path)
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox")
    try:
        sender = start_sender(tmp_path / "tx", ticket, source, extra=("--parallel", "1"))
        sender.wait_for("progress", lambda e: e["bytes_done"] > 0)
        receiver.process.send_signal(signal.SIGINT)
        assert sender.wait() == 1
        ended = sender.wait_for("state", lambda e: e["state"] == "cancelled")
        assert ended["by"] == "peer" and ended["peer_name"] == "receiver"
        assert ended["message"] == "receiver cancelled"
        assert not sender.named("error")
    finally:
        receiver.stop()


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2p_transfer", "--config-dir", str(home), *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def test_identity_key_with_loose_permissions_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _cli(home, "id").returncode == 0
    key = home / "identity.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.chmod(0o644)
    result = _cli(home, "id")
    assert result.returncode == 1
    assert "readable by others" in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("args", "status", "last_line"),
    [
        (("id", "--json"), 0, '"event": "id"'),
        (("send", "--to", "endpointnotavalidticket0000", "--json", "."), 1, '"state": "failed"'),
        (("no-such-command",), 2, "No such command 'no-such-command'."),
    ],
    ids=["done", "failed", "misused"],
)
def test_a_command_ends_at_once_with_its_status_and_every_line_out(
    tmp_path: Path, args: tuple[str, ...], status: int, last_line: str
) -> None:
    """``main`` ends the process without tearing the interpreter down (``exit_now``): a
    script reading through pipes still gets the status and the last line of each ending."""
    result = _cli(tmp_path / "home", *args)
    assert result.returncode == status, result.stderr
    printed = (result.stdout if status < 2 else result.stderr).splitlines()
    assert printed and last_line in printed[-1]


def test_id_is_stable_and_pair_commands_work(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox", "--once")
    try:
        assert start_sender(tmp_path / "tx", ticket, source).wait() == 0
        assert receiver.wait() == 0
    finally:
        receiver.stop()
    first, second = (json.loads(_cli(tmp_path / "tx", "id", "--json").stdout) for _ in "12")
    assert first["endpoint_id"] == second["endpoint_id"] and len(first["endpoint_id"]) == 64
    listed = _cli(tmp_path / "rx", "pair", "list").stdout
    assert "sender" in listed
    endpoint_id = listed.split()[0]
    assert _cli(tmp_path / "rx", "pair", "remove", endpoint_id[:12]).returncode == 0
    assert "no paired devices" in _cli(tmp_path / "rx", "pair", "list").stdout
    assert _cli(tmp_path / "tx", "pair", "clear").stdout.startswith("forgot 1")


@pytest.mark.parametrize("code", ["12345", "abcdef", "1234567"])
def test_receiver_rejects_a_malformed_fixed_code(tmp_path: Path, code: str) -> None:
    result = _cli(tmp_path / "rx", "receive", "--code", code)
    assert result.returncode == 2
    assert "6 digits" in result.stderr


def test_send_to_host_and_port_without_a_ticket(tmp_path: Path) -> None:
    source = tmp_path / "by-address.txt"
    source.write_text("no ticket needed")
    receiver, _ = start_receiver(tmp_path / "rx", tmp_path / "inbox", "--once")
    try:
        addresses = receiver.named("ticket")[0]["addresses"]
        address = next(a for a in addresses if a.startswith("127.0.0.1:"))
        sender = start_sender(tmp_path / "tx", address, source)
        assert sender.wait() == 0, sender.stderr_lines
        assert receiver.wait() == 0
    finally:
        receiver.stop()
    assert (tmp_path / "inbox" / "by-address.txt").read_text() == "no ticket needed"


def test_host_and_port_with_nobody_there_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    sender = start_sender(tmp_path / "tx", "127.0.0.1:9", source)
    assert sender.wait() == 1
    assert "cannot reach 127.0.0.1:9" in sender.wait_for("error")["message"]


def test_sending_to_a_peer_loads_no_http_stack_and_no_cryptography(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp (LocalSend, the share) costs ~90 ms of every start: a send to one of our
    own peers, and a receiver no LocalSend device calls, never import it. Nor does either
    side import ``cryptography`` (~12 MB for good): the receiver's LocalSend certificate,
    made at its first start, is made in a child process."""
    (tmp_path / "note.txt").write_text("hello")
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # each import, on stderr
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox", "--once")
    try:
        sender = start_sender(tmp_path / "tx", ticket, tmp_path / "note.txt")
        assert sender.wait() == 0, sender.stderr_lines[-5:]
        assert receiver.wait() == 0
    finally:
        receiver.stop()
    for side in (sender, receiver):
        imported = {
            line.rpartition("|")[2].strip()
            for line in side.stderr_lines
            if line.startswith("import time:")
        }
        assert "p2p_transfer.transfer.intake" in imported  # the listing works
        assert not {name for name in imported if name.split(".")[0] == "aiohttp"}
        assert not {name for name in imported if name.split(".")[0] == "cryptography"}
        # mDNS is for receivers that announce and names to look up: not for a ticket
        if side is sender:
            assert not {name for name in imported if name.split(".")[0] == "zeroconf"}
    assert (tmp_path / "rx" / "localsend" / "cert.pem").is_file()


# --- warnings of every command are log events ----------------------------------------------

#: A network namespace of the command's own whose loopback carries multicast but may join
#: no multicast group (``igmp_max_memberships`` 0): zeroconf, which joins mDNS's group,
#: warns (ENOBUFS). The host's setting is untouched (it is per namespace).
NO_MULTICAST_GROUPS = (
    "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"
    " && sysctl -qw net.ipv4.igmp_max_memberships=0 && exec \"$@\""
)
#: What zeroconf says when it cannot join the mDNS group.
ZEROCONF_WARNING = "No buffer space available when adding 127.0.0.1 to multicast group"


def _cli_without_multicast_groups(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "--net", "sh", "-c", NO_MULTICAST_GROUPS, "sh",
         sys.executable, "-m", "p2p_transfer", "--config-dir", str(home), *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def _json_lines_only(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    """Every stdout line is a JSON object with an ``event``, and stderr is empty."""
    assert result.stderr == "", result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(isinstance(event, dict) and "event" in event for event in events), events
    return events


needs_namespaces = pytest.mark.skipif(
    os.geteuid() != 0 or not all(map(shutil.which, ("unshare", "ip", "sysctl"))),
    reason="needs root, unshare, ip and sysctl (a network namespace per command)",
)


@needs_namespaces
@pytest.mark.parametrize("command", [("devices", "--json", "--timeout", "0.5"),
                                     ("doctor", "--json")])
def test_a_discovery_warning_is_a_json_log_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = _cli_without_multicast_groups(tmp_path / "home", *command)
    events = _json_lines_only(result)
    logs = [e for e in events if e["event"] == "log"]
    assert any(
        e["source"] == "discovery" and e["level"] == "warning"
        and str(e["message"]).startswith(ZEROCONF_WARNING)
        for e in logs
    ), events
    if command[0] == "doctor":
        assert {e["name"] for e in events if e["event"] == "check"} >= {"multicast", "devices"}


@needs_namespaces
def test_a_discovery_warning_is_a_line_of_its_own_for_people(tmp_path: Path) -> None:
    result = _cli_without_multicast_groups(tmp_path / "home", "devices", "--timeout", "0.5")
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"discovery: {ZEROCONF_WARNING}") for line in lines), lines
    assert "no devices found" in result.stderr


def test_a_damaged_pairings_file_is_a_json_log_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "pairings.json").write_text('{"pairings": [{"endpoint_id": 42}')
    (log,) = _json_lines_only(_cli(home, "pair", "list", "--json"))
    assert log["event"] == "log" and log["level"] == "warning"
    assert "pairings.json is damaged and ignored" in str(log["message"])
    assert "asked for a code again" in str(log["message"])
    people = _cli(home, "pair", "list")
    assert people.stdout == "no paired devices\n"
    assert "pairings.json is damaged and ignored" in people.stderr
    assert "Traceback" not in people.stderr
