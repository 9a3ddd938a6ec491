"""The typed event stream: JSON shapes front ends rely on, and the bus that fans them out."""

from __future__ import annotations

import json

import pytest

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
