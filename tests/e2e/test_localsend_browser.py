"""The app's LocalSend face in Chromium: the offer dialog says "via LocalSend", a text
message becomes a card with a Copy button. The LocalSend sender here is our own client
(the interop with an independent one is tests/e2e/test_localsend.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.apps import AppProcess
from e2e.test_app_browser import DESKTOP, UI_TIMEOUT, chromium, open_page, shoot
from p2p_transfer.limits import LOCALSEND_PORT
from p2p_transfer.localsend.client import LocalSendClient
from p2p_transfer.localsend.identity import own_info
from p2p_transfer.localsend.messages import FileInfo, Target

playwright_sync = pytest.importorskip("playwright.sync_api")
__all__ = ["chromium"]  # the browser fixture, shared with the app's browser tests
expect = playwright_sync.expect
MESSAGE = "Door code: 4711\nsee you at 8"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppProcess]:
    process = AppProcess(tmp_path, "Dana", "--no-discovery")
    try:
        yield process
    finally:
        process.stop()


def _send_text(outcome: dict[str, Any]) -> None:
    """What a phone's LocalSend does to send a text (in a thread: the dialog answers it)."""

    async def send() -> None:
        client = LocalSendClient(own_info("Pixel 8", "EF" * 32, LOCALSEND_PORT))
        try:
            files = {"t": FileInfo(id="t", file_name="t.txt", size=len(MESSAGE.encode()),
                                   file_type="text/plain", preview=MESSAGE)}
            target = Target("127.0.0.1", LOCALSEND_PORT, "Dana")
            outcome["reply"] = (await client.prepare_upload(target, files, None, 60))[0]
        finally:
            await client.close()

    try:
        asyncio.run(send())
    except Exception as exc:
        outcome["error"] = exc


def test_a_text_message_is_asked_about_then_shown_with_a_copy_button(
    chromium: Any, app: AppProcess, artifacts_dir: Path
) -> None:
    url = app.wait_for("ui_url")["url"]
    page, errors = open_page(chromium, url, DESKTOP, permissions=["clipboard-read",
                                                                  "clipboard-write"])
    outcome: dict[str, Any] = {}
    sender = threading.Thread(target=_send_text, args=(outcome,))
    sender.start()
    dialog = page.locator("#dialog")
    expect(dialog).to_contain_text("Pixel 8 wants to send you a text message",
                                   timeout=UI_TIMEOUT)
    expect(dialog).to_contain_text("via LocalSend")
    expect(dialog).to_contain_text("LocalSend does not prove who sends")
    expect(dialog).to_contain_text("EFEFEFEF")
    shoot(page, artifacts_dir, "localsend-dialog-desktop")
    dialog.get_by_role("button", name="Accept").click()
    sender.join(30)
    assert "error" not in outcome, outcome
    assert outcome["reply"] is None  # shown, nothing to upload (204)

    page.goto(url.split("/?", 1)[0] + "/#incoming")
    card = page.locator("#text-card")
    expect(card).to_be_visible(timeout=UI_TIMEOUT)
    expect(card.locator(".text-body")).to_have_text(MESSAGE)
    expect(card).to_contain_text("From Pixel 8")
    card.get_by_role("button", name="Copy").click()
    expect(card.locator(".status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == MESSAGE
    shoot(page, artifacts_dir, "localsend-text-card-desktop")
    assert errors == []
