"""The LAN fast path's TCP listener: when one exists, whose token it takes, and its limits.

A listener exists only for a session that was verified and accepted; it takes
only that session's token, and none after the session; strangers who find its
port get the engine's treatment: deadlines for the TLS handshake and the token,
and a cap on how many are held at once. (The pinned certificate, wrong tokens
and plain TCP: tests/test_net_tcp.py; single use, the file rules on the TCP
channel and crowding strangers: test_tcp_path.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time

import pytest

from conftest import Peers, fails_with
from p2p_transfer.events import StateEvent
from p2p_transfer.limits import TCP_MAX_PENDING_CONNECTIONS, TCP_TOKEN_BYTES
from p2p_transfer.net import NetError
from p2p_transfer.net import tcp as tcp_module
from p2p_transfer.net.tcp import DataListener, TcpEndpointInfo, TlsChannel, connect_data_channel
from p2p_transfer.protocol import (
    Accept,
    Error,
    Hello,
    Offer,
    Welcome,
)
from p2p_transfer.protocol.messages import PROTOCOL_VERSION
from p2p_transfer.transfer import Decision, Declined, IncomingOffer
from security.conftest import HostileFactory, errors_of, reserve
from security.hostile import file_entry, files_in
from waiting import hold_for, wait_until

#: Deadlines shortened for these tests, so a drop is seen in well under a second.
SHORT_DEADLINE = 0.5
#: How much later than its deadline a drop may be noticed (a busy 2-core machine).
DEADLINE_SLACK = 2.0
#: Size of the file the hostile sender delivers over TCP (more than one buffer).
PAYLOAD_SIZE = 600_000


@pytest.fixture
def opened_listeners(monkeypatch: pytest.MonkeyPatch) -> list[DataListener]:
    """Every DataListener this process opens from now on."""
    opened: list[DataListener] = []
    original = DataListener.open

    async def recording(cls: type[DataListener], host: str) -> DataListener:
        listener = await original(host)
        opened.append(listener)
        return listener

    monkeypatch.setattr(DataListener, "open", classmethod(recording))
    return opened


def _tls_client() -> ssl.SSLContext:
    """A client context that trusts anything: the tests play strangers, not the sender."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the listener drops the connection (EOF or reset), at most ``limit``."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            while await reader.read(1024):
                pass
    except (ConnectionError, ssl.SSLError):
        pass
    return time.monotonic() - started


# --- No listener without verification and acceptance --------------------------------


async def test_a_peer_that_never_gets_through_verification_opens_no_listener(
    peers: Peers, hostile: HostileFactory, opened_listeners: list[DataListener]
) -> None:
    client = await hostile("guesser")
    wrong = await client.connect(peers.ticket)
    assert isinstance(await wrong.verify("000000"), Error)  # the code is 123456
    skipper = await client.connect(peers.ticket)
    welcome = await skipper.hello()
    assert isinstance(welcome, Welcome) and welcome.code_required
    # Straight to an offer, as if verified: a protocol error, and no listener.
    await skipper.send(Offer("skip", 1, 1, PAYLOAD_SIZE, 1))
    await skipper.closed()
    await wait_until(lambda: len(errors_of(peers)) >= 2, what="both sessions to fail")
    assert any("wrong verification code" in e for e in errors_of(peers))
    assert any("expected Verify" in e for e in errors_of(peers))
    assert opened_listeners == []
    assert files_in(peers.target) == []


async def test_a_declined_offer_opens_no_listener(
    peers: Peers, opened_listeners: list[DataListener]
) -> None:
    async def decline(offer: IncomingOffer) -> Decision:
        return Decision(False, "not today")

    await reserve(peers, decline, auto_accept=False)
    source = peers.target.parent / "unwanted.txt"
    source.write_text("no")
    await fails_with(Declined, peers.send(source), "not today")
    assert opened_listeners == []
    assert files_in(peers.target) == []


# --- The token belongs to one accepted session, once, while it lives -----------------


