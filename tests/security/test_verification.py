"""Brute force, lock-outs and pairing: only the right code from a peer that is not
locked out makes a pair, and the pair is bound to the peer's key, never its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from pathlib import Path

import pytest

from conftest import CODE, Peers, fails_with
from p2p_transfer.events import CodeEvent, VerifiedEvent
from p2p_transfer.limits import (
    GLOBAL_ATTEMPTS_PER_MINUTE,
    LOCKOUT_SECONDS,
    MAX_WRONG_CODES,
    WRONG_CODE_DELAY,
    WRONG_CODE_WINDOW,
)
from p2p_transfer.net import MessageReader, MessageWriter, NetError, Transport
from p2p_transfer.net import connection as connection_module
from p2p_transfer.net.connection import ConnectionDeadline
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.protocol import Accept, Error, Offer, Verified, Welcome
from p2p_transfer.transfer import (
    LockedOut,
    ReceiveOptions,
    SendOptions,
    TransferError,
    WrongCode,
)
from p2p_transfer.transfer import code_check as code_check_module
from p2p_transfer.trust import AttemptLimiter, load_or_create_secret_key
from p2p_transfer.trust import attempts as attempts_module
from p2p_transfer.trust.attempts import LOCKOUTS_FILE_NAME
from security.conftest import HostileFactory, accept_all
from security.hostile import files_in
from waiting import stays

WRONG = "000000" if CODE != "000000" else "111111"
LOCKED = f"too many wrong codes; try again in {LOCKOUT_SECONDS // 60} min"


@pytest.fixture
def quick_wrong_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 2 s pause after a wrong code is tested elsewhere; here it would only cost time."""
    monkeypatch.setattr(code_check_module, "WRONG_CODE_DELAY", 0.05)


def _codes_shown(events: list) -> int:
    return sum(isinstance(e, CodeEvent) for e in events)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("for verified peers only")
    return path


@pytest.mark.usefixtures("quick_wrong_codes")
async def test_lockout_after_wrong_codes_even_with_the_right_code(
    peers: Peers, tmp_path: Path, source: Path
) -> None:
    for _ in range(MAX_WRONG_CODES):
        await fails_with(WrongCode, peers.send(source, code=WRONG), r"^wrong verification code$")
    assert _codes_shown(peers.events["receiver"]) == MAX_WRONG_CODES

    locked = await fails_with(LockedOut, peers.send(source, code=CODE))
    assert str(locked) == LOCKED
    # The receiving user was shown no code (no prompt) for the locked-out attempt.
    assert _codes_shown(peers.events["receiver"]) == MAX_WRONG_CODES
    assert not peers.receiver.pairings.is_trusted(peers.sender.endpoint_id)
    assert files_in(peers.target) == []

    lockouts = tmp_path / "rx-home" / LOCKOUTS_FILE_NAME
    assert stat.S_IMODE(lockouts.stat().st_mode) == 0o600

    # Another endpoint with the right code is unaffected.
    other = await Node.start(NodeConfig(tmp_path / "other-home", "other", "127.0.0.1"))
    try:
        result = await other.send(peers.ticket, [source], SendOptions(code=CODE))
        assert result.ok, result.message
    finally:
        await other.close()
    assert (peers.target / "secret.txt").exists()


@pytest.mark.usefixtures("quick_wrong_codes")
async def test_lockout_survives_a_restart(peers: Peers, tmp_path: Path, source: Path) -> None:
    for _ in range(MAX_WRONG_CODES):
        await fails_with(WrongCode, peers.send(source, code=WRONG), "wrong verification code")
    assert peers.serve_task is not None
    peers.serve_task.cancel()
    await asyncio.gather(peers.serve_task, return_exceptions=True)
    await peers.receiver.close()

    restarted = await Node.start(NodeConfig(tmp_path / "rx-home", "rx", "127.0.0.1"))
    shown: list = []
    restarted.events.subscribe(shown.append)
    serving = asyncio.create_task(
        restarted.serve(ReceiveOptions(peers.target, True, CODE), accept_all)
    )
    try:
        sending = peers.sender.send(restarted.transport.ticket, [source], SendOptions(code=CODE))
        locked = await fails_with(LockedOut, sending)
        assert str(locked) == LOCKED
        assert _codes_shown(shown) == 0
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await restarted.close()


