"""Shared fixtures, and the rule that under CI nothing may silently skip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI") == "true"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


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
def home(tmp_path: Path) -> Path:
    """An isolated config dir for one peer."""
    path = tmp_path / "home"
    path.mkdir(mode=0o700)
    return path
