"""The CLI's renderers (JSON lines for scripts, safe text for terminals), its options and
how README and --help agree."""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from e2e.terminal import plain
from p2p_transfer.cli.main import COMMANDS, cli
from p2p_transfer.cli.render import JsonRenderer, LogRoute
from p2p_transfer.cli.terminal import HumanRenderer
from p2p_transfer.cli.transfer_commands import offer_question
from p2p_transfer.events import (
    Actor,
    CodeEvent,
    ConnectionEvent,
    DecisionEvent,
    DialingEvent,
    Direction,
    DoneEvent,
    ErrorEvent,
    Event,
    FileDoneEvent,
    LogEvent,
    OfferEvent,
    OfferSentEvent,
    ProgressEvent,
    ReceiverOutcome,
    ResumeEvent,
    SendSummaryEvent,
    SessionState,
    StateEvent,
    TicketEvent,
    VerifiedEvent,
)
from p2p_transfer.limits import JSON_FLUSH_INTERVAL as FLUSH_INTERVAL
from p2p_transfer.limits import GiB, KiB, MiB
from p2p_transfer.logs import forward_logs
from p2p_transfer.transfer import IncomingOffer
from waiting import hold_for, next_turn, wait_until


def test_json_renderer_writes_one_object_per_line() -> None:
    out = io.StringIO()
    render = JsonRenderer(out)
    render(OfferEvent("t1", 2, 300, "phone", "ab" * 32))
    render(ErrorEvent("boom"))
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["offer", "error"]
    assert json.loads(lines[0])["from"] == "phone"


class _CountedFlushes(io.StringIO):
    """A stream that counts its flushes and what was out at each."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())


async def test_a_json_line_goes_out_at_once_alone_and_with_others_in_a_burst() -> None:
    """A script reading ``--json`` sees a lone event at once; a transfer's event per file
    costs one write per FLUSH_INTERVAL, not one each."""
    out = _CountedFlushes()
    render = JsonRenderer(out)
    loop = asyncio.get_running_loop()
    render(ErrorEvent("alone"))
    await next_turn()  # the end of this turn of the loop
    assert len(out.flushed) == 1 and out.flushed[0].count("\n") == 1
    await hold_for(FLUSH_INTERVAL)  # a quiet moment before the transfer's burst
    started = loop.time()
    for index in range(2000):
        render(ErrorEvent(f"burst {index}"))
        await next_turn()  # each file's event in its own turn, as in a transfer
    await wait_until(
        lambda: out.flushed[-1].count("\n") == 2001, FLUSH_INTERVAL * 2,
        what="the burst's last line to be flushed",
    )
    elapsed = loop.time() - started
    assert out.flushed[-1].count("\n") == 2001  # every line out, in order
    assert len(out.flushed) - 1 <= 2 + elapsed / FLUSH_INTERVAL


class _CountedWrites(io.StringIO):
    """A stream that writes at once (as stdout under PYTHONUNBUFFERED) and counts writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_a_burst_of_json_lines_is_one_write_also_to_a_stream_that_writes_at_once() -> None:
    """Each write to an unbuffered stdout is a system call and wakes the script reading
    it: a burst of a transfer's lines goes out together."""
    out = _CountedWrites()
    render = JsonRenderer(out)
    for index in range(100):
        render(ErrorEvent(f"file {index}"))
    assert out.writes == 1  # the first line at once, the others held
    await wait_until(
        lambda: out.getvalue().count("\n") == 100, FLUSH_INTERVAL * 10,
        what="the held lines to be written",
    )
    assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == [
        f"file {index}" for index in range(100)
    ]
    assert out.writes == 2
    render(ErrorEvent("after the loop"))
    render.close()
    assert out.getvalue().splitlines()[-1] == ErrorEvent("after the loop").to_json()


