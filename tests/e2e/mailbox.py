"""A real magic-wormhole mailbox server on loopback, for sends by code."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from waiting import wait_until_blocking

LOOPBACK = "127.0.0.1"
#: Seconds the server has to start listening.
START_TIMEOUT = 20.0

_names = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


class MailboxServer:
    """``twist wormhole-mailbox`` on 127.0.0.1 (its state in ``folder``)."""

    def __init__(self, folder: Path, inside: Sequence[str] = ()) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._inside = list(inside)
        self.port = _free_port()
        self.url = f"ws://{LOOPBACK}:{self.port}/v1"
        twist = Path(sys.executable).parent / "twist"
        self.process = subprocess.Popen(
            [*self._inside, str(twist), "wormhole-mailbox",
             f"--port=tcp:{self.port}:interface={LOOPBACK}",
             f"--channel-db={folder / 'mailbox.sqlite'}"],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        probe = [*self._inside, sys.executable, "-c",
                 f"import socket; socket.create_connection(('{LOOPBACK}', {self.port}), 1)"]

        def listening() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError("the mailbox server exited at start")
            return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0

        wait_until_blocking(
            listening, START_TIMEOUT, what=f"the mailbox server listening on {self.port}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@contextlib.contextmanager
def multicast_loopback() -> Iterator[list[str]]:
    """A network namespace of its own with only loopback, multicast on (mDNS works
    between its processes); yields the prefix that runs a command inside it."""
    name = f"p2pt-{os.getpid()}-code{next(_names)}"
    commands = [
        ["ip", "netns", "add", name],
        ["ip", "-n", name, "link", "set", "lo", "up"],
        ["ip", "-n", name, "link", "set", "lo", "multicast", "on"],
        ["ip", "-n", name, "route", "add", "224.0.0.0/4", "dev", "lo"],
    ]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, timeout=10)
        yield ["ip", "netns", "exec", name]
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def namespaces_available() -> bool:
    """Namespace tests need root and ``ip``."""
    return os.geteuid() == 0 and subprocess.run(
        ["ip", "-V"], capture_output=True
    ).returncode == 0
