"""Faults: a killed sender, a killed receiver and a full disk leave the target with
only verified files and resumable ``.part`` files, and the repeated send completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from conftest import Peers, assert_same_tree, requires_root
from e2e.cli import CODE, start_receiver, start_sender, throttled
from netns import Host, JsonLines, Lab
from p2p_transfer.limits import ENTRY_DISK_COST, MiB
from p2p_transfer.protocol import PART_SUFFIX
from p2p_transfer.transfer import Decision, Declined, IncomingOffer
from security.conftest import reserve
from waiting import wait_until_blocking

#: Files of the killed transfers: big enough that a kill lands inside one.
KILL_FILES = 6
KILL_FILE_SIZE = 16 * MiB
#: The tmpfs target of the disk-full test, and the file that does not fit.
DISK_SIZE = "16m"
FULL_DISK_FILE_SIZE = 12 * MiB
#: What another program writes to the disk while the user decides.
FILLER_SIZE = 8 * MiB
#: Free inodes of the small disk an offer of many empty files must not exhaust.
FEW_INODES = 1000
MANY_EMPTY_FILES = 6000
#: Small files of the killed receiver: enough that the kill lands between them.
MANY_SMALL_FILES = 2000


def _source_folder(root: Path) -> Path:
    folder = root / "batch"
    folder.mkdir(parents=True)
    for i in range(KILL_FILES):
        (folder / f"part-{i}.bin").write_bytes(os.urandom(KILL_FILE_SIZE))
    return folder


def assert_only_verified_or_resumable(source: Path, received: Path) -> int:
    """Every file under ``received`` is a complete copy of its source or a ``.part``
    holding a prefix of it (all of it, when the end came between the last byte and the
    check of its hash); returns how many bytes are held in parts."""
    held = 0
    for path in received.rglob("*"):
        if path.is_dir():
            continue
        relative = path.relative_to(received).as_posix()
        if relative.endswith(PART_SUFFIX):
            original = (source / relative[: -len(PART_SUFFIX)]).read_bytes()
            data = path.read_bytes()
            assert original.startswith(data), relative
            held += len(data)
        else:
            assert path.read_bytes() == (source / relative).read_bytes(), relative
    return held


def _partly_sent(event: dict) -> bool:
    """A sender progress event with a file in the middle of its bytes, past 1/3 overall."""
    return event["bytes_done"] >= event["bytes_total"] // 3 and any(
        0 < f["bytes_done"] < f["size"] for f in event.get("active", [])
    )


def test_killed_sender_leaves_only_verified_files_and_parts(tmp_path: Path) -> None:
    source = _source_folder(tmp_path / "src")
    total = KILL_FILES * KILL_FILE_SIZE
    inbox = tmp_path / "inbox"
    receiver, ticket = start_receiver(tmp_path / "rx", inbox)
    try:
        first = start_sender(tmp_path / "tx", ticket, source, extra=("--parallel", "2"))
        with throttled(first.process.pid):
            first.wait_for("progress", _partly_sent)
            first.process.send_signal(signal.SIGKILL)
        first.wait()
        receiver.wait_for("error")  # it has let go of the transfer: the folder stands still
        assert_only_verified_or_resumable(source, inbox / "batch")
        assert list((inbox / "batch").iterdir())  # something arrived before the kill

        second = start_sender(tmp_path / "tx", ticket, source)
        assert second.wait(60) == 0, second.stderr_lines
        done = second.wait_for("done")
        assert done["ok"] and done["files"] == KILL_FILES
        assert done["bytes_transferred"] < total  # what was held was not sent again
    finally:
        receiver.stop()
    assert_same_tree(source, inbox / "batch")


def test_killed_receiver_resumes_after_a_restart(tmp_path: Path) -> None:
    source = _source_folder(tmp_path / "src")
    total = KILL_FILES * KILL_FILE_SIZE
    inbox = tmp_path / "inbox"
    receiver, ticket = start_receiver(tmp_path / "rx", inbox)
    try:
        sender = start_sender(tmp_path / "tx", ticket, source, extra=("--parallel", "2"))
        with throttled(sender.process.pid):
            sender.wait_for("progress", _partly_sent)
            receiver.process.send_signal(signal.SIGKILL)
        receiver.wait()
        sender.process.send_signal(signal.SIGKILL)  # it would wait ~30 s to notice
        sender.wait()
    finally:
        receiver.stop()
    held = assert_only_verified_or_resumable(source, inbox / "batch")
    finished = [p for p in (inbox / "batch").iterdir() if not p.name.endswith(PART_SUFFIX)]
    assert held or finished

    restarted, ticket = start_receiver(tmp_path / "rx", inbox)
    try:
        again = start_sender(tmp_path / "tx", ticket, source)
        assert again.wait(60) == 0, again.stderr_lines
        done = again.wait_for("done")
        assert done["ok"] and done["bytes_transferred"] < total
        assert restarted.wait_for("done")["ok"]
    finally:
        restarted.stop()
    assert_same_tree(source, inbox / "batch")


def test_killed_receiver_of_many_small_files_keeps_only_whole_ones(tmp_path: Path) -> None:
    """Small files are written whole under their names in one step: a receiver killed
    between (or inside) them leaves complete files only, and the repeated send brings
    the rest."""
    source = tmp_path / "src" / "batch"
    source.mkdir(parents=True)
    for i in range(MANY_SMALL_FILES):
        (source / f"{i:04}.txt").write_bytes(os.urandom(i % 5000))
    inbox = tmp_path / "inbox"
    receiver, ticket = start_receiver(tmp_path / "rx", inbox)
    try:
        sender = start_sender(tmp_path / "tx", ticket, source)
        with throttled(sender.process.pid):
            sender.wait_for(
                "progress", lambda e: MANY_SMALL_FILES // 4 <= e["files_done"] < MANY_SMALL_FILES
            )
            receiver.process.send_signal(signal.SIGKILL)
        receiver.wait()
        sender.process.send_signal(signal.SIGKILL)
        sender.wait()
    finally:
        receiver.stop()
    assert_only_verified_or_resumable(source, inbox / "batch")
    arrived = [p for p in (inbox / "batch").iterdir() if not p.name.endswith(PART_SUFFIX)]
    assert 0 < len(arrived) < MANY_SMALL_FILES

    restarted, ticket = start_receiver(tmp_path / "rx", inbox)
    try:
        again = start_sender(tmp_path / "tx", ticket, source)
        assert again.wait(60) == 0, again.stderr_lines
        assert again.wait_for("done")["ok"]
    finally:
        restarted.stop()
    assert_same_tree(source, inbox / "batch")


def _mount_tmpfs(folder: Path, size: str, inodes: int | None = None) -> None:
    options = f"size={size},mode=0700" + (f",nr_inodes={inodes}" if inodes else "")
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        check=True, capture_output=True,
    )


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


async def test_disk_full_mid_file_keeps_a_resumable_part_and_the_same_send_resumes(
    peers: Peers, tmp_path: Path
) -> None:
    """A file that fills the disk stays a resumable part. Once a little room is freed
    (less than the file, more than what is missing) the same send is judged by what it
    still needs, accepted, and resumes; sent once more with almost no room left, the
    identical file is accepted and not sent again."""
    requires_root()
    peers.target.mkdir(parents=True, exist_ok=True)
    _mount_tmpfs(peers.target, DISK_SIZE)
    try:
        (peers.target / "keep-me.txt").write_text("the user's own file")
        fill_once = [True]

        async def user_while_disk_fills(offer: IncomingOffer) -> Decision:
            # While the user looks at the offer, another program takes half the disk.
            if fill_once:
                fill_once.clear()
                (peers.target / "other-program.bin").write_bytes(b"\0" * FILLER_SIZE)
            return Decision(True)

        await reserve(peers, user_while_disk_fills, auto_accept=False)
        source = tmp_path / "big.bin"
        data = os.urandom(FULL_DISK_FILE_SIZE)
        source.write_bytes(data)

        first = await peers.send(source)
        assert not first.ok
        assert "receiver out of disk space" in first.message, first.message
        part = peers.target / ("big.bin" + PART_SUFFIX)
        held = part.read_bytes()
        assert 0 < len(held) < len(data) and data.startswith(held)
        assert not (peers.target / "big.bin").exists()
        assert (peers.target / "keep-me.txt").read_text() == "the user's own file"
        assert (peers.target / "other-program.bin").stat().st_size == FILLER_SIZE
        assert sorted(p.name for p in peers.target.iterdir()) == [
            "big.bin.part", "keep-me.txt", "other-program.bin",
        ]

        (peers.target / "other-program.bin").unlink()  # room for the rest, not the whole
        free = shutil.disk_usage(peers.target).free
        assert len(data) - len(held) < free < len(data)
        second = await peers.send(source)
        assert second.ok, second.message
        assert second.bytes_transferred == len(data) - len(held)  # resumed, not restarted
        assert (peers.target / "big.bin").read_bytes() == data
        assert not part.exists()
        assert (peers.target / "keep-me.txt").read_text() == "the user's own file"

        almost_all = shutil.disk_usage(peers.target).free - MiB
        (peers.target / "filler.bin").write_bytes(b"\0" * almost_all)
        again = await peers.send(source)
        assert again.ok, again.message
        assert again.bytes_transferred == 0
        assert sorted(p.name for p in peers.target.iterdir()) == [
            "big.bin", "filler.bin", "keep-me.txt",
        ]
    finally:
        assert peers.serve_task is not None
        peers.serve_task.cancel()
        await asyncio.gather(peers.serve_task, return_exceptions=True)
        _unmount(peers.target)


def test_cli_offer_bigger_than_the_free_space_is_declined_unwritten(tmp_path: Path) -> None:
    """Through real processes, on a real small disk: an offer that cannot fit is declined
    before a byte is written, and the sending user reads why."""
    requires_root()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _mount_tmpfs(inbox, "4m")
    try:
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(3 * MiB))
        (inbox / "filler.bin").write_bytes(b"\0" * (2 * MiB))
        receiver, ticket = start_receiver(tmp_path / "rx", inbox)
        try:
            sender = start_sender(tmp_path / "tx", ticket, source)
            assert sender.wait(60) == 1
            declined = sender.wait_for("decision")
            assert not declined["accepted"] and "not enough disk space" in declined["reason"]
            assert sender.named("state")[-1]["state"] == "declined"
        finally:
            receiver.stop()
        assert sorted(p.name for p in inbox.iterdir()) == ["filler.bin"]
    finally:
        _unmount(inbox)


def test_cli_offer_of_more_files_than_the_disk_has_inodes_is_declined_unwritten(
    tmp_path: Path,
) -> None:
    """Empty files take no bytes but an inode each: 6,000 of them offered to a disk with
    1,000 free inodes are declined with the reason, before one is created."""
    requires_root()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _mount_tmpfs(inbox, "64m", inodes=FEW_INODES)
    try:
        source = tmp_path / "empty"
        source.mkdir()
        for index in range(MANY_EMPTY_FILES):
            (source / f"{index:05}.txt").touch()
        free = os.statvfs(inbox).f_favail
        assert 0 < free < MANY_EMPTY_FILES
        receiver, ticket = start_receiver(tmp_path / "rx", inbox)
        try:
            sender = start_sender(tmp_path / "tx", ticket, source)
            assert sender.wait(60) == 1
            declined = sender.wait_for("decision")
            assert not declined["accepted"]
            assert declined["reason"] == (
                f"not enough room on the receiver's disk for {MANY_EMPTY_FILES + 1} new files "
                f"and folders (room for {free})"
            )
        finally:
            receiver.stop()
        assert list(inbox.iterdir()) == []
        assert os.statvfs(inbox).f_favail == free
    finally:
        _unmount(inbox)


async def test_max_size_counts_new_files_not_only_bytes(peers: Peers, tmp_path: Path) -> None:
    """``--max-size 1`` once let thousands of empty files through (0 bytes each): each new
    file or folder counts ENTRY_DISK_COST now, so they are declined, unwritten."""
    await reserve(peers, max_size=1)
    source = tmp_path / "empty"
    source.mkdir()
    for index in range(2000):
        (source / f"{index:04}.txt").touch()
    result = await peers.send(source)
    assert isinstance(result.error, Declined), result
    needed = 2001 * ENTRY_DISK_COST
    assert result.message == (
        f"offer of {needed} bytes: 0 of data and 2001 new files and folders at "
        f"{ENTRY_DISK_COST} bytes each exceeds the receiver's limit of 1 bytes"
    )
    assert not peers.target.exists() or list(peers.target.iterdir()) == []


#: nftables table that cuts a host off (every non-loopback packet dropped, both ways).
CUT_TABLE = "p2pt_cut"


def _cli(host: Host, home: Path, *args: str) -> JsonLines:
    return host.spawn(sys.executable, "-m", "p2p_transfer", "--config-dir", str(home), *args)


def _cut_off(host: Host) -> None:
    host.run("nft", (
        f"add table inet {CUT_TABLE}; "
        f"add chain inet {CUT_TABLE} in {{ type filter hook input priority 0; }}; "
        f"add chain inet {CUT_TABLE} out {{ type filter hook output priority 0; }}; "
        f'add rule inet {CUT_TABLE} in iifname != "lo" counter drop; '
        f'add rule inet {CUT_TABLE} out oifname != "lo" counter drop'
    ))


def _dropped(host: Host) -> int:
    """How many packets the cut has dropped so far."""
    listing = host.run("nft", "list", "table", "inet", CUT_TABLE).stdout
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))


def _reconnect(host: Host) -> int:
    """Remove the cut; returns how many packets it dropped."""
    dropped = _dropped(host)
    host.run("nft", "delete", "table", "inet", CUT_TABLE)
    return dropped


def test_network_drop_mid_transfer_then_the_sender_comes_back(
    netns_lab: Lab, tmp_path: Path
) -> None:
    """Two hosts on a bridge; the sender's link drops every packet mid-file and the
    sender dies. The receiver keeps serving, holds only verified files and true-prefix
    parts, and when the link is back the same send resumes and completes."""
    receiving, sending = netns_lab.lan(2)
    source = _source_folder(tmp_path / "src")
    total = KILL_FILES * KILL_FILE_SIZE
    inbox = tmp_path / "inbox"
    receiver = _cli(receiving, tmp_path / "rx", "--name", "rx", "receive", "--dir", str(inbox),
                    "--yes", "--code", CODE, "--bind", receiving.address, "--no-announce",
                    "--json")
    ticket = receiver.expect_event("ticket", 30)["ticket"]
    first = _cli(sending, tmp_path / "tx", "--name", "tx", "send", "--to", ticket, "--code",
                 CODE, "--parallel", "2", "--json", str(source))
    try:
        with throttled(first.proc.pid):
            first.expect(
                lambda e: e.get("event") == "progress" and _partly_sent(e), 30, "progress"
            )
            _cut_off(sending)
    except AssertionError as exc:
        with contextlib.suppress(AssertionError):
            receiver.expect(lambda e: False, 1)  # collect what the receiver said
        raise AssertionError(f"{exc}; receiver: {receiver.seen} {receiver.stderr}") from None
    wait_until_blocking(  # the cable is out: nothing gets through
        lambda: _dropped(sending) > 0, 10, every=0.1, what="the cut to drop the transfer's packets"
    )
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.wait(10)
    assert_only_verified_or_resumable(source, inbox / "batch")
    assert _reconnect(sending) > 0  # the drop was real
    again = _cli(sending, tmp_path / "tx", "--name", "tx", "send", "--to", ticket, "--code",
                 CODE, "--json", str(source))
    done = again.expect_event("done", 60)
    assert done["ok"] and done["bytes_transferred"] < total, again.seen
    assert again.wait(30) == 0, again.stderr
    assert receiver.proc.poll() is None  # still serving
    assert_same_tree(source, inbox / "batch")
