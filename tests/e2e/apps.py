"""A real ``p2p-transfer app`` process, for tests that drive it through its UI or API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Seconds to wait for an app's JSON line.
EVENT_TIMEOUT = 30.0
#: Seconds a stopped app may take to exit.
EXIT_TIMEOUT = 15.0
#: The CLI, as ``python -m p2p_transfer``.
CLI = [sys.executable, "-m", "p2p_transfer"]


class AppProcess:
    """``p2p-transfer app --no-browser --json`` with its own HOME, config dir and JSON events."""

    def __init__(
        self, root: Path, name: str, *extra: str, wrap: tuple[str, ...] = ()
    ) -> None:
        """``wrap``: a command to run it under (``ip netns exec NS`` for a namespace)."""
        self.home = root / f"{name}-home"
        self.config = root / f"{name}-config"
        self.home.mkdir(exist_ok=True)  # the same app started again keeps its home
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOME": str(self.home)}
        for variable in ("XDG_DOWNLOAD_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
            env.pop(variable, None)
        self.process = subprocess.Popen(
            [*wrap, *CLI, "--config-dir", str(self.config), "--name", name,
             "app", "--no-browser", "--json", "--bind-addr", "127.0.0.1",
             "--share-bind", "127.0.0.1", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True, env=env,
        )
        self.events: list[dict[str, Any]] = []
        self._stderr: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    @property
    def downloads(self) -> Path:
        return self.home / "Downloads" / "p2p-transfer"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.events.append(json.loads(line))
                self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def wait_for(
        self, name: str, timeout: float = EVENT_TIMEOUT,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
    ) -> dict[str, Any]:
        """The first event called ``name`` that satisfies ``where``."""
        with self._changed:
            self._changed.wait_for(
                lambda: any(e["event"] == name and where(e) for e in self.events)
                or self.process.poll() is not None,
                timeout,
            )
            found = [e for e in self.events if e["event"] == name and where(e)]
        assert found, f"no {name!r}: {[e['event'] for e in self.events]} {''.join(self._stderr)}"
        return found[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
