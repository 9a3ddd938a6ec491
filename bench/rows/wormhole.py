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


def wormhole_tools_missing() -> str | None:
    """Why magic-wormhole's CLI or servers cannot run here, or None."""
    for name in ("wormhole", "twist"):
        if not _script(name).exists():
            return f"{name} is not installed (pip install -e '.[bench]')"
    return None


def wormhole_code(ctx: RunContext) -> str:
    """A fixed code per run: each run takes the next nameplate, so none meets an old claim."""
    return f"{WORMHOLE_FIRST_NAMEPLATE + ctx.run_index}-{WORMHOLE_CODE_WORDS}"


@dataclass
class WormholeServers:
    """A mailbox server and a transit relay on loopback, shared by a row's runs.

    Each row that talks magic-wormhole's protocols holds its own pair, so a
    row's nameplates and channels never meet another row's.
    """

    mailbox_url: str = ""  # ws://127.0.0.1:PORT/v1
    transit: str = ""  # tcp:127.0.0.1:PORT, as wormhole's --transit-helper takes it
    error: str | None = None
    _children: Children | None = field(default=None, repr=False)
    _mailbox: Child | None = field(default=None, repr=False)
    _relay: Child | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        """True between a successful ``start`` and ``stop``."""
        return self._children is not None

    @property
    def transit_host_port(self) -> str:
        """The relay as ``HOST:PORT`` (p2p-transfer's ``--transit-relay``)."""
        return self.transit.removeprefix("tcp:")

    def start(self, work_dir: Path, name: str) -> None:
        """Start both servers (state under ``work_dir``); on failure, set ``error``."""
        state = work_dir / name
        state.mkdir(parents=True, exist_ok=True)
        self._children = Children(work_dir / LOGS_DIR / name)
        twist = str(_script("twist"))
        mailbox_port, relay_port = _free_port(), _free_port()
        self._mailbox = self._children.start(
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
        self._relay = self._children.start(
            "transit-relay",
            [twist, "transitrelay", f"--port=tcp:{relay_port}:interface={LOOPBACK}"],
            cwd=state,
            measured=False,
        )
        try:
            _wait_listening(self._mailbox, mailbox_port)
            _wait_listening(self._relay, relay_port)
        except ChildError as error:
            self.error = str(error)
            self.stop()
            return
        self.mailbox_url = f"ws://{LOOPBACK}:{mailbox_port}/v1"
        self.transit = f"tcp:{LOOPBACK}:{relay_port}"

    def stop(self) -> None:
        """Stop both servers."""
        if self._children is not None:
            self._children.stop_all()
            self._children = None

    def cpu_seconds(self) -> float:
        """CPU both servers used so far (not counted in a row's figures, only noted)."""
        return sum(server.cpu_seconds_now() for server in (self._mailbox, self._relay) if server)

    def not_ready(self, label: str, workload: Workload) -> RowResult | None:
        """The result of a run that cannot happen because the servers are not up, or None."""
        if self.error is not None:
            return failed(label, workload, f"servers: {self.error}")
        if not self.running:
            return unavailable(label, workload, "servers not started")
        return None


@dataclass
class WormholeRow(Row):
    """``wormhole send --code`` and ``wormhole receive --accept-file`` on loopback."""

    key: str = "wormhole"
    label: str = LABEL
    servers: WormholeServers = field(default_factory=WormholeServers, repr=False)

    def unavailable_reason(self) -> str | None:
        return wormhole_tools_missing()

    def setup(self, work_dir: Path) -> None:
        """Start the mailbox server and the transit relay, both on loopback only."""
        self.servers.start(work_dir, "wormhole-servers")

    def teardown(self) -> None:
        """Stop both servers."""
        self.servers.stop()

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        not_ready = self.servers.not_ready(self.label, workload)
        if not_ready is not None:
            return not_ready
        base = [
            str(wormhole_script()), "--relay-url", self.servers.mailbox_url,
            "--transit-helper", self.servers.transit,
        ]  # fmt: skip
        code = wormhole_code(ctx)
        # Temporary zips go to our work folder, not the system's.
        env = {"TMPDIR": str(ctx.scratch("wormhole"))}
        out = ctx.out_dir(self.key)
        cpu_before = self.servers.cpu_seconds()
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
        notes = [servers_cpu_note(self.servers.cpu_seconds() - cpu_before)]
        if workload.file_count > 1:
            notes.insert(0, "sent as a deflated zip, unpacked by the receiver")
        result.note = "; ".join(notes)
        return result


def servers_cpu_note(seconds: float) -> str:
    """What the mailbox and relay used during a run, for the notes column."""
    return f"servers' CPU {seconds:.2f} s (not counted)"


def wormhole_script() -> Path:
    """The ``wormhole`` CLI installed beside this interpreter."""
    return _script("wormhole")