@pytest.mark.usefixtures("quick_wrong_codes")
async def test_parallel_connections_get_no_extra_guesses(
    peers: Peers, hostile: HostileFactory
) -> None:
    """One endpoint has one pending verification at a time: opening several connections
    at once cannot turn the last guess before a lock-out into several.

    (A hello that is shown a code uses an attempt at once, so after the first of these
    connections the others are turned away as locked out before any code is shown.)"""
    client = await hostile()
    for _ in range(MAX_WRONG_CODES - 1):
        conversation = await client.connect(peers.ticket)
        reply = await conversation.verify(WRONG)
        assert isinstance(reply, Error) and reply.message == "wrong verification code"
    conversations = [await client.connect(peers.ticket) for _ in range(3)]
    welcomes = [await conversation.hello() for conversation in conversations]
    assert isinstance(welcomes[0], Welcome)
    assert all(isinstance(w, Error) and w.kind == "locked_out" for w in welcomes[1:]), welcomes
    replies = []
    for conversation in conversations:
        if conversation.welcome is None:
            replies.append(None)
            continue
        try:
            await conversation.send(conversation.answer_code(WRONG))
        except NetError:
            replies.append(None)
            continue
        replies.append(await conversation.read())
    wrong = [r for r in replies if isinstance(r, Error) and r.message == "wrong verification code"]
    assert len(wrong) == 1, replies  # exactly the 5th guess, no 6th or 7th
    last = await client.connect(peers.ticket)
    reply = await last.verify(CODE)
    assert isinstance(reply, Error) and reply.message == LOCKED


