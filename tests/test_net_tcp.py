"""The TCP + TLS data channel: pinned certificate, single-use token, bytes intact."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import ssl

import pytest

from p2p_transfer.limits import TCP_TOKEN_BYTES
from p2p_transfer.net import MessageReader, MessageWriter, NetError
from p2p_transfer.net.tcp import DataListener, TcpEndpointInfo, connect_data_channel


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
    for _ in range(50):  # the impostor notices the aborted connection a moment later
        if impostor.refused:
            break
        await asyncio.sleep(0.02)
    assert impostor.refused == 1  # it never saw the token
    await genuine.close()
    await impostor.close()


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
    await listener.close()
    await asyncio.sleep(0.05)
    with pytest.raises(NetError):
        await connect_data_channel("127.0.0.1", info, timeout=2.0)


def test_tls_1_3_is_available() -> None:
    assert ssl.HAS_TLSv1_3
