"""Plain TCP copy, the practical limit: ``socket.sendfile`` → ``recv_into`` → file.

    python -m bench.peers.tcp receive OUT_DIR    # prints {"event": "ticket", "ticket": ADDR}
    python -m bench.peers.tcp send ADDR PATH      # ADDR is HOST:PORT

No encryption and no hashing: the kernel copies file pages to the socket and
the receiver writes what arrives. Files smaller than a chunk are packed, with
their headers, into chunk-sized ``sendall`` calls (two tiny sends per file
would measure Nagle's algorithm, not the limit). The harness verifies the
output afterwards.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from bench.config import CHUNK_SIZE
from bench.data import iter_files
from bench.peers.stream import Decoder, FileSink, emit, encode_header, parse_peer_args

LOOPBACK = "127.0.0.1"


def receive(out: Path) -> None:
    """Accept one connection and write every file it carries under ``out``."""
    with socket.create_server((LOOPBACK, 0)) as server:
        host, port = server.getsockname()[:2]
        emit("ticket", ticket=f"{host}:{port}")
        conn, _ = server.accept()
    sink = FileSink(out, hash_files=False)
    decoder = Decoder(sink)
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    with conn:
        while True:
            count = conn.recv_into(buffer)
            if not count:
                break
            decoder.feed(view[:count])
    decoder.close()
    emit("done", files=len(sink.entries), bytes=sink.bytes)


def send(address: str, entry: Path) -> None:
    """Send every file of ``entry`` over one connection, then close it."""
    host, port = address.rsplit(":", 1)
    files = iter_files(entry)
    total = 0
    pending = bytearray()
    with socket.create_connection((host, int(port))) as conn:
        for relpath, path in files:
            with open(path, "rb") as source:
                size = os.fstat(source.fileno()).st_size
                header = encode_header(relpath, size)
                if size < CHUNK_SIZE:
                    pending += header
                    pending += source.read()
                    if len(pending) >= CHUNK_SIZE:
                        conn.sendall(pending)
                        pending.clear()
                else:
                    conn.sendall(pending + header)
                    pending.clear()
                    conn.sendfile(source)
            total += size
        conn.sendall(pending)
        conn.shutdown(socket.SHUT_WR)
        # Wait for the receiver's close, so our exit means "all was read".
        while conn.recv(CHUNK_SIZE):
            pass
    emit("done", files=len(files), bytes=total)


def main() -> None:
    """Command line of the TCP peer."""
    args = parse_peer_args("python -m bench.peers.tcp")
    if args.command == "receive":
        receive(args.out)
    else:
        send(args.address, args.path)


if __name__ == "__main__":
    main()
