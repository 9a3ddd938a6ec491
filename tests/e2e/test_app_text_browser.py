"""A text message between two ``p2p-transfer app`` UIs in Chromium: typed into the Send
view's text box, asked about by its first line, shown as a card whose Copy button puts
it on the clipboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.apps import AppProcess
from e2e.test_app_browser import DESKTOP, UI_TIMEOUT, chromium, go, open_page, pick, shoot

playwright_sync = pytest.importorskip("playwright.sync_api")
__all__ = ["chromium"]  # the browser fixture, shared with the app's browser tests
expect = playwright_sync.expect
MESSAGE = "Door code: 4711 ✓\nsee you at 8"


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[tuple[AppProcess, AppProcess]]:
    alice, bob = (AppProcess(tmp_path, name, "--no-discovery") for name in ("Alice", "Bob"))
    try:
        yield alice, bob
    finally:
        alice.stop()
        bob.stop()


def test_a_text_typed_in_the_send_view_is_asked_about_then_copied_from_its_card(
    chromium: Any, apps: tuple[AppProcess, AppProcess], artifacts_dir: Path
) -> None:
    alice, bob = apps
    (alice.home / "note.txt").write_text("a note\n")
    page_a, errors_a = open_page(chromium, alice.wait_for("ui_url")["url"], DESKTOP)
    page_b, errors_b = open_page(chromium, bob.wait_for("ui_url")["url"], DESKTOP,
                                 permissions=["clipboard-read", "clipboard-write"])

    # Files and a text at once cannot go: the button says why; the text alone can.
    pick(page_a, "note.txt")
    page_a.fill("#send-text", MESSAGE)
    page_a.check("#target-ticket")
    page_a.fill("#ticket-input", bob.wait_for("ticket")["ticket"])
    expect(page_a.locator("#send-status")).to_have_text(
        "Send either the text or the files: clear one.")
    expect(page_a.locator("#send-button")).to_be_disabled()
    page_a.locator("#selection-list").get_by_role("button", name="Remove").click()
    expect(page_a.locator("#send-status")).to_have_text("")
    expect(page_a.locator("#send-button")).to_have_text("Send text")
    shoot(page_a, artifacts_dir, "send-text-desktop")
    page_a.click("#send-button")

    # First contact: the code, as for files.
    shown = page_b.locator("#shown-code")
    expect(shown).to_be_visible(timeout=UI_TIMEOUT)
    page_a.locator("#code-input").fill(shown.inner_text())
    page_a.locator("#dialog").get_by_role("button", name="Verify").click()

    # Bob is asked with the first line only.
    offer = page_b.locator('#dialog[data-prompt-kind="offer"]')
    expect(offer).to_be_visible(timeout=UI_TIMEOUT)
    expect(offer.locator("h2")).to_have_text("Alice wants to send you a text message")
    expect(offer.locator(".text-preview")).to_have_text("Door code: 4711 ✓…")
    expect(offer).not_to_contain_text("see you at 8")
    shoot(page_b, artifacts_dir, "text-offer-desktop")
    offer.get_by_role("button", name="Accept").click()

    card = page_a.locator(".transfer").first
    expect(card).to_have_attribute("data-state", "done", timeout=UI_TIMEOUT)
    expect(card).to_contain_text("Text: Door code: 4711 ✓…")
    expect(card).to_contain_text("text delivered")

    go(page_b, "incoming")
    texts = page_b.locator("#text-card")
    expect(texts).to_be_visible(timeout=UI_TIMEOUT)
    expect(texts.locator(".text-body")).to_have_text(MESSAGE)
    expect(texts).to_contain_text("From Alice")
    expect(texts.get_by_text("LocalSend")).to_have_count(0)
    texts.get_by_role("button", name="Copy").click()
    expect(texts.locator(".status")).to_have_text("Copied.")
    assert page_b.evaluate("navigator.clipboard.readText()") == MESSAGE
    shoot(page_b, artifacts_dir, "text-card-desktop")
    assert not bob.downloads.exists() or not any(bob.downloads.iterdir())
    assert errors_a == [] and errors_b == []
