"""Network-namespace test lab: private hosts joined by bridges, never touching the host's network.

Every bridge lives in a namespace of its own and every veth pair is created
directly inside the namespaces it joins, so the namespace the tests run in
(the host's, or the loopback-only one ``scripts/isolated`` makes) gains no
interface, address or route. Each node namespace gets ``default dev eth0``:
without a route, multicast joins fail with ENODEV and broadcast with
ENETUNREACH, and mDNS would silently see nothing.

Names carry the test process's PID, so concurrent runs do not collide and a
later run can remove what a killed run left behind. ``Lab.close`` kills every
process the lab started and deletes every namespace it made.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Prefix of every namespace this harness creates (followed by ``<pid>-``).
NS_PREFIX = "p2pt-"
#: Where ``ip netns`` keeps its named namespaces.
NETNS_DIR = Path("/run/netns")
#: Seconds a harness ``ip`` command may take before the test fails.
IP_COMMAND_TIMEOUT = 10.0
#: Seconds a lab process gets to exit after SIGTERM before it is killed.
PROCESS_STOP_GRACE = 5.0
#: Interface name of a host's link inside its namespace.
HOST_IFNAME = "eth0"
#: Name of the bridge inside a bridge namespace.
BRIDGE_IFNAME = "br0"
#: nftables table holding a host's packet-loss rules.
LOSS_TABLE = "p2pt_loss"
#: nftables table holding a host's TCP firewall rule.
TCP_BLOCK_TABLE = "p2pt_block_tcp"

_counter = itertools.count(1)


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


def netns_available() -> tuple[bool, str]:
    """Whether namespace tests can run here, and if not, why (for the skip reason)."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return False, "needs iproute2 (`ip`); make test installs it"
    return True, ""


