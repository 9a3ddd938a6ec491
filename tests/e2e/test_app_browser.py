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
from e2e.cli import throttled
from p2p_transfer.limits import KiB, MiB
from p2p_transfer.protocol.paths import PART_SUFFIX
from waiting import wait_until_blocking

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


def wait_for_staging_emptied(app: AppProcess) -> None:
    """The staged copies go once no send holds them: right after the cards say done
    (a send's task ends after its last event), not necessarily before."""
    staging = app.config / "staging"
    wait_until_blocking(
        lambda: not any(staging.iterdir()), UI_TIMEOUT / 1000, every=0.05,
        what=lambda: f"the staged copies to go; left: {sorted(p.name for p in staging.iterdir())}",
    )


def open_page(
    browser: Any, url: str, viewport: dict[str, int], init_script: str | None = None,
    **options: Any,
) -> tuple[Any, list]:
    """A fresh context on ``url``, collecting console errors (CSP violations show up there)."""
    context = browser.new_context(viewport=viewport, **options)
    if init_script is not None:
        context.add_init_script(init_script)
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
    wait_for_staging_emptied(alice)

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


# --- comforts: attention, Retry, trusted devices off the LAN, several devices, network check --

#: Records the notifications the page shows (the browser's own Notification does the rest).
NOTIFICATION_SPY = """
window.__notified = [];
window.__closed = [];
const RealNotification = window.Notification;
window.Notification = class extends RealNotification {
  constructor(title, options) {
    super(title, options);
    window.__notified.push({ title, body: options.body, tag: options.tag });
  }
  close() { window.__closed.push(this.tag); super.close(); }
};
"""


def shoot_everywhere(page: Any, folder: Path, name: str, focus: str | None = None) -> None:
    """The page as it is now at 1280×800 and 390×844, light and dark: its top, its end
    when it is longer than the window (as a person scrolls it: the tab bar stays), and
    the ``focus`` element scrolled to the top."""
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            suffix = "-dark" if scheme == "dark" else ""
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(150)
            page.screenshot(path=str(folder / f"app-{name}-{size_name}{suffix}.png"))
            if page.evaluate("document.documentElement.scrollHeight > innerHeight + 8"):
                page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
                page.wait_for_timeout(150)
                page.screenshot(path=str(folder / f"app-{name}-{size_name}{suffix}-end.png"))
            if focus is not None:
                page.locator(focus).evaluate(  # just below the top bar
                    "e => window.scrollTo(0, e.getBoundingClientRect().top + scrollY - 64)"
                )
                page.wait_for_timeout(150)
                page.screenshot(path=str(folder / f"app-{name}-{size_name}{suffix}-focus.png"))
    page.evaluate("window.scrollTo(0, 0)")
    page.set_viewport_size(DESKTOP)
    page.emulate_media(color_scheme="light")


def go(page: Any, view: str) -> None:
    page.goto(page.url.split("#")[0] + f"#{view}")
    playwright_sync.expect(page.locator(f"#view-{view}")).to_be_visible()


def pick(page: Any, *names: str) -> None:
    """In the Send view's file browser (at home), tick these items (nothing is ticked)."""
    go(page, "send")
    for name in names:
        page.locator(f'#send-browser .entry[data-name="{name}"] input').check()
    playwright_sync.expect(page.locator("#selection-list .row")).to_have_count(len(names))


