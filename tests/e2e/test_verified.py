"""What ``--json`` says was verified: ``verified`` on every ``file_done`` and ``done``, and on
each receiver of a ``summary`` — true only for p2p-transfer (BLAKE3 end to end, over a
connection bound to the peer's key), false for LocalSend both ways, where nothing is
hashed end to end. Real processes; LocalSend's side is ``localsendd`` in a namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e.cli import CODE, start_receiver, start_sender
from e2e.localsend_lab import TRANSFER_TIMEOUT, LocalSendLab
from netns import Lab

#: localsendd's port, and ours (LocalSend's default, where localsendctl sends).
THEIR_PORT = 53318
OUR_PORT = 53317


def _files(folder: Path) -> list[Path]:
    folder.mkdir()
    for n in range(3):
        (folder / f"part-{n}.txt").write_text(f"part {n}\n" * (n + 1))
    return sorted(folder.iterdir())


def _verified(events: list[dict[str, Any]], name: str) -> list[bool]:
    return [e["verified"] for e in events if e.get("event") == name]


def test_our_protocol_says_verified_true_per_file_and_per_transfer_on_both_sides(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "folder"
    _files(folder)
    receiver, ticket = start_receiver(tmp_path / "rx", tmp_path / "inbox", "--once",
                                      "--no-localsend", "--no-announce")
    sender = start_sender(tmp_path / "tx", ticket, folder)
    try:
        assert sender.wait() == 0 and receiver.wait() == 0
    finally:
        sender.stop()
        receiver.stop()
    for side in (sender, receiver):
        assert _verified(side.events, "file_done") == [True] * 3
        (done,) = side.named("done")
        assert (done["ok"], done["via"], done["verified"]) == (True, "p2p-transfer", True)
    (route,) = sender.named("route")
    assert (route["via"], route["found"], route["warning"]) == ("p2p-transfer", "ticket", "")


def test_localsend_says_verified_false_both_ways_and_the_summary_tells_receivers_apart(
    netns_lab: Lab, tmp_path: Path
) -> None:
    ls = LocalSendLab(netns_lab, tmp_path)
    phone = ls.localsendd("phone", THEIR_PORT)
    files = _files(tmp_path / "folder")
    # Ours, by ticket, and LocalSend's, in one send: a summary line each.
    ours = ls.ours(tmp_path / "rx", "--name", "laptop", "receive", "--yes", "--code", CODE,
                   "--dir", str(tmp_path / "inbox"), "--localsend-port", str(OUR_PORT))
    # (localsendctl sends to OUR_PORT: LocalSend's default.)
    ticket = ours.expect_event("ticket", TRANSFER_TIMEOUT)["ticket"]
    ours.expect_event("localsend", TRANSFER_TIMEOUT)
    sender = ls.ours(tmp_path / "tx", "send", "--to", ticket, "--to",
                     f"localsend:127.0.0.1:{THEIR_PORT}", "--code", CODE, *map(str, files))
    summary = sender.expect_event("summary", TRANSFER_TIMEOUT)
    assert sender.wait(TRANSFER_TIMEOUT) == 0, sender.stderr
    assert summary["ok"] is True
    assert [(r["peer_name"], r["verified"]) for r in summary["receivers"]] == [
        ("laptop", True), ("phone", False)
    ]
    by_via: dict[str, list[dict[str, Any]]] = {"p2p-transfer": [], "localsend": []}
    for event in sender.seen:
        if event.get("event") in ("file_done", "done"):
            by_via[event["via"]].append(event)
    assert [e["verified"] for e in by_via["p2p-transfer"]] == [True] * 4
    assert [e["verified"] for e in by_via["localsend"]] == [False] * 4
    routes = {e["via"]: e for e in sender.seen if e.get("event") == "route"}
    assert routes["localsend"]["warning"] == (
        "127.0.0.1 is a LocalSend device: files go unverified by the receiver's key"
    )
    assert routes["p2p-transfer"]["warning"] == ""
    assert sorted(p.name for p in phone.downloads.iterdir()) == [p.name for p in files]

    # LocalSend's sender to our receiver: what arrives is not called verified either.
    sent = phone.ctl("send", *map(str, files), "--to", "127.0.0.1", "--wait")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    done = ours.expect_event("done", TRANSFER_TIMEOUT, via="localsend")
    assert (done["ok"], done["verified"]) == (True, False)
    received = [e for e in ours.seen if e.get("event") == "file_done"
                and e.get("via") == "localsend"]
    assert [e["verified"] for e in received] == [False] * 3