def _ip(*args: str) -> None:
    """Run one ``ip`` command; raise LabError with its stderr on failure."""
    argv = ["ip", *args]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=IP_COMMAND_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_namespaces() -> list[str]:
    """Delete namespaces left by harness runs whose process is gone (e.g. killed with -9)."""
    removed: list[str] = []
    if not NETNS_DIR.is_dir():
        return removed
    for entry in NETNS_DIR.iterdir():
        name = entry.name
        if not name.startswith(NS_PREFIX):
            continue
        pid_text = name[len(NS_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(LabError, subprocess.TimeoutExpired):
            _ip("netns", "del", name)
            removed.append(name)
    return removed


#: ``unshare(2)`` flag for a new network namespace (linux/sched.h).
CLONE_NEWNET = 0x40000000


def isolate_this_process() -> None:
    """Move the calling thread into a new network namespace holding only loopback, up.

    Each test worker (pytest-xdist) calls this before it opens a socket or starts a
    thread, so fixed ports (LocalSend's, the app's) and mDNS multicast of two workers
    never meet. Threads and processes started afterwards inherit the namespace.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise LabError(f"unshare(CLONE_NEWNET) failed: {os.strerror(error)}")
    _ip("link", "set", "lo", "up")


@dataclass
class Host:
    """A node namespace: one process group's view of a private machine."""

    lab: Lab
    ns: str
    addresses: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The host's first IPv4 address (without prefix length)."""
        return self.addresses[0]

    def argv(self, *command: str) -> list[str]:
        """``command`` wrapped to run inside this namespace."""
        return ["ip", "netns", "exec", self.ns, *command]

    def python_argv(self, *args: str) -> list[str]:
        """This interpreter (the project's venv) run inside this namespace."""
        return self.argv(sys.executable, *args)

    def run(
        self, *command: str, timeout: float = IP_COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the namespace and wait for it."""
        result = subprocess.run(
            self.argv(*command), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise LabError(f"{' '.join(command)} in {self.ns} failed: {result.stderr.strip()}")
        return result

    def popen(
        self, *command: str, env: dict[str, str] | None = None, cwd: str | Path | None = None
    ) -> subprocess.Popen[str]:
        """Start a command in the namespace (own session, piped stdio); the lab stops it."""
        proc = subprocess.Popen(
            self.argv(*command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.lab.processes.append(proc)
        return proc

    def spawn(
        self, *command: str, env: dict[str, str] | None = None, cwd: str | Path | None = None
    ) -> JsonLines:
        """``popen`` with its stdout read as JSON lines."""
        return JsonLines(self.popen(*command, env=env, cwd=cwd))


@dataclass
class Bridge:
    """A bridge in a namespace of its own: the lab's Ethernet switch."""

    ns: str
    ports: int = 0


class Lab:
    """Builder and owner of a set of namespaces; use as a context manager."""

    def __init__(self) -> None:
        self.tag = f"{NS_PREFIX}{os.getpid()}-{next(_counter)}"
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[str]] = []
        self.folders: list[Path] = []

    def __enter__(self) -> Lab:
        remove_stale_namespaces()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _new_namespace(self, role: str) -> str:
        name = f"{self.tag}-{role}"
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def short_folder(self) -> Path:
        """A new folder with a short path, removed at close: for Unix sockets, whose path
        may be 107 bytes at most (a pytest-xdist worker's tmp_path is longer)."""
        path = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.folders.append(path)
        return path

    def bridge(self, role: str = "br") -> Bridge:
        """A new bridge namespace holding ``br0``, up, with no address."""
        ns = self._new_namespace(role)
        _ip("-n", ns, "link", "add", BRIDGE_IFNAME, "type", "bridge")
        _ip("-n", ns, "link", "set", BRIDGE_IFNAME, "up")
        return Bridge(ns)

    def host(self, role: str) -> Host:
        """A new node namespace with only loopback up."""
        return Host(self, self._new_namespace(role))

    def attach(
        self,
        host: Host,
        bridge: Bridge,
        cidr: str,
        ifname: str = HOST_IFNAME,
        gateway: str | None = None,
        default_route: bool = True,
    ) -> None:
        """Join ``host`` to ``bridge`` with address ``cidr`` on ``ifname``.

        With ``default_route``, the host's default route goes out of this
        link: ``default via gateway``, or without a gateway ``default dev
        ifname`` (the route multicast joins need). A host's second link
        usually passes ``default_route=False``.
        """
        bridge.ports += 1
        port = f"p{bridge.ports}"
        _ip("-n", bridge.ns, "link", "add", port, "type", "veth", "peer", "name", ifname,
            "netns", host.ns)
        _ip("-n", bridge.ns, "link", "set", port, "master", BRIDGE_IFNAME, "up")
        _ip("-n", host.ns, "addr", "add", cidr, "dev", ifname)
        _ip("-n", host.ns, "link", "set", ifname, "up")
        if default_route and gateway is None:
            _ip("-n", host.ns, "route", "replace", "default", "dev", ifname)
        elif default_route:
            _ip("-n", host.ns, "route", "replace", "default", "via", gateway)
        host.addresses.append(cidr.split("/", 1)[0])

    def enable_forwarding(self, host: Host) -> None:
        """Make ``host`` route IPv4 between its interfaces (a router namespace)."""
        host.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    def lan(self, count: int, subnet: str = "10.77.0") -> list[Host]:
        """``count`` hosts on one bridge, at ``subnet``.2, .3, …"""
        bridge = self.bridge()
        hosts: list[Host] = []
        for index in range(count):
            host = self.host(chr(ord("a") + index))
            self.attach(host, bridge, f"{subnet}.{index + 2}/24")
            hosts.append(host)
        return hosts

    def drop_packets(self, host: Host, percent: int) -> None:
        """Drop ``percent`` % of ``host``'s non-loopback packets, each way (nftables).

        This kernel has no ``netem``; ``numgen random`` is the way to lose packets.
        """
        if shutil.which("nft") is None:
            raise LabError("needs nftables (`nft`); make test installs it")
        loss = f"numgen random mod 100 < {percent} counter drop"
        host.run("nft", (
            f"add table inet {LOSS_TABLE}; "
            f"add chain inet {LOSS_TABLE} in {{ type filter hook input priority 0; }}; "
            f"add chain inet {LOSS_TABLE} out {{ type filter hook output priority 0; }}; "
            f'add rule inet {LOSS_TABLE} in iifname != "lo" {loss}; '
            f'add rule inet {LOSS_TABLE} out oifname != "lo" {loss}'
        ))

    def dropped_packets(self, host: Host) -> int:
        """Packets ``drop_packets`` has dropped on ``host`` so far (both ways)."""
        listing = host.run("nft", "list", "table", "inet", LOSS_TABLE).stdout
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))

    def block_tcp(self, host: Host) -> None:
        """Drop every TCP packet reaching ``host`` from outside (nftables), UDP untouched.

        A firewall that lets QUIC through but silently swallows TCP connection
        attempts: a connect to ``host`` hangs until its own deadline, as on a
        real network, instead of being refused at once.
        """
        if shutil.which("nft") is None:
            raise LabError("needs nftables (`nft`); make test installs it")
        host.run("nft", (
            f"add table inet {TCP_BLOCK_TABLE}; "
            f"add chain inet {TCP_BLOCK_TABLE} in {{ type filter hook input priority 0; }}; "
            f'add rule inet {TCP_BLOCK_TABLE} in iifname != "lo" meta l4proto tcp counter drop'
        ))

    def blocked_tcp_packets(self, host: Host) -> int:
        """TCP packets ``block_tcp`` has dropped on ``host`` so far."""
        listing = host.run("nft", "list", "table", "inet", TCP_BLOCK_TABLE).stdout
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))

    def routed(
        self, count: int = 2, near: str = "10.77.1", far: str = "10.77.2"
    ) -> tuple[list[Host], Host, Host]:
        """``count`` hosts on LAN ``near``, one host on LAN ``far``, and a router between.

        Unicast is routed between the subnets; multicast (mDNS) is not, as on
        real networks. Returns (near hosts, far host, router).
        """
        near_bridge, far_bridge = self.bridge("br1"), self.bridge("br2")
        router = self.host("router")
        self.attach(router, near_bridge, f"{near}.1/24", "eth0", default_route=False)
        self.attach(router, far_bridge, f"{far}.1/24", "eth1", default_route=False)
        self.enable_forwarding(router)
        hosts: list[Host] = []
        for index in range(count):
            host = self.host(chr(ord("a") + index))
            self.attach(host, near_bridge, f"{near}.{index + 2}/24", gateway=f"{near}.1")
            hosts.append(host)
        remote = self.host("far")
        self.attach(remote, far_bridge, f"{far}.2/24", gateway=f"{far}.1")
        return hosts, remote, router

    def close(self) -> None:
        """Stop every lab process, then delete every lab namespace (idempotent)."""
        for proc in self.processes:
            stop_process(proc)
        self.processes.clear()
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)
        self.folders.clear()
        errors: list[str] = []
        for ns in reversed(self.namespaces):
            try:
                _ip("netns", "del", ns)
            except (LabError, subprocess.TimeoutExpired) as exc:
                errors.append(str(exc))
        self.namespaces.clear()
        if errors:
            raise LabError("; ".join(errors))