def big_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        for _ in range(size // (8 * MiB)):
            out.write(os.urandom(8 * MiB))
    return path


def test_offers_badge_the_title_and_notify_and_a_cancelled_send_resumes_with_retry(
    chromium: Any, apps: tuple[AppProcess, AppProcess], artifacts_dir: Path
) -> None:
    expect = playwright_sync.expect
    alice, bob = apps
    (alice.home / "note.txt").write_text("a note\n")
    big = big_file(alice.home / "big.bin", 128 * MiB)
    url_a, url_b = alice.wait_for("ui_url")["url"], bob.wait_for("ui_url")["url"]
    ticket_b = bob.wait_for("ticket")["ticket"]
    page_a, errors_a = open_page(chromium, url_a, DESKTOP)
    page_b, errors_b = open_page(chromium, url_b, DESKTOP, init_script=NOTIFICATION_SPY,
                                 permissions=["notifications"])
    expect(page_b).to_have_title("p2p-transfer")

    # Alice turns notifications on (asked when she chooses to, not when the page loads).
    go(page_a, "incoming")
    expect(page_a.locator("#notify-state")).to_contain_text("Off")
    expect(page_a.locator("#notify-on")).to_be_visible()
    shoot_everywhere(page_a, artifacts_dir, "comforts-incoming-ask")
    page_a.context.grant_permissions(["notifications"])
    page_a.click("#notify-on")
    expect(page_a.locator("#notify-state")).to_contain_text("On: offers and codes")
    expect(page_a.locator("#notify-on")).to_be_hidden()
    go(page_b, "incoming")
    expect(page_b.locator("#notify-state")).to_contain_text("On: offers and codes")
    shoot_everywhere(page_b, artifacts_dir, "comforts-incoming")
    go(page_b, "devices")
    page_b.evaluate("window.dispatchEvent(new Event('blur'))")  # Bob looks at another window

    # A first send: Bob's tab says a code waits, then an offer; each is notified.
    pick(page_a, "note.txt")
    page_a.fill("#ticket-input", ticket_b)
    page_a.click("#send-button")
    expect(page_b).to_have_title("(1) p2p-transfer", timeout=UI_TIMEOUT)
    expect(page_a).to_have_title("(1) p2p-transfer", timeout=UI_TIMEOUT)  # the code to type
    code = page_b.locator("#shown-code").inner_text()
    # A hint that cannot pass for a real code (never 000000).
    expect(page_a.locator("#code-input")).to_have_attribute("placeholder", "6 digits")
    notified = page_b.evaluate("window.__notified")
    assert notified == [{"title": "Verification code for Alice", "body": f"Code {code}",
                         "tag": notified[0]["tag"]}]
    page_a.locator("#code-input").fill(code)
    page_a.locator("#dialog").get_by_role("button", name="Verify").click()
    expect(page_a).to_have_title("p2p-transfer", timeout=UI_TIMEOUT)
    offer = page_b.locator('#dialog[data-prompt-kind="offer"]')
    expect(offer).to_be_visible(timeout=UI_TIMEOUT)
    expect(page_b).to_have_title("(1) p2p-transfer")
    notified = page_b.evaluate("window.__notified")
    assert [n["title"] for n in notified] == [
        "Verification code for Alice", "Alice wants to send you 1 file"
    ]
    assert page_b.evaluate("window.__closed") == [notified[0]["tag"]]  # the code is gone
    offer.get_by_role("button", name="Decline").click()
    expect(page_b).to_have_title("p2p-transfer")
    assert page_b.evaluate("window.__closed") == [n["tag"] for n in notified]

    # Declined: neither card offers a folder to open, nor a retry.
    go(page_b, "transfers")
    declined = page_b.locator('.transfer[data-state="declined"]')
    expect(declined).to_have_count(1, timeout=UI_TIMEOUT)
    expect(declined.get_by_role("button")).to_have_count(0)
    go(page_a, "transfers")
    expect(page_a.locator('.transfer[data-state="declined"]').get_by_role("button")).to_have_count(0)

    # A big send, cancelled by Alice mid-file, then resumed with one click.
    pick(page_a, "big.bin")
    page_a.click("#send-button")
    offer = page_b.locator('#dialog[data-prompt-kind="offer"]')
    expect(offer).to_contain_text("trusted device", timeout=UI_TIMEOUT)
    card = page_a.locator(".transfer").first
    with throttled(bob.process.pid, share=0.05):
        offer.get_by_role("button", name="Accept").click()
        expect(card).to_have_attribute("data-state", "transferring", timeout=UI_TIMEOUT)
        expect(card.locator(".transfer-stats")).to_contain_text(  # some bytes moved
            re.compile(r"[\d.]+ (KiB|MiB) of 128\.0 MiB"), timeout=UI_TIMEOUT
        )
        # Sent is not yet kept: Bob runs at 5 % of a core, so wait until his disk holds some.
        part = bob.downloads / f"big.bin{PART_SUFFIX}"
        wait_until_blocking(
            lambda: part.exists() and part.stat().st_size > 0, UI_TIMEOUT / 1000, every=0.05,
            what="Bob to keep some of big.bin",
        )
        card.get_by_role("button", name="Cancel").click()
        expect(card).to_have_attribute("data-state", "cancelled", timeout=UI_TIMEOUT)
    expect(card.locator('[data-role="state"]')).to_have_text("Cancelled by you")
    resume = card.get_by_role("button", name="Resume")
    expect(resume).to_be_visible()
    expect(page_b.locator('.transfer[data-state="cancelled"] [data-role="state"]')).to_have_text(
        "Cancelled by Alice", timeout=UI_TIMEOUT
    )
    expect(page_a.locator("#history-list .row")).to_have_count(2)
    shoot_everywhere(page_a, artifacts_dir, "comforts-transfers-resume")
    resume.click()
    offer = page_b.locator('#dialog[data-prompt-kind="offer"]')
    expect(offer).to_be_visible(timeout=UI_TIMEOUT)
    expect(page_b).to_have_title("(1) p2p-transfer")
    offer.get_by_role("button", name="Accept").click()
    card = page_a.locator(".transfer").first
    expect(card).to_have_attribute("data-state", "done", timeout=UI_TIMEOUT)
    expect(page_a.locator(".transfer")).to_have_count(2)  # the cancelled card gave way
    expect(card.locator(".transfer-stats")).to_contain_text("1 / 1 file")
    assert (bob.downloads / "big.bin").read_bytes() == big.read_bytes()
    resumed = [e for e in bob.events if e["event"] == "file_done" and e["path"] == "big.bin"]
    assert resumed and resumed[-1]["resumed_from"] > 0  # what had arrived was not sent again

    # Bob on a phone: names in the history are whole, and each view opens at its top.
    phone, phone_errors = open_page(chromium, url_b, PHONE)
    go(phone, "transfers")
    title = phone.locator("#history-list .row").first.locator(".row-title > span").first
    expect(title).to_have_text("Received from Alice")
    assert title.evaluate("e => e.scrollWidth <= e.clientWidth")
    phone.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    assert phone.evaluate("window.scrollY") > 0
    phone.locator('.nav a[data-view="devices"]').click()
    expect(phone.locator("#view-devices")).to_be_visible()
    assert phone.evaluate("window.scrollY") == 0
    shoot_everywhere(page_b, artifacts_dir, "comforts-transfers-received")
    assert errors_a == [] and errors_b == [] and phone_errors == []


def wrapped(ticket: str, width: int = 32) -> str:
    """A ticket as copied from a terminal that wrapped it."""
    return "\n".join(ticket[i:i + width] for i in range(0, len(ticket), width)) + "\n"


def send_with_code(sender: Any, receiver: Any, to: str) -> None:
    """Send what is picked to ``to`` (typed into the ticket box), type the receiver's code,
    and accept on the receiver's page."""
    go(sender, "send")
    sender.check("#target-ticket")
    sender.fill("#ticket-input", to)
    sender.click("#send-button")
    shown = receiver.locator("#shown-code")
    playwright_sync.expect(shown).to_be_visible(timeout=UI_TIMEOUT)
    sender.locator("#code-input").fill(shown.inner_text())
    sender.locator("#dialog").get_by_role("button", name="Verify").click()
    accept(receiver)
    playwright_sync.expect(sender.locator(".transfer").first).to_have_attribute(
        "data-state", "done", timeout=UI_TIMEOUT
    )


def accept(receiver: Any) -> None:
    offer = receiver.locator('#dialog[data-prompt-kind="offer"]')
    playwright_sync.expect(offer).to_be_visible(timeout=UI_TIMEOUT)
    offer.get_by_role("button", name="Accept").click()


def test_trusted_devices_off_the_lan_two_at_once_a_folder_and_the_network_check(
    chromium: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    """Apps that do not announce themselves (as when multicast is blocked): paired once by
    a ticket, a device is sent to from the Devices list; a folder goes to two at once."""
    expect = playwright_sync.expect
    apps = [AppProcess(tmp_path, name, "--no-discovery") for name in ("Alice", "Bob", "Carol")]
    try:
        alice, bob, carol = apps
        (alice.home / "note.txt").write_text("a note\n")
        album = make_album(tmp_path / "chosen")
        page_a, errors_a = open_page(chromium, alice.wait_for("ui_url")["url"], DESKTOP)
        page_b, errors_b = open_page(chromium, bob.wait_for("ui_url")["url"], DESKTOP)
        page_c, errors_c = open_page(chromium, carol.wait_for("ui_url")["url"], DESKTOP)

        # The path above the file browser reads /home/…, its slash first.
        go(page_a, "send")
        path = page_a.locator("#send-browser .crumbs .path bdi")
        expect(path).to_have_text(str(alice.home))
        first_two = path.evaluate("""e => [0, 1].map(i => {
            const r = document.createRange();
            r.setStart(e.firstChild, i); r.setEnd(e.firstChild, i + 1);
            return r.getBoundingClientRect().left; })""")
        assert first_two[0] < first_two[1], first_two

        # A send that cannot start: the reason, no "0 / 0 files", no folder to open; Retry.
        pick(page_a, "note.txt")
        page_a.fill("#ticket-input", "127.0.0.1:9")
        page_a.click("#send-button")
        failed = page_a.locator('.transfer[data-state="failed"]')
        expect(failed).to_have_count(1, timeout=UI_TIMEOUT)
        expect(failed.locator(".transfer-message")).not_to_be_empty()
        expect(failed.locator(".transfer-stats")).to_have_count(0)
        expect(failed.get_by_role("button", name="Open folder")).to_have_count(0)
        expect(failed.get_by_role("button", name="Retry")).to_be_visible()
        shoot_everywhere(page_a, artifacts_dir, "comforts-transfers-failed")

        # Paired once by ticket: Bob's pasted with the line breaks of a wrapped terminal.
        pick(page_a, "note.txt")
        send_with_code(page_a, page_b, wrapped(bob.wait_for("ticket")["ticket"]))
        pick(page_a, "note.txt")
        send_with_code(page_a, page_c, carol.wait_for("ticket")["ticket"])

        # Not on this network, yet "Send to…" works: Bob is asked, no code, no ticket.
        go(page_a, "devices")
        expect(page_a.locator("#device-list .row")).to_have_count(0)
        rows = page_a.locator("#trusted-list .row")
        expect(rows).to_have_count(2)
        for row in rows.all():
            expect(row.locator('[data-role="presence"]')).to_have_text("not on this network")
            expect(row).to_contain_text(re.compile(r"last reached at (127\.0\.0\.1|\[::1\]):\d+"))
        rows.filter(has_text="Bob").get_by_role("button", name="Send to Bob…").click()
        expect(page_a.locator("#view-send")).to_be_visible()
        expect(page_a.locator("#ticket-input")).to_be_hidden()
        chosen = page_a.locator("#target-list .target:has(input:checked)")
        expect(chosen).to_have_count(1)
        expect(chosen).to_contain_text("Bob")
        (bob.downloads / "note.txt").unlink()
        pick(page_a, "note.txt")
        page_a.click("#send-button")
        offer = page_b.locator('#dialog[data-prompt-kind="offer"]')
        expect(offer).to_contain_text("trusted device", timeout=UI_TIMEOUT)
        offer.get_by_role("button", name="Accept").click()
        expect(page_a.locator(".transfer").first).to_have_attribute(
            "data-state", "done", timeout=UI_TIMEOUT
        )
        assert (bob.downloads / "note.txt").read_text() == "a note\n"

        # A folder chosen with the folder picker, to both at once: a card each.
        pick(page_a)
        page_a.set_input_files("#folder-input", str(album))
        staged = page_a.locator("#selection-list .row")
        expect(staged).to_have_count(1)
        expect(staged).to_contain_text("Holiday album")
        for name in ("Bob", "Carol"):
            page_a.locator("#target-list .target").filter(has_text=name).locator("input").check()
        page_a.uncheck("#target-ticket")
        button = page_a.locator("#send-button")
        expect(button).to_have_text("Send to 2 devices")
        expect(button).to_be_enabled(timeout=UI_TIMEOUT)  # the folder is staged
        shoot_everywhere(page_a, artifacts_dir, "comforts-send-two-devices")
        button.click()
        expect(page_a.locator("#view-transfers")).to_be_visible()
        accept(page_b)
        accept(page_c)
        cards = page_a.locator(".transfer")
        for name in ("Bob", "Carol"):
            expect(cards.filter(has_text=f"To {name}").first).to_have_attribute(
                "data-state", "done", timeout=UI_TIMEOUT
            )
        assert_same_tree(album, bob.downloads / "Holiday album")
        assert_same_tree(album, carol.downloads / "Holiday album")
        wait_for_staging_emptied(alice)

        # Check network: the doctor's findings, each with its mark, detail and advice.
        go(page_a, "devices")
        with page_a.expect_response("**/api/doctor", timeout=UI_TIMEOUT) as answered:
            page_a.click("#doctor-run")
        checks = answered.value.json()["checks"]
        shown = page_a.locator("#doctor-list .check")
        expect(shown).to_have_count(len(checks))
        for row, check in zip(shown.all(), checks, strict=True):
            expect(row).to_have_attribute("data-name", check["name"])
            expect(row).to_have_attribute("data-status", check["status"])
            marks = {"ok": "✓", "warn": "!", "fail": "✗"}
            expect(row.locator(".row-icon")).to_have_text(marks[check["status"]])
            expect(row.locator(".check-detail")).to_have_text(check["detail"])
            if check["advice"]:
                expect(row.locator(".check-advice")).to_have_text(f"→ {check['advice']}")
        expect(page_a.locator("#doctor-status")).not_to_be_empty()
        shoot_everywhere(page_a, artifacts_dir, "comforts-devices", focus="#doctor-card")
        assert errors_a == [] and errors_b == [] and errors_c == []
    finally:
        for app in apps:
            app.stop()
    for app in apps:
        assert app.process.returncode == 0, "".join(app._stderr)