class _Trickle(io.RawIOBase):
    """stdout's raw file under PYTHONUNBUFFERED on a pipe that takes part of a write (it
    is full when a signal comes): at most 100 bytes a write."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        taken = bytes(data[:100])
        self.data += taken
        return len(taken)


async def test_a_turn_of_json_lines_arrives_whole_where_a_write_takes_part_of_it() -> None:
    raw = _Trickle()
    render = JsonRenderer(io.TextIOWrapper(raw, encoding="utf-8", write_through=True))
    for index in range(50):
        render(ErrorEvent(f"file {index}"))
    await wait_until(
        lambda: raw.data.count(b"\n") == 50, FLUSH_INTERVAL * 10,
        what="the held lines to be written",
    )
    assert [json.loads(line)["message"] for line in raw.data.decode().splitlines()] == [
        f"file {index}" for index in range(50)
    ]


def test_peer_text_cannot_inject_markup_or_terminal_escapes() -> None:
    out = io.StringIO()
    render = HumanRenderer(Console(file=out, force_terminal=False, width=200))
    hostile = "[/bold][red]evil\x1b[2J\x9b31m"
    render(CodeEvent("s1", "123456", "cd" * 32, hostile))
    render(OfferEvent("t1", 1, 10, hostile, "cd" * 32, sample=[hostile]))
    text = out.getvalue()
    assert "\x1b" not in text and "\x9b" not in text
    assert "[/bold][red]evil" in text  # shown literally, not interpreted
    assert "123 456" in text


def _screen() -> tuple[HumanRenderer, io.StringIO]:
    out = io.StringIO()
    return HumanRenderer(Console(file=out, force_terminal=False, width=200), show_qr=False), out


def test_the_name_hint_is_printed_only_when_announced_on_the_lan() -> None:
    for announced in (True, False):
        render, out = _screen()
        render(TicketEvent("endpointabc", "ab" * 32, "laptop", ["10.0.0.2:4000"], announced))
        assert ("send --to laptop FILE" in out.getvalue()) is announced
        assert "send --to 10.0.0.2:4000 FILE" in out.getvalue()


def test_a_connection_is_announced_once() -> None:
    render, out = _screen()
    render(ConnectionEvent("s1", "ab" * 32, "direct", 1.0, "127.0.0.1:1"))
    render(ConnectionEvent("s1", "ab" * 32, "direct", 1.0, "127.0.0.1:1", data_path="tcp"))
    assert out.getvalue().count("connected (direct, 1 ms)") == 1


def test_what_is_already_there_is_said_in_the_offer_and_the_summary() -> None:
    render, out = _screen()
    render(OfferEvent("s1", 3, 3 * MiB, "desk", "ab" * 32, sample=["a", "b", "c"],
                      already_there=1, partly_there=1))
    render(ResumeEvent("s1", "receive", 2, MiB + 512 * KiB, 1, MiB))
    render(FileDoneEvent("s1", "receive", "a", MiB, "00" * 32, saved_as="a (1)"))
    render(DoneEvent("s1", "receive", True, 3, 0, 3 * MiB, 2 * MiB, 1.0, "/in",
                     files_identical=1))
    assert out.getvalue().splitlines() == [
        "desk offers 3 files, 3.0 MiB: a, b, c (1 already there: skipped if identical; "
        "1 partly there: will resume)",
        "resuming: 512 KiB already there; 1 file (1.0 MiB) already there: skipped if identical",
        "a: saved as a (1)",
        "✓ 3 files, 3.0 MiB verified into /in in 1.0 s (1.0 MiB already there; "
        "1 file already there, identical: skipped)",
    ]


def _interrupted(direction: Direction, by: Actor) -> str:
    render, out = _screen()
    render(ProgressEvent("s1", direction, 436 * MiB, GiB, 0, 1, 0.0, None))
    said = "cancelled" if by == "local" else "laptop cancelled"  # as Node words them
    render(StateEvent("s1", direction, SessionState.CANCELLED, said, by, "laptop"))
    return out.getvalue().splitlines()[-1]


def test_an_interrupted_transfer_says_what_was_kept_and_how_to_go_on() -> None:
    assert _interrupted("send", "local") == (
        "✗ cancelled — about 436 MiB kept; run the same command to continue"
    )
    assert _interrupted("send", "peer") == (
        "✗ cancelled by laptop — about 436 MiB kept; run the same command to continue"
    )
    assert _interrupted("receive", "peer") == "✗ laptop cancelled; partial files kept for resume"
    assert _interrupted("receive", "local") == "✗ cancelled; partial files kept for resume"


# --- README and --help agree --------------------------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"
_OPTION = re.compile(r"--[a-z][a-z-]*")
#: An option's line in click's help: two spaces, maybe a short form, then the long one.
_HELP_OPTION = re.compile(r"^  (?:-\w, )?(--[a-z][a-z-]*)")


def _help_options(*command: str) -> set[str]:
    """The option names ``p2p-transfer COMMAND --help`` lists (its Options section)."""
    result = CliRunner().invoke(cli, [*command, "--help"], prog_name="p2p-transfer")
    assert result.exit_code == 0, result.output
    section = result.output.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0]
    return {m[1] for line in section.splitlines() if (m := _HELP_OPTION.match(line))} - {
        "--help"
    }


def _readme_usage() -> dict[tuple[str, ...], set[str]]:
    """Each command the README's usage table names, with the options its row shows."""
    usage = README.read_text().split("## Using it", 1)[1].split("\n| command |", 1)[1]
    usage = usage.split("\n\n", 1)[0]
    rows: dict[tuple[str, ...], set[str]] = {}
    for line in usage.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("` |", 1)[0]
        for span in re.findall(r"`([^`]+)`", first_cell + "`"):
            words = span.removeprefix("p2p-transfer ").split()
            group: click.Command = cli
            path: list[str] = []
            while words and isinstance(group, click.Group) and (
                sub := group.get_command(click.Context(group), words[0])
            ) is not None:
                group = sub
                path.append(words.pop(0))
            rows[tuple(path)] = set(_OPTION.findall(" ".join(words)))
    return rows


