"""Two real ``p2p-transfer app`` processes on loopback, driven through their UIs in Chromium.

A sends a folder to B by ticket: B shows the code, A types it, B accepts, both
show progress and "verified", and B's download folder holds the same bytes. Then
a phone's browser uploads through B's share link and B's UI asks about it.
Screenshots of every view, at 1280×800 and 390×844, go to the artifacts dir.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import assert_same_tree, requires_chromium
from e2e.apps import CLI, AppProcess
from p2p_transfer.limits import KiB, MiB

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
VIEWS = ["devices", "send", "transfers", "incoming", "share", "wan", "settings"]
#: Milliseconds the UI may take to show an outcome.
UI_TIMEOUT = 30_000


@pytest.fixture
def chromium() -> Iterator[Any]:
    executable = requires_chromium()
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[tuple[AppProcess, AppProcess]]:
    a, b = AppProcess(tmp_path, "Alice"), AppProcess(tmp_path, "Bob")
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()
    assert a.process.returncode == 0, "".join(a._stderr)
    assert b.process.returncode == 0, "".join(b._stderr)


def open_page(browser: Any, url: str, viewport: dict[str, int], **options: Any) -> tuple[Any, list]:
    """A fresh context on ``url``, collecting console errors (CSP violations show up there)."""
    context = browser.new_context(viewport=viewport, **options)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    playwright_sync.expect(page.locator("#link-state")).to_have_text("live")
    return page, errors


def make_album(root: Path) -> Path:
    """A small folder: nested files, a unicode name, an empty file, ~2 MiB of random bytes."""
    album = root / "Holiday album"
    (album / "day 1").mkdir(parents=True)
    (album / "day 2" / "raw").mkdir(parents=True)
    (album / "notes.txt").write_text("sunny\n")
    (album / "empty.txt").write_bytes(b"")
    (album / "day 1" / "ünïcødé 写真.jpg").write_bytes(os.urandom(300 * KiB))
    (album / "day 2" / "raw" / "big.raw").write_bytes(os.urandom(2 * MiB + 123))
    for i in range(12):
        (album / "day 1" / f"img_{i:03}.jpg").write_bytes(os.urandom(i * KiB + 7))
    return album


def shoot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"app-{name}.png"))


def test_send_a_folder_between_two_app_uis_with_code_and_accept_then_a_share_upload(
    chromium: Any, apps: tuple[AppProcess, AppProcess], tmp_path: Path, artifacts_dir: Path
) -> None:
    expect = playwright_sync.expect
    alice, bob = apps
    album = make_album(alice.home)
    (alice.home / ".hidden-notes").write_text("secret\n")
    url_a = alice.wait_for("ui_url")["url"]
    url_b = bob.wait_for("ui_url")["url"]
    ticket_b = bob.wait_for("ticket")["ticket"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?key=[\w-]{43}", url_a)

    page_a, errors_a = open_page(chromium, url_a, DESKTOP)
    page_b, errors_b = open_page(chromium, url_b, DESKTOP)
    narrow, narrow_errors = open_page(chromium, url_b, PHONE)  # B's UI on a narrow window too
    narrow_a, narrow_a_errors = open_page(chromium, url_a, PHONE)
    expect(page_a.locator("#device-name")).to_have_text("Alice")
    # The key left the address bar (it lives in the cookie now).
    assert "key=" not in page_a.url

    # A: pick the folder in the file browser (which starts at home), paste B's ticket, send.
    page_a.goto(url_a.split("?")[0] + "#send")
    entry = page_a.locator('#send-browser .entry[data-name="Holiday album"]')
    expect(entry).to_be_visible()
    expect(page_a.locator('#send-browser .entry[data-name=".hidden-notes"]')).to_have_count(0)
    page_a.check("#send-hidden")
    expect(page_a.locator('#send-browser .entry[data-name=".hidden-notes"]')).to_have_count(1)
    page_a.uncheck("#send-hidden")
    entry.locator("input[type=checkbox]").check()
    expect(page_a.locator("#selection-list .row")).to_have_count(1)
    page_a.check("#target-ticket")
    page_a.fill("#ticket-input", ticket_b)
    shoot(page_a, artifacts_dir, "send-desktop")
    page_a.click("#send-button")

    # B shows the code large; A is asked for it.
    shown = page_b.locator('#dialog[data-prompt-kind="code_shown"] #shown-code')
    expect(shown).to_be_visible(timeout=UI_TIMEOUT)
    code = shown.inner_text().replace(" ", "")
    assert re.fullmatch(r"\d{6}", code)
    shoot(page_b, artifacts_dir, "dialog-code-shown-desktop")
    expect(narrow.locator("#shown-code")).to_have_text(shown.inner_text())
    shoot(narrow, artifacts_dir, "dialog-code-shown-phone")
    code_input = page_a.locator('#dialog[data-prompt-kind="code"] #code-input')
    expect(code_input).to_be_visible(timeout=UI_TIMEOUT)
    # A wrong code first: the dialog stays, says so, and asks for attempt 2 of 5.
    code_input.fill("000 000" if code != "000000" else "111 111")
    page_a.locator("#dialog").get_by_role("button", name="Verify").click()
    wrong = page_a.locator('#dialog[data-prompt-kind="code"] .status')
    expect(wrong).to_have_text("That code was wrong (attempt 2 of 5).", timeout=UI_TIMEOUT)
    expect(page_b.locator("#dialog")).to_contain_text("Alice typed a wrong code")
    expect(shown).to_have_text(shown.inner_text())  # the same code stays on B's screen
    shoot(page_a, artifacts_dir, "dialog-code-wrong-desktop")
    code_input.fill(shown.inner_text())  # typed as shown, with its space
    shoot(page_a, artifacts_dir, "dialog-code-entry-desktop")
    expect(narrow_a.locator('#dialog[data-prompt-kind="code"]')).to_be_visible()
    shoot(narrow_a, artifacts_dir, "dialog-code-entry-phone")
    page_a.locator("#dialog").get_by_role("button", name="Verify").click()

    # B is asked to accept: who, what, how much.
    offer = page_b.locator('#dialog[data-prompt-kind="offer"]')
    expect(offer).to_be_visible(timeout=UI_TIMEOUT)
    expect(offer.locator("h2")).to_have_text("Alice wants to send you 16 files")
    expect(offer).to_contain_text("2.4 MiB · 4 folders · verified just now by code")
    shoot(page_b, artifacts_dir, "dialog-offer-desktop")
    expect(narrow.locator('#dialog[data-prompt-kind="offer"]')).to_be_visible()
    shoot(narrow, artifacts_dir, "dialog-offer-phone")
    offer.get_by_role("button", name="Accept").click()
    expect(page_b.locator("#dialog-overlay")).to_be_hidden()
    expect(narrow.locator("#dialog-overlay")).to_be_hidden()  # answered in another tab

    # Both sides: done, verified, all bytes counted.
    for page in (page_a, page_b):
        page.goto(page.url.split("#")[0] + "#transfers")
        card = page.locator(".transfer").first
        expect(card).to_have_attribute("data-state", "done", timeout=UI_TIMEOUT)
        expect(card.locator("[data-verified]")).to_have_text("verified (by code)")
        expect(card.locator(".transfer-stats")).to_contain_text("16 / 16 files")
        bar = card.locator("progress").first
        assert bar.get_attribute("value") == bar.get_attribute("max")
        expect(page.locator('#history-list .row[data-state="done"]')).to_have_count(1)
    assert_same_tree(album, bob.downloads / "Holiday album")
    assert bob.wait_for("verified")["by"] == "code"
    assert any(e["event"] == "progress" for e in bob.events)

    # Paired now: a file dropped into A's page (staged, then sent) needs no code; B still
    # decides, and sees that A is a trusted device.
    dropped = tmp_path / "dropped report.pdf"
    dropped.write_bytes(os.urandom(150 * KiB + 9))
    page_a.goto(page_a.url.split("#")[0] + "#send")
    page_a.set_input_files("#drop-input", [str(dropped)])
    staged = page_a.locator("#selection-list .row")
    expect(staged).to_have_count(1)
    expect(staged.locator(".row-meta")).to_contain_text("staged")
    page_a.check("#target-ticket")
    page_a.fill("#ticket-input", ticket_b)
    expect(page_a.locator("#send-button")).to_be_enabled()
    page_a.click("#send-button")
    offer = page_b.locator('#dialog[data-prompt-kind="offer"]')
    expect(offer).to_contain_text("trusted device", timeout=UI_TIMEOUT)
    offer.get_by_role("button", name="Accept").click()
    for page in (page_a, page_b):
        card = page.locator(".transfer").first
        expect(card).to_have_attribute("data-state", "done", timeout=UI_TIMEOUT)
        expect(card.locator("[data-verified]")).to_have_text("verified (paired)")
    assert (bob.downloads / "dropped report.pdf").read_bytes() == dropped.read_bytes()
    assert not any((alice.config / "staging").iterdir())

    # A browser (a phone) uploads through B's share link; B's UI asks; B accepts.
    page_b.goto(page_b.url.split("#")[0] + "#share")
    page_b.click("#share-toggle")
    share_url = page_b.locator("#share-url")
    expect(share_url).to_have_value(re.compile(r"http://127\.0\.0\.1:\d+/[\w-]+"))
    expect(page_b.locator("#share-qr")).to_be_visible()
    phone, phone_errors = open_share_page(chromium, share_url.input_value())
    photo = tmp_path / "from-phone.jpg"
    photo.write_bytes(os.urandom(700 * KiB + 3))
    phone.set_input_files("#file-input", [str(photo)])
    phone.click("#send-button")
    upload = page_b.locator('#dialog[data-prompt-kind="upload"]')
    expect(upload).to_be_visible(timeout=UI_TIMEOUT)
    expect(upload.locator("h2")).to_have_text("A browser wants to upload from-phone.jpg")
    shoot(page_b, artifacts_dir, "dialog-upload-desktop")
    expect(narrow.locator('#dialog[data-prompt-kind="upload"]')).to_be_visible()
    shoot(narrow, artifacts_dir, "dialog-upload-phone")
    upload.get_by_role("button", name="Accept").click()
    expect(phone.locator('#upload-list .file[data-state="done"]')).to_have_count(
        1, timeout=UI_TIMEOUT
    )
    assert (bob.downloads / "from-phone.jpg").read_bytes() == photo.read_bytes()
    expect(page_b.locator('#share-activity .row[data-state="done"]')).to_have_count(1)

    # Screenshots of every view, both widths, and the dark theme.
    for view in VIEWS:
        page_b.goto(page_b.url.split("#")[0] + f"#{view}")
        expect(page_b.locator(f"#view-{view}")).to_be_visible()
        page_b.wait_for_timeout(300)
        shoot(page_b, artifacts_dir, f"{view}-desktop")
    dark, dark_errors = open_page(chromium, url_b, PHONE, color_scheme="dark")
    for view in VIEWS:
        for page, suffix in ((narrow, "phone"), (dark, "phone-dark")):
            page.goto(page.url.split("#")[0] + f"#{view}")
            expect(page.locator(f"#view-{view}")).to_be_visible()
            page.wait_for_timeout(300)
            shoot(page, artifacts_dir, f"{view}-{suffix}")
    assert errors_a == [] and errors_b == [] and phone_errors == []
    assert narrow_errors == [] and dark_errors == [] and narrow_a_errors == []


def open_share_page(browser: Any, url: str) -> tuple[Any, list]:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    playwright_sync.expect(page.locator("#upload-card")).to_be_visible()
    return page, errors


def test_a_second_app_with_the_same_config_dir_prints_the_first_ones_link(
    tmp_path: Path,
) -> None:
    first = AppProcess(tmp_path, "Solo")
    try:
        url = first.wait_for("ui_url")["url"]
        env = {**os.environ, "HOME": str(first.home)}
        second = subprocess.run(
            [*CLI, "--config-dir", str(first.config), "app",
             "--no-browser", "--json"],
            capture_output=True, text=True, env=env, timeout=60,
        )
        assert second.returncode == 0, second.stderr
        line = json.loads(second.stdout.splitlines()[0])
        assert line == {"event": "ui_url", "url": url, "already_running": True}
        assert (first.config / "app-url").stat().st_mode & 0o777 == 0o600
    finally:
        first.stop()
    assert first.process.returncode == 0
    assert not (first.config / "app-url").exists()
