"""``--relay``: with no internet (tests run without one) it says so quickly and goes on direct."""

from __future__ import annotations

import time
from pathlib import Path

from e2e.cli import CODE, CliProcess

#: The longest a relay that cannot be reached may delay start-up, per the issue.
RELAY_GIVE_UP_LIMIT = 10.0


def test_unreachable_relay_is_reported_quickly_then_direct_works(tmp_path: Path) -> None:
    started = time.monotonic()
    receiver = CliProcess(
        ["receive", "--dir", str(tmp_path / "inbox"), "--yes", "--once", "--code", CODE,
         "--bind", "127.0.0.1", "--relay", "default", "--json"],
        tmp_path / "rx",
    )
    try:
        relay = receiver.wait_for("relay", timeout=RELAY_GIVE_UP_LIMIT + 5)
        assert time.monotonic() - started < RELAY_GIVE_UP_LIMIT
        assert relay["connected"] is False and "unreachable" in relay["message"]
        ticket = receiver.wait_for("ticket")["ticket"]
        source = tmp_path / "note.txt"
        source.write_text("over the direct path")
        sender = CliProcess(
            ["send", "--to", ticket, "--code", CODE, "--relay", "default", "--json", str(source)],
            tmp_path / "tx",
        )
        assert sender.wait(60) == 0, sender.stderr_lines
        assert sender.wait_for("connection")["path"] == "direct"
        assert receiver.wait(30) == 0
    finally:
        receiver.stop()
    assert (tmp_path / "inbox" / "note.txt").read_text() == "over the direct path"


def test_bad_relay_value_is_a_one_line_error(tmp_path: Path) -> None:
    receiver = CliProcess(["receive", "--relay", "ftp://nowhere", "--json"], tmp_path / "rx")
    assert receiver.wait() == 1
    assert "--relay takes off, default or an http(s) URL" in receiver.wait_for("error")["message"]