def test_the_readme_usage_table_and_help_name_the_same_options() -> None:
    rows = _readme_usage()
    commands = {(name,) for name in COMMANDS if name != "pair"} | {
        ("pair", sub) for sub in ("list", "remove", "clear", "unlock")
    }
    assert set(rows) == commands, "every command has a row, and only commands do"
    for command, documented in rows.items():
        assert documented == _help_options(*command), command
    global_line = README.read_text().split("Global options:", 1)[1].split("\n\n", 1)[0]
    assert set(_OPTION.findall(global_line)) - {"--help"} == _help_options()


def test_every_command_shows_examples_and_a_summary_that_fits() -> None:
    listing = CliRunner().invoke(cli, ["--help"], prog_name="p2p-transfer").output
    for name in COMMANDS:
        text = CliRunner().invoke(cli, [name, "--help"], prog_name="p2p-transfer").output
        examples = text.split("Examples:", 1)[1].strip().splitlines()
        assert len(examples) >= 2 and all(
            line.strip().startswith("p2p-transfer ") for line in examples
        ), text
        summary = next(line for line in listing.splitlines() if line.startswith(f"  {name} "))
        assert not summary.rstrip().endswith("..."), summary


def test_old_option_names_still_work_but_are_not_shown() -> None:
    from p2p_transfer.cli.app_command import app_command
    from p2p_transfer.cli.transfer_commands import receive

    context = receive.make_context("receive", ["--bind-addr", "10.0.0.2", "--no-discovery"])
    assert (context.params["bind_addr"], context.params["announce"]) == ("10.0.0.2", False)
    context = app_command.make_context("app", ["--bind-addr", "10.0.0.2", "--no-discovery"])
    assert (context.params["bind_addr"], context.params["no_discovery"]) == ("10.0.0.2", True)
    for command in ("receive", "app", "share", "id"):
        shown = CliRunner().invoke(cli, [command, "--help"], prog_name="p2p-transfer").output
        assert "--bind-addr" not in shown and "--no-discovery" not in shown


def test_size_options_take_units() -> None:
    from p2p_transfer.cli.share_command import share_command
    from p2p_transfer.cli.transfer_commands import receive

    assert receive.make_context("receive", ["--max-size", "1.5GiB"]).params["max_size"] == (
        3 * GiB // 2
    )
    assert share_command.make_context("share", ["--max-size", "500M"]).params["max_size"] == (
        500 * MiB
    )
    result = CliRunner().invoke(cli, ["receive", "--max-size", "lots"])
    assert result.exit_code == 2 and "is not a size (e.g. 1048576, 500M" in result.output


