"""Rows: 1 GiB from ``localsendd`` (an independent LocalSend) to us, and to another localsendd.

The sender is a ``localsendd`` daemon told by ``localsendctl send FILE --to
127.0.0.1 --wait``; the receiver is ``p2p-transfer receive --yes --no-announce``
(its LocalSend server on port 53317) or a second, unattended ``localsendd`` on
that port. Both daemons' certificates are made before the runs (in ``setup``),
so no run pays for key generation. Wall time is the client's run (the daemons
are up, as a LocalSend app is); CPU is the sending daemon's, the client's and
the receiver's. A run counts when the client reports ``sent``, both daemons stop
cleanly and the received file is byte-identical.

localsendd hashes each file (SHA-256) before it offers it and both sides use
HTTPS. A localsendd that cannot join its multicast group probes its whole /24
by HTTP instead (in the benchmark's namespace: 254 loopback addresses, all of
them the receiver), so ``setup`` routes multicast to loopback there first: the
namespace is the benchmark's own (``scripts/isolated``).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.config import STARTUP_TIMEOUT
from bench.data import Workload
from bench.isolation import is_isolated
from bench.results import OK, RowResult, failed
from bench.rows.base import Row, RunContext, verify_output
from bench.runner import Child, ChildError, Children, monotonic

#: LocalSend's port: ``localsendctl send --to 127.0.0.1`` dials it.
RECEIVER_PORT = 53317
#: The sending daemon's own port (it serves too).
SENDER_PORT = 53327
_STOPPED_STATUSES = (0, 130)
_POLL_INTERVAL = 0.05


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def localsendd_argv(state: Path, alias: str, port: int, downloads: Path) -> list[str]:
    """An unattended localsendd on ``port`` with its own state and control socket."""
    return [
        _bin("localsendd"), "--port", str(port), "--socket", str(state / "control.sock"),
        "--alias", alias, "--download-dir", str(downloads), "--unattended", "--no-log-time",
        "--log-level", "warning",
    ]  # fmt: skip


def localsendd_env(state: Path) -> dict[str, str]:
    return {"XDG_STATE_HOME": str(state), "XDG_CONFIG_HOME": str(state / "config")}


def receiver_argv(config_dir: Path, out: Path) -> list[str]:
    """The measured receiver: the real ``receive`` command, LocalSend on its default port."""
    return [
        sys.executable, "-m", "p2p_transfer", "--config-dir", str(config_dir), "--name", "bench",
        "receive", "--yes", "--no-announce", "--dir", str(out),
        "--localsend-port", str(RECEIVER_PORT), "--json",
    ]  # fmt: skip


def _start_daemon(children: Children, name: str, state: Path, argv: list[str]) -> Child:
    """A localsendd, once its control socket answers (a stale one is removed first)."""
    socket = state / "control.sock"
    socket.unlink(missing_ok=True)
    daemon = children.start(name, argv, env=localsendd_env(state))
    _wait_for_socket(daemon, socket, monotonic() + STARTUP_TIMEOUT)
    return daemon


def _wait_for_socket(daemon: Child, socket: Path, deadline: float) -> None:
    while not socket.exists():
        if not daemon.running:
            raise ChildError(f"{daemon.name}: {daemon.describe_exit()}")
        if monotonic() >= deadline:
            raise ChildError(f"{daemon.name}: no control socket after {STARTUP_TIMEOUT:g} s")
        daemon.join(_POLL_INTERVAL)


@dataclass
class LocalsenddRow(Row):
    """localsendd sends the big file; ``receiver`` says who takes it."""

    key: str = "localsendd"
    label: str = "localsendd → localsendd"
    workloads: Sequence[str] = ("big",)
    #: "localsendd" or "p2p-transfer".
    receiver: str = "localsendd"
    _state: Path | None = None

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("localsendd") is None:
            return "localsendd is not installed (pip extra 'test')"
        if shutil.which("openssl") is None:
            return "openssl is not installed (scripts/install-system-deps)"
        return None

    def setup(self, work_dir: Path) -> None:
        """Make the daemons' certificates (and ours) once, outside the measured runs."""
        from localsendd.identity import ensure_cert

        from p2p_transfer.localsend.identity import load_or_create_certificate

        if is_isolated():  # never outside the benchmark's private namespace
            for command in (["ip", "link", "set", "lo", "multicast", "on"],
                            ["ip", "route", "replace", "224.0.0.0/4", "dev", "lo"]):
                subprocess.run(command, capture_output=True, check=False)
        self._state = work_dir / "localsend-state" / self.key
        for name in ("sender", "receiver"):
            folder = self._state / name / "localsendd"
            folder.mkdir(parents=True, exist_ok=True)
            ensure_cert(folder)
        load_or_create_certificate(self._state / "ours")

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        assert self._state is not None, "setup() first"
        note = ("localsendctl send --wait; HTTPS, localsendd hashes (SHA-256) before "
                "offering; wall s = the client's run")
        if self.receiver == "p2p-transfer":
            note += "; receiver CPU includes the receive command's start (QUIC endpoint too)"
        out = ctx.out_dir(self.key)
        with Children(ctx.log_dir(self.key, workload)) as children:
            try:
                receiver = self._start_receiver(children, out)
                sender_state = self._state / "sender"
                sender = _start_daemon(children, "sender", sender_state, localsendd_argv(
                    sender_state, "bench-sender", SENDER_PORT, ctx.scratch(self.key)
                ))
                client = children.start("client", [
                    _bin("localsendctl"), "--socket", str(sender_state / "control.sock"),
                    "send", str(workload.path), "--to", "127.0.0.1", "--wait", "--quiet",
                ])
                client_usage = client.wait(ctx.run_timeout(workload))
            except ChildError as error:
                return failed(self.label, workload, str(error), note)
            if client_usage.returncode != 0:
                return failed(self.label, workload, f"client: {client.describe_exit()}", note)
            sender_usage, receiver_usage = sender.stop(), receiver.stop()
        for name, usage in (("sender", sender_usage), ("receiver", receiver_usage)):
            if usage is None or usage.returncode not in _STOPPED_STATUSES:
                return failed(self.label, workload, f"{name} did not stop cleanly", note)
        assert sender_usage is not None and receiver_usage is not None
        problem = verify_output(out, workload)
        if problem is not None:
            return failed(self.label, workload, problem, note)
        return RowResult(
            tool=self.label,
            workload=workload,
            status=OK,
            wall_seconds=client_usage.ended - client_usage.started,
            cpu_seconds=(client_usage.cpu_seconds + sender_usage.cpu_seconds
                         + receiver_usage.cpu_seconds),
            sender_rss_bytes=sender_usage.max_rss_bytes,
            receiver_rss_bytes=receiver_usage.max_rss_bytes,
            note=note,
        )

    def _start_receiver(self, children: Children, out: Path) -> Child:
        assert self._state is not None
        if self.receiver == "p2p-transfer":
            receiver = children.start("receiver", receiver_argv(self._state / "ours", out))
            receiver.wait_for_event("localsend", STARTUP_TIMEOUT)
            return receiver
        state = self._state / "receiver"
        return _start_daemon(children, "receiver", state,
                             localsendd_argv(state, "bench-receiver", RECEIVER_PORT, out))


def localsend_rows() -> list[Row]:
    """localsendd to us, then localsendd to localsendd, back to back."""
    return [
        LocalsenddRow(key="localsend", label="localsendd → p2p-transfer (LocalSend)",
                      receiver="p2p-transfer"),
        LocalsenddRow(),
    ]


__all__ = ["LocalsenddRow", "localsend_rows"]