async def test_expired_code_gets_the_same_answer_right_or_wrong(
    peers: Peers, hostile: HostileFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the code's time is up, nothing the peer sends is compared: the answer cannot
    tell it whether its late guess would have been right."""
    monkeypatch.setattr(code_check_module, "CODE_ENTRY_TIMEOUT", 0.5)
    answers = []
    for code in (CODE, WRONG):
        client = await hostile(code)
        conversation = await client.connect(peers.ticket)
        welcome = await conversation.hello()
        assert isinstance(welcome, Welcome) and welcome.code_required
        await conversation.closed()  # the code's time ran out: the guess comes too late
        try:
            await conversation.send(conversation.answer_code(code))
        except NetError:
            pass
        reply = await conversation.read()
        answers.append((reply, await conversation.closed()))
        assert not peers.receiver.pairings.is_trusted(client.endpoint_id)
    assert answers[0] == answers[1]
    assert "verification code not entered in time" in answers[0][1]


async def test_code_read_as_its_time_ran_out_is_never_compared(
    peers: Peers, hostile: HostileFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race where the deadline fires just after the code was read: too late is too late,
    even for the right code."""

    class ExpiresAsItEnds(ConnectionDeadline):
        def __exit__(self, *exc: object) -> None:
            super().__exit__(*exc)  # type: ignore[arg-type]
            if self.reason == "verification code not entered in time":
                self.expired = True

    monkeypatch.setattr(connection_module, "ConnectionDeadline", ExpiresAsItEnds)
    client = await hostile()
    conversation = await client.connect(peers.ticket)
    reply = await conversation.verify(CODE)
    assert not isinstance(reply, Verified), reply
    await conversation.closed()
    assert not peers.receiver.pairings.is_trusted(client.endpoint_id)


async def test_near_miss_and_far_miss_look_the_same(
    peers: Peers, hostile: HostileFactory
) -> None:
    """Same message and the same delay whether the guess was one digit off or all of them."""
    near = CODE[:-1] + str((int(CODE[-1]) + 1) % 10)

    async def guess(code: str) -> tuple[object, float]:
        client = await hostile(code)
        conversation = await client.connect(peers.ticket)
        welcome = await conversation.hello()
        assert isinstance(welcome, Welcome) and welcome.code_required
        started = time.monotonic()
        await conversation.send(conversation.answer_code(code))
        reply = await conversation.read()
        return reply, time.monotonic() - started

    (near_reply, near_time), (far_reply, far_time) = await asyncio.gather(
        guess(near), guess(WRONG)
    )
    wrong = Error("wrong verification code", "wrong_code", attempts_left=MAX_WRONG_CODES - 1)
    assert near_reply == far_reply == wrong
    assert near_time >= WRONG_CODE_DELAY and far_time >= WRONG_CODE_DELAY
    assert abs(near_time - far_time) < 0.5


async def test_global_attempt_cap_bounds_throwaway_identities(
    peers: Peers, hostile: HostileFactory, monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    cap = 3
    monkeypatch.setattr(attempts_module, "GLOBAL_ATTEMPTS_PER_MINUTE", cap)
    for i in range(cap):
        client = await hostile(f"throwaway{i}")
        conversation = await client.connect(peers.ticket)
        welcome = await conversation.hello()
        assert isinstance(welcome, Welcome) and welcome.code_required
        conversation.close()
    fresh = await hostile("one-too-many")
    conversation = await fresh.connect(peers.ticket)
    reply = await conversation.hello()
    assert isinstance(reply, Error), reply
    assert reply.message == "too many verification attempts right now; try again in a minute"
    assert _codes_shown(peers.events["receiver"]) == cap
    # A paired peer does not need an attempt and still gets through.
    peers.receiver.pairings.add(peers.sender.endpoint_id, "tx")
    peers.sender.pairings.add(peers.receiver.endpoint_id, "rx")
    assert (await peers.send(source, code=None)).ok


def test_global_cap_is_a_sliding_minute(tmp_path: Path) -> None:
    limiter = AttemptLimiter(tmp_path)
    addresses = [f"10.0.0.{i}" for i in range(6)]  # none over its own per-minute share
    for i in range(GLOBAL_ATTEMPTS_PER_MINUTE):
        limiter.begin(f"key{i}", addresses[i % 6], now=100.0 + i)
    refused = limiter.refusal("late", addresses[0], now=130.0)
    assert refused is not None and refused.kind == "busy"
    assert refused.message == "too many verification attempts right now; try again in a minute"
    # The first attempt is more than a minute old.
    assert limiter.refusal("late", addresses[0], now=160.5) is None


def _fail(limiter: AttemptLimiter, key: str, now: float, address: str = "10.0.0.1") -> None:
    """One attempt that ended without the right code."""
    limiter.begin(key, address, now=now)
    limiter.fail(key, address, now=now)


def test_wrong_codes_outside_the_window_do_not_add_up(tmp_path: Path) -> None:
    peer = "ab" * 32
    limiter = AttemptLimiter(tmp_path)
    for i in range(MAX_WRONG_CODES - 1):
        _fail(limiter, peer, now=1000.0 + i)
    later = 1000.0 + WRONG_CODE_WINDOW + 10
    _fail(limiter, peer, now=later)
    assert limiter.locked_for(peer, now=later) == 0
    assert limiter.attempts_left(peer, now=later) == MAX_WRONG_CODES - 1
    for i in range(MAX_WRONG_CODES - 2):
        _fail(limiter, peer, now=later + 1 + i)
    _fail(limiter, peer, now=later + 10)
    assert limiter.locked_for(peer, now=later + 10) == pytest.approx(LOCKOUT_SECONDS)
    assert limiter.locked_for(peer, now=later + 10 + LOCKOUT_SECONDS) == 0


def test_damaged_lockouts_file_is_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / LOCKOUTS_FILE_NAME).write_bytes(os.urandom(64))
    limiter = AttemptLimiter(tmp_path)
    assert limiter.locked_for("cd" * 32) == 0
    _fail(limiter, "cd" * 32, now=time.time())
    assert stat.S_IMODE((tmp_path / LOCKOUTS_FILE_NAME).stat().st_mode) == 0o600


async def test_pairing_cannot_be_claimed_by_name(
    peers: Peers, tmp_path: Path, source: Path, hostile: HostileFactory
) -> None:
    assert (await peers.send(source)).ok  # "tx" pairs with the code
    impostor = await Node.start(NodeConfig(tmp_path / "impostor-home", "tx", "127.0.0.1"))
    try:
        await fails_with(
            TransferError, impostor.send(peers.ticket, [source], SendOptions(code=None)),
            "asks for a verification code",
        )
    finally:
        await impostor.close()
    # A raw hello with the paired device's name is asked for a code too.
    client = await hostile("tx")
    conversation = await client.connect(peers.ticket)
    welcome = await conversation.hello("tx")
    assert isinstance(welcome, Welcome) and welcome.code_required
    assert not peers.receiver.pairings.is_trusted(client.endpoint_id)
    # The real key, under any name, is still trusted: the pair is bound to the key.
    await peers.sender.close()
    renamed = await Node.start(NodeConfig(tmp_path / "tx-home", "renamed", "127.0.0.1"))
    try:
        again = tmp_path / "again.txt"
        again.write_text("again")
        assert (await renamed.send(peers.ticket, [again], SendOptions(code=None))).ok
    finally:
        await renamed.close()
    verified = [e.by for e in peers.receiver_events(VerifiedEvent) if isinstance(e, VerifiedEvent)]
    assert verified == ["code", "pairing"]


@pytest.mark.usefixtures("quick_wrong_codes")
async def test_right_code_pairs_and_clears_the_count(
    peers: Peers, hostile: HostileFactory, tmp_path: Path
) -> None:
    client = await hostile()
    for _ in range(MAX_WRONG_CODES - 1):
        conversation = await client.connect(peers.ticket)
        assert isinstance(await conversation.verify(WRONG), Error)
    conversation = await client.connect(peers.ticket)
    assert isinstance(await conversation.verify(CODE), Verified)
    assert peers.receiver.pairings.is_trusted(client.endpoint_id)
    limiter = AttemptLimiter(tmp_path / "rx-home")
    assert limiter.attempts_left(client.endpoint_id) == MAX_WRONG_CODES  # counting starts over


async def _pretend_paired_receiver(
    transport: Transport, received: list[bytes]
) -> None:
    """A receiver that claims a pairing it never made, then takes what it is sent."""
    accepted = await transport.accept()
    assert accepted is not None
    connection = accepted.raw
    stream = await connection.accept_bi()
    writer, reader = MessageWriter(stream.send()), MessageReader(stream.recv())
    await reader.read_message()  # Hello
    await writer.send(Welcome(1, "impostor", code_required=False))
    offer = await reader.read_message()
    assert isinstance(offer, Offer)
    for _ in range(offer.pages):
        await reader.read_message()
    await writer.send(Accept(0))
    data = await connection.accept_uni()
    while chunk := await data.read(1 << 16):
        received.append(chunk)


async def test_sender_does_not_take_a_receivers_word_for_a_pairing(
    peers: Peers, tmp_path: Path, source: Path
) -> None:
    """A receiver the sender never paired with says "no code needed": the sender must
    not hand it files (a spoofed LAN name for ``send --to NAME`` would get them)."""
    home = tmp_path / "impostor"
    home.mkdir()
    impostor = await Transport.bind(load_or_create_secret_key(home), "127.0.0.1")
    received: list[bytes] = []
    serving = asyncio.create_task(_pretend_paired_receiver(impostor, received))
    try:
        with contextlib.suppress(TransferError, NetError):
            await peers.sender.send(impostor.ticket, [source], SendOptions(code=CODE))
        await stays(
            lambda: b"for verified peers only" not in b"".join(received), seconds=0.5,
            what="the impostor getting no file data",
        )
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await impostor.close()
    assert b"for verified peers only" not in b"".join(received)
