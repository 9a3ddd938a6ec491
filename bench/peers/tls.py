"""Raw TLS over TCP, the LAN fast path's ceiling: one connection, no protocol.

    python -m bench.peers.tls receive OUT_DIR  # prints {"event": "ticket", "ticket": T}
    python -m bench.peers.tls send TICKET PATH

The channel is p2p-transfer's own (``p2p_transfer.net.tcp``): a one-use
listener with a fresh certificate that the sender pins by its SHA-256, and a
single-use token. The ticket carries what the QUIC control stream carries in
the product (``PORT:FINGERPRINT:TOKEN``, token in hex). Both sides hash every
file with BLAKE3 as the product must, and big files move through the channel's
own pumps (disk to socket in its threads) as in the product; small files go in
256 KiB batches. What p2p-transfer's TCP path adds on top (its protocol, the
QUIC conversation, verification) is the difference between the two rows.

TLS has no half-close, so the sender first sends the stream's length (8 bytes,
big-endian); the receiver answers one byte once it has read that much, so the
sender's exit means every byte was read; the sender then closes.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from blake3 import blake3

from bench.config import CHUNK_SIZE, CLOSE_TIMEOUT
from bench.data import digest_entries, iter_files
from bench.peers.stream import (
    HEADER,
    BatchWriter,
    FileSink,
    emit,
    encode_header,
    fail,
    parse_peer_args,
)
from p2p_transfer.net import MessageReader, MessageWriter, NetError
from p2p_transfer.net.tcp import DataListener, TcpEndpointInfo, connect_data_channel
from p2p_transfer.transfer.local import FileSource

LOOPBACK = "127.0.0.1"
_ACK = b"\x01"
#: The stream's length, in front of it.
_LENGTH = struct.Struct(">Q")


def ticket_of(info: TcpEndpointInfo) -> str:
    """``PORT:FINGERPRINT:TOKEN`` for the sender's command line."""
    return f"{info.port}:{info.fingerprint}:{info.token.hex()}"


def parse_ticket(ticket: str) -> TcpEndpointInfo:
    """The inverse of ``ticket_of``."""
    port, fingerprint, token = ticket.split(":")
    return TcpEndpointInfo(int(port), fingerprint, bytes.fromhex(token))


def _ignore(count: int) -> None:
    """Progress is not reported."""


async def receive(out: Path) -> None:
    """Admit the one connection with the token; write every file it carries."""
    listener = await DataListener.open(LOOPBACK)
    assert listener.info is not None
    emit("ticket", ticket=ticket_of(listener.info))
    channel = await listener.accepted()
    await listener.close()
    reader = MessageReader(channel)
    (remaining,) = _LENGTH.unpack(await reader.read_exact(_LENGTH.size))
    sink = FileSink(out, hash_files=True)
    while remaining:
        name_length, size = HEADER.unpack(await reader.read_exact(HEADER.size))
        sink.start((await reader.read_exact(name_length)).decode(), size)
        if (failure := await reader.pump(size, sink.write, _ignore)) is not None:
            fail(f"cannot write: {failure}")
        sink.end()
        remaining -= HEADER.size + name_length + size
    await channel.write_all(_ACK)
    # The sender closes once it has our answer; leaving earlier could lose it.
    await asyncio.wait_for(channel.read(len(_ACK)), CLOSE_TIMEOUT)
    channel.close()
    emit("done", files=len(sink.entries), bytes=sink.bytes, digest=sink.digest())


async def send(ticket: str, entry: Path) -> None:
    """Connect with the pinned certificate and token; send every file of ``entry``."""
    channel = await connect_data_channel(LOOPBACK, parse_ticket(ticket))
    files = [(relpath, path, path.stat().st_size) for relpath, path in iter_files(entry)]
    length = sum(len(encode_header(relpath, size)) + size for relpath, _, size in files)
    writer = BatchWriter(channel)
    await writer.write(_LENGTH.pack(length))
    entries = []
    for relpath, path, size in files:
        await writer.write(encode_header(relpath, size))
        if size <= CHUNK_SIZE:  # small files travel in batches
            data = path.read_bytes()
            await writer.write(data)
            entries.append((relpath, size, blake3(data).digest()))
            continue
        await writer.flush()
        source = FileSource(path)
        try:
            if (failure := await MessageWriter(channel).pump(size, source.fill, _ignore)):
                fail(f"cannot read {path}: {failure}")
        finally:
            source.close()
        entries.append((relpath, size, source.hasher.digest()))
    await writer.flush()
    answer = await channel.read(len(_ACK))
    if answer != _ACK:
        fail(f"receiver did not confirm (answered {answer!r})")
    await channel.finish()
    total = sum(size for _, _, size in files)
    emit("done", files=len(entries), bytes=total, digest=digest_entries(sorted(entries)))


def main() -> None:
    """Command line of the raw TLS peer."""
    args = parse_peer_args("python -m bench.peers.tls")
    try:
        if args.command == "receive":
            asyncio.run(receive(args.out))
        else:
            asyncio.run(send(args.address, args.path))
    except (NetError, OSError, ValueError, TimeoutError) as error:
        fail(f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
