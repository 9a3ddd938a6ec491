"""Raw iroh stream copy, the transport's ceiling: one bi stream, no protocol.

    python -m bench.peers.iroh_raw receive OUT_DIR  # prints {"event": "ticket", "ticket": T}
    python -m bench.peers.iroh_raw send TICKET PATH

Both sides hash every file with BLAKE3 as the product must, read and write in
256 KiB pieces, and do nothing else: what p2p-transfer adds on top (framing,
manifest, verification, pairing) is the difference between this row and its.
The receiver answers one byte after end of stream, so the sender's exit means
every byte was read; the sender then closes the connection.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from blake3 import blake3
from iroh import iroh_ffi

from bench.config import CHUNK_SIZE, CLOSE_TIMEOUT, RAW_IROH_ALPN
from bench.data import digest_entries, iter_files
from bench.peers.stream import (
    BatchWriter,
    Decoder,
    FileSink,
    emit,
    encode_header,
    fail,
    parse_peer_args,
)

_ACK = b"\x01"
_CLOSE_DONE = 0


def _prepare() -> None:
    """The binding fix (without it write_all copies byte by byte) and the event loop."""
    from p2p_transfer.net.binding import apply_binding_fix

    apply_binding_fix()
    iroh_ffi.uniffi_set_event_loop(asyncio.get_running_loop())


async def _bind() -> Any:
    options = iroh_ffi.EndpointOptions(
        preset=iroh_ffi.preset_minimal(),
        bind_addr="127.0.0.1:0",
        alpns=[RAW_IROH_ALPN],
        relay_mode=iroh_ffi.RelayMode.disabled(),
    )
    return await iroh_ffi.Endpoint.bind(options)


def _error_text(error: BaseException) -> str:
    """IrohError's str() is empty; its kind and message are not."""
    if isinstance(error, iroh_ffi.IrohError):
        return f"{error.kind()}: {error.message()}"
    return f"{type(error).__name__}: {error}"


async def receive(out: Path) -> None:
    """Accept one connection and one stream; write every file it carries."""
    _prepare()
    endpoint = await _bind()
    try:
        emit("ticket", ticket=str(iroh_ffi.EndpointTicket.from_addr(endpoint.addr())))
        incoming = await endpoint.accept_next()
        if incoming is None:
            fail("endpoint closed before a connection came")
        conn = await (await incoming.accept()).connect()
        stream = await conn.accept_bi()
        recv, send = stream.recv(), stream.send()
        sink = FileSink(out, hash_files=True)
        decoder = Decoder(sink)
        while True:
            chunk = await recv.read(CHUNK_SIZE)
            if not chunk:
                break
            decoder.feed(chunk)
        decoder.close()
        await send.write_all(_ACK)
        await send.finish()
        # The sender closes once it has our answer; leaving earlier could lose it.
        await asyncio.wait_for(conn.closed(), CLOSE_TIMEOUT)
        emit("done", files=len(sink.entries), bytes=sink.bytes, digest=sink.digest())
    finally:
        await endpoint.close()


async def send(ticket: str, entry: Path) -> None:
    """Open one stream to the receiver and send every file of ``entry`` on it."""
    _prepare()
    endpoint = await _bind()
    try:
        addr = iroh_ffi.EndpointTicket.from_string(ticket).endpoint_addr()
        conn = await endpoint.connect(addr, RAW_IROH_ALPN)
        stream = await conn.open_bi()
        send, recv = stream.send(), stream.recv()
        writer = BatchWriter(send)
        entries = []
        total = 0
        for relpath, path in iter_files(entry):
            hasher = blake3()
            size = path.stat().st_size
            await writer.write(encode_header(relpath, size))
            with open(path, "rb") as source:
                while chunk := source.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    await writer.write(chunk)
            entries.append((relpath, size, hasher.digest()))
            total += size
        await writer.flush()
        await send.finish()
        answer = await recv.read_to_end(len(_ACK))
        if answer != _ACK:
            fail(f"receiver did not confirm (answered {answer!r})")
        conn.close(_CLOSE_DONE, b"done")
        emit("done", files=len(entries), bytes=total, digest=digest_entries(sorted(entries)))
    finally:
        await endpoint.close()


def main() -> None:
    """Command line of the raw iroh peer."""
    args = parse_peer_args("python -m bench.peers.iroh_raw")
    try:
        if args.command == "receive":
            asyncio.run(receive(args.out))
        else:
            asyncio.run(send(args.address, args.path))
    except Exception as error:  # the harness reads the reason from stdout/stderr
        fail(_error_text(error))


if __name__ == "__main__":
    main()
