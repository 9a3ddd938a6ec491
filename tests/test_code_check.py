"""The code check's bookkeeping of trust and attempts, between two real nodes: a pairing
forgotten on one side is forgotten on the other the next time they meet, and a code left
unanswered is not a wrong code."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import CODE, Peers, fails_with
from p2p_transfer.events import CodeEvent
from p2p_transfer.limits import MAX_UNANSWERED_CODES, MAX_WRONG_CODES
from p2p_transfer.transfer import SendOptions, TransferError
from p2p_transfer.transfer.sender import CodeRequest
from p2p_transfer.trust import AttemptLimiter
from security.conftest import wait_until


def _note(tmp_path: Path, name: str = "note.txt") -> Path:
    path = tmp_path / name
    path.write_text(name)
    return path


async def test_a_pairing_the_receiver_forgot_is_forgotten_by_the_sender(
    peers: Peers, tmp_path: Path
) -> None:
    assert (await peers.send(_note(tmp_path))).ok
    assert peers.sender.pairings.is_trusted(peers.receiver.endpoint_id)
    peers.receiver.pairings.remove(peers.sender.endpoint_id)  # `pair remove` there
    await fails_with(TransferError, peers.send(_note(tmp_path, "b"), code=None),
                     "verification code")
    # Meeting again told the sender: it shows the receiver as untrusted too.
    assert not peers.sender.pairings.is_trusted(peers.receiver.endpoint_id)


async def test_a_pairing_the_sender_forgot_is_forgotten_by_the_receiver(
    peers: Peers, tmp_path: Path
) -> None:
    assert (await peers.send(_note(tmp_path))).ok
    peers.sender.pairings.remove(peers.receiver.endpoint_id)
    await fails_with(TransferError, peers.send(_note(tmp_path, "b"), code=None),
                     "verification code")
    assert not peers.receiver.pairings.is_trusted(peers.sender.endpoint_id)
    assert (await peers.send(_note(tmp_path, "c"))).ok  # the code pairs them again
    assert peers.receiver.pairings.is_trusted(peers.sender.endpoint_id)
    assert peers.sender.pairings.is_trusted(peers.receiver.endpoint_id)


async def test_prompts_left_unanswered_are_no_wrong_codes(peers: Peers, tmp_path: Path) -> None:
    """Issue 23: two prompts closed without an answer, then the right code: accepted as
    attempt 1, and the receiver never said a wrong code was typed."""
    asked: list[CodeRequest] = []

    async def closes_the_prompt(request: CodeRequest) -> str:
        asked.append(request)
        raise TransferError("no verification code entered")

    async def types_it(request: CodeRequest) -> str:
        asked.append(request)
        return CODE

    for name in ("a", "b"):
        result = await peers.sender.send(peers.ticket, [_note(tmp_path, name)], SendOptions(),
                                         closes_the_prompt)
        assert not result.ok
    assert (await peers.sender.send(peers.ticket, [_note(tmp_path, "c")], SendOptions(),
                                    types_it)).ok
    assert [(r.attempt, r.retry) for r in asked] == [(1, False)] * 3
    codes = [e for e in peers.receiver_events(CodeEvent) if isinstance(e, CodeEvent)]
    assert [e.attempt for e in codes] == [1, 1, 1]
    assert len({e.session for e in codes}) == 3  # each a first prompt, never "wrong"
    limiter = AttemptLimiter(tmp_path / "rx-home")
    assert limiter.locked_for(peers.sender.endpoint_id) == 0


async def test_a_prompt_interrupted_is_no_wrong_code(peers: Peers, tmp_path: Path) -> None:
    """Ctrl-C at the prompt (the send cancelled while it waits for the user): the attempt
    is unanswered, not wrong. (Timing out ends the attempt the same way.)"""
    limiter = AttemptLimiter(tmp_path / "rx-home")
    gave_up = asyncio.Event()

    async def walks_away(request: CodeRequest) -> str:
        gave_up.set()
        await asyncio.Event().wait()  # never answers; the send is cancelled below
        return CODE

    sending = asyncio.create_task(peers.sender.send(
        peers.ticket, [_note(tmp_path)], SendOptions(), walks_away
    ))
    await asyncio.wait_for(gave_up.wait(), 10)
    sending.cancel()
    await asyncio.gather(sending, return_exceptions=True)
    key = peers.sender.endpoint_id
    await wait_until(lambda: limiter.unanswered_left(key) == MAX_UNANSWERED_CODES - 1
                     and limiter.attempts_left(key) == MAX_WRONG_CODES,
                     what="the attempt counted as left unanswered")