def stop_process(proc: subprocess.Popen[str]) -> None:
    """SIGTERM a lab process's whole session, then SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(PROCESS_STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(PROCESS_STOP_GRACE)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


@contextlib.contextmanager
def lan(count: int = 2, subnet: str = "10.77.0") -> Iterator[tuple[Lab, list[Host]]]:
    """A lab with ``count`` hosts on one bridged subnet, torn down on exit."""
    with Lab() as lab:
        yield lab, lab.lan(count, subnet)


class JsonLines:
    """The JSON-lines stdout of a lab process, read live by a thread, matched with timeouts.

    Non-JSON lines are kept too (as ``{"raw": line}``) so failures show them.
    """

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.seen: list[dict[str, Any]] = []
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self.proc.stdout:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    obj = {"raw": line.rstrip("\n")}
                self._lines.put(obj if isinstance(obj, dict) else {"raw": obj})
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self.proc.stderr:
                self._stderr.append(line)

    @property
    def stderr(self) -> str:
        """What the process wrote to stderr so far."""
        return "".join(self._stderr)

    def expect(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str = "a line"
    ) -> dict[str, Any]:
        """The next line matching ``predicate`` within ``timeout`` s; AssertionError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                obj = self._lines.get(timeout=max(0.0, remaining))
            except queue.Empty:
                obj = None
                ended = False
            else:
                ended = obj is None
            if obj is not None:
                self.seen.append(obj)
                if predicate(obj):
                    return obj
                continue
            reason = "the process ended" if ended else f"{timeout:g} s passed"
            raise AssertionError(
                f"expected {what}, but {reason}; stdout so far: {self.seen}; "
                f"stderr: {self.stderr[-2000:]!r}"
            )

    def expect_event(self, name: str, timeout: float, **fields: object) -> dict[str, Any]:
        """The next ``{"event": name, **fields}`` line within ``timeout`` seconds."""
        def matches(obj: dict[str, Any]) -> bool:
            return obj.get("event") == name and all(obj.get(k) == v for k, v in fields.items())
        return self.expect(matches, timeout, what=f"event {name} {fields or ''}".strip())

    def send(self, line: str) -> None:
        """Write one line to the process's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float) -> int:
        """The exit status, waiting up to ``timeout`` seconds."""
        return self.proc.wait(timeout)
