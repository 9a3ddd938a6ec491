"""The terminal renderer (cli/terminal.py) on what a send's route and a LocalSend transfer
say: a lookup said at once, a remembered route and a warning said as lines, a decline
LocalSend gives no reason for, summaries that call only p2p-transfer "verified", and an
error of several lines kept as lines."""

from __future__ import annotations

import io

from rich.console import Console

from e2e.terminal import plain
from p2p_transfer.cli.terminal import HumanRenderer
from p2p_transfer.events import (
    DecisionEvent,
    DialingEvent,
    DoneEvent,
    ErrorEvent,
    FileFailedEvent,
    LookupEvent,
    OfferSentEvent,
    ReceiverOutcome,
    RouteEvent,
    SendSummaryEvent,
    SessionState,
)

WARNING = "phone is a LocalSend device: files go unverified by the receiver's key"


def _screen(**options: bool) -> tuple[HumanRenderer, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    return HumanRenderer(console, show_qr=False, **options), out


def _lines(out: io.StringIO) -> list[str]:
    return [line.rstrip() for line in plain(out.getvalue()).splitlines() if line.strip()]


def test_a_name_lookup_and_a_remembered_route_are_said_as_they_happen() -> None:
    render, out = _screen()
    render(LookupEvent("s", "bob"))
    render(RouteEvent("s", "bob", "p2p-transfer", "bob", "ab" * 32, "pairing",
                      ["10.0.0.3:4000"]))
    render(RouteEvent("t", "laptop", "p2p-transfer", "laptop", "cd" * 32, "lan",
                      ["10.0.0.4:4000"]))  # found as usual: nothing to say
    assert _lines(out) == [
        "looking for bob on this network…",
        "bob is not announced on this network; trying where it was last reached "
        "(10.0.0.3:4000)…",
    ]


def test_the_localsend_warning_is_a_line_unless_the_question_says_it() -> None:
    route = RouteEvent("s", "phone", "localsend", "phone", "CD" * 32, "localsend",
                       ["10.0.0.8:53317"], WARNING)
    render, out = _screen(asks_unverified=True)
    render(route)  # the question that follows says it
    assert _lines(out) == []
    render, out = _screen()  # --yes
    render(route)
    assert _lines(out) == [f"! {WARNING}"]
    render, out = _screen(asks_unverified=True)  # an address the user typed: not asked
    render(RouteEvent("s", "localsend:10.0.0.8", "localsend", "10.0.0.8", "", "address",
                      ["10.0.0.8:53317"], WARNING.replace("phone", "10.0.0.8")))
    assert _lines(out) == [f"! {WARNING.replace('phone', '10.0.0.8')}"]


def test_a_localsend_send_is_waited_for_its_decline_said_and_its_summary_never_verified(
) -> None:
    render, out = _screen()
    for session in "st":  # as the LocalSend sender says them
        render(DialingEvent(session, "CD" * 32, "phone", ["10.0.0.8:53317"]))
    render(OfferSentEvent("s", "phone", 1, 14))
    render(DecisionEvent("s", False))  # LocalSend's 403: no reason
    render(OfferSentEvent("t", "phone", 2, 2048))
    render(DecisionEvent("t", True))
    render(FileFailedEvent("t", "send", "b.txt", "phone refused a file: HTTP 500"))
    render(DoneEvent("t", "send", False, 1, 1, 2048, 2048, 0.5, via="localsend"))
    render(DoneEvent("u", "send", True, 2, 0, 2048, 2048, 0.5, via="localsend"))
    render(DoneEvent("v", "receive", True, 1, 0, 10, 10, 0.2, "/in", via="localsend"))
    render(DoneEvent("w", "send", True, 1, 0, 10, 10, 0.2))
    lines = _lines(out)
    assert lines[:3] == [
        "✗ phone declined", "✓ phone accepted", "✗ b.txt: phone refused a file: HTTP 500"
    ]
    assert lines[-4:] == [
        "✗ 1 file failed, 1 sent (not verified end to end)",
        "✓ 2 files, 2.0 KiB sent via LocalSend in 0.5 s — not verified end to end",
        "✓ 1 file, 10 B received via LocalSend into /in in 0.2 s — not verified end to end",
        "✓ 1 file, 10 B verified in 0.2 s",
    ]


def test_a_magic_wormhole_transfer_says_so_and_what_it_checked_never_verified() -> None:
    render, out = _screen()
    render(DoneEvent("a", "receive", True, 1, 0, 10, 10, 0.2, "/in", via="magic-wormhole"))
    render(DoneEvent("b", "send", True, 3, 0, 2048, 2048, 0.5, via="magic-wormhole"))
    render(DoneEvent("c", "send", True, 0, 0, 5, 5, 0.0, via="magic-wormhole", text=True))
    lines = _lines(out)
    assert lines == [
        "✓ 1 file, 10 B received via magic-wormhole into /in in 0.2 s — SHA-256 of the whole "
        "transfer, acknowledged by the receiver",
        "✓ 3 files, 2.0 KiB sent via magic-wormhole in 0.5 s — SHA-256 of the whole transfer, "
        "acknowledged by the receiver",
        "✓ text (5 B) delivered via magic-wormhole — sent under the code's key, acknowledged "
        "by the receiver",
    ]
    assert not any("verified" in line for line in lines)


def test_a_summary_says_which_receivers_got_files_unverified() -> None:
    render, out = _screen()
    render(SendSummaryEvent(True, [
        ReceiverOutcome("laptop", "a", "laptop", SessionState.DONE, 1, 10),
        ReceiverOutcome("phone", "b", "phone", SessionState.DONE, 1, 10, via="localsend"),
    ]))
    assert _lines(out)[-2:] == [
        "  ✓ laptop: 1 file, 10 B",
        "  ✓ phone: 1 file, 10 B via LocalSend — not verified end to end",
    ]


def test_an_error_of_several_lines_keeps_them_each_indented_and_made_safe() -> None:
    render, out = _screen()
    render(ErrorEvent("'vm' names 2 p2p-transfer devices; send to the one you mean:\n"
                      "  p2p-transfer: vm at 10.0.0.2:4000, ID 9d5bdc6a847f\n"
                      "  p2p-transfer: vm\x1b[2J at 10.0.0.3:4000, ID cf1a2b3c4d5e"))
    assert _lines(out) == [
        "error: 'vm' names 2 p2p-transfer devices; send to the one you mean:",
        "    p2p-transfer: vm at 10.0.0.2:4000, ID 9d5bdc6a847f",
        "    p2p-transfer: vm?[2J at 10.0.0.3:4000, ID cf1a2b3c4d5e",
    ]
