"""Running the real CLI in subprocesses and reading its JSON lines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from waiting import hold_for_blocking

CODE = "246810"
#: Seconds to wait for a process's expected event.
EVENT_TIMEOUT = 30.0


class CliProcess:
    """One ``p2p-transfer`` process whose stdout JSON events are collected as they come."""

    def __init__(
        self, args: list[str], home: Path, stdin: bool = False, inside: Sequence[str] = ()
    ) -> None:
        """``inside`` runs it through a wrapper (``ip netns exec NS``)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.args = args
        self.process = subprocess.Popen(
            [*inside, sys.executable, "-m", "p2p_transfer", "--config-dir", str(home), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            env=env,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)

    def wait_for(
        self, name: str, where: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = EVENT_TIMEOUT,
    ) -> dict[str, Any]:
        """The first event called ``name`` that satisfies ``where``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events:
                    if event["event"] == name and where(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not self._pending()):
                    raise AssertionError(
                        f"no {name!r} event from {self.args[0]}; got "
                        f"{[e['event'] for e in self.events]}; stderr: {''.join(self.stderr_lines)}"
                    )
                self._changed.wait(min(remaining, 0.1))

    def _pending(self) -> bool:
        return self.process.stdout is not None and not self.process.stdout.closed

    def named(self, name: str) -> list[dict[str, Any]]:
        """All events called ``name`` so far."""
        with self._changed:
            return [e for e in self.events if e["event"] == name]

    def wait(self, timeout: float = EVENT_TIMEOUT) -> int:
        """Exit status, waiting for the process to end."""
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Terminate if still running."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def throttled(pid: int, share: float = 0.1, period: float = 0.02) -> Iterator[None]:
    """Let process ``pid`` (its whole group) run only ``share`` of the time, by SIGSTOP
    and SIGCONT: on loopback a transfer is over in a blink, and a test that must catch it
    mid-file (to kill it there) needs it to take seconds. Nothing in the program is
    changed; it just gets less time."""
    done = threading.Event()

    def signal_group(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)

    def pace() -> None:
        while not done.is_set():
            signal_group(signal.SIGSTOP)
            hold_for_blocking(period * (1 - share))
            signal_group(signal.SIGCONT)
            hold_for_blocking(period * share)

    thread = threading.Thread(target=pace, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        signal_group(signal.SIGCONT)


def start_receiver(home: Path, target: Path, *extra: str) -> tuple[CliProcess, str]:
    """A JSON receiver on loopback with a fixed code; returns it and its ticket."""
    receiver = CliProcess(
        ["--name", "receiver", "receive", "--dir", str(target), "--yes", "--code", CODE,
         "--bind", "127.0.0.1", "--json", *extra],
        home,
    )
    ticket = receiver.wait_for("ticket")["ticket"]
    return receiver, ticket


def start_sender(home: Path, ticket: str, *paths: Path, extra: tuple[str, ...] = ()) -> CliProcess:
    """A JSON sender with the fixed code."""
    return CliProcess(
        ["--name", "sender", "send", "--to", ticket, "--code", CODE, "--json", *extra,
         *map(str, paths)],
        home,
    )
