"""The app and the share page for people who use a keyboard or a screen reader, in Chromium.

The request dialog keeps focus: it opens on Decline (as the terminal's y/N defaults to N),
Tab and Shift-Tab cycle inside it, nothing behind it can be reached, Esc declines, and
focus comes back to where it was. axe-core finds nothing serious or critical in any view of
the app or of the share page, light and dark, at 1280×800 and 390×844. And the small things
a newcomer met: why Send is off, a text in the history, an error in a sentence, a device
list that follows the node, who uploads through the share.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from e2e.apps import AppProcess
from e2e.axe import audit, requires_axe
from e2e.test_app_browser import (
    DESKTOP,
    PHONE,
    UI_TIMEOUT,
    VIEWS,
    apps,
    chromium,
    go,
    open_page,
    pick,
)
from p2p_transfer.limits import LOCALSEND_PORT, KiB
from p2p_transfer.localsend.client import LocalSendClient
from p2p_transfer.localsend.identity import own_info
from p2p_transfer.localsend.messages import Target

playwright_sync = pytest.importorskip("playwright.sync_api")
__all__ = ["apps", "chromium"]  # fixtures shared with the app's other browser tests
expect = playwright_sync.expect

#: A phone's Chrome, as the share page's host is told of it.
ANDROID_CHROME = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like"
                  " Gecko) Chrome/126.0.0.0 Mobile Safari/537.36")
#: What the device list waits for at most (it is asked again every 5 s: DEVICE_REFRESH_MS).
REFRESH_TIMEOUT = 15_000


def focus_is_in(page: Any, selector: str) -> bool:
    return page.evaluate(
        "s => document.querySelector(s).contains(document.activeElement)", selector
    )


def test_the_request_dialog_keeps_focus_opens_on_decline_and_esc_declines(
    chromium: Any, apps: tuple[AppProcess, AppProcess]
) -> None:
    alice, bob = apps
    (alice.home / "note.txt").write_text("a note\n")
    (alice.home / "docs").mkdir()
    (alice.home / "docs" / "plan.txt").write_text("a plan\n")
    ticket_b = bob.wait_for("ticket")["ticket"]
    page_a, errors_a = open_page(chromium, alice.wait_for("ui_url")["url"], DESKTOP)
    page_b, errors_b = open_page(chromium, bob.wait_for("ui_url")["url"], DESKTOP)

    # Alice's Send view: the ticket box is not ticked before anything is typed there, and a
    # disabled Send says why.
    go(page_a, "send")
    send, status = page_a.locator("#send-button"), page_a.locator("#send-status")
    expect(page_a.locator("#target-ticket")).not_to_be_checked()
    expect(send).to_be_disabled()
    expect(status).to_have_text("Choose files or type a text, and pick where to send it.")
    page_a.fill("#send-text", "hello")
    expect(send).to_be_disabled()
    expect(status).to_have_text("Pick a device, or paste a ticket or address.")
    page_a.fill("#send-text", "")
    # Opening a folder from the keyboard puts focus on its first item; going back up, on Up
    # (or Home, at the top): never on the page's start.
    folder = page_a.get_by_role("button", name="Open folder docs")
    folder.focus()
    page_a.keyboard.press("Enter")
    expect(page_a.get_by_role("checkbox", name="Select plan.txt")).to_be_focused()
    page_a.get_by_role("button", name="Up one folder").focus()
    page_a.keyboard.press("Enter")
    expect(page_a.get_by_role("button", name="Home folder")).to_be_focused()
    expect(folder).to_be_visible()
    pick(page_a, "note.txt")
    page_a.fill("#ticket-input", ticket_b)
    expect(page_a.locator("#target-ticket")).to_be_checked()  # typing there ticks it
    expect(send).to_be_enabled()
    expect(status).to_be_empty()

    # Bob is looking at his devices when the requests come.
    go(page_b, "devices")
    page_b.focus("#devices-refresh")
    send.click()

    # Bob's code: the dialog holds focus on its only button. Alice types the code, Enter.
    expect(page_b.locator("#shown-code")).to_be_visible(timeout=UI_TIMEOUT)
    expect(page_b.locator("#dialog").get_by_role("button", name="Dismiss")).to_be_focused()
    code = page_b.locator("#shown-code").inner_text()
    code_input = page_a.locator('#dialog[data-prompt-kind="code"] #code-input')
    expect(code_input).to_be_focused(timeout=UI_TIMEOUT)
    code_input.fill(code)
    page_a.keyboard.press("Enter")
    # The send took Alice to Transfers: focus is on its heading, not the page's start.
    expect(page_a.locator("#dialog-overlay")).to_be_hidden(timeout=UI_TIMEOUT)
    expect(page_a.locator("#transfers-title")).to_be_focused()

    # Bob's offer opens on Decline; Tab and Shift-Tab go round its two buttons.
    offer = page_b.locator('#dialog[data-prompt-kind="offer"]')
    expect(offer).to_be_visible(timeout=UI_TIMEOUT)
    decline = offer.get_by_role("button", name="Decline")
    accept = offer.get_by_role("button", name="Accept")
    expect(decline).to_be_focused()
    for key, then in [("Tab", accept), ("Tab", decline), ("Shift+Tab", accept),
                      ("Shift+Tab", decline)]:
        page_b.keyboard.press(key)
        expect(then).to_be_focused()
    # Nothing behind it takes focus or a click.
    expect(page_b.locator(".app")).to_have_js_property("inert", True)
    page_b.locator('.nav a[data-view="send"]').evaluate("a => a.focus()")
    expect(decline).to_be_focused()
    for _ in range(6):
        page_b.keyboard.press("Tab")
        assert focus_is_in(page_b, "#dialog")
    box = page_b.locator('.nav a[data-view="send"]').bounding_box()
    page_b.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(offer).to_be_visible()
    assert not page_b.url.endswith("#send")

    # Esc declines, and focus is back where Bob left it.
    page_b.keyboard.press("Escape")
    expect(page_b.locator("#dialog-overlay")).to_be_hidden()
    expect(page_b.locator("#devices-refresh")).to_be_focused()
    expect(page_b.locator(".app")).to_have_js_property("inert", False)
    expect(page_a.locator(".transfer").first).to_have_attribute(
        "data-state", "declined", timeout=UI_TIMEOUT
    )

    # Paired now: Alice sends again; Bob accepts from the keyboard (Tab, Enter).
    pick(page_a, "note.txt")
    page_a.fill("#ticket-input", ticket_b)
    send.click()
    expect(decline).to_be_focused(timeout=UI_TIMEOUT)
    page_b.keyboard.press("Tab")
    page_b.keyboard.press("Enter")
    expect(page_b.locator("#dialog-overlay")).to_be_hidden()
    expect(page_b.locator("#devices-refresh")).to_be_focused()
    expect(page_a.locator(".transfer").first).to_have_attribute(
        "data-state", "done", timeout=UI_TIMEOUT
    )
    assert (bob.downloads / "note.txt").read_text() == "a note\n"

    # Each "Send to…" names its device; a text goes to Bob as a device, and the history
    # calls it a text.
    go(page_a, "devices")
    expect(page_a.get_by_role("button", name="Send to Bob…", exact=True).first).to_be_visible(
        timeout=REFRESH_TIMEOUT
    )
    expect(page_a.get_by_role("button", name="Forget Bob", exact=True)).to_have_count(1)
    go(page_a, "send")
    page_a.fill("#ticket-input", "")
    page_a.fill("#send-text", "the wifi password is hunter2")
    expect(status).to_have_text("Pick a device, or paste a ticket or address.")
    page_a.locator("#target-list .target").filter(has_text="Bob").locator("input").check()
    expect(send).to_have_text("Send text")
    send.click()
    offer = page_b.locator('#dialog[data-prompt-kind="offer"]')
    expect(offer).to_contain_text("wants to send you a text message", timeout=UI_TIMEOUT)
    accept.click()
    for page, verb in ((page_a, "Sent to Bob"), (page_b, "Received from Alice")):
        go(page, "transfers")
        expect(page.locator(".transfer").first).to_have_attribute(
            "data-state", "done", timeout=UI_TIMEOUT
        )
        row = page.locator("#history-list .row").first
        expect(row).to_contain_text(verb, timeout=UI_TIMEOUT)
        expect(row.locator(".row-meta")).to_contain_text("text · 28 B")
        expect(row.locator(".row-meta")).not_to_contain_text("files")

    # A send nobody answers: its card says why in a sentence, not Python's tuple.
    pick(page_a, "note.txt")
    page_a.locator("#target-list .target").filter(has_text="Bob").locator("input").uncheck()
    page_a.fill("#ticket-input", "127.0.0.1:9")
    send.click()
    failed = page_a.locator('.transfer[data-state="failed"]')
    expect(failed.locator(".transfer-message")).to_have_text(
        "cannot reach 127.0.0.1:9: nothing there accepts the connection; check the port, "
        "and that p2p-transfer receive or the app runs on that device", timeout=UI_TIMEOUT
    )
    assert errors_a == [] and errors_b == []


def test_the_device_list_follows_the_node_without_a_click(
    chromium: Any, tmp_path: Path
) -> None:
    """A LocalSend device shows up, and goes once the node no longer lists it (it drops one
    LOCALSEND_DEVICE_TTL after it was last heard: tests/test_localsend.py), with no Refresh."""
    app = AppProcess(tmp_path, "Dana", "--no-discovery")
    try:
        page, errors = open_page(chromium, app.wait_for("ui_url")["url"], DESKTOP)
        go(page, "devices")
        expect(page.locator("#device-empty")).to_be_visible()

        register_like_a_phone("Pixel 8")
        row = page.locator('#device-list .row[data-protocol="localsend"]')
        expect(row).to_contain_text("Pixel 8", timeout=REFRESH_TIMEOUT)
        expect(row.get_by_role("button", name="Send to Pixel 8…")).to_be_visible()
        row.get_by_role("button", name="Send to Pixel 8…").focus()

        # The node forgets it (as it does TTL after its last word): so does the page.
        def without_localsend(route: Any) -> None:
            response = route.fetch()
            listing = response.json()
            listing["devices"] = [d for d in listing["devices"] if d["protocol"] != "localsend"]
            route.fulfill(response=response, json=listing)

        page.route("**/api/devices", without_localsend)
        expect(row).to_have_count(0, timeout=REFRESH_TIMEOUT)
        expect(page.locator("#device-empty")).to_be_visible()
        # Its button had focus: the list's heading has it now, not the page's start.
        expect(page.locator("#view-devices h2").first).to_be_focused()
        assert errors == []
    finally:
        app.stop()


def register_like_a_phone(name: str) -> None:
    """What a phone's LocalSend does when it starts: tell the app who it is (in a thread:
    Playwright's loop runs in this one)."""

    async def register() -> None:
        client = LocalSendClient(own_info(name, "EF" * 32, LOCALSEND_PORT))
        try:
            await client.register(Target("127.0.0.1", LOCALSEND_PORT, "Dana"))
        finally:
            await client.close()

    failures: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run_into(register(), failures))
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and not failures, failures


