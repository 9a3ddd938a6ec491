"""Text messages from hostile senders: only what the offer declared, within the limit,
shown only when whole, a preview that cannot reorder the question, no data streams; and
the receiver goes on serving honest senders."""

from __future__ import annotations

import time

import pytest

from conftest import Peers
from p2p_transfer.events import OfferEvent, TextEvent
from p2p_transfer.limits import MAX_TEXT_BYTES, TEXT_PREVIEW_CHARS
from p2p_transfer.protocol import Accept, Summary, TextOffer, TextPage
from p2p_transfer.transfer import SendOptions
from security.conftest import HostileFactory, errors_of, trusted_conversation
from security.hostile import files_in
from security.test_data_streams import PROMPT, _send_file
from waiting import wait_until


async def _honest_text_still_arrives(peers: Peers) -> None:
    result = await peers.sender.send(peers.ticket, [], SendOptions(code="123456", text="ok ✓"))
    assert result.ok, result.message
    assert [e.text for e in peers.receiver_events(TextEvent) if isinstance(e, TextEvent)] == [
        "ok ✓"
    ]


@pytest.mark.parametrize(
    ("declared", "pages", "why"),
    [
        (5, ["hello", "!"], "more than the 5 bytes of text offered"),
        (6, ["hello"], "5 bytes of text, not the 6 offered"),
        (5, ["", "hello"], "an empty text page"),
    ],
)
async def test_text_pages_other_than_offered_are_a_protocol_error_and_never_shown(
    peers: Peers, hostile: HostileFactory, declared: int, pages: list[str], why: str
) -> None:
    conversation = await trusted_conversation(peers, hostile)
    await conversation.send(TextOffer("t", declared, len(pages), "hello"))
    assert isinstance(await conversation.read(), Accept)
    await conversation.send(*(TextPage(page) for page in pages))
    closed = await conversation.closed()
    assert "protocol error" in closed and why in closed, closed
    assert not peers.receiver_events(TextEvent)
    await wait_until(lambda: any(why in e for e in errors_of(peers)), what="the error event")
    await _honest_text_still_arrives(peers)


@pytest.mark.parametrize(
    ("declared", "pages"), [(MAX_TEXT_BYTES + 1, 2), (0, 1), (10, 11), (10, 0)]
)
async def test_an_impossible_text_offer_is_refused_before_anyone_is_asked(
    peers: Peers, hostile: HostileFactory, declared: int, pages: int
) -> None:
    conversation = await trusted_conversation(peers, hostile)
    started = time.monotonic()
    await conversation.send(TextOffer("t", declared, pages, "hi"))
    closed = await conversation.closed()
    assert "protocol error: a text of" in closed, closed
    assert time.monotonic() - started < PROMPT
    assert not peers.receiver_events(OfferEvent)


async def test_a_data_stream_after_a_text_is_accepted_ends_the_connection(
    peers: Peers, hostile: HostileFactory
) -> None:
    conversation = await trusted_conversation(peers, hostile)
    await conversation.send(TextOffer("t", 5, 1, "hello"))
    assert isinstance(await conversation.read(), Accept)
    stream = await conversation.open_data()
    await _send_file(stream, 0, b"smuggled file")
    closed = await conversation.closed()
    assert "protocol error" in closed and "data stream" in closed, closed
    assert files_in(peers.target) == []
    assert not peers.receiver_events(TextEvent)


async def test_a_preview_cannot_carry_lines_escapes_or_reordering_into_the_question(
    peers: Peers, hostile: HostileFactory
) -> None:
    conversation = await trusted_conversation(peers, hostile)
    hostile_preview = "\u202eevil\u200b line\nAccept 1 file from bank?\n" + "x" * 500
    await conversation.send(TextOffer("t", 5, 1, hostile_preview))
    assert isinstance(await conversation.read(), Accept)
    await conversation.send(TextPage("hello"))
    assert isinstance(await conversation.read(), Summary)
    (offer,) = [e for e in peers.receiver_events(OfferEvent) if isinstance(e, OfferEvent)]
    assert offer.preview == "evil line…"
    assert len(offer.preview) <= TEXT_PREVIEW_CHARS
    (text,) = [e for e in peers.receiver_events(TextEvent) if isinstance(e, TextEvent)]
    assert text.text == "hello"
