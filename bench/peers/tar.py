"""``tar c`` piped through a loopback TCP socket into ``tar x``: what a shell user does.

    python -m bench.peers.tar receive OUT_DIR  # prints {"event": "ticket", "ticket": ADDR}
    python -m bench.peers.tar send ADDR PATH    # ADDR is HOST:PORT

The receiver accepts one connection and runs ``tar -x -f - -C OUT_DIR`` with
the socket as its stdin; the sender connects and runs ``tar -c -f - -C PARENT
NAME`` with the socket as its stdout (``tar c | nc`` into ``nc -l | tar x``,
without netcat). No encryption and no hashing; the harness verifies the tree.
Each peer waits for its tar, so the launcher's ``wait4`` rusage covers tar's CPU
and peak RSS with the peer's own (the peer's, a small Python, is the larger peak).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from bench.peers.stream import emit, fail, parse_peer_args

LOOPBACK = "127.0.0.1"
#: Read size while reading a connection to its end (the peers send nothing back).
_DRAIN_SIZE = 4096
#: Extract as a user would, not as root: no chown of each file to the archive's owner.
_EXTRACT_OPTIONS = ("--no-same-owner",)


def _tar() -> str:
    found = shutil.which("tar")
    if found is None:
        fail("tar is not installed")
    assert found is not None
    return found


def _run_tar(argv: list[str], *, stdin: int | None = None, stdout: int | None = None) -> None:
    """Run tar to completion (reaped here, so its rusage is ours); fail on its failure."""
    done = subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        fail(f"tar exited {done.returncode}: {' | '.join(message[-3:])}")


def receive(out: Path) -> None:
    """Accept one connection and extract the archive it carries into ``out``."""
    tar = _tar()
    with socket.create_server((LOOPBACK, 0)) as server:
        host, port = server.getsockname()[:2]
        emit("ticket", ticket=f"{host}:{port}")
        conn, _ = server.accept()
    with conn:
        _run_tar([tar, "-x", "-f", "-", *_EXTRACT_OPTIONS, "-C", str(out)], stdin=conn.fileno())
        _drain(conn)  # GNU tar reads its stdin to the end itself; this is for any other tar
    emit("done")


def send(address: str, entry: Path) -> None:
    """Archive ``entry`` onto one connection, then wait for the receiver to close it."""
    tar = _tar()
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as conn:
        _run_tar([tar, "-c", "-f", "-", "-C", str(entry.parent), entry.name], stdout=conn.fileno())
        conn.shutdown(socket.SHUT_WR)
        _drain(conn)  # the receiver closes once its tar read the end: our exit means "all read"
    emit("done")


def _drain(conn: socket.socket) -> None:
    """Read ``conn`` to its end (closing with unread data would reset the connection)."""
    while conn.recv(_DRAIN_SIZE):
        pass


def main() -> None:
    """Command line of the tar peer."""
    args = parse_peer_args("python -m bench.peers.tar")
    if args.command == "receive":
        receive(args.out)
    else:
        send(args.address, args.path)


if __name__ == "__main__":
    main()
