"""Running the real ``share`` command in a subprocess and reading its JSON lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

#: Seconds to wait for an expected event.
EVENT_TIMEOUT = 30.0
#: Seconds a stopped share may take to exit.
EXIT_TIMEOUT = 10.0

def share_argv(home: Path, *args: str) -> list[str]:
    """``p2p-transfer --config-dir HOME --name NAME share ARGS``."""
    return [sys.executable, "-m", "p2p_transfer", "--config-dir", str(home), "--name",
            "Test laptop", "share", *args]


class ShareProcess:
    """The real ``share`` command in a subprocess, its JSON events collected as they come."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                if line.startswith("{"):  # --json; people's output is kept as lines only
                    self.events.append(json.loads(line))
                self._changed.notify_all()

    def wait_for(self, name: str, count: int = 1, timeout: float = EVENT_TIMEOUT) -> list[dict]:
        with self._changed:
            found = self._changed.wait_for(
                lambda: len([e for e in self.events if e["event"] == name]) >= count
                or self.process.poll() is not None,
                timeout,
            )
            matching = [e for e in self.events if e["event"] == name]
        assert found and len(matching) >= count, f"no {name}: {self.events}"
        return matching

    def wait_for_text(self, text: str, timeout: float = EVENT_TIMEOUT) -> str:
        """All stdout so far, once it contains ``text``."""
        with self._changed:
            self._changed.wait_for(
                lambda: text in "".join(self.lines) or self.process.poll() is not None, timeout
            )
            out = "".join(self.lines)
        assert text in out, out
        return out

    def answer(self, line: str) -> None:
        """Type ``line`` on the command's stdin (the host answering a prompt)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> int:
        """Ctrl-C, and the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(EXIT_TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            if self.process.stdin is not None:
                self.process.stdin.close()
            self._stderr_reader.join(EXIT_TIMEOUT)

    def stderr(self) -> str:
        """Everything written to stderr so far (all of it once ``stop`` returned)."""
        return "".join(self._stderr)
