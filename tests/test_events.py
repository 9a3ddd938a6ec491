"""The typed event stream: JSON shapes front ends rely on, and the bus that fans them out."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys
import types
import typing
from typing import Any

import pytest
from msgspec import Struct

import p2p_transfer.app.events  # noqa: F401  (the app's events: the web UI sends them too)
from p2p_transfer.events import (
    CodeEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    EventBus,
    FileDoneEvent,
    FileProgress,
    OfferEvent,
    ProgressEvent,
    SessionState,
    TextEvent,
    TicketEvent,
)


def test_offer_event_uses_the_from_key() -> None:
    event = OfferEvent("t1", files=3, bytes=4096, sender="alice's laptop", sender_id="ab" * 32)
    data = event.to_dict()
    assert data == {
        "event": "offer",
        "session": "t1",
        "files": 3,
        "bytes": 4096,
        "from": "alice's laptop",
        "sender_id": "ab" * 32,
        "folders": 0,
        "sample": [],
        "via": "p2p-transfer",
        "device_model": "",
        "text": False,
        "preview": "",
        "already_there": 0,
        "partly_there": 0,
    }
    assert next(iter(data)) == "event"


def test_a_text_event_says_who_sent_it_and_how() -> None:
    data = TextEvent("t1", "phone", "hello\nworld", "localsend").to_dict()
    assert data == {"event": "text", "session": "t1", "from": "phone",
                    "text": "hello\nworld", "via": "localsend"}


def test_ticket_event_uses_the_name_key() -> None:
    data = TicketEvent("endpointabc", "ab" * 32, "desk", ["10.0.0.2:4000"]).to_dict()
    assert data == {"event": "ticket", "ticket": "endpointabc", "endpoint_id": "ab" * 32,
                    "name": "desk", "addresses": ["10.0.0.2:4000"], "announced": False}  # fmt: skip
    assert "device_name" not in data


def test_renames_do_not_leak_between_events() -> None:
    """``name``/``from`` renames belong to their own event only."""
    assert CodeEvent("s1", "123456", "ab", "bob", 2, 5).to_dict() == {
        "event": "code", "session": "s1", "code": "123456", "peer_id": "ab", "peer_name": "bob",
        "attempt": 2, "max_attempts": 5,
    }  # fmt: skip
    assert ErrorEvent("boom").to_dict() == {
        "event": "error", "message": "boom", "session": None, "detail": "",
    }  # fmt: skip


def test_progress_event_nests_active_files() -> None:
    event = ProgressEvent(
        "t1", "receive", bytes_done=10, bytes_total=30, files_done=1, files_total=3,
        rate=5.0, eta=4.0, active=[FileProgress("a.txt", 4, 10), FileProgress("b/c", 0, 10)],
    )  # fmt: skip
    data = event.to_dict()
    assert data["event"] == "progress"
    assert data["active"] == [
        {"path": "a.txt", "bytes_done": 4, "size": 10},
        {"path": "b/c", "bytes_done": 0, "size": 10},
    ]
    assert (data["bytes_done"], data["bytes_total"], data["rate"], data["eta"]) == (
        10,
        30,
        5.0,
        4.0,
    )


@pytest.mark.parametrize(
    "event",
    [
        OfferEvent("t", 1, 2, "a", "b", sample=["x", "ü"]),
        ProgressEvent("t", "send", 0, 0, 0, 0, 0.0, None, [FileProgress("x", 0, 0)]),
        FileDoneEvent("t", "send", "x", 1, "00" * 32, resumed_from=0),
        DoneEvent("t", "receive", True, 1, 0, 5, 5, 0.25, target="/tmp/x"),
    ],
    ids=lambda e: e.name,
)
def test_to_dict_is_json_ready(event: Event) -> None:
    line = json.dumps(event.to_dict())
    assert json.loads(line)["event"] == event.name


#: Strings JSON must escape (quotes, backslashes, control characters) or keep as they
#: are (U+2028, emoji, non-ASCII, a lone surrogate), and a StrEnum in a str field.
STRINGS: list[Any] = [
    "",
    "plain.txt",
    'say "hi"',
    "C:\\dir\\file",
    "\x00\x01\x1f\t\n\r\x7f\x85",
    "line\u2028sep\u2029",
    "🎉 👨‍👩‍👧",
    "Grüße, 日本語, ﻿bom",
    "</script>",
    "\ud800",
    SessionState.FAILED,
]
INTS = [0, 1, -42, 2**64 + 1, -(10**30)]
FLOATS = [0.0, 0.1, 1e20, -0.0, 1.5e-7, 3.0, 1e300 * 10, -1e300 * 10, math.nan]


def samples(kind: Any) -> list[Any]:
    """Values of an annotated type: every literal or enum member, tricky strings and
    numbers, lists empty and full, nested dataclasses. A new type fails loudly here."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    simple: dict[Any, list[Any]] = {
        str: STRINGS, int: INTS, float: FLOATS, bool: [True, False], type(None): [None],
    }  # fmt: skip
    if kind in simple:
        return simple[kind]
    if origin is typing.Literal:
        return list(args)
    if origin in (typing.Union, types.UnionType):
        return [value for arg in args for value in samples(arg)]
    if origin is list:
        return [[], samples(args[0])[:1], samples(args[0])]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return list(kind)
    if dataclasses.is_dataclass(kind) or (isinstance(kind, type) and issubclass(kind, Struct)):
        return instances(kind)
    raise TypeError(f"no samples for {kind!r}: add them to samples()")


