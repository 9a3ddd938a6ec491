"""Row: magic-wormhole, with its mailbox server and transit relay on loopback.

The two servers are started once for the row and are not timed (a user finds
them already running on the internet); their CPU during each run is noted. In
a namespace that has only loopback, wormhole's direct hint is 127.0.0.1, so the
data can flow directly or through the relay, whichever connects first.
A folder is sent as a deflated zip that the receiver unpacks: part of what a
user waits for, so it is timed.
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import LOGS_DIR, STARTUP_TIMEOUT, WORMHOLE_CODE_WORDS, WORMHOLE_FIRST_NAMEPLATE
from bench.data import Workload
from bench.results import RowResult, failed, unavailable
from bench.rows.base import Row, RunContext, finish_pair
from bench.runner import Child, ChildError, Children

LOOPBACK = "127.0.0.1"
_POLL_INTERVAL = 0.1

#: Name of the row in the table.
LABEL = "magic-wormhole"


def _script(name: str) -> Path:
    """A console script installed beside this interpreter."""
    return Path(sys.executable).parent / name


def _free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _wait_listening(server: Child, port: int) -> None:
    """Return once ``port`` accepts connections; raise if ``server`` died or took too long."""
    deadline = time.perf_counter() + STARTUP_TIMEOUT
    while time.perf_counter() < deadline:
        if not server.running:
            raise ChildError(f"{server.name} exited: {server.describe_exit()}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            time.sleep(_POLL_INTERVAL)
    raise ChildError(f"{server.name} did not listen on port {port}")


@dataclass
class WormholeRow(Row):
    """``wormhole send --code`` and ``wormhole receive --accept-file`` on loopback."""

    key: str = "wormhole"
    label: str = LABEL
    _servers: Children | None = field(default=None, repr=False)
    _mailbox: Child | None = field(default=None, repr=False)
    _relay: Child | None = field(default=None, repr=False)
    _urls: tuple[str, str] = ("", "")
    _setup_error: str | None = None

    def unavailable_reason(self) -> str | None:
        for name in ("wormhole", "twist"):
            if not _script(name).exists():
                return f"{name} is not installed (pip install -e '.[bench]')"
        return None

    def setup(self, work_dir: Path) -> None:
        """Start the mailbox server and the transit relay, both on loopback only."""
        state = work_dir / "wormhole-servers"
        state.mkdir(parents=True, exist_ok=True)
        self._servers = Children(work_dir / LOGS_DIR / "wormhole-servers")
        twist = str(_script("twist"))
        mailbox_port, relay_port = _free_port(), _free_port()
        self._mailbox = self._servers.start(
            "mailbox",
            [
                twist,
                "wormhole-mailbox",
                f"--port=tcp:{mailbox_port}:interface={LOOPBACK}",
                f"--channel-db={state / 'mailbox.sqlite'}",
            ],
            cwd=state,
            measured=False,
        )
        self._relay = self._servers.start(
            "transit-relay",
            [twist, "transitrelay", f"--port=tcp:{relay_port}:interface={LOOPBACK}"],
            cwd=state,
            measured=False,
        )
        try:
            _wait_listening(self._mailbox, mailbox_port)
            _wait_listening(self._relay, relay_port)
        except ChildError as error:
            self._setup_error = str(error)
            self.teardown()
            return
        self._urls = (f"ws://{LOOPBACK}:{mailbox_port}/v1", f"tcp:{LOOPBACK}:{relay_port}")

    def teardown(self) -> None:
        """Stop both servers."""
        if self._servers is not None:
            self._servers.stop_all()
            self._servers = None

    def _server_cpu(self) -> float:
        return sum(server.cpu_seconds_now() for server in (self._mailbox, self._relay) if server)

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        if self._setup_error is not None:
            return failed(self.label, workload, f"servers: {self._setup_error}")
        if self._servers is None:
            return unavailable(self.label, workload, "servers not started")
        relay_url, transit = self._urls
        base = [str(_script("wormhole")), "--relay-url", relay_url, "--transit-helper", transit]
        code = f"{WORMHOLE_FIRST_NAMEPLATE + ctx.run_index}-{WORMHOLE_CODE_WORDS}"
        # Temporary zips go to our work folder, not the system's.
        env = {"TMPDIR": str(ctx.scratch("wormhole"))}
        out = ctx.out_dir(self.key)
        cpu_before = self._server_cpu()
        with Children(ctx.log_dir(self.key, workload)) as children:
            tx = children.start(
                "sender",
                [*base, "send", "--hide-progress", "--no-qr", "--code", code, str(workload.path)],
                env=env,
            )
            rx = children.start(
                "receiver",
                [*base, "receive", "--hide-progress", "--accept-file", code],
                cwd=out,
                env=env,
            )
            result = finish_pair(self, workload, ctx, out, sender=tx, receiver=rx)
        server_cpu = self._server_cpu() - cpu_before
        notes = [f"servers' CPU {server_cpu:.2f} s (not counted)"]
        if workload.file_count > 1:
            notes.insert(0, "sent as a deflated zip, unpacked by the receiver")
        result.note = "; ".join(notes)
        return result
