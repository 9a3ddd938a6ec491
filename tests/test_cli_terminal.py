"""Wording of the terminal renderer a person reads: each thing said once, in the words
that fit the moment (before acceptance: "will resume"; a tiny file: no "?" for a speed)."""

from __future__ import annotations

import io

from rich.console import Console

from p2p_transfer.cli.terminal import HumanRenderer
from p2p_transfer.events import (
    ConnectionEvent,
    DecisionEvent,
    DoneEvent,
    OfferEvent,
    OfferSentEvent,
    ProgressEvent,
)


def _screen() -> tuple[HumanRenderer, io.StringIO]:
    out = io.StringIO()
    return HumanRenderer(Console(file=out, force_terminal=False, width=120), show_qr=False), out


def test_a_decline_that_says_declined_is_said_once() -> None:
    render, out = _screen()
    render(OfferSentEvent("s1", "laptop", 1, 10))
    render(DecisionEvent("s1", False, "declined by the receiver"))
    render(DecisionEvent("s2", False, "not enough disk space on the receiver"))
    lines = out.getvalue().splitlines()
    assert "declined by the receiver" in lines
    assert "declined: not enough disk space on the receiver" in lines
    assert "declined: declined" not in out.getvalue()


def test_a_tiny_file_shows_no_question_mark_for_its_speed() -> None:
    render, out = _screen()
    render(ProgressEvent("s1", "receive", 6, 6, 1, 1, 0.0, None))
    render(DoneEvent("s1", "receive", True, 1, 0, 6, 6, 0.1, "/in"))
    bar = next(line for line in out.getvalue().splitlines() if "6/6 bytes" in line)
    assert "?" not in bar


def test_the_receiver_says_no_connected_line_after_the_offer() -> None:
    render, out = _screen()
    render(OfferEvent("s1", 1, 10, "desk", "ab" * 32, sample=["a"]))
    render(DecisionEvent("s1", True))
    render(ConnectionEvent("s1", "ab" * 32, "direct", 0.0, "127.0.0.1:1", data_path="tcp"))
    assert "connected" not in out.getvalue()
    # The sender still says it, once it reached the receiver.
    sender, said = _screen()
    sender(ConnectionEvent("s2", "cd" * 32, "direct", 0.4, "127.0.0.1:2"))
    assert "connected (direct, 0 ms)" in said.getvalue()


def test_a_part_held_is_said_to_be_resumed_only_after_acceptance() -> None:
    render, out = _screen()
    render(OfferEvent("s1", 1, 10, "desk", "ab" * 32, sample=["a"], partly_there=1))
    assert "(1 partly there: will resume)" in out.getvalue()
    assert ": resumed" not in out.getvalue()