def instances(kind: type) -> list[Any]:
    """Instances of a dataclass or struct (an event) covering every sample of each field
    (in turn); a field the class derives itself (``init=False``) is left to it."""
    hints = typing.get_type_hints(kind)
    names = (
        kind.__struct_fields__ if issubclass(kind, Struct)
        else [f.name for f in dataclasses.fields(kind) if f.init]
    )
    values = {name: samples(hints[name]) for name in names}
    count = max((len(v) for v in values.values()), default=1)
    return [kind(**{n: v[(i + j) % len(v)] for j, (n, v) in enumerate(values.items())})
            for i in range(count)]  # fmt: skip


def concrete_events(kind: type[Event] = Event) -> list[type[Event]]:
    """Every event class with its own ``name`` (not a base such as SessionEvent), as its
    module has it."""
    exported = getattr(sys.modules[kind.__module__], kind.__qualname__, None) is kind
    found = [kind] if exported and "name" in vars(kind) and kind is not Event else []
    for sub in kind.__subclasses__():
        found += concrete_events(sub)
    return found


def test_every_event_kind_is_sampled() -> None:
    names = {kind.name for kind in concrete_events()}
    assert {"file_done", "state", "summary", "transfer", "settings"} <= names
    assert len(names) == len(concrete_events()) >= 40


@pytest.mark.parametrize("kind", concrete_events(), ids=lambda kind: kind.name)
def test_to_json_is_json_dumps_of_to_dict_byte_for_byte(kind: type[Event]) -> None:
    """Scripts match ``--json`` lines as text: to_json must not change a byte of them."""
    for event in instances(kind):
        assert event.to_json() == json.dumps(event.to_dict(), ensure_ascii=False)


def test_to_json_is_the_line_scripts_read() -> None:
    event = TicketEvent('tick"et', "ab", "Küche 🎉", ["10.0.0.2:4000"], announced=True)
    assert event.to_json() == (
        '{"event": "ticket", "ticket": "tick\\"et", "endpoint_id": "ab", "name": "Küche 🎉", '
        '"addresses": ["10.0.0.2:4000"], "announced": true}'
    )
    done = DoneEvent("s", "send", False, 2, 1, 10, 5, math.inf, via="localsend")
    assert json.loads(done.to_json())["seconds"] == math.inf
    assert '"seconds": Infinity, "target": null' in done.to_json()


def test_to_dict_does_not_share_state_with_the_event() -> None:
    sample = ["a", "b"]
    event = OfferEvent("t", 2, 2, "s", "id", sample=sample)
    event.to_dict()["sample"].append("c")
    assert event.sample == ["a", "b"]


def test_bus_delivers_in_order_to_every_subscriber() -> None:
    bus = EventBus()
    first: list[Event] = []
    second: list[Event] = []
    bus.subscribe(first.append)
    bus.subscribe(second.append)
    events = [ErrorEvent("one"), ErrorEvent("two")]
    for event in events:
        bus.emit(event)
    assert first == events and second == events


def test_bus_unsubscribe() -> None:
    bus = EventBus()
    seen: list[Event] = []
    unsubscribe = bus.subscribe(seen.append)
    bus.emit(ErrorEvent("before"))
    unsubscribe()
    bus.emit(ErrorEvent("after"))
    assert seen == [ErrorEvent("before")]


def test_bus_handler_may_unsubscribe_while_the_event_is_delivered() -> None:
    bus = EventBus()
    seen: list[str] = []

    def once(event: Event) -> None:
        seen.append("once")
        unsubscribe_once()

    unsubscribe_once = bus.subscribe(once)
    bus.subscribe(lambda event: seen.append("always"))
    bus.emit(ErrorEvent("x"))
    bus.emit(ErrorEvent("y"))
    assert seen == ["once", "always", "always"]


def test_bus_with_no_subscribers() -> None:
    EventBus().emit(ErrorEvent("nobody listens"))
