"""Names said out loud, through real pseudo-terminals in network namespaces: a paired
device behind a firewall that drops mDNS is sent to over p2p-transfer where it was last
reached (or the send says why, in seconds), never over LocalSend; a LocalSend-only
device is asked about, waited for and its decline shown; a LocalSend device calling
itself by a paired device's name gets nothing, whether that device is there or not."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

from e2e.cli import CODE
from e2e.localsend_lab import LocalSendLab, localsendd_bin
from e2e.terminal import Terminal
from netns import Host, JsonLines, Lab, stop_process

#: Seconds for a process's next expected event or line.
EVENT_TIMEOUT = 30.0
#: The issue's bar: a send to a paired device that is not there says why within this.
GIVE_UP_WITHIN = 10.0
#: The LocalSend port our receivers and localsendd listen on in these labs.
LOCALSEND_PORT = 53317
#: nftables table of the mDNS drop rule.
MDNS_TABLE = "p2pt_drop_mdns"


def _cli(host: Host, home: Path, *args: str) -> JsonLines:
    """``p2p-transfer --config-dir HOME ARGS`` inside ``host``'s namespace."""
    return host.spawn(sys.executable, "-m", "p2p_transfer", "--config-dir", str(home), *args)


def _receiver(
    host: Host, home: Path, name: str, inbox: Path, *bind: str
) -> tuple[JsonLines, dict[str, Any]]:
    """A JSON receiver as a person starts one (announced, LocalSend on) that accepts with
    a fixed code (``bind``: e.g. ``--bind ADDR``); returns it and its ticket event."""
    receiver = _cli(host, home, "--name", name, "receive", "--dir", str(inbox), "--yes",
                    "--code", CODE, "--json", *bind)
    return receiver, receiver.expect_event("ticket", EVENT_TIMEOUT)


def _pair(host: Host, home: Path, ticket: str, source: Path) -> None:
    """One send by ticket with the code: the devices are paired, and where the receiver
    was reached is noted."""
    sender = _cli(host, home, "--name", "alice", "send", "--to", ticket, "--code", CODE,
                  "--json", str(source))
    assert sender.expect_event("done", EVENT_TIMEOUT)["ok"] is True, sender.seen
    assert sender.wait(EVENT_TIMEOUT) == 0, sender.stderr


def _drop_mdns(host: Host) -> None:
    """This device's firewall drops mDNS (UDP 5353), both ways; LocalSend's multicast
    (53317) passes, as on the machine of the issue."""
    host.run("nft", (
        f"add table inet {MDNS_TABLE}; "
        f"add chain inet {MDNS_TABLE} in {{ type filter hook input priority 0; }}; "
        f"add chain inet {MDNS_TABLE} out {{ type filter hook output priority 0; }}; "
        f"add rule inet {MDNS_TABLE} in udp dport 5353 counter drop; "
        f"add rule inet {MDNS_TABLE} out udp dport 5353 counter drop"
    ))


def _mdns_dropped(host: Host) -> int:
    listing = host.run("nft", "list", "table", "inet", MDNS_TABLE).stdout
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))


def _words(text: str) -> str:
    """Text as one line: a long message wraps at the terminal's width."""
    return " ".join(text.split())


def _sending(host: Host, home: Path, *args: str) -> Terminal:
    return Terminal(home, "--name", "alice", "send", *args, inside=host.argv())


def _offers(receiver: JsonLines, timeout: float) -> list[dict[str, Any]]:
    """The offers ``receiver`` printed within ``timeout`` s (it runs on: every line so far)."""
    try:
        receiver.expect(lambda e: False, timeout, "nothing")
    except AssertionError:
        pass
    return [e for e in receiver.seen if e.get("event") == "offer"]


