"""The TCP + TLS data channel: pinned certificate, single-use token, bytes intact."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import socket
import ssl
import subprocess
import sys

import pytest

from p2p_transfer.limits import PUMP_BUFFER_SIZE, PUMP_HANDOVER_WAIT, TCP_TOKEN_BYTES
from p2p_transfer.net import MessageReader, MessageWriter, NetError
from p2p_transfer.net.certificates import ed25519_self_signed
from p2p_transfer.net.streams import LocalFileError
from p2p_transfer.net.tcp import DataListener, TcpEndpointInfo, TlsChannel, connect_data_channel
from waiting import wait_until


async def _drain(listener: DataListener) -> bytes:
    channel = await listener.accepted()
    reader = MessageReader(channel)
    chunks = []
    while True:
        try:
            chunks.append(await reader.read_some(1 << 20))
        except NetError:
            return b"".join(chunks)


async def test_bytes_arrive_intact_over_the_pinned_channel() -> None:
    listener = await DataListener.open("127.0.0.1")
    assert listener.info is not None
    receiving = asyncio.create_task(_drain(listener))
    channel = await connect_data_channel("127.0.0.1", listener.info)
    payload = os.urandom(3 * 1024 * 1024 + 7)
    writer = MessageWriter(channel)
    await writer.write(payload)
    await writer.finish()
    assert await asyncio.wait_for(receiving, 10) == payload
    await listener.close()


async def test_wrong_token_is_refused_and_nothing_is_accepted() -> None:
    listener = await DataListener.open("127.0.0.1")
    assert listener.info is not None
    forged = dataclasses.replace(listener.info, token=bytes(TCP_TOKEN_BYTES))
    with pytest.raises(NetError, match="refused"):
        await connect_data_channel("127.0.0.1", forged)
    assert listener.refused == 1
    assert not listener.has_accepted
    await listener.close()


async def test_a_used_token_cannot_open_a_second_connection() -> None:
    listener = await DataListener.open("127.0.0.1")
    assert listener.info is not None
    first = await connect_data_channel("127.0.0.1", listener.info)
    with pytest.raises(NetError):
        await connect_data_channel("127.0.0.1", listener.info)
    first.close()
    await listener.close()


async def test_a_different_certificate_is_refused_as_a_man_in_the_middle() -> None:
    genuine = await DataListener.open("127.0.0.1")
    impostor = await DataListener.open("127.0.0.1")
    assert genuine.info is not None and impostor.info is not None
    # The impostor answers at its port with its own certificate, but the sender pins
    # the fingerprint the genuine receiver announced over QUIC.
    spoofed = TcpEndpointInfo(impostor.info.port, genuine.info.fingerprint, impostor.info.token)
    with pytest.raises(NetError, match="man in the middle"):
        await connect_data_channel("127.0.0.1", spoofed)
    await wait_until(  # the impostor notices the aborted connection a moment later
        lambda: impostor.refused, 1.0, what="the impostor to count the refused connection"
    )
    assert impostor.refused == 1  # it never saw the token
    await genuine.close()
    await impostor.close()


async def test_both_ends_send_small_writes_without_waiting_for_an_ack() -> None:
    """The token follows the TLS handshake's last record: with Nagle's algorithm it waited
    for the receiver's delayed ACK, 40 ms before every transfer's first byte."""
    listener, sender, receiver = await _connected_pair()
    for channel in (sender, receiver):
        sock = channel._tls.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    sender.close()
    receiver.close()
    await listener.close()


async def test_plain_tcp_without_tls_gets_nothing() -> None:
    listener = await DataListener.open("127.0.0.1")
    assert listener.info is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.info.port)
    writer.write(listener.info.token)
    await writer.drain()
    try:
        reply = await asyncio.wait_for(reader.read(100), 5)
    except ConnectionResetError:
        reply = b""  # cut off: fine, nothing was accepted
    assert b"\x01" not in reply or reply.startswith(b"\x15")  # a TLS alert at most
    writer.close()
    await listener.close()


async def test_nobody_listening_fails_fast() -> None:
    listener = await DataListener.open("127.0.0.1")
    assert listener.info is not None
    info = listener.info
    await listener.close()  # its socket is closed when this returns
    with pytest.raises(NetError):
        await connect_data_channel("127.0.0.1", info, timeout=2.0)


def test_tls_1_3_is_available() -> None:
    assert ssl.HAS_TLSv1_3


def test_the_data_certificate_is_one_an_independent_parser_accepts() -> None:
    """The Ed25519 certificate is written out by hand: cryptography's X.509 parser must
    read it as self-signed by its own key, valid now, with a key that matches it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    lifetime, skew = datetime.timedelta(days=3), datetime.timedelta(hours=1)
    cert_pem, key_pem = ed25519_self_signed("p2p-transfer data", skew, lifetime)
    cert = x509.load_pem_x509_certificate(cert_pem)
    public = cert.public_key()
    assert isinstance(public, ed25519.Ed25519PublicKey)
    public.verify(cert.signature, cert.tbs_certificate_bytes)  # raises if not its own
    assert cert.issuer == cert.subject and cert.version == x509.Version.v3
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - cert.not_valid_before_utc >= lifetime
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert key.public_key().public_bytes_raw() == public.public_bytes_raw()
    assert ed25519_self_signed("x", lifetime, lifetime)[0] != cert_pem  # a new key each time


