"""Rows: a transfer by short code (issue 25), through a mailbox server on loopback.

``p2p-code``: ``p2p-transfer send PATH`` without ``--to`` allocates a code on
the mailbox and prints it first (``{"event": "invite", "code": ...}``); the
harness reads it and starts ``p2p-transfer receive CODE``. Both sides then meet
on our own (native) path, whose ``connection`` events name the data path; the
row counts when both name the same one, and notes it.

``wormhole-p2p``: the classic magic-wormhole CLI sends with a fixed code and
``p2p-transfer receive CODE`` takes it (the wormhole file-transfer protocol,
through the same transit relay as the ``wormhole`` row). Until a build's
``receive`` has ``--transit-relay``, the row says it is not available.

Both rows start their own mailbox server and transit relay (not timed, their
CPU noted, as in the ``wormhole`` row) and leave the relay setting at its
default, as a user does. Wall time runs from the sender's start to the last exit.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import STARTUP_TIMEOUT
from bench.data import Workload
from bench.results import RowResult, failed
from bench.rows import p2p
from bench.rows.base import Row, RunContext, finish_pair
from bench.rows.wormhole import (
    WormholeServers,
    servers_cpu_note,
    wormhole_code,
    wormhole_script,
    wormhole_tools_missing,
)
from bench.runner import Child, ChildError, Children, peer_env

#: Names of the rows in the table.
CODE_LABEL = "p2p-transfer by code"
WORMHOLE_TO_P2P_LABEL = "magic-wormhole → p2p-transfer"
#: Workloads of both rows: the 1 GiB file and the two cheaper trees (the tiny
#: tree's 100,000 files would add minutes and measure what the p2p row does).
CODE_WORKLOADS = ("big", "small", "medium")
#: The option ``receive`` needs to take a classic wormhole send through our relay.
TRANSIT_OPTION = "--transit-relay"


def data_paths(child: Child) -> set[str]:
    """The data paths ``child``'s ``connection`` events name."""
    return {
        str(event["data_path"])
        for event in child.events()
        if event.get("event") == "connection" and event.get("data_path")
    }


def same_data_path(sender: Child, receiver: Child) -> tuple[str | None, str | None]:
    """(the one data path both sides name, None) or (None, why not)."""
    problem = p2p.receiver_done(receiver)
    if problem is not None:
        return None, problem
    seen = {child.name: data_paths(child) for child in (sender, receiver)}
    if len(seen[sender.name]) == 1 and seen[sender.name] == seen[receiver.name]:
        return next(iter(seen[sender.name])), None
    told = "; ".join(f"{name}: {', '.join(sorted(p)) or 'none'}" for name, p in seen.items())
    return None, f"the two sides named different data paths ({told})"


@dataclass
class _MailboxRow(Row):
    """A row that needs its own mailbox server and transit relay."""

    workloads: Sequence[str] = CODE_WORKLOADS
    servers: WormholeServers = field(default_factory=WormholeServers, repr=False)

    def setup(self, work_dir: Path) -> None:
        self.servers.start(work_dir, f"{self.key}-servers")

    def teardown(self) -> None:
        self.servers.stop()

    def receiver_argv(self, home: Path, code: str, out: Path) -> list[str]:
        """``receive CODE`` on our mailbox, saving into ``out`` without asking."""
        return [
            str(p2p.cli_path()), "--config-dir", str(home), "--name", "bench-rx",
            "receive", code, "--mailbox", self.servers.mailbox_url, *self.receiver_extra(),
            "--yes", "--json", "--dir", str(out),
        ]  # fmt: skip

    def receiver_extra(self) -> list[str]:
        """Options a subclass adds to ``receive``."""
        return []


