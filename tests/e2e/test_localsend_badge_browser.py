"""The app never calls a LocalSend transfer verified: its card and its history row say "via
LocalSend — not verified end to end", where our own transfers say "all files
BLAKE3-verified". The LocalSend sender is our own client, as a phone's app sends."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from e2e.apps import AppProcess
from e2e.test_app_browser import DESKTOP, UI_TIMEOUT, chromium, open_page, shoot
from e2e.test_localsend_browser import app
from p2p_transfer.limits import LOCALSEND_PORT
from p2p_transfer.localsend.client import LocalSendClient
from p2p_transfer.localsend.identity import own_info
from p2p_transfer.localsend.messages import FileInfo, Target

playwright_sync = pytest.importorskip("playwright.sync_api")
__all__ = ["app", "chromium"]  # fixtures shared with the app's and LocalSend's browser tests
expect = playwright_sync.expect
PHOTO = b"not really a photo\n" * 100
BADGE = "via LocalSend — not verified end to end"


def _send_photo(outcome: dict[str, Any]) -> None:
    """What a phone's LocalSend does to send a file (in a thread: the dialog answers it)."""

    async def send() -> None:
        client = LocalSendClient(own_info("Pixel 8", "EF" * 32, LOCALSEND_PORT))
        try:
            files = {"p": FileInfo(id="p", file_name="photo.jpg", size=len(PHOTO),
                                   file_type="image/jpeg")}
            target = Target("127.0.0.1", LOCALSEND_PORT, "Dana")
            reply, target = await client.prepare_upload(target, files, None, 60)
            assert reply is not None
            await client.upload(target, reply.session_id, "p", reply.files["p"], _once(),
                                len(PHOTO))
        finally:
            await client.close()

    try:
        asyncio.run(send())
    except Exception as exc:
        outcome["error"] = exc


async def _once() -> Any:
    yield PHOTO


def test_a_localsend_transfer_is_badged_unverified_on_its_card_and_in_the_history(
    chromium: Any, app: AppProcess, artifacts_dir: Path
) -> None:
    url = app.wait_for("ui_url")["url"]
    page, errors = open_page(chromium, url, DESKTOP)
    outcome: dict[str, Any] = {}
    sender = threading.Thread(target=_send_photo, args=(outcome,))
    sender.start()
    dialog = page.locator('#dialog[data-prompt-kind="offer"]')
    expect(dialog).to_contain_text("via LocalSend", timeout=UI_TIMEOUT)
    dialog.get_by_role("button", name="Accept").click()
    sender.join(30)
    assert "error" not in outcome, outcome
    assert (app.downloads / "photo.jpg").read_bytes() == PHOTO

    page.goto(url.split("/?", 1)[0] + "/#transfers")
    card = page.locator(".transfer").first
    expect(card).to_have_attribute("data-state", "done", timeout=UI_TIMEOUT)
    expect(card.locator('[data-via="localsend"]')).to_have_text(BADGE)
    expect(card).not_to_contain_text("BLAKE3")
    expect(card.locator("[data-verified]")).to_have_count(0)
    # The history row is written as the transfer ends: once the server has it, a fresh
    # load of the view shows it.
    page.wait_for_function(
        "async () => (await api('GET', '/api/history?limit=1')).history.length === 1",
        timeout=UI_TIMEOUT,
    )
    page.reload()
    row = page.locator('#history-list .row[data-state="done"]')
    expect(row).to_have_count(1, timeout=UI_TIMEOUT)
    expect(row).to_contain_text(BADGE)
    shoot(page, artifacts_dir, "localsend-badge-desktop")
    assert errors == []
