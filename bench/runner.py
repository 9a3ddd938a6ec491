"""Start child processes and measure them as the kernel accounts them.

Each measured child runs under ``launch.py``, in its own session (so it and
anything it starts can be stopped together). The launcher reaps it with
``os.wait4``, whose rusage covers the program and every descendant it waited
for: user and system CPU seconds and the peak resident set size, which only a
launcher of small footprint gets right (see ``launch.py``). A thread drains
stdout (so a chatty child never blocks on a full pipe) and hands lines to
whoever waits for one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import KILL_GRACE, REPO_ROOT

LAUNCHER = Path(__file__).resolve().parent / "launch.py"

#: ``ru_maxrss`` is in KiB on Linux.
_MAXRSS_UNIT = 1024
#: How often ``wait_all`` looks at children that have not exited yet.
_POLL_INTERVAL = 0.05
#: Lines of a failed child's stderr quoted in the report.
_STDERR_TAIL_LINES = 3
#: Most bytes of a child's stdout taken in one read (a pipe holds 64 KiB).
_READ_SIZE = 1024 * 1024


class ChildError(RuntimeError):
    """A child did not behave as its row expects (exit code, missing line, timeout)."""


@dataclass(frozen=True)
class Usage:
    """What the kernel accounted for one finished child (and its reaped descendants)."""

    returncode: int
    started: float  # monotonic() when the program was spawned
    ended: float  # monotonic() when it was reaped
    cpu_seconds: float  # user + system
    max_rss_bytes: int


def monotonic() -> float:
    """CLOCK_MONOTONIC: one clock for the harness and every launcher."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def peer_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours, with the repository importable.

    Nothing else changes: the tools run as a user runs them (our own peers
    flush each line they print).
    """
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    if extra:
        env.update(extra)
    return env


class Child:
    """One child process; with ``measured`` its program runs under the launcher."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_dir: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        measured: bool = True,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = log_dir / f"{name}.stderr"
        self.stdout_path = log_dir / f"{name}.stdout"
        self._report: Path | None = None
        command = self.argv
        if measured:
            self._report = log_dir / f"{name}.rusage.json"
            self._report.unlink(missing_ok=True)
            command = [sys.executable, "-I", "-S", str(LAUNCHER), str(self._report), "--", *argv]
        self.stdout_lines: list[str] = []
        self._new_lines = threading.Condition()
        self._next_line = 0  # the index in stdout_lines that next_line returns next
        self._stdout_ended = False
        self._usage: Usage | None = None
        with open(self.stderr_path, "wb") as stderr:
            self.started = monotonic()
            self._popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=cwd,
                env=peer_env(env),
                start_new_session=True,
            )
        self.pid = self._popen.pid
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._waiter = threading.Thread(target=self._wait, name=f"{name}-wait4", daemon=True)
        self._reader.start()
        self._waiter.start()

    def _read(self) -> None:
        """Drain stdout a pipeful at a time: a child printing a JSON line per file
        (100,000 of them) must not wait on a full pipe for our work on each line."""
        assert self._popen.stdout is not None
        stdout = self._popen.stdout.fileno()
        partial = b""
        with open(self.stdout_path, "wb") as copy:  # kept with the logs of a failed run
            while chunk := os.read(stdout, _READ_SIZE):
                copy.write(chunk)
                *lines, partial = (partial + chunk).split(b"\n")
                with self._new_lines:
                    self.stdout_lines.extend(line.decode(errors="replace") for line in lines)
                    self._new_lines.notify_all()
        with self._new_lines:
            if partial:
                self.stdout_lines.append(partial.decode(errors="replace"))
            self._stdout_ended = True
            self._new_lines.notify_all()

    def _wait(self) -> None:
        # We reap the child ourselves: Popen.wait would discard the rusage.
        _, status, rusage = os.wait4(self.pid, 0)
        end = monotonic()
        code = os.waitstatus_to_exitcode(status)
        self._popen.returncode = code
        usage = Usage(
            returncode=code,
            started=self.started,
            ended=end,
            cpu_seconds=rusage.ru_utime + rusage.ru_stime,
            max_rss_bytes=rusage.ru_maxrss * _MAXRSS_UNIT,
        )
        if self._report is not None:
            usage = self._launcher_usage(usage)
        self._usage = usage

    def _launcher_usage(self, fallback: Usage) -> Usage:
        """The program's own figures from the launcher's report.

        Without a report (the launcher was killed, or could not start the
        program) the launcher's exit code stands and the row fails anyway.
        """
        assert self._report is not None
        try:
            report = json.loads(self._report.read_text())
        except (OSError, ValueError):
            return Usage(
                returncode=fallback.returncode or -1,
                started=fallback.started,
                ended=fallback.ended,
                cpu_seconds=fallback.cpu_seconds,
                max_rss_bytes=0,
            )
        return Usage(
            returncode=int(report["returncode"]),
            started=float(report["spawned"]),
            ended=float(report["exited"]),
            cpu_seconds=float(report["cpu_seconds"]),
            max_rss_bytes=int(report["max_rss_kib"]) * _MAXRSS_UNIT,
        )

    @property
    def running(self) -> bool:
        """True until the child has been reaped."""
        return self._waiter.is_alive()

    def next_line(self, deadline: float) -> str | None:
        """The next stdout line, or None at end of output or past ``deadline``."""
        with self._new_lines:
            while self._next_line == len(self.stdout_lines):
                remaining = deadline - monotonic()
                if self._stdout_ended or remaining <= 0:
                    return None
                self._new_lines.wait(remaining)
            self._next_line += 1
            return self.stdout_lines[self._next_line - 1]

    def wait_for_event(self, event: str, timeout: float) -> dict[str, Any]:
        """Read JSON stdout lines until one has ``"event": event``; return it."""
        deadline = monotonic() + timeout
        while True:
            line = self.next_line(deadline)
            if line is None:
                raise ChildError(f"{self.name}: no {event!r} line; {self.describe_exit()}")
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("event") == event:
                return message

    def events(self) -> list[dict[str, Any]]:
        """Every JSON object the child printed, in order."""
        found = []
        for line in self.stdout_lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                found.append(message)
        return found

    def wait(self, timeout: float) -> Usage:
        """Wait until the child exits; past ``timeout`` stop it and raise."""
        self._waiter.join(timeout)
        if self._waiter.is_alive():
            self.stop()
            raise ChildError(f"{self.name}: still running after {timeout:.0f} s, stopped")
        self._reader.join(KILL_GRACE)
        assert self._usage is not None
        return self._usage

    @property
    def usage(self) -> Usage | None:
        """The child's figures once it has exited, else None."""
        return None if self.running else self._usage

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the child to exit."""
        self._waiter.join(timeout)

    def stop(self) -> Usage | None:
        """SIGTERM the child's session, SIGKILL it after a grace; return its usage."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self._waiter.is_alive():
                break
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            self._waiter.join(KILL_GRACE)
        self._waiter.join()
        return self._usage

    def cpu_seconds_now(self) -> float:
        """CPU seconds used so far by the running child itself (from /proc)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return self._usage.cpu_seconds if self._usage else 0.0
        # Fields after the command name start at "state" (field 3): utime is 14, stime 15.
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def describe_exit(self) -> str:
        """Exit status (if any) and the end of stderr, for an error message."""
        status = "running" if self.running else f"exit {self._popen.returncode}"
        try:
            lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        tail = " | ".join(line.strip() for line in lines[-_STDERR_TAIL_LINES:])
        return f"{status}; stderr: {tail}" if tail else status


def wait_all(children: Sequence[Child], deadline: float) -> list[Usage]:
    """Usage of every child once all exited 0, in order.

    As soon as one exits non-zero, or at ``deadline`` (monotonic), the others
    are stopped and ChildError says why: a peer left waiting for a dead one
    must not hold the run until its timeout.
    """
    while True:
        for child in children:
            usage = child.usage
            if usage is not None and usage.returncode != 0:
                _stop_all(children)
                raise ChildError(f"{child.name}: {child.describe_exit()}")
        pending = [child for child in children if child.running]
        if not pending:
            return [child.wait(KILL_GRACE) for child in children]
        if monotonic() >= deadline:
            _stop_all(children)
            names = ", ".join(child.name for child in pending)
            raise ChildError(f"{names} still running at the deadline, stopped")
        pending[0].join(_POLL_INTERVAL)


def _stop_all(children: Sequence[Child]) -> None:
    for child in children:
        if child.running:
            child.stop()


class Children:
    """Context manager that stops every child still running when the block ends."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: list[Child] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        measured: bool = True,
    ) -> Child:
        """Start and track one child."""
        child = Child(name, argv, log_dir=self.log_dir, cwd=cwd, env=env, measured=measured)
        self._children.append(child)
        return child

    def __enter__(self) -> Children:
        return self

    def stop_all(self) -> None:
        """Stop every child still running."""
        _stop_all(self._children)

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