def test_a_paired_device_behind_dropped_mdns_goes_over_p2p_transfer_or_says_why(
    netns_lab: Lab, tmp_path: Path
) -> None:
    alice, bob = netns_lab.lan(2)
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("hello bob\n")
    second.write_text("again, bob\n")
    receiver, ticket = _receiver(bob, tmp_path / "bob", "bob", tmp_path / "inbox")
    _pair(alice, tmp_path / "alice", ticket["ticket"], first)
    _drop_mdns(alice)

    terminal = _sending(alice, tmp_path / "alice", "--to", "bob", str(second))
    try:
        terminal.expect_line(r"looking for bob on this network…")
        terminal.expect_line(
            rf"bob is not announced on this network; trying where it was last reached "
            rf"\({re.escape(bob.address)}:\d+\)…"
        )
        terminal.expect_line(r"✓ 1 file, 11 B verified")
        assert terminal.wait() == 0
    finally:
        terminal.stop()
    terminal.assert_clean()
    assert "LocalSend" not in terminal.text
    assert (tmp_path / "inbox" / "second.txt").read_text() == "again, bob\n"
    assert [o["via"] for o in _offers(receiver, 0.5)] == ["p2p-transfer"] * 2
    assert _mdns_dropped(alice) > 0  # the firewall really dropped mDNS

    # Restarted on another port (receive keeps its port across restarts, so the test
    # chooses another, as when the last one was taken): where it was last reached is
    # stale, and its LocalSend announcement (at its address) is still heard. Nothing
    # goes over LocalSend.
    stop_process(receiver.proc)
    last_port = int(re.search(rf"{re.escape(bob.address)}:(\d+)", terminal.text)[1])
    receiver, _ = _receiver(bob, tmp_path / "bob", "bob", tmp_path / "inbox",
                            "--bind", f"0.0.0.0:{last_port + 1}")
    started = time.monotonic()
    terminal = _sending(alice, tmp_path / "alice", "--to", "bob", str(second))
    try:
        terminal.expect_line(r"error: cannot reach bob: it is not announced on this network",
                             timeout=GIVE_UP_WITHIN)
        gave_up_after = time.monotonic() - started
        terminal.expect_line(r"doctor")
        assert terminal.wait() == 1
    finally:
        terminal.stop()
    terminal.assert_clean()
    assert gave_up_after < GIVE_UP_WITHIN
    assert "LocalSend" not in terminal.text
    assert _offers(receiver, 1.0) == []


def _attached(phone_ctl: list[str], host: Host) -> JsonLines:
    """A ``localsendctl watch --json`` on the device: someone there to accept or decline
    (without one, localsendd declines at once), whose state lines the test reads."""
    return host.spawn(*phone_ctl, "watch", "--json")


def test_a_localsend_only_device_is_asked_about_waited_for_and_its_decline_shown(
    netns_lab: Lab, tmp_path: Path
) -> None:
    ls = LocalSendLab(netns_lab, tmp_path)
    phone = ls.localsendd("phone", LOCALSEND_PORT + 1, unattended=False)
    ctl = [localsendd_bin("localsendctl"), "--socket", str(phone.socket)]
    watcher = _attached(ctl, ls.host)
    watcher.expect(lambda e: e.get("type") == "state", EVENT_TIMEOUT, "the watcher's state")
    note = tmp_path / "note.txt"
    note.write_text("for the phone\n")

    terminal = Terminal(tmp_path / "alice", "--name", "alice", "send", "--to", "phone",
                        str(note), inside=ls.wrap)
    try:
        terminal.expect_line(r"looking for phone on this network…")
        terminal.expect_line(r"phone is a LocalSend device: files go unverified by the "
                             r"receiver's key — continue\? \[y/N\]: $")
        terminal.child.sendline("y")
        terminal.expect_line(r"waiting for phone to accept \(1 file, 14 B\)…")
        watcher.expect(lambda e: bool((e.get("data") or {}).get("incoming")), EVENT_TIMEOUT,
                       "the offer on the phone")
        rejected = phone.ctl("reject")
        assert rejected.returncode == 0, rejected.stdout + rejected.stderr
        terminal.expect_line(r"✗ phone declined")
        assert terminal.wait() == 1
    finally:
        terminal.stop()
    terminal.assert_clean()
    assert "127.0.0.1" not in terminal.text  # the alias, not the address
    assert "verified" not in terminal.after(r"continue\?")
    assert not phone.downloads.exists() or not any(phone.downloads.iterdir())


