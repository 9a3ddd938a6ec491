"""A private network namespace where our CLI meets ``localsendd`` (an independent LocalSend).

Loopback is up with multicast on and the multicast route on ``lo``, so LocalSend
discovery (224.0.0.167:53317) and HTTPS on 127.0.0.1 work, and nothing leaves
the namespace. Every process runs inside it (``ip netns exec``); the lab stops
them and deletes the namespace.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from netns import Host, JsonLines, Lab
from waiting import wait_until_blocking

T = TypeVar("T")
#: ``setns`` flag for a network namespace (linux/sched.h).
CLONE_NEWNET = 0x40000000
#: Seconds to wait for a daemon to come up, a transfer to end.
READY_TIMEOUT = 20.0
TRANSFER_TIMEOUT = 60.0


def localsendd_bin(name: str) -> str:
    """The venv's ``localsendd`` / ``localsendctl`` (the ``test`` extra installs them)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists() or shutil.which("openssl") is None:
        pytest.fail(f"{name} (pip extra 'test') and openssl (scripts/install-system-deps) "
                    "are needed for the LocalSend interop tests")
    return str(path)


@dataclass
class Localsendd:
    """One running ``localsendd`` and its ``localsendctl``."""

    host: Host
    root: Path
    alias: str
    port: int
    #: Folder of the control socket: a short path (see Lab.short_folder).
    socket_folder: Path

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def socket(self) -> Path:
        return self.socket_folder / "control.sock"

    @property
    def ctl_command(self) -> str:
        """``localsendctl`` for this daemon, as a shell command prefix."""
        return f"{localsendd_bin('localsendctl')} --socket {self.socket}"

    def ctl(
        self, *args: str, timeout: float = TRANSFER_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """``localsendctl ARGS`` against this daemon."""
        return self.host.run(localsendd_bin("localsendctl"), "--socket", str(self.socket),
                             *args, timeout=timeout, check=False)


class LocalSendLab:
    """One namespace with multicast on loopback; start daemons and our CLI in it. Given
    ``host`` (a host of a LAN the lab built), its LAN carries the multicast instead."""

    def __init__(self, lab: Lab, root: Path, host: Host | None = None) -> None:
        if host is None:
            host = lab.host("ls")
            host.run("ip", "link", "set", "lo", "multicast", "on")
            host.run("ip", "route", "add", "224.0.0.0/4", "dev", "lo")
        self.lab = lab
        self.host = host
        self.root = root

    def localsendd(
        self, alias: str, port: int, *, pin: str | None = None, unattended: bool = True
    ) -> Localsendd:
        """Start ``localsendd`` on ``port`` (HTTPS), accepting unattended unless told not to."""
        root = self.root / f"localsendd-{alias}"
        (root / "state").mkdir(parents=True)
        daemon = Localsendd(self.host, root, alias, port, self.lab.short_folder())
        args = [localsendd_bin("localsendd"), "--port", str(port), "--socket", str(daemon.socket),
                "--alias", alias, "--download-dir", str(daemon.downloads), "--no-log-time",
                "--unattended" if unattended else "--no-unattended"]
        if pin is not None:
            args += ["--pin", pin]
        env = {**os.environ, "XDG_STATE_HOME": str(root / "state"),
               "XDG_CONFIG_HOME": str(root / "config")}
        proc = self.host.popen(*args, env=env)

        def ready() -> bool:
            if daemon.socket.exists():
                return True
            if proc.poll() is not None:
                error = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"localsendd ended: {error}")
            return False

        wait_until_blocking(ready, READY_TIMEOUT, every=0.05, what="localsendd to start")
        return daemon

    def ours(self, home: Path, *args: str) -> JsonLines:
        """``p2p-transfer --config-dir HOME ARGS --json`` in the namespace."""
        return self.host.spawn(
            sys.executable, "-m", "p2p_transfer", "--config-dir", str(home), *args, "--json",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def wrap(self) -> tuple[str, ...]:
        """The prefix that runs a command in the namespace (for a pty)."""
        return ("ip", "netns", "exec", self.host.ns)

    def python(self, code: str, timeout: float = TRANSFER_TIMEOUT) -> str:
        """Run Python code in the namespace; its stdout."""
        return self.host.run(sys.executable, "-c", code, timeout=timeout).stdout

    def run_inside(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``work()`` on an event loop of a thread that joined the namespace, so its
        sockets (an app's API client) reach what listens on the namespace's loopback."""
        outcome: dict[str, Any] = {}

        def thread() -> None:
            try:
                fd = os.open(f"/run/netns/{self.host.ns}", os.O_RDONLY)
                try:
                    libc = ctypes.CDLL(None, use_errno=True)
                    if libc.setns(fd, CLONE_NEWNET) != 0:  # this thread only
                        raise OSError(ctypes.get_errno(), "setns failed")
                finally:
                    os.close(fd)
                outcome["value"] = asyncio.run(work())
            except BaseException as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=thread, name="in-namespace")
        worker.start()
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]  # type: ignore[no-any-return]