async def test_a_trusted_peer_that_offers_nothing_gets_no_listener(
    peers: Peers, hostile: HostileFactory, opened_listeners: list[DataListener]
) -> None:
    client = await hostile("idle", trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    await conversation.send(Hello(PROTOCOL_VERSION, "idle"))
    assert isinstance(await conversation.read(), Welcome)
    conversation.close()
    await wait_until(  # after which no listener can come
        lambda: any(
            isinstance(e, StateEvent) and e.state.final for e in peers.receiver_events(StateEvent)
        ),
        what="the receiver's session to end",
    )
    assert opened_listeners == []


# --- A token belongs to one accepted session, and dies with it -----------------------


async def test_a_token_opens_no_other_session_and_nothing_after_its_own(
    peers: Peers, hostile: HostileFactory, opened_listeners: list[DataListener]
) -> None:
    # An honest transfer first: its token is what an eavesdropper might hold later.
    first = peers.target.parent / "first.txt"
    first.write_text("first session")
    assert (await peers.send(first)).ok
    assert len(opened_listeners) == 1
    old = opened_listeners[0].info
    assert old is not None
    with pytest.raises(NetError):  # replayed after its session: nobody listens any more
        await connect_data_channel("127.0.0.1", old)

    # The next accepted session gets a fresh certificate and token...
    client = await hostile("next", trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    assert isinstance(await conversation.hello(), Welcome)
    answer, _ = await conversation.offer([file_entry("next.bin", PAYLOAD_SIZE)])
    assert isinstance(answer, Accept) and answer.tcp_port
    info = TcpEndpointInfo(answer.tcp_port, answer.tcp_fingerprint, answer.tcp_token)
    assert info.token != old.token and info.fingerprint != old.fingerprint
    # ...and the old session's token does not open its listener.
    with pytest.raises(NetError, match="refused"):
        await connect_data_channel("127.0.0.1", dataclasses.replace(info, token=old.token))
    listener = opened_listeners[1]
    assert listener.refused == 1 and not listener.has_accepted
    conversation.close()
    await conversation.closed()
    await wait_until(lambda: errors_of(peers) != [], what="the session to end")
    with pytest.raises(NetError):  # its own token is dead once the session ended
        await connect_data_channel("127.0.0.1", info)
    assert files_in(peers.target) == ["first.txt"]


async def _handed_over(listener: DataListener) -> TlsChannel:
    """The listener's side of the sender's channel. Its thread hands it to the loop just
    after telling the sender yes, so the sender's connect may return a moment before."""
    return await asyncio.wait_for(listener.accepted(), DEADLINE_SLACK)


# --- Strangers at the port: deadlines and a cap ----------------------------------------


@pytest.mark.parametrize("sent", [0, TCP_TOKEN_BYTES // 2], ids=["silent", "half-token"])
async def test_no_token_within_the_deadline_is_dropped(
    monkeypatch: pytest.MonkeyPatch, sent: int
) -> None:
    monkeypatch.setattr(tcp_module, "TCP_TOKEN_TIMEOUT", SHORT_DEADLINE)
    listener = await DataListener.open("127.0.0.1")
    assert listener.info is not None
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", listener.info.port, ssl=_tls_client(), server_hostname=None
    )
    writer.write(listener.info.token[:sent])  # never the whole token
    elapsed = await _closed_after(reader, SHORT_DEADLINE + DEADLINE_SLACK)
    assert SHORT_DEADLINE * 0.8 <= elapsed < SHORT_DEADLINE + DEADLINE_SLACK
    assert listener.refused == 1 and not listener.has_accepted and listener.pending == 0
    writer.close()
    # The stranger did not spend the token: the real sender still gets in.
    channel = await connect_data_channel("127.0.0.1", listener.info)
    (await _handed_over(listener)).close()
    channel.close()
    await listener.close()


async def test_a_stalled_tls_handshake_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tcp_module, "TCP_TOKEN_TIMEOUT", SHORT_DEADLINE)
    listener = await DataListener.open("127.0.0.1")
    assert listener.info is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.info.port)
    elapsed = await _closed_after(reader, SHORT_DEADLINE + DEADLINE_SLACK)  # no ClientHello
    assert SHORT_DEADLINE * 0.8 <= elapsed < SHORT_DEADLINE + DEADLINE_SLACK
    await wait_until(lambda: listener.refused == 1, what="the refusal to be counted")
    assert listener.pending == 0
    writer.close()
    await listener.close()


async def test_a_trickled_handshake_is_cut_at_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each byte comes well within any per-read timeout; the deadline covers them all.
    monkeypatch.setattr(tcp_module, "TCP_TOKEN_TIMEOUT", SHORT_DEADLINE)
    listener = await DataListener.open("127.0.0.1")
    assert listener.info is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.info.port)
    writer.write(b"\x16\x03\x01\x02\x00")  # a handshake record of 512 bytes is coming

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"\x00")
                await writer.drain()
                await hold_for(0.1)  # a byte every 0.1 s, within any per-read timeout

    trickling = asyncio.create_task(trickle())
    elapsed = await _closed_after(reader, SHORT_DEADLINE + DEADLINE_SLACK)
    trickling.cancel()
    assert elapsed < SHORT_DEADLINE + DEADLINE_SLACK
    await wait_until(lambda: listener.refused == 1, what="the refusal to be counted")
    assert not listener.has_accepted
    writer.close()
    await listener.close()


async def test_strangers_beyond_the_pending_cap_are_closed_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Long deadlines: only the cap can explain a quick close here.
    monkeypatch.setattr(tcp_module, "TCP_TOKEN_TIMEOUT", 60.0)
    listener = await DataListener.open("127.0.0.1")
    assert listener.info is not None
    port = listener.info.port
    held = [await asyncio.open_connection("127.0.0.1", port)
            for _ in range(TCP_MAX_PENDING_CONNECTIONS)]
    await wait_until(lambda: listener.pending == TCP_MAX_PENDING_CONNECTIONS,
                     what="the listener to hold every stranger")
    extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_after(extra_reader, DEADLINE_SLACK) < DEADLINE_SLACK
    assert listener.refused == 1 and listener.pending == TCP_MAX_PENDING_CONNECTIONS
    extra_writer.close()
    # The strangers leave (their handshakes fail), and the real sender gets in.
    for _, writer in held:
        writer.close()
    await wait_until(lambda: listener.pending == 0, what="the strangers to be let go")
    channel = await connect_data_channel("127.0.0.1", listener.info)
    (await _handed_over(listener)).close()
    assert listener.refused == 1 + TCP_MAX_PENDING_CONNECTIONS
    channel.close()
    await listener.close()
