"""The app's outbox in Chromium: a send to a trusted device that is off waits on a card
("waiting for desk — will send when it is reachable"), stays there across a restart of
the app, and goes by itself once the device is back, its card moving queued →
connecting → … → done; a file deleted meanwhile is said on its card and never sent.

The device is a ``receive`` that does not announce itself (as where multicast is
blocked): the app finds it again by trying the address it was last reached at, which a
receiver keeps across restarts (its stable port)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from e2e.apps import AppProcess
from e2e.cli import CODE, CliProcess
from e2e.test_app_browser import (
    DESKTOP,
    UI_TIMEOUT,
    chromium,
    go,
    open_page,
    pick,
    shoot_everywhere,
)
from p2p_transfer.app.outbox import OUTBOX_FILE_NAME
from p2p_transfer.events import SessionState
from p2p_transfer.limits import APP_OUTBOX_LONGEST_PAUSE, MiB

playwright_sync = pytest.importorskip("playwright.sync_api")
__all__ = ["chromium"]  # the browser fixture, shared with the app's browser tests
expect = playwright_sync.expect
WAITING = "Waiting for desk — will send when it is reachable"
#: Milliseconds until a device that came back is sent to: the pause between two tries
#: (a minute at most), and the send itself.
BACK_TIMEOUT = (APP_OUTBOX_LONGEST_PAUSE + 30) * 1000
#: Notes every state the card ``id`` shows, as the page draws it.
RECORD_STATES = """(id) => {
  window.__states = [];
  const note = () => {
    const card = document.querySelector(`.transfer[data-id="${id}"]`);
    const state = card && card.dataset.state;
    if (state && window.__states[window.__states.length - 1] !== state) window.__states.push(state);
  };
  note();
  new MutationObserver(note).observe(document.getElementById("transfer-list"),
    { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
}"""


def desk(config: Path, inbox: Path, accept: str) -> CliProcess:
    """The receiving device, on its stable port at 127.0.0.1, not announced."""
    receiver = CliProcess(["--name", "desk", "receive", "--dir", str(inbox), accept, "--code",
                           CODE, "--bind", "127.0.0.1", "--no-announce", "--json"], config)
    receiver.wait_for("ticket")
    return receiver


def send_to_desk(page: Any, name: str) -> Any:
    """From the Devices list (desk is trusted, not on this network), send one file; its
    card."""
    go(page, "devices")
    page.locator("#trusted-list .row").filter(has_text="desk").get_by_role(
        "button", name="Send to desk…").click()
    pick(page, name)
    page.click("#send-button")
    card = page.locator(".transfer").filter(has_text=name)
    expect(card).to_have_count(1, timeout=UI_TIMEOUT)
    return card


def test_a_send_to_a_device_that_is_off_waits_across_a_restart_and_goes_when_it_is_back(
    chromium: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    inbox, desk_config = tmp_path / "inbox", tmp_path / "desk-config"
    alice = AppProcess(tmp_path, "Alice", "--no-announce")
    receivers: list[CliProcess] = []
    try:
        photo = alice.home / "photo.bin"
        photo.write_bytes(os.urandom(3 * MiB + 17))
        (alice.home / "note.txt").write_text("a note\n")
        (alice.home / "gone.txt").write_text("deleted before desk is back\n")
        page, errors = open_page(chromium, alice.wait_for("ui_url")["url"], DESKTOP)

        # Alice and desk meet once (a code), so desk is trusted and its address known.
        receivers.append(desk(desk_config, inbox, "--yes"))
        ticket = receivers[0].wait_for("ticket")["ticket"]
        pick(page, "note.txt")
        page.fill("#ticket-input", ticket)
        page.click("#send-button")
        page.locator("#code-input").fill(CODE)
        page.locator("#dialog").get_by_role("button", name="Verify").click()
        expect(page.locator(".transfer").first).to_have_attribute(
            "data-state", "done", timeout=UI_TIMEOUT)
        receivers[0].stop()

        # Desk is off: each send waits on a card that says so, with a Cancel button.
        photo_card = send_to_desk(page, "photo.bin")
        gone_card = send_to_desk(page, "gone.txt")
        for card in (photo_card, gone_card):
            expect(card).to_have_attribute("data-state", "queued")
            expect(card.locator('[data-role="state"]')).to_have_text(WAITING)
            expect(card.get_by_role("button", name="Cancel")).to_be_visible()
        photo_id = photo_card.get_attribute("data-id")
        shoot_everywhere(page, artifacts_dir, "outbox-waiting")
        outbox = alice.config / OUTBOX_FILE_NAME
        assert stat.S_IMODE(outbox.stat().st_mode) == 0o600
        assert errors == []
        page.context.close()

        # The app restarts: the cards are there again, still waiting.
        alice.stop()
        assert alice.process.returncode == 0, "".join(alice._stderr)
        (alice.home / "gone.txt").unlink()
        alice = AppProcess(tmp_path, "Alice", "--no-announce")
        page, errors = open_page(chromium, alice.wait_for("ui_url")["url"], DESKTOP)
        go(page, "transfers")
        photo_card = page.locator(f'.transfer[data-id="{photo_id}"]')
        gone_card = page.locator(".transfer").filter(has_text="gone.txt")
        for card in (photo_card, gone_card):
            expect(card).to_have_attribute("data-state", "queued", timeout=UI_TIMEOUT)
            expect(card.locator('[data-role="state"]')).to_have_text(WAITING)
        page.evaluate(RECORD_STATES, photo_id)

        # Desk is back (it accepts trusted devices only): the photo goes by itself.
        receivers.append(desk(desk_config, inbox, "--yes-trusted"))
        expect(photo_card).to_have_attribute("data-state", "done", timeout=BACK_TIMEOUT)
        assert (inbox / "photo.bin").read_bytes() == photo.read_bytes()
        expect(photo_card.locator('[data-verified="pairing"]')).to_be_visible()
        states = page.evaluate("window.__states")
        order = list(SessionState)
        assert states[0] == "queued" and states[-1] == "done", states
        assert "connecting" in states and "transferring" in states, states
        assert [order.index(SessionState(s)) for s in states] == sorted(
            order.index(SessionState(s)) for s in states), states

        # The deleted file: its card says so, and nothing of it reached desk.
        expect(gone_card).to_have_attribute("data-state", "failed", timeout=UI_TIMEOUT)
        expect(gone_card.locator(".transfer-message")).to_have_text(
            "Nothing was sent: gone.txt was deleted or moved after this send was queued.")
        assert not (inbox / "gone.txt").exists()
        assert [e["files"] for e in receivers[1].named("offer")] == [1]
        assert not outbox.exists()  # the outbox is empty
        shoot_everywhere(page, artifacts_dir, "outbox-sent")
        assert errors == []
    finally:
        for receiver in receivers:
            receiver.stop()
        alice.stop()
    assert alice.process.returncode == 0, "".join(alice._stderr)