def test_no_at_the_question_sends_nothing_and_yes_sends_with_an_honest_summary(
    netns_lab: Lab, tmp_path: Path
) -> None:
    ls = LocalSendLab(netns_lab, tmp_path)
    phone = ls.localsendd("phone", LOCALSEND_PORT + 1)
    note = tmp_path / "note.txt"
    note.write_text("for the phone\n")
    terminal = Terminal(tmp_path / "alice", "--name", "alice", "send", "--to", "phone",
                        str(note), inside=ls.wrap)
    try:
        terminal.expect_line(r"continue\? \[y/N\]: $")
        terminal.child.sendline("")  # Enter: no
        terminal.expect_line(r"error: nothing sent: phone takes files only over LocalSend")
        assert terminal.wait() == 1
    finally:
        terminal.stop()
    assert not phone.downloads.exists() or not any(phone.downloads.iterdir())

    terminal = Terminal(tmp_path / "alice", "--name", "alice", "send", "--to", "phone",
                        "--yes", str(note), inside=ls.wrap)
    try:
        terminal.expect_line(r"! phone is a LocalSend device: files go unverified by the "
                             r"receiver's key")
        terminal.expect_line(r"✓ phone accepted")
        terminal.expect_line(r"✓ 1 file, 14 B sent via LocalSend in [0-9.]+ s — "
                             r"not verified end to end")
        assert terminal.wait() == 0
    finally:
        terminal.stop()
    terminal.assert_clean()
    assert "continue?" not in terminal.text and " verified in" not in terminal.text
    assert (phone.downloads / "note.txt").read_text() == "for the phone\n"


def test_a_localsend_device_with_a_paired_devices_name_gets_nothing(
    netns_lab: Lab, tmp_path: Path
) -> None:
    alice, bob, mallory = netns_lab.lan(3)
    note = tmp_path / "note.txt"
    note.write_text("for bob only\n")
    receiver, ticket = _receiver(bob, tmp_path / "bob", "bob", tmp_path / "inbox")
    _pair(alice, tmp_path / "alice", ticket["ticket"], note)
    stolen = LocalSendLab(netns_lab, tmp_path / "mallory", mallory).localsendd(
        "bob", LOCALSEND_PORT
    ).downloads
    secret = tmp_path / "secret.txt"
    secret.write_text("the real bob's eyes only\n")

    bob_id = ticket["endpoint_id"][:12]
    # bob is there (announced): the name is ambiguous, both listed with protocol and ID,
    # a line each (not "?"), and the way out named is bob's ID, never LocalSend's address.
    terminal = _sending(alice, tmp_path / "alice", "--to", "bob", str(secret))
    try:
        terminal.expect_line(r"error: 'bob' names a LocalSend device and a p2p-transfer device")
        assert terminal.wait() == 1
    finally:
        terminal.stop()
    terminal.assert_clean()
    listing = terminal.after(r"error: ").splitlines()
    assert re.fullmatch(rf" +p2p-transfer: bob at {re.escape(bob.address)}:\d+.*, ID {bob_id}",
                        listing[-2]), terminal.text
    assert re.fullmatch(rf" +LocalSend: bob at {re.escape(mallory.address)}:{LOCALSEND_PORT}, "
                        r"fingerprint [0-9A-F]{8} \(claimed; LocalSend proves no one\)",
                        listing[-1]), terminal.text
    assert f"--to {bob_id}" in _words(terminal.text)
    assert "?  " not in terminal.text and "localsend:" not in terminal.text

    # bob is off: a refusal that says why; still nothing for the impostor (--yes or not).
    stop_process(receiver.proc)
    terminal = _sending(alice, tmp_path / "alice", "--yes", "--to", "bob", str(secret))
    try:
        assert terminal.wait() == 1
    finally:
        terminal.stop()
    terminal.assert_clean()
    assert (
        f"error: bob (paired, ID {bob_id}) is not announced on this network, and a LocalSend "
        f"device at {mallory.address}:{LOCALSEND_PORT} calls itself 'bob': nothing sent — "
        "LocalSend cannot prove it is bob."
    ) in _words(terminal.text), terminal.text
    assert not stolen.exists() or not any(stolen.iterdir())
    assert not (tmp_path / "inbox" / "secret.txt").exists()