def test_no_bars_are_drawn_while_an_offer_may_be_asked_about() -> None:
    out = io.StringIO()
    render = HumanRenderer(Console(file=out, force_terminal=True, width=100), show_qr=False)
    try:
        render(ProgressEvent("s1", "receive", MiB, GiB, 0, 1, 0.0, None))
        assert render.drawing
        render(StateEvent("s1", "receive", SessionState.CANCELLED, "desk cancelled", "peer"))
        assert not render.drawing  # finished before anything else is said
        render(ProgressEvent("s2", "receive", MiB, GiB, 0, 1, 0.0, None))
        render(OfferEvent("s3", 1, 10, "phone", "cd" * 32, sample=["a"]))
        assert not render.drawing  # s2's bars wait while s3's question may be on screen
        render(DecisionEvent("s3", True))
        assert render.drawing
    finally:
        render.close()
    assert not render.drawing


def test_with_several_receivers_lines_name_them_and_a_question_stops_the_bars() -> None:
    out = io.StringIO()
    render = HumanRenderer(Console(file=out, force_terminal=True, width=100), show_qr=False,
                           several=True)
    try:
        render(DialingEvent("a", "ab" * 32, "alpha"))
        render(DialingEvent("b", "cd" * 32, ""))
        render(ProgressEvent("a", "send", MiB, GiB, 0, 1, 0.0, None))
        assert render.drawing
        render(VerifiedEvent("b", "cd" * 32, "beta", "code"))
        render(OfferSentEvent("b", "beta", 2, 10))  # alpha's bars move: said as a line
        with render.asking("code for c"):
            assert not render.drawing  # nothing redraws over the question
        assert render.drawing
        render(DecisionEvent("b", False, "not now"))
        render(DoneEvent("a", "send", True, 1, 0, GiB, GiB, 1.0))
        render(SendSummaryEvent(False, [
            ReceiverOutcome("alpha", "a", "alpha", SessionState.DONE, 1, GiB),
            ReceiverOutcome("endpoint" + "x" * 60, "b", "", SessionState.FAILED, 0, 0,
                            message="cannot reach cdcdcdcdcd…"),
        ]))
    finally:
        render.close()
    text = plain(out.getvalue())  # the bars' redraws run into the lines printed above them
    assert "waiting for beta to accept (2 files, 10 B)…\n" in text
    assert "beta: declined: not now\n" in text
    assert "alpha: ✓ 1 file, 1.0 GiB verified in 1.0 s\n" in text
    assert [line.rstrip() for line in text.splitlines()][-3:] == [
        "1 of 2 receivers got everything:",
        "  ✓ alpha: 1 file, 1.0 GiB",
        "  ✗ endpointxxxxxxxxxxxx…: cannot reach cdcdcdcdcd…",
    ]


def test_a_text_is_offered_by_its_first_line_and_delivered_in_one_line() -> None:
    render, out = _screen()
    render(OfferEvent("r", 0, 34, "desk\x1b[2J", "ab" * 32, text=True, preview="hi \x1b[31m…"))
    render(OfferSentEvent("s", "laptop", 0, 34, text=True))
    render(DecisionEvent("s", True))
    render(DoneEvent("s", "send", True, 0, 0, 34, 34, 0.1, text=True))
    render(DoneEvent("r", "receive", True, 0, 0, 34, 34, 0.1, text=True))  # the box says it
    assert out.getvalue().splitlines() == [
        "desk?[2J wants to send a text (34 B): hi ?[31m…",
        "✓ text (34 B) delivered to laptop",
    ]


# --- one shape per event; the warnings of every command -----------------------------------


