"""magic-wormhole's servers on 127.0.0.1, its CLI, and wormholes made with its library.

``WormholeServers`` starts a real ``magic-wormhole-mailbox-server`` and
``magic-wormhole-transit-relay`` (the ``test`` extra installs both) on loopback, once
per test module. ``connected`` opens our side of a code and waits until the peer's
versions arrive: what ``receive_classic``/``send_classic`` are given. The library
itself (``library_wormhole``) plays the other side where a test needs a client that
is not ours, on the test's own asyncio loop (``asyncio_reactor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import wormhole
from twisted.internet.asyncioreactor import AsyncioSelectorReactor

from p2p_transfer.rendezvous.mailbox import CodeChannel
from p2p_transfer.wormhole_classic import APP_ID
from waiting import wait_until_blocking

LOOPBACK = "127.0.0.1"
#: Seconds the servers have to start listening (Twisted's import is slow on a busy box).
START_TIMEOUT = 60.0
#: Seconds for the two sides of a wormhole to agree on a key and exchange versions.
CONNECT_TIMEOUT = 30.0
#: Seconds a ``wormhole`` CLI run may take.
CLI_TIMEOUT = 90.0
_nameplates = itertools.count(1)


def venv_script(name: str) -> str:
    """A console script beside this interpreter (the ``test`` extra installs them)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.fail(f"{name} is missing: pip install -e '.[test]' installs magic-wormhole "
                    "and its servers")
    return str(path)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@dataclass
class WormholeServers:
    """A mailbox server and a transit relay, on loopback."""

    mailbox_port: int
    relay_port: int
    processes: list[subprocess.Popen[bytes]]

    @property
    def mailbox_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.mailbox_port}/v1"

    @property
    def transit_relay(self) -> str:
        return f"tcp:{LOOPBACK}:{self.relay_port}"

    def cli(self, *args: str) -> list[str]:
        """The ``wormhole`` command line, pointed at these servers."""
        return [venv_script("wormhole"), "--relay-url", self.mailbox_url,
                "--transit-helper", self.transit_relay, *args]

    def run_cli(self, *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.cli(*args), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )

    @classmethod
    @contextlib.contextmanager
    def started(cls, state: Path) -> Iterator[WormholeServers]:
        twist = venv_script("twist")
        mailbox_port, relay_port = _free_port(), _free_port()
        logs = [open(state / name, "wb") for name in ("mailbox.log", "relay.log")]  # noqa: SIM115
        processes = [
            subprocess.Popen(
                [twist, "wormhole-mailbox", f"--port=tcp:{mailbox_port}:interface={LOOPBACK}",
                 f"--channel-db={state / 'mailbox.sqlite'}"],
                cwd=state, stdout=logs[0], stderr=subprocess.STDOUT,
            ),
            subprocess.Popen(
                [twist, "transitrelay", f"--port=tcp:{relay_port}:interface={LOOPBACK}"],
                cwd=state, stdout=logs[1], stderr=subprocess.STDOUT,
            ),
        ]
        servers = cls(mailbox_port, relay_port, processes)
        try:
            for process, port in zip(processes, (mailbox_port, relay_port), strict=True):
                _wait_listening(process, port)
            yield servers
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for log in logs:
                log.close()


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{process.args[1]} exited with {process.returncode}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return True
        except OSError:
            return False

    wait_until_blocking(
        listening, START_TIMEOUT, what=f"{process.args[1]} listening on port {port}"
    )


def new_code() -> str:
    """A code no earlier test of this process used (each nameplate is used once)."""
    return f"{next(_nameplates)}-guitarist-revenge"


@contextlib.asynccontextmanager
async def asyncio_reactor() -> AsyncIterator[AsyncioSelectorReactor]:
    """Twisted on the running asyncio loop, for this test only (never installed): the
    magic-wormhole library, as the other side, runs on it."""
    reactor = AsyncioSelectorReactor(asyncio.get_running_loop())
    reactor.startRunning(installSignalHandlers=False)
    try:
        yield reactor
    finally:
        if reactor.threadpool is not None:
            reactor.threadpool.stop()


async def deferred(result: Any, timeout: float | None = None) -> Any:
    """A Twisted Deferred's result, awaited on asyncio (its failure raised)."""
    return await asyncio.wait_for(result.asFuture(asyncio.get_running_loop()), timeout)


def library_wormhole(
    url: str, reactor: AsyncioSelectorReactor, versions: dict[str, object] | None = None
) -> Any:
    """A wormhole of the magic-wormhole library (the reference client) on ``url``."""
    return wormhole.create(APP_ID, url, reactor, versions=versions or {})


@contextlib.asynccontextmanager
async def connected(servers: WormholeServers, code: str) -> AsyncIterator[CodeChannel]:
    """Our side of ``code``, its key agreed and its peer's versions arrived."""
    channel = CodeChannel.open(servers.mailbox_url, "receive")
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await channel.claim(code)
            await channel.wait_for_peer(CONNECT_TIMEOUT)
        yield channel
    finally:
        await channel.close()


async def finished(process: subprocess.Popen[str], timeout: float = CLI_TIMEOUT) -> str:
    """Wait for a CLI run (without blocking the loop); its output. Kills it if too slow."""
    try:
        output, _ = await asyncio.to_thread(process.communicate, timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = await asyncio.to_thread(process.communicate)
        raise AssertionError(f"wormhole did not finish within {timeout:g} s:\n{output}") from None
    return output
