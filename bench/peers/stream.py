"""The byte stream of the benchmark's peers: per file, a header then the bytes.

Header: path length (u16, big-endian), file size (u64), then the UTF-8 relative
POSIX path. End of stream ends the transfer. The decoder is sans-IO: it turns
received chunks into calls on a sink, so the TCP and iroh receivers share it.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path
from typing import Any, Protocol

from blake3 import blake3

from bench.config import CHUNK_SIZE
from bench.data import digest_entries

HEADER = struct.Struct(">HQ")


class StreamError(ValueError):
    """The stream broke the format (bad header, truncated file, unsafe path)."""


def encode_header(relpath: str, size: int) -> bytes:
    """Header announcing one file."""
    name = relpath.encode()
    return HEADER.pack(len(name), size) + name


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout for the harness."""
    print(json.dumps({"event": event, **fields}), flush=True)


def safe_relpath(out: Path, relpath: str) -> Path:
    """``out / relpath``, refusing absolute paths and ``..``."""
    parts = relpath.split("/")
    if relpath.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise StreamError(f"unsafe path in stream: {relpath!r}")
    return out.joinpath(*parts)


class FileSink:
    """Writes decoded files under ``out``, optionally hashing each with BLAKE3."""

    def __init__(self, out: Path, *, hash_files: bool) -> None:
        self._out = out
        self._hash_files = hash_files
        self._made: set[Path] = set()
        self._file: Any = None
        self._hasher: Any = None
        self._current: tuple[str, int] = ("", 0)
        self.entries: list[tuple[str, int, bytes]] = []
        self.bytes = 0

    def start(self, relpath: str, size: int) -> None:
        """A new file begins."""
        path = safe_relpath(self._out, relpath)
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        self._file = open(path, "wb")  # noqa: SIM115 - closed in end()
        self._hasher = blake3() if self._hash_files else None
        self._current = (relpath, size)

    def write(self, data: memoryview) -> None:
        """Bytes of the current file."""
        self._file.write(data)
        if self._hasher is not None:
            self._hasher.update(data)
        self.bytes += len(data)

    def end(self) -> None:
        """The current file is complete."""
        self._file.close()
        self._file = None
        digest = self._hasher.digest() if self._hasher is not None else b""
        self.entries.append((*self._current, digest))

    def digest(self) -> str:
        """Tree digest of everything received (same definition as the harness's)."""
        return digest_entries(sorted(self.entries))


class Decoder:
    """Sans-IO parser: ``feed`` chunks, the sink gets start/write/end calls."""

    def __init__(self, sink: FileSink) -> None:
        self._sink = sink
        self._header = bytearray()
        self._left = 0  # bytes of the current file still to come

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Consume one received chunk."""
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            if self._left:
                take = min(self._left, end - pos)
                self._sink.write(view[pos : pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    self._sink.end()
                continue
            need = HEADER.size
            if len(self._header) >= HEADER.size:
                name_length, _ = HEADER.unpack_from(self._header)
                if not name_length:
                    raise StreamError("empty path in stream")
                need += name_length
            take = min(need - len(self._header), end - pos)
            self._header += view[pos : pos + take]
            pos += take
            if len(self._header) == need and need > HEADER.size:
                self._start_file()

    def _start_file(self) -> None:
        _, size = HEADER.unpack_from(self._header)
        relpath = bytes(self._header[HEADER.size :]).decode()
        self._header.clear()
        self._sink.start(relpath, size)
        if size:
            self._left = size
        else:
            self._sink.end()

    def close(self) -> None:
        """End of stream: fail if it cut a header or a file short."""
        if self._header or self._left:
            raise StreamError("stream ended in the middle of a file")


class ByteSink(Protocol):
    """What a raw peer writes to: an iroh SendStream or p2p-transfer's TLS channel."""

    async def write_all(self, data: bytes | bytearray | memoryview) -> None: ...


class BatchWriter:
    """Sends small pieces (headers, small files) in CHUNK_SIZE batches, large ones as is.

    One ``write_all`` per piece would cost a round through the transport (an FFI
    call for iroh, a TLS record for TCP) per 4 KiB file.
    """

    def __init__(self, sink: ByteSink) -> None:
        self._sink = sink
        self._pending = bytearray()

    async def write(self, data: bytes) -> None:
        """Queue ``data``, sending what is queued first when it would overflow a batch."""
        if self._pending and len(self._pending) + len(data) > CHUNK_SIZE:
            await self.flush()
        if len(data) >= CHUNK_SIZE:
            await self._sink.write_all(data)
        else:
            self._pending += data

    async def flush(self) -> None:
        """Send whatever is queued."""
        if self._pending:
            await self._sink.write_all(bytes(self._pending))
            self._pending.clear()


def fail(message: str) -> None:
    """Report a peer's failure the way the harness reads it, and exit non-zero."""
    emit("error", message=message)
    print(message, file=sys.stderr)
    raise SystemExit(1)


def parse_peer_args(prog: str) -> argparse.Namespace:
    """Every bench peer's command line: ``receive OUT`` or ``send ADDRESS PATH``."""
    parser = argparse.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("receive").add_argument("out", type=Path)
    tx = sub.add_parser("send")
    tx.add_argument("address")
    tx.add_argument("path", type=Path)
    return parser.parse_args()
