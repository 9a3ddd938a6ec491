"""The app's code flows in Chromium, against the CLI, with a real mailbox server on loopback.

"Send with a code": the app shows the code (large, Copy, QR) and its card, and
``p2p-transfer receive CODE --yes`` gets the file byte-identical. "Receive with a
code": ``p2p-transfer send FILE`` prints a code, the app takes it as typed, asks
the usual offer, and its card ends done with the file there; a code typed before its
sender starts waits (the form says for how long) until ``send --code`` brings it. Both pages pass
axe-core with the code views on screen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.apps import AppProcess
from e2e.axe import audit, requires_axe
from e2e.cli import CliProcess
from e2e.mailbox import MailboxServer
from e2e.test_app_browser import DESKTOP, PHONE, UI_TIMEOUT, chromium, go, open_page, pick
from p2p_transfer.limits import APP_CODE_WAIT, KiB
from p2p_transfer.units import format_duration

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

__all__ = ["chromium"]  # a fixture, used by name

#: Seconds the CLI side has for the whole exchange.
CLI_TIMEOUT = 60.0


@pytest.fixture
def app(tmp_path: Path, mailbox: MailboxServer) -> Iterator[AppProcess]:
    """The app with its defaults (relays on: out of reach here) and the test's mailbox."""
    requires_axe()  # before the app starts: a skip must not stop it mid-start
    process = AppProcess(tmp_path, "Alice", "--mailbox", mailbox.url)
    try:
        yield process
    finally:
        process.stop()
    assert process.process.returncode == 0, "".join(process._stderr)


def test_the_app_sends_with_a_code_that_the_cli_receives(
    chromium: Any, app: AppProcess, mailbox: MailboxServer, tmp_path: Path
) -> None:
    photo = app.home / "photo.jpg"
    photo.write_bytes(os.urandom(700 * KiB))
    page, errors = open_page(chromium, app.wait_for("ui_url")["url"], DESKTOP, bypass_csp=True)

    pick(page, "photo.jpg")
    button = page.get_by_role("button", name="Send with a code")
    expect(button).to_be_enabled()
    button.click()
    code_field = page.locator("#send-code")
    expect(code_field).to_have_value(re.compile(r"^\d+-[a-z]+-[a-z]+$"), timeout=UI_TIMEOUT)
    code = code_field.input_value()
    expect(page.locator("#send-code-qr")).to_be_visible()
    expect(page.locator("#send-code-command")).to_have_text(f"p2p-transfer receive {code}")
    card = page.locator("#code-send-transfer .transfer")
    expect(card).to_contain_text(f"To whoever types {code}")
    expect(card).to_have_attribute("data-state", "connecting")
    found = audit(page, "the Send view with a code")
    page.set_viewport_size(PHONE)
    found += audit(page, "the Send view with a code, narrow")
    page.set_viewport_size(DESKTOP)

    target = tmp_path / "received"
    receiver = CliProcess(
        ["receive", code, "--yes", "--json", "--dir", str(target), "--mailbox", mailbox.url],
        tmp_path / "cli-home",
    )
    try:
        assert receiver.wait(CLI_TIMEOUT) == 0, "".join(receiver.stderr_lines)
    finally:
        receiver.stop()
    assert (target / "photo.jpg").read_bytes() == photo.read_bytes()
    expect(card).to_have_attribute("data-state", "done", timeout=UI_TIMEOUT)
    expect(card).to_contain_text("all files BLAKE3-verified")
    expect(page.locator("#code-send-hint")).to_have_text("This code is used up.")
    expect(page.locator("#send-code-qr")).to_be_hidden()
    page.get_by_role("button", name="Close").click()
    expect(page.locator("#code-send-card")).to_be_hidden()
    assert found == [], "\n".join(found)
    assert errors == []


def test_the_app_receives_with_a_code_the_cli_sends(
    chromium: Any, app: AppProcess, mailbox: MailboxServer, tmp_path: Path
) -> None:
    folder = tmp_path / "outbox"
    folder.mkdir()
    report = folder / "report.pdf"
    report.write_bytes(os.urandom(500 * KiB))
    page, errors = open_page(chromium, app.wait_for("ui_url")["url"], DESKTOP, bypass_csp=True)
    sender = CliProcess(
        ["send", str(report), "--json", "--mailbox", mailbox.url], tmp_path / "cli-home"
    )
    try:
        code = sender.wait_for("invite")["code"]
        go(page, "incoming")
        found = audit(page, "the Incoming view with Receive with a code")
        # Typed loosely: capitals, spaces for dashes.
        page.get_by_label("Code from the sending device").fill(
            code.replace("-", " ").title()
        )
        page.get_by_role("button", name="Receive", exact=True).click()
        offer = page.locator('#dialog[data-prompt-kind="offer"]')
        expect(offer).to_be_visible(timeout=UI_TIMEOUT)
        expect(offer).to_contain_text("report.pdf")
        expect(page.locator("#receive-code-status")).to_contain_text(f"Found the sender of {code}")
        offer.get_by_role("button", name="Accept").click()
        assert sender.wait(CLI_TIMEOUT) == 0, "".join(sender.stderr_lines)
    finally:
        sender.stop()
    go(page, "transfers")
    card = page.locator('#transfer-list .transfer[data-direction="receive"]')
    expect(card).to_have_attribute("data-state", "done", timeout=UI_TIMEOUT)
    expect(card).to_contain_text("all files BLAKE3-verified")
    assert (app.downloads / "report.pdf").read_bytes() == report.read_bytes()
    expect(page.locator('#history-list .row').first).to_be_visible(timeout=UI_TIMEOUT)

    # A code typed before its sender starts: the form says it waits, and for how long;
    # the sender then comes with that code (agreed beforehand) and its offer follows.
    go(page, "incoming")
    page.get_by_label("Code from the sending device").fill("42 Guitarist Revenge")
    page.get_by_role("button", name="Receive", exact=True).click()
    expect(page.locator("#receive-code-status")).to_contain_text(
        f"Waiting for the sender of 42-guitarist-revenge, for up to "
        f"{format_duration(APP_CODE_WAIT)}", timeout=UI_TIMEOUT
    )
    found += audit(page, "the Incoming view while a code waits for its sender")
    later = CliProcess(["send", "--code", "42-guitarist-revenge", str(report), "--json",
                        "--mailbox", mailbox.url], tmp_path / "later-home")
    try:
        offer = page.locator('#dialog[data-prompt-kind="offer"]')
        expect(offer).to_be_visible(timeout=UI_TIMEOUT)
        offer.get_by_role("button", name="Decline").click()
        assert later.wait(CLI_TIMEOUT) == 1, "".join(later.stderr_lines)
    finally:
        later.stop()
    assert later.wait_for("decision")["accepted"] is False
    assert found == [], "\n".join(found)
    assert errors == []
