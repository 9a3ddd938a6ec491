"""Shared fixtures, and the rule that under CI nothing may silently skip."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.mailbox import MailboxServer
from exfat import exfat_missing, mounted_exfat
from netns import Lab, isolate_this_process, netns_available
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import Event
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.transfer import (
    Decision,
    IncomingOffer,
    ReceiveOptions,
    SendOptions,
    TransferResult,
)
from waiting import wait_until

IN_CI = os.environ.get("CI") == "true"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Inside ``scripts/isolated`` each xdist worker gets a loopback-only network of its
    own, so two workers' fixed ports and multicast never collide (see netns.py)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and os.environ.get("P2P_TRANSFER_ISOLATED") == "1" and os.geteuid() == 0:
        isolate_this_process()


def skip_unless(condition: bool, reason: str) -> None:
    """Skip the calling test with ``reason`` unless ``condition`` holds."""
    if not condition:
        pytest.skip(reason)


def requires_root() -> None:
    """Skip unless running as root (network namespaces, mounts)."""
    skip_unless(os.geteuid() == 0, "needs root (network namespaces / mounts)")


def requires_chromium() -> str:
    """Return Chromium's path, or skip when it is not installed."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    skip_unless(path is not None, "needs Debian's chromium (make test installs it)")
    assert path is not None
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Under CI=true a skipped test is a failed test: nothing may silently stop being tested."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under CI=true, which is not allowed: {reason}"


@pytest.fixture
def artifacts_dir() -> Path:
    """Folder for screenshots and other files kept after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailboxServer]:
    """A magic-wormhole mailbox server of the test's own, on loopback (sends by code)."""
    server = MailboxServer(tmp_path / "mailbox")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An isolated config dir for one peer."""
    path = tmp_path / "home"
    path.mkdir(mode=0o700)
    return path


# --- Two in-process nodes on loopback ----------------------------------------------

CODE = "123456"


@dataclass
class Peers:
    """A sender and a receiver node on 127.0.0.1, with the receiver serving."""

    sender: Node
    receiver: Node
    target: Path
    events: dict[str, list[Event]]
    serve_task: asyncio.Task[object] | None = None

    @property
    def ticket(self) -> str:
        return self.receiver.transport.ticket

    def receiver_events(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events["receiver"] if isinstance(e, kind)]

    async def wait_for_receiver(self, kind: type[Event], timeout: float = 5.0) -> Event:
        """The receiver's latest event of ``kind``, waiting for it if needed."""
        found = await wait_until(
            lambda: self.receiver_events(kind), timeout, what=f"a receiver {kind.__name__}"
        )
        return found[-1]

    def sender_events(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events["sender"] if isinstance(e, kind)]

    async def send(
        self, *paths: Path, code: str | None = CODE, parallel: int = 4
    ) -> TransferResult:
        return await self.sender.send(
            self.ticket, list(paths), SendOptions(parallel=parallel, code=code)
        )


async def fails_with(
    kind: type[P2PTransferError], sending: Awaitable[TransferResult], match: str | None = None
) -> P2PTransferError:
    """The typed outcome of a send that must not succeed (``kind``, its words ``match``)."""
    result = await sending
    assert not result.ok, result
    assert isinstance(result.error, kind), result
    if match is not None:
        assert re.search(match, str(result.error)), result
    return result.error


async def _always_accept(offer: IncomingOffer) -> Decision:
    return Decision(True)


@pytest.fixture
async def peers(tmp_path: Path) -> AsyncIterator[Peers]:
    """Two nodes; the receiver serves with a fixed code and auto-accept."""
    sender = await Node.start(NodeConfig(tmp_path / "tx-home", "tx", "127.0.0.1"))
    receiver = await Node.start(NodeConfig(tmp_path / "rx-home", "rx", "127.0.0.1"))
    events: dict[str, list[Event]] = {"sender": [], "receiver": []}
    sender.events.subscribe(events["sender"].append)
    receiver.events.subscribe(events["receiver"].append)
    target = tmp_path / "inbox"
    pair = Peers(sender, receiver, target, events)
    pair.serve_task = asyncio.create_task(
        receiver.serve(
            ReceiveOptions(target=target, auto_accept=True, fixed_code=CODE), _always_accept
        )
    )
    try:
        yield pair
    finally:
        pair.serve_task.cancel()
        await asyncio.gather(pair.serve_task, return_exceptions=True)
        await sender.close()
        await receiver.close()


def make_tree(root: Path) -> Path:
    """A small tree with nested folders, unicode names, an empty file and an empty folder."""
    tree = root / "tree"
    (tree / "nested" / "deeper").mkdir(parents=True)
    (tree / "empty folder").mkdir()
    (tree / "hello.txt").write_text("hello\n")
    (tree / "empty.bin").write_bytes(b"")
    (tree / "nested" / "ünïcødé 文件.txt").write_text("ünïcødé\n")
    (tree / "nested" / "deeper" / "random.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    for i in range(50):
        (tree / "nested" / f"small-{i:02}.txt").write_text(f"file {i}\n" * i)
    return tree


def assert_same_tree(expected: Path, actual: Path) -> None:
    """Every file and folder of ``expected`` exists in ``actual`` with the same bytes."""
    expected_items = sorted(p.relative_to(expected) for p in expected.rglob("*"))
    actual_items = sorted(p.relative_to(actual) for p in actual.rglob("*"))
    assert actual_items == expected_items
    for relative in expected_items:
        source = expected / relative
        if source.is_file():
            assert (actual / relative).read_bytes() == source.read_bytes(), relative


@pytest.fixture
def netns_lab() -> Iterator[Lab]:
    """A network-namespace lab (see tests/netns.py), always torn down; skips unless root."""
    requires_root()
    available, reason = netns_available()
    skip_unless(available, reason)
    with Lab() as lab:
        yield lab


@pytest.fixture
def exfat(tmp_path: Path) -> Iterator[Path]:
    """The mount point of a fresh exFAT file system (see tests/exfat.py); skips when
    this machine cannot make one (not root, tools or devices missing)."""
    reason = exfat_missing()
    skip_unless(not reason, reason)
    with mounted_exfat(tmp_path) as mount:
        yield mount


@pytest.fixture
def no_disk_totals(monkeypatch: pytest.MonkeyPatch) -> None:
    """``statvfs`` reports 0 blocks and 0 inodes, as some FUSE drivers do."""
    real = os.statvfs

    def without_totals(path: object) -> os.statvfs_result:
        info = list(real(path))  # type: ignore[call-overload]
        info[2:8] = [0] * 6  # f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_favail
        return os.statvfs_result(info)

    monkeypatch.setattr(os, "statvfs", without_totals)

