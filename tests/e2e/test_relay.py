"""``--relay``: with no internet (tests run without one) it says so quickly and goes on direct;
and ``receive`` with relays on by default prints a ticket that names its relay anyway."""

from __future__ import annotations

import time
from pathlib import Path

from e2e.cli import CODE, CliProcess
from p2p_transfer.net import default_relays, parse_ticket, ticket_endpoint_id
from p2p_transfer.node.port import RELAY_FILE

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


def _first_ticket(home: Path, inbox: Path) -> str:
    """The ticket a ``receive`` with no --relay prints first (then it is stopped)."""
    receiver = CliProcess(["receive", "--dir", str(inbox), "--bind", "127.0.0.1", "--json"],
                          home)
    try:
        return str(receiver.wait_for("ticket")["ticket"])
    finally:
        receiver.stop()


def test_receive_with_no_relay_option_prints_a_ticket_that_names_its_relay(
    tmp_path: Path,
) -> None:
    """Relays are on by default. Offline, as here, the relay never answers, yet the ticket
    names the one of iroh's public relays this receiver uses (kept in its config dir, the
    same at every start): a sender on the internet can use the ticket once it is there."""
    ticket = _first_ticket(tmp_path / "rx", tmp_path / "inbox")
    relay = parse_ticket(ticket).relay_url()
    assert relay in default_relays(), ticket
    assert (tmp_path / "rx" / RELAY_FILE).read_text().strip() == relay
    again = _first_ticket(tmp_path / "rx", tmp_path / "inbox")
    assert ticket_endpoint_id(again) == ticket_endpoint_id(ticket)
    assert parse_ticket(again).relay_url() == relay
