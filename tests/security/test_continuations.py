"""A continuation can't get around the question: only the endpoint a transfer was
accepted from, with the secret it was given, for the files accepted, while that
transfer is neither declined nor over."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Peers
from p2p_transfer.events import DoneEvent, OfferEvent
from p2p_transfer.protocol import PROTOCOL_VERSION, Accept, Continue, Decline, Error, Welcome
from p2p_transfer.transfer import Decision, IncomingOffer
from p2p_transfer.transfer import continuations as continuations_module
from p2p_transfer.transfer.continuations import REFUSAL
from security.conftest import HostileFactory, reserve, trusted_conversation, wait_until
from security.hostile import Conversation, HostileClient, file_entry, files_in

ENTRIES = [file_entry("report.pdf", 1000)]


async def _accepted(
    peers: Peers, hostile: HostileFactory
) -> tuple[HostileClient, Conversation, Accept]:
    """A trusted peer's offer, accepted: the Accept carries its continuation."""
    client = await hostile("first", trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    assert isinstance(await conversation.hello(), Welcome)
    answer, _ = await conversation.offer(ENTRIES)
    assert isinstance(answer, Accept) and answer.session and answer.continuation
    return client, conversation, answer


async def _continue(
    client: HostileClient, peers: Peers, session: str, secret: bytes
) -> object:
    """Connect and present a continuation; the receiver's answer."""
    conversation = await client.connect(peers.ticket)
    await conversation.send(Continue(PROTOCOL_VERSION, "replay", session, secret))
    return await conversation.read()


def _refused(answer: object) -> bool:
    return isinstance(answer, Error) and answer.message == REFUSAL


async def test_another_endpoint_with_a_known_session_and_secret_is_refused(
    peers: Peers, hostile: HostileFactory
) -> None:
    _, first, accept = await _accepted(peers, hostile)
    first.close()
    # Even trusted, and holding the very session ID and secret, another key is refused.
    other = await hostile("other", trusted_by=peers)
    assert _refused(await _continue(other, peers, accept.session, accept.continuation))
    assert len(peers.receiver_events(OfferEvent)) == 1  # no offer got past it
    assert files_in(peers.target) == []


async def test_the_same_endpoint_with_a_wrong_secret_or_other_files_is_refused(
    peers: Peers, hostile: HostileFactory
) -> None:
    client, first, accept = await _accepted(peers, hostile)
    first.close()
    assert _refused(await _continue(client, peers, accept.session, b"\0" * 16))
    # The accepted endpoint with its secret, but offering other files than were accepted.
    reconnected = await client.connect(peers.ticket)
    await reconnected.send(
        Continue(PROTOCOL_VERSION, "first", accept.session, accept.continuation)
    )
    assert isinstance(await reconnected.read(), Welcome)
    answer, _ = await reconnected.offer([file_entry("other.exe", 1000)])
    assert _refused(answer)
    assert files_in(peers.target) == []


async def test_a_continuation_after_the_receiver_declined_is_refused(
    peers: Peers, hostile: HostileFactory
) -> None:
    async def decline(offer: IncomingOffer) -> Decision:
        return Decision(False, "not now")

    await reserve(peers, decline, auto_accept=False)
    conversation = await trusted_conversation(peers, hostile, "declined")
    answer, _ = await conversation.offer(ENTRIES)
    assert isinstance(answer, Decline)
    declined = peers.receiver_events(OfferEvent)[-1].session
    # Nothing was granted: the declined session's ID with any secret is refused.
    client = await hostile("replay")
    assert _refused(await _continue(client, peers, declined, b"\0" * 16))
    kept = peers.receiver.config.config_dir / continuations_module.CONTINUATIONS_FILE_NAME
    assert not kept.exists()  # nothing is kept for a declined offer
    assert len(peers.receiver_events(OfferEvent)) == 1


async def test_a_continuation_of_a_finished_transfer_is_refused(
    peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: HostileFactory
) -> None:
    granted: list[tuple[str, bytes]] = []
    grant = continuations_module.ContinuationStore.grant

    def recording(self: continuations_module.ContinuationStore, session: str, *args: object
                  ) -> bytes:
        secret = grant(self, session, *args)  # type: ignore[arg-type]
        granted.append((session, secret))
        return secret

    monkeypatch.setattr(continuations_module.ContinuationStore, "grant", recording)
    source = tmp_path / "note.txt"
    source.write_text("done once")
    assert (await peers.send(source)).ok
    await wait_until(lambda: bool(peers.receiver_events(DoneEvent)), what="receiver done")
    [(session, secret)] = granted
    # The sender's own identity (its config dir's key), replaying the finished session.
    sender_key = await HostileClient.start(tmp_path / "tx-home")
    try:
        assert _refused(await _continue(sender_key, peers, session, secret))
    finally:
        await sender_key.close()
    assert len(peers.receiver_events(OfferEvent)) == 1
