"""The app's Devices view lists a device locked out after too many failed codes, and its
"Allow again" button lets it try a code again (real Chromium, real app process)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import requires_chromium
from e2e.apps import AppProcess
from e2e.test_app_browser import CHROMIUM_ARGS, DESKTOP, UI_TIMEOUT, go, open_page
from p2p_transfer.limits import MAX_WRONG_CODES
from p2p_transfer.trust import AttemptLimiter

playwright_sync = pytest.importorskip("playwright.sync_api")

LOCKED = "3f2a9c" + "ab" * 29


@pytest.fixture
def chromium_browser() -> Iterator[Any]:
    executable = requires_chromium()
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_a_locked_out_device_can_be_allowed_again(chromium_browser: Any, tmp_path: Path) -> None:
    expect = playwright_sync.expect
    config = tmp_path / "Bob-config"
    config.mkdir(mode=0o700)
    limiter = AttemptLimiter(config)
    now = time.time()
    for i in range(MAX_WRONG_CODES):
        limiter.begin(LOCKED, "10.0.0.9", now=now + i * 0.01)
        limiter.fail(LOCKED, "10.0.0.9", now=now + i * 0.01)
    bob = AppProcess(tmp_path, "Bob")
    try:
        page, errors = open_page(chromium_browser, bob.wait_for("ui_url")["url"], DESKTOP)
        go(page, "devices")
        row = page.locator('#trusted-list .row[data-role="locked"]')
        expect(row).to_have_count(1, timeout=UI_TIMEOUT)
        expect(row).to_contain_text("locked out")
        expect(row).to_contain_text("too many wrong codes")
        row.get_by_role("button", name=f"Allow {LOCKED[:12]} to try a code again").click()
        expect(row).to_have_count(0, timeout=UI_TIMEOUT)
        assert AttemptLimiter(config).refusal(LOCKED, "10.0.0.9") is None
        assert errors == []
    finally:
        bob.stop()
