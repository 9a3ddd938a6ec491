"""Continuing a transfer whose path broke: the receiver's store, and the two real
sessions on loopback going on in the same session without a new question."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CODE, Peers, fails_with
from p2p_transfer.events import (
    DecisionEvent,
    DoneEvent,
    ReconnectedEvent,
    ReconnectingEvent,
    StateEvent,
)
from p2p_transfer.limits import CONTINUATION_LIFETIME, MiB
from p2p_transfer.net import NetError
from p2p_transfer.net.tcp import TlsChannel
from p2p_transfer.protocol import Entry, Manifest
from p2p_transfer.transfer import (
    ContinuationStore,
    Decision,
    IncomingOffer,
    ReceiveOptions,
    SendOptions,
    TransferResult,
)
from p2p_transfer.transfer import continuations as continuations_module

PEER = "a" * 64


def _manifest(*sizes: int) -> Manifest:
    manifest = Manifest()
    for number, size in enumerate(sizes):
        manifest.append(Entry(f"f{number}", "file", size, 0o644, 1.0))
    return manifest


# --- the store ---------------------------------------------------------------------------


def test_a_continuation_is_found_only_by_its_peer_with_its_secret(tmp_path: Path) -> None:
    store = ContinuationStore(tmp_path)
    secret = store.grant("s1", PEER, _manifest(5), tmp_path / "inbox")
    assert store.find("s1", PEER, secret) is not None
    assert store.find("s1", "b" * 64, secret) is None  # another endpoint, same session ID
    assert store.find("s1", PEER, b"\0" * len(secret)) is None
    assert store.find("s2", PEER, secret) is None


def test_a_restarted_receiver_knows_its_continuations_until_they_end(tmp_path: Path) -> None:
    secret = ContinuationStore(tmp_path).grant("s1", PEER, _manifest(5), tmp_path / "in")
    stored = (tmp_path / continuations_module.CONTINUATIONS_FILE_NAME)
    assert stored.stat().st_mode & 0o777 == 0o600
    assert secret.hex() not in stored.read_text()  # only its hash is kept
    again = ContinuationStore(tmp_path)
    record = again.find("s1", PEER, secret)
    assert record is not None
    assert record.manifest_digest == continuations_module.manifest_digest(_manifest(5))
    assert record.manifest_digest != continuations_module.manifest_digest(_manifest(6))
    again.end("s1")  # a finished transfer
    assert ContinuationStore(tmp_path).find("s1", PEER, secret) is None


def test_a_continuation_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ContinuationStore(tmp_path)
    secret = store.grant("s1", PEER, _manifest(5), tmp_path)
    later = time.time() + CONTINUATION_LIFETIME + 1
    monkeypatch.setattr(continuations_module.time, "time", lambda: later)
    assert store.find("s1", PEER, secret) is None
    assert ContinuationStore(tmp_path).find("s1", PEER, secret) is None


# --- two sessions on loopback -----------------------------------------------------------

#: The sender's first TCP data channel is reset after this many bytes.
BREAK_AT = 6 * MiB
FILE_SIZE = 24 * MiB


def _reset_first_channel(monkeypatch: pytest.MonkeyPatch) -> list[TlsChannel]:
    """Reset (RST) the sender's first TCP data channel once BREAK_AT bytes went out: the
    data connection dies under the transfer as it does when the network changes."""
    broken: list[TlsChannel] = []
    counted: dict[int, int] = {}
    report: Callable[..., None] = TlsChannel._report

    def reset_midway(self: TlsChannel, progress: Callable[[int], None], count: int) -> None:
        counted[id(self)] = counted.get(id(self), 0) + count
        if not broken and counted[id(self)] >= BREAK_AT:
            broken.append(self)
            sock = self._tls.sock
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # with no linger: the peer gets a reset, not an orderly end
            raise NetError("data connection failed: reset (test)")
        report(self, progress, count)

    monkeypatch.setattr(TlsChannel, "_report", reset_midway)
    return broken


def _asking_receiver(peers: Peers) -> list[IncomingOffer]:
    """Serve again, asking (a counted question) instead of --yes."""
    asked: list[IncomingOffer] = []

    async def decide(offer: IncomingOffer) -> Decision:
        asked.append(offer)
        return Decision(True)

    assert peers.serve_task is not None
    peers.serve_task.cancel()
    peers.serve_task = asyncio.create_task(peers.receiver.serve(
        ReceiveOptions(target=peers.target, fixed_code=CODE), decide
    ))
    return asked


async def _send(peers: Peers, source: Path, retry_for: float) -> TransferResult:
    return await peers.sender.send(
        peers.ticket, [source], SendOptions(code=CODE, retry_for=retry_for, parallel=1)
    )


async def test_a_broken_data_connection_is_continued_in_the_same_session(
    peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(FILE_SIZE))
    broken = _reset_first_channel(monkeypatch)
    asked = _asking_receiver(peers)
    result = await _send(peers, source, retry_for=30)
    assert broken, "the data connection was never reset"
    assert result.ok, result.message
    assert (peers.target / "big.bin").read_bytes() == source.read_bytes()
    reconnected = peers.sender_events(ReconnectedEvent)
    assert len(reconnected) == 1
    assert isinstance(reconnected[0], ReconnectedEvent)
    (waiting, *_) = peers.sender_events(ReconnectingEvent)
    assert isinstance(waiting, ReconnectingEvent) and waiting.retry_for == 30
    # One session on the sender's side, through reconnecting and back to transferring.
    states = [e for e in peers.sender_events(StateEvent) if isinstance(e, StateEvent)]
    assert {e.session for e in states} == {reconnected[0].session}
    names = [str(e.state) for e in states]
    assert names[-3:] == ["reconnecting", "transferring", "done"], names
    # The receiving user was asked once: the continuation was not a new question.
    assert len(asked) == 1
    assert len(peers.sender_events(DecisionEvent)) == 1
    # It went on from what the receiver held, not from the start.
    done = await peers.wait_for_receiver(DoneEvent)
    assert isinstance(done, DoneEvent) and done.ok
    assert done.bytes_transferred < FILE_SIZE


async def test_retry_for_zero_fails_at_once(
    peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(FILE_SIZE))
    broken = _reset_first_channel(monkeypatch)
    await fails_with(NetError, _send(peers, source, retry_for=0))
    assert broken
    assert not peers.sender_events(ReconnectingEvent)
    assert not (peers.target / "big.bin").exists()