def test_a_device_event_has_one_shape_for_ours_and_for_localsend_devices() -> None:
    from p2p_transfer.cli.devices_command import device_event
    from p2p_transfer.discovery import Device
    from p2p_transfer.localsend.discovery import LocalSendDevice

    eid = "ab" * 32
    ours = Device("laptop", eid, ("10.0.0.2:4000",), 1, "laptop [abababababab]")
    phone = LocalSendDevice("phone", "CD" * 32, "10.0.0.3", 53317, "https", "Pixel", "mobile", 0)
    out = io.StringIO()
    render = JsonRenderer(out)
    render(device_event(ours))
    render(device_event(phone))
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first == {
        "event": "device", "name": "laptop", "endpoint_id": eid, "addresses": ["10.0.0.2:4000"],
        "protocol": "p2p-transfer", "fingerprint": "", "device_model": "", "device_type": "",
    }
    assert second == {
        "event": "device", "name": "phone", "endpoint_id": "", "addresses": ["10.0.0.3:53317"],
        "protocol": "localsend", "fingerprint": "CD" * 32, "device_model": "Pixel",
        "device_type": "mobile",
    }
    assert list(first) == list(second)


def test_warnings_are_dim_stderr_lines_until_the_command_takes_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    route = LogRoute()
    route(LogEvent("warning", "discovery", "multicast [bold]off\x1b[2J"))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "discovery: multicast [bold]off?[2J\n"  # shown, not interpreted
    seen: list[Event] = []
    route.to(seen.append)
    route(LogEvent("error", "web server", "port taken"))
    assert seen == [LogEvent("error", "web server", "port taken")]
    assert capsys.readouterr().err == ""


def test_the_route_main_forwards_to_reaches_the_command_run(tmp_path: Path) -> None:
    """``main`` forwards the warnings once, to a route the command group hands every
    command: here ``pair list --json`` turns a damaged pairings file's warning into a line."""
    (tmp_path / "pairings.json").write_text("{")
    route = LogRoute()
    undo = forward_logs(route)
    try:
        result = CliRunner().invoke(
            cli, ["--config-dir", str(tmp_path), "pair", "list", "--json"], obj=route
        )
    finally:
        undo()
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["event"] == "log"
    assert "pairings.json is damaged" in json.loads(line)["message"]


def test_the_question_for_an_offer_from_wormhole_send_names_a_magic_wormhole_client() -> None:
    offer = IncomingOffer("s", "ab" * 32, "magic-wormhole sender", 1, 0, 2048, ["a.txt"],
                          via="magic-wormhole")
    assert offer_question(offer) == (
        "Accept 1 file, 2.0 KiB from a magic-wormhole client (`wormhole send`; checked by a "
        "SHA-256 of the whole transfer)?"
    )


def test_send_code_is_the_6_digit_code_with_to_and_a_short_code_without(tmp_path: Path) -> None:
    from p2p_transfer.cli.transfer_commands import receive

    note = tmp_path / "note.txt"
    note.write_text("x")
    home = ["--config-dir", str(tmp_path / "home")]
    runner = CliRunner()
    result = runner.invoke(cli, [*home, "send", "--to", "laptop", "--code", "7 Guitarist Revenge",
                                 str(note)])
    assert result.exit_code == 2, result.output
    assert ("--code 7-guitarist-revenge is a short code, for a send without --to; with --to, "
            "--code is the 6-digit code the receiver shows") in " ".join(result.output.split())
    result = runner.invoke(cli, [*home, "send", "--code", "026 767", str(note)])
    assert result.exit_code == 2, result.output
    assert "without --to, --code is the short code to send with" in result.output
    result = runner.invoke(cli, [*home, "send", "--code", "seven", str(note)])
    assert result.exit_code == 2 and "or a short code like 7-guitarist-revenge" in " ".join(
        result.output.split()
    )
    # receive --wait is for a code's sender; with a code, it takes a duration.
    result = runner.invoke(cli, [*home, "receive", "--wait", "10m"])
    assert result.exit_code == 2 and "--wait is for `receive CODE`" in result.output
    context = receive.make_context("receive", ["7-guitarist-revenge", "--wait", "10m"])
    assert (context.params["code"], context.params["wait"]) == ("7-guitarist-revenge", 600.0)
