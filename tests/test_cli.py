"""The CLI's renderers: JSON lines for scripts, safe text for terminals."""

from __future__ import annotations

import io
import json

from rich.console import Console

from p2p_transfer.cli.render import JsonRenderer, human_size
from p2p_transfer.cli.terminal import HumanRenderer
from p2p_transfer.events import CodeEvent, ErrorEvent, OfferEvent


def test_json_renderer_writes_one_object_per_line() -> None:
    out = io.StringIO()
    render = JsonRenderer(out)
    render(OfferEvent("t1", 2, 300, "phone", "ab" * 32))
    render(ErrorEvent("boom"))
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["offer", "error"]
    assert json.loads(lines[0])["from"] == "phone"


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


def test_human_size() -> None:
    assert human_size(512) == "512 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(3 * 1024**3) == "3.0 GiB"