@dataclass
class P2PCodeRow(_MailboxRow):
    """``p2p-transfer send PATH`` (a code) and ``p2p-transfer receive CODE``."""

    key: str = "p2p-code"
    label: str = CODE_LABEL

    def unavailable_reason(self) -> str | None:
        return p2p.P2PRow().unavailable_reason() or wormhole_tools_missing()

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        not_ready = self.servers.not_ready(self.label, workload)
        if not_ready is not None:
            return not_ready
        sender = [
            str(p2p.cli_path()), "--config-dir", str(ctx.scratch(f"{self.key}-tx")),
            "--name", "bench-tx", "send", "--mailbox", self.servers.mailbox_url, "--json",
            str(workload.path),
        ]  # fmt: skip
        out = ctx.out_dir(self.key)
        cpu_before = self.servers.cpu_seconds()
        found: dict[str, str] = {}

        def check(tx: Child, rx: Child) -> str | None:
            path, problem = same_data_path(tx, rx)
            if path is not None:
                found["path"] = path
            return problem

        with Children(ctx.log_dir(self.key, workload)) as children:
            tx = children.start("sender", sender)
            try:
                code = str(tx.wait_for_event("invite", STARTUP_TIMEOUT)["code"])
            except ChildError as error:
                return failed(self.label, workload, f"no code: {error}")
            rx_home = ctx.scratch(f"{self.key}-rx")
            rx = children.start("receiver", self.receiver_argv(rx_home, code, out))
            result = finish_pair(
                self, workload, ctx, out, sender=tx, receiver=rx, extra_check=check
            )
        notes = ["code from the sender, fresh config; default relay setting"]
        if "path" in found:
            notes.append(f"{found['path'].upper()} data path")
        notes.append(servers_cpu_note(self.servers.cpu_seconds() - cpu_before))
        result.note = "; ".join(notes)
        return result


def receive_lacks(option: str) -> str | None:
    """Why ``p2p-transfer receive`` cannot take ``option`` in this build, or None."""
    try:
        shown = subprocess.run(
            [str(p2p.cli_path()), "receive", "--help"],
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
            env=peer_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"p2p-transfer receive --help did not answer ({error})"
    if shown.returncode != 0 or option not in shown.stdout:
        return (
            f"not available in this build: p2p-transfer receive has no {option} "
            "(magic-wormhole's classic transfer is not wired in yet)"
        )
    return None


@dataclass
class WormholeToP2PRow(_MailboxRow):
    """``wormhole send --code`` and ``p2p-transfer receive CODE --transit-relay``."""

    key: str = "wormhole-p2p"
    label: str = WORMHOLE_TO_P2P_LABEL

    def unavailable_reason(self) -> str | None:
        return (
            p2p.P2PRow().unavailable_reason()
            or wormhole_tools_missing()
            or receive_lacks(TRANSIT_OPTION)
        )

    def receiver_extra(self) -> list[str]:
        return [TRANSIT_OPTION, self.servers.transit_host_port]

    def run(self, workload: Workload, ctx: RunContext) -> RowResult:
        not_ready = self.servers.not_ready(self.label, workload)
        if not_ready is not None:
            return not_ready
        code = wormhole_code(ctx)
        sender = [
            str(wormhole_script()), "--relay-url", self.servers.mailbox_url,
            "--transit-helper", self.servers.transit,
            "send", "--hide-progress", "--no-qr", "--code", code, str(workload.path),
        ]  # fmt: skip
        # wormhole's temporary zip of a folder goes to our work folder, not the system's.
        env = {"TMPDIR": str(ctx.scratch(f"{self.key}-tmp"))}
        out = ctx.out_dir(self.key)
        cpu_before = self.servers.cpu_seconds()
        with Children(ctx.log_dir(self.key, workload)) as children:
            tx = children.start("sender", sender, env=env)
            rx_home = ctx.scratch(f"{self.key}-rx")
            rx = children.start("receiver", self.receiver_argv(rx_home, code, out))
            result = finish_pair(
                self, workload, ctx, out, sender=tx, receiver=rx, extra_check=_receiver_done
            )
        notes = ["classic wormhole transfer, fresh config; default relay setting"]
        if workload.file_count > 1:
            notes.append("sent as a deflated zip, unpacked by the receiver")
        notes.append(servers_cpu_note(self.servers.cpu_seconds() - cpu_before))
        result.note = "; ".join(notes)
        return result


def _receiver_done(sender: Child, receiver: Child) -> str | None:
    """The row's check: the receiver said the transfer is done."""
    return p2p.receiver_done(receiver)
