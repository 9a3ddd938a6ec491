"""Row: the HTTP share server (issue 5), uploaded to as browsers do.

The measured server is the real command, ``python -m p2p_transfer share --bind
127.0.0.1 --port 0 --yes --json --dir OUT``; its ``share_url`` line gives the
link. The measured client, ``bench/peers/share_upload.py``, speaks the page's
WebSocket protocol (Origin, ``file_info``, ``accepted``, 256 KiB frames,
``complete``): one upload of the big file, and several clients uploading at
once (the ``uploads`` workload), where the server's peak RSS is issue 5's
figure. Throughput is over the client's lifetime (the server is already up,
as for a browser); CPU is both processes'. A run counts only when every
received file's BLAKE3 equals the source's and nothing else is left in OUT.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.config import KILL_GRACE, STARTUP_TIMEOUT
from bench.data import Workload, file_hash
from bench.results import OK, RowResult, failed
from bench.rows.base import Row, RunContext, python_module
from bench.runner import Child, ChildError, Children, monotonic

#: Name of the row in the table.
LABEL = "p2p-transfer share (HTTP)"
_CLIENT = "bench.peers.share_upload"
#: The share command's exit status when stopped (SIGTERM), as the harness stops it.
_STOPPED_STATUSES = (0, 130)
#: How often the harness looks at the running pair.
_POLL_INTERVAL = 0.05


def server_argv(config_dir: Path, out: Path) -> list[str]:
    """The measured server: the real ``share`` command on loopback, accepting every upload."""
    return [
        sys.executable, "-m", "p2p_transfer", "--config-dir", str(config_dir),
        "share", "--bind", "127.0.0.1", "--port", "0", "--yes", "--json", "--dir", str(out),
    ]  # fmt: skip


def upload_names(workload: Workload) -> list[str]:
    """One name per concurrent upload: the file's own for one upload, numbered for several."""
    if workload.file_count == 1:
        return [workload.entry]
    return [f"upload-{index}.bin" for index in range(workload.file_count)]


def check_uploads(out: Path, names: list[str], expected_hash: bytes) -> str | None:
    """None when ``out`` holds exactly ``names``, each with the source's BLAKE3; else why not."""
    found = sorted(path.name for path in out.iterdir())
    if found != sorted(names):
        return f"upload folder holds {found}, expected {sorted(names)}"
    for name in names:
        if file_hash(out / name) != expected_hash:
            return f"{name}: BLAKE3 differs from the source"
    return None


def completed_uploads(server: Child) -> int:
    """How many ``share_upload_complete`` events the server printed."""
    return sum(1 for event in server.events() if event.get("event") == "share_upload_complete")


def _wait_client(client: Child, server: Child, deadline: float) -> None:
    """Until the client exits; ChildError when the server dies first or time runs out."""
    while client.running:
        if not server.running:
            raise ChildError(f"server: {server.describe_exit()}")
        if monotonic() >= deadline:
            client.stop()
            raise ChildError("client still running at the deadline, stopped")
        client.join(_POLL_INTERVAL)


@dataclass
class ShareRow(Row):
    """``p2p-transfer share`` receiving WebSocket uploads from browser-like clients."""

    key: str = "share"
    label: str = LABEL
    workloads: Sequence[str] = ("big", "uploads")

    def unavailable_reason(self) -> str | None:
        for module in ("p2p_transfer.share", "aiohttp"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        return None

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        names = upload_names(workload)
        clients = "one client" if len(names) == 1 else f"{len(names)} clients at once"
        note = (
            f"the page's WebSocket protocol, {clients}; wall s = the client's run; "
            "sender = client, receiver = server"
        )
        out = ctx.out_dir(self.key)
        config_dir = ctx.scratch(self.key)
        with Children(ctx.log_dir(self.key, workload)) as children:
            server = children.start("server", server_argv(config_dir, out))
            try:
                url = str(server.wait_for_event("share_url", STARTUP_TIMEOUT)["url"])
                client = children.start(
                    "client", python_module(_CLIENT, url, str(workload.path), *names)
                )
                _wait_client(client, server, client.started + ctx.run_timeout(workload))
                client_usage = client.wait(KILL_GRACE)
            except ChildError as error:
                return failed(self.label, workload, str(error), note)
            if client_usage.returncode != 0:
                return failed(self.label, workload, f"client: {client.describe_exit()}", note)
            server_usage = server.stop()
        if server_usage is None or server_usage.returncode not in _STOPPED_STATUSES:
            return failed(self.label, workload, f"server: {server.describe_exit()}", note)
        problem = check_uploads(out, names, file_hash(workload.path))
        if problem is None and completed_uploads(server) != len(names):
            problem = f"server reported {completed_uploads(server)} of {len(names)} uploads"
        if problem is not None:
            return failed(self.label, workload, problem, note)
        return RowResult(
            tool=self.label,
            workload=workload,
            status=OK,
            wall_seconds=client_usage.ended - client_usage.started,
            cpu_seconds=client_usage.cpu_seconds + server_usage.cpu_seconds,
            sender_rss_bytes=client_usage.max_rss_bytes,
            receiver_rss_bytes=server_usage.max_rss_bytes,
            note=note,
        )