def _run_into(coroutine: Any, failures: list[BaseException]) -> None:
    try:
        asyncio.run(coroutine)
    except Exception as exc:
        failures.append(exc)


def test_every_view_of_the_app_and_the_share_page_passes_axe(
    chromium: Any, apps: tuple[AppProcess, AppProcess], tmp_path: Path
) -> None:
    """Zero serious or critical axe-core violations in every view and dialog, light and dark,
    at both sizes, with something in them: a verified send, a failed one, devices, a share
    with files offered and uploads asked about."""
    requires_axe()
    alice, bob = apps
    (alice.home / "note.txt").write_text("a note\n")
    (bob.home / "report.pdf").write_bytes(os.urandom(40 * KiB))
    (bob.home / "photos").mkdir()
    for name in ("a.jpg", "b.jpg"):
        (bob.home / "photos" / name).write_bytes(os.urandom(20 * KiB))
    ticket_b = bob.wait_for("ticket")["ticket"]
    page_a, _ = open_page(chromium, alice.wait_for("ui_url")["url"], DESKTOP, bypass_csp=True)
    page_b, _ = open_page(chromium, bob.wait_for("ui_url")["url"], DESKTOP, bypass_csp=True)
    found: list[str] = []

    # A send with a code: each dialog as it is shown.
    pick(page_a, "note.txt")
    page_a.fill("#ticket-input", ticket_b)
    page_a.click("#send-button")
    shown = page_b.locator("#shown-code")
    expect(shown).to_be_visible(timeout=UI_TIMEOUT)
    found += audit(page_b, "Bob's code dialog")
    expect(page_a.locator("#code-input")).to_be_visible(timeout=UI_TIMEOUT)
    found += audit(page_a, "Alice's code entry dialog")
    page_a.locator("#code-input").fill(shown.inner_text())
    page_a.keyboard.press("Enter")
    offer = page_b.locator('#dialog[data-prompt-kind="offer"]')
    expect(offer).to_be_visible(timeout=UI_TIMEOUT)
    found += audit(page_b, "Bob's offer dialog")
    offer.get_by_role("button", name="Accept").click()
    expect(page_a.locator(".transfer").first).to_have_attribute(
        "data-state", "done", timeout=UI_TIMEOUT
    )
    # And one that fails (a red card with Retry).
    pick(page_a, "note.txt")
    page_a.fill("#ticket-input", "127.0.0.1:9")
    page_a.click("#send-button")
    expect(page_a.locator('.transfer[data-state="failed"]')).to_have_count(1, timeout=UI_TIMEOUT)

    # Bob shares a file and a folder (picked in the picker dialog).
    go(page_b, "share")
    page_b.click("#share-toggle")
    share_url = page_b.locator("#share-url")
    expect(share_url).to_have_value(re.compile(r"http://127\.0\.0\.1:\d+/[\w-]+"))
    page_b.click("#share-add")
    picker = page_b.locator("#picker-browser")
    expect(picker.locator('.entry[data-name="photos"]')).to_be_visible()
    found += audit(page_b, "Bob's share picker")
    for name in ("report.pdf", "photos"):
        picker.locator(f'.entry[data-name="{name}"] input').check()
    page_b.click("#picker-done")
    expect(page_b.locator("#share-files .row")).to_have_count(2)

    # A phone opens the link and sends two files: the owner is told which browser asks,
    # and the second file waits its turn behind the first.
    phone, phone_errors = open_share(chromium, share_url.input_value())
    expect(phone.locator("#download-list li")).to_have_count(2)
    expect(phone.get_by_role("link", name="Download zip of photos")).to_be_visible()
    expect(phone.get_by_role("link", name="Download report.pdf")).to_be_visible()
    found += audit(phone, "the share page")
    files = [tmp_path / "first.txt", tmp_path / "second.txt"]
    for path in files:
        path.write_text(path.name)
    phone.set_input_files("#file-input", [str(p) for p in files])
    found += audit(phone, "the share page with files chosen")
    phone.focus("#send-button")
    phone.keyboard.press("Enter")
    upload = page_b.locator('#dialog[data-prompt-kind="upload"]')
    expect(upload).to_be_visible(timeout=UI_TIMEOUT)
    expect(upload).to_contain_text("A browser wants to upload first.txt")
    expect(upload).to_contain_text("9 B from Chrome on Android at 127.0.0.1")
    rows = phone.locator("#upload-list .file")
    expect(rows.nth(1).locator(".file-status")).to_have_text("Queued behind first.txt")
    expect(phone.locator("#send-button")).to_be_focused()  # kept while it sends
    found += audit(phone, "the share page waiting for the owner")
    found += audit(page_b, "Bob's upload dialog")
    upload.get_by_role("button", name="Accept").click()
    expect(upload).to_contain_text("second.txt", timeout=UI_TIMEOUT)
    upload.get_by_role("button", name="Accept").click()
    expect(phone.locator('#upload-list .file[data-state="done"]')).to_have_count(
        2, timeout=UI_TIMEOUT
    )
    assert phone.evaluate("document.activeElement.id") == "send-button"  # never the body
    found += audit(phone, "the share page after sending")

    # Every view of Bob's app, and Alice's send and transfers, each with what it lists.
    for page, who, views in ((page_b, "Bob", VIEWS), (page_a, "Alice", ["send", "transfers"])):
        for view in views:
            go(page, view)
            view_ready(page, view)
            found += audit(page, f"{who}'s {view} view")
    assert found == [], "\n".join(found)
    assert phone_errors == []


def view_ready(page: Any, view: str) -> None:
    """Wait until ``view`` shows what it loads (lists, the ticket), so the audit sees it."""
    loaded = {
        "devices": lambda: expect(page.locator("#trusted-list .row").first).to_be_visible(),
        "send": lambda: expect(page.locator("#send-browser .entry").first).to_be_visible(),
        "transfers": lambda: expect(page.locator("#history-list .row").first).to_be_visible(),
        "share": lambda: expect(page.locator("#share-activity .row").first).to_be_visible(),
        "wan": lambda: expect(page.locator("#wan-id")).to_have_text(re.compile(r"^[0-9a-f]{64}$")),
        "settings": lambda: expect(page.locator("#set-device-name")).not_to_have_value(""),
    }
    if view in loaded:
        loaded[view]()


def open_share(browser: Any, url: str) -> tuple[Any, list[str]]:
    """The share page as a phone's Chrome opens it (CSP bypassed: axe-core is injected)."""
    context = browser.new_context(viewport=PHONE, user_agent=ANDROID_CHROME, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    expect(page.locator("#upload-card")).to_be_visible()
    return page, errors