def test_a_receiver_listening_for_data_loads_no_cryptography() -> None:
    """cryptography costs ~13 MB and ~40 ms; the data channel's certificate needs none."""
    script = (
        "import asyncio, sys\n"
        "from p2p_transfer.net.tcp import DataListener, connect_data_channel\n"
        "async def main():\n"
        "    listener = await DataListener.open('127.0.0.1')\n"
        "    channel = await connect_data_channel('127.0.0.1', listener.info)\n"
        "    (await listener.accepted()).close(); channel.close(); await listener.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


async def _connected_pair() -> tuple[DataListener, TlsChannel, TlsChannel]:
    listener = await DataListener.open("127.0.0.1")
    assert listener.info is not None
    sender = await connect_data_channel("127.0.0.1", listener.info)
    return listener, sender, await listener.accepted()


async def test_a_file_pumps_through_the_channel_intact_with_its_progress() -> None:
    listener, sender, receiver = await _connected_pair()
    payload = os.urandom(2 * PUMP_BUFFER_SIZE + 12345)
    position = 0

    def produce(view: memoryview) -> None:
        nonlocal position
        view[:] = payload[position : position + len(view)]
        position += len(view)

    received = bytearray()
    counted: list[int] = []
    writer, reader = MessageWriter(sender), MessageReader(receiver)
    await writer.write(b"head")  # a frame ahead of the file, read before it
    sending = asyncio.create_task(writer.pump(len(payload), produce, lambda n: None))
    assert await reader.read_exact(4) == b"head"
    failure = await reader.pump(len(payload), received.extend, counted.append)
    assert failure is None and await sending is None
    assert received == payload and sum(counted) == len(payload)
    sender.close()
    receiver.close()
    await listener.close()


async def test_a_source_that_fails_mid_file_sends_zeros_for_the_rest_and_says_why() -> None:
    listener, sender, receiver = await _connected_pair()
    good = os.urandom(PUMP_BUFFER_SIZE)
    calls = 0

    def produce(view: memoryview) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise LocalFileError("f.bin changed while being sent")
        view[:] = good[: len(view)]

    length = 3 * PUMP_BUFFER_SIZE
    received = bytearray()
    sending = asyncio.create_task(MessageWriter(sender).pump(length, produce, lambda n: None))
    assert await MessageReader(receiver).pump(length, received.extend, lambda n: None) is None
    failure = await sending
    assert isinstance(failure, LocalFileError) and "changed" in str(failure)
    # The stream stays in step: the whole length arrived, zeros after the failure.
    assert received == good + bytes(length - len(good))
    sender.close()
    receiver.close()
    await listener.close()


async def test_a_store_that_fails_mid_file_still_reads_the_file_to_its_end() -> None:
    listener, sender, receiver = await _connected_pair()
    length = 3 * PUMP_BUFFER_SIZE
    stored = 0

    def consume(view: memoryview) -> None:
        nonlocal stored
        if stored:
            raise OSError(28, "No space left on device")
        stored += len(view)

    writer = MessageWriter(sender)

    async def send_file_then_more() -> None:
        await writer.pump(length, lambda view: None, lambda n: None)
        await writer.write(b"next")  # the file behind it

    sending = asyncio.create_task(send_file_then_more())
    reader = MessageReader(receiver)
    failure = await reader.pump(length, consume, lambda n: None)
    assert isinstance(failure, OSError) and failure.errno == 28
    assert await reader.read_exact(4) == b"next"
    await sending
    sender.close()
    receiver.close()
    await listener.close()


async def test_a_slow_link_shows_progress_before_a_buffer_fills() -> None:
    listener, sender, receiver = await _connected_pair()
    received: list[int] = []
    receiving = asyncio.create_task(
        MessageReader(receiver).pump(PUMP_BUFFER_SIZE, None, received.append)
    )
    await MessageWriter(sender).write(b"x" * 1000)  # then nothing for a while
    await wait_until(
        lambda: sum(received) >= 1000, PUMP_HANDOVER_WAIT + 2.0, every=0.05,
        what="progress while no more data comes",
    )
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    sender.close()
    await listener.close()
