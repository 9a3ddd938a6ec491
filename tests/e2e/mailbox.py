"""A real magic-wormhole mailbox server on loopback, for sends by code."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
#: Seconds the server has to start listening.
START_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


class MailboxServer:
    """``twist wormhole-mailbox`` on 127.0.0.1 (its state in ``folder``)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"ws://{LOOPBACK}:{self.port}/v1"
        twist = Path(sys.executable).parent / "twist"
        self.process = subprocess.Popen(
            [str(twist), "wormhole-mailbox", f"--port=tcp:{self.port}:interface={LOOPBACK}",
             f"--channel-db={folder / 'mailbox.sqlite'}"],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the mailbox server exited at start")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=1.0):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"the mailbox server did not listen on {self.port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
