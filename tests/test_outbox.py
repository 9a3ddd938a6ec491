"""The app's outbox (app/outbox.py): sends to a trusted device that is away wait there,
saved privately across restarts and bounded in number and age; they start when the
device answers (tried at once, then after doubling pauses, and at once when it shows
itself), and an item changed or gone by then is said, never sent. A cancelled send
never starts."""

from __future__ import annotations

import itertools
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from p2p_transfer.app import outbox as outbox_module
from p2p_transfer.app.outbox import (
    OUTBOX_FILE_NAME,
    NotTrusted,
    Outbox,
    OutboxFile,
    OutboxParts,
    QueuedSend,
    Stamp,
    pauses,
    stamps_of,
    too_old_message,
    what_changed,
)
from p2p_transfer.lifecycle import new_session_id
from p2p_transfer.limits import (
    APP_OUTBOX_FIRST_PAUSE,
    APP_OUTBOX_LONGEST_PAUSE,
    APP_OUTBOX_MAX_AGE,
    APP_OUTBOX_MAX_SENDS,
)
from waiting import stays, wait_until

DESK = "ab" * 32
LAPTOP = "cd" * 32
TICKET = "endpoint-ticket-of-desk"


class Device:
    """Stands in for the app around the outbox: where the device answers, and its cards."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.ticket: str | None = None
        self.error: Exception | None = None
        self.tries = 0
        self.clock = 1_000_000.0
        self.shown: list[QueuedSend] = []
        self.started: list[tuple[QueuedSend, str]] = []
        self.dropped: list[tuple[QueuedSend, str]] = []

    async def reach(self, peer_id: str) -> str | None:
        self.tries += 1
        if self.error is not None:
            raise self.error
        return self.ticket

    def outbox(self) -> Outbox:
        return Outbox(OutboxParts(
            self.config, self.reach, self.shown.append,
            lambda send, ticket: self.started.append((send, ticket)),
            lambda send, why: self.dropped.append((send, why)),
            now=lambda: self.clock,
        ))

    def send(self, *paths: Path, peer: str = DESK, text: str | None = None) -> QueuedSend:
        chosen = tuple(map(str, paths))
        return QueuedSend(new_session_id(), peer, "desk", chosen, chosen, None, text, self.clock)

    def saved(self) -> list[str]:
        """The IDs of the sends in the outbox file."""
        path = self.config / OUTBOX_FILE_NAME
        if not path.exists():
            return []
        return [s["id"] for s in json.loads(path.read_text())["sends"]]


@pytest.fixture
def device(tmp_path: Path) -> Device:
    config = tmp_path / "config"
    config.mkdir(mode=0o700)
    return Device(config)


@pytest.fixture
async def outboxes(device: Device) -> AsyncIterator[list[Outbox]]:
    """Outboxes a test makes, each closed at the end."""
    made: list[Outbox] = []
    yield made
    for outbox in made:
        await outbox.close()


async def running(device: Device, outboxes: list[Outbox]) -> Outbox:
    outbox = device.outbox()
    outboxes.append(outbox)
    await outbox.load()
    outbox.start()
    return outbox


@pytest.fixture
def slow_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pauses longer than any test: a second try comes only from a wake."""
    monkeypatch.setattr(outbox_module, "pauses", lambda: itertools.repeat(3600.0))


def a_file(folder: Path, name: str, data: bytes = b"hello\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


# --- persistence ---------------------------------------------------------------------


async def test_a_waiting_send_is_saved_private_and_comes_back_after_a_restart(
    device: Device, outboxes: list[Outbox], tmp_path: Path, slow_pauses: None
) -> None:
    note = a_file(tmp_path / "home", "note.txt")
    album = tmp_path / "home" / "album"
    a_file(album / "day 1", "a.jpg", b"x" * 300)
    outbox = await running(device, outboxes)
    files, text = device.send(note, album), device.send(text="the wifi password")
    outbox.queue(files)
    outbox.queue(text)
    await wait_until(lambda: device.saved() == [files.id, text.id], what="both sends saved")
    saved = device.config / OUTBOX_FILE_NAME
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert device.tries >= 1 and device.started == []  # desk was tried, and is away
    await outbox.close()
    tries = device.tries

    again = await running(device, outboxes)  # the app started again
    assert [s.id for s in device.shown] == [files.id, text.id]  # their cards, queued
    back = device.shown[0]
    assert (back.peer_id, back.peer_name, back.chosen, back.text) == (
        DESK, "desk", (str(note), str(album)), None,
    )
    assert back.stamps == (Stamp(str(note), False, 1, 6, note.stat().st_mtime_ns),
                           Stamp.of(album))
    assert back.stamps[1].files == 1 and back.stamps[1].size == 300
    assert device.shown[1].text == "the wifi password"
    assert again.holds(files.id) and again.holds(text.id)
    await wait_until(lambda: device.tries > tries, what="desk tried again after the start")

    device.ticket = TICKET
    again.device_seen(DESK)
    await wait_until(lambda: len(device.started) == 2, what="both sends started")
    assert [(s.id, t) for s, t in device.started] == [(files.id, TICKET), (text.id, TICKET)]
    assert not again.holds(files.id)
    await wait_until(lambda: not saved.exists(), what="the empty outbox's file to go")


async def test_a_damaged_or_oversized_outbox_file_is_ignored_and_said(
    device: Device, outboxes: list[Outbox], caplog: pytest.LogCaptureFixture
) -> None:
    saved = device.config / OUTBOX_FILE_NAME
    good = device.send(text="hi")
    good.stamps = ()
    bad = {**good.to_dict(), "id": "../../etc", "peer_id": "not-a-device"}
    saved.write_text(json.dumps({"version": 1, "sends": [bad, good.to_dict()]}))
    with caplog.at_level(logging.WARNING):
        await running(device, outboxes)
    assert [s.id for s in device.shown] == [good.id]  # the damaged send alone is left out
    assert "damaged" in caplog.text
    device.shown.clear()
    caplog.clear()
    saved.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert OutboxFile(device.config).load() == []
    assert "damaged and ignored" in caplog.text


# --- bounds ----------------------------------------------------------------------------


async def test_the_outbox_holds_a_bounded_number_of_sends(
    device: Device, outboxes: list[Outbox], slow_pauses: None
) -> None:
    outbox = await running(device, outboxes)
    assert outbox.room() == APP_OUTBOX_MAX_SENDS
    for _ in range(APP_OUTBOX_MAX_SENDS):
        outbox.queue(device.send(text="hi"))
    assert outbox.room() == 0
    with pytest.raises(ValueError, match="full"):
        outbox.queue(device.send(text="one too many"))
    await wait_until(lambda: len(device.saved()) == APP_OUTBOX_MAX_SENDS, what="all saved")
    await outbox.close()  # the app stops: it writes the file no more

    # A file holding more (written by hand) gives no more than the bound back.
    sends = [device.send(text=str(i)) for i in range(APP_OUTBOX_MAX_SENDS + 5)]
    for send in sends:
        send.stamps = ()
    OutboxFile(device.config).save(sends)
    device.shown.clear()
    await running(device, outboxes)
    assert [s.id for s in device.shown] == [s.id for s in sends[:APP_OUTBOX_MAX_SENDS]]


async def test_a_send_older_than_the_age_limit_leaves_and_its_card_says_so(
    device: Device, outboxes: list[Outbox], slow_pauses: None
) -> None:
    old, fresh = device.send(text="old"), device.send(text="fresh")
    old.queued_at = device.clock - APP_OUTBOX_MAX_AGE - 1
    old.stamps = fresh.stamps = ()
    OutboxFile(device.config).save([old, fresh])
    outbox = await running(device, outboxes)
    # At start: the old one's card appears and fails at once, saying why.
    assert [s.id for s in device.shown] == [old.id, fresh.id]
    assert device.dropped == [(old, too_old_message("desk"))]
    assert "could not be reached within 7 days" in device.dropped[0][1]
    assert not outbox.holds(old.id) and outbox.holds(fresh.id)
    await wait_until(lambda: device.saved() == [fresh.id], what="the old send out of the file")

    # While waiting: the fresh one leaves when its time is up, though no try finds desk.
    device.clock += APP_OUTBOX_MAX_AGE
    outbox.device_seen(DESK)
    await wait_until(lambda: len(device.dropped) == 2, what="the fresh send dropped too")
    assert device.dropped[1] == (fresh, too_old_message("desk"))
    assert device.started == []
    await wait_until(lambda: device.saved() == [], what="an empty outbox")


# --- what is sent ----------------------------------------------------------------------


def test_a_changed_or_gone_item_is_said_in_one_sentence(tmp_path: Path) -> None:
    note = a_file(tmp_path, "note.txt")
    other = a_file(tmp_path, "other.txt")
    album = tmp_path / "album"
    a_file(album / "sub", "a.jpg")
    stamps = stamps_of([str(note), str(other), str(album)])
    assert what_changed(stamps) == ""

    note.write_bytes(b"hello, changed\n")
    assert what_changed(stamps) == (
        "Nothing was sent: note.txt changed after this send was queued; Retry sends it as "
        "it is now."
    )
    a_file(album / "sub", "b.jpg")  # a folder changes when a file is added deep inside
    assert what_changed(stamps).startswith("Nothing was sent: note.txt and album changed")
    other.unlink()
    assert what_changed(stamps) == (
        "Nothing was sent: other.txt was deleted or moved after this send was queued, and "
        "note.txt and album changed."
    )
    same_size = a_file(tmp_path, "same.txt", b"aaaa")
    stamp = stamps_of([str(same_size)])
    os.utime(same_size, ns=(stamp[0].changed_ns + 10**9, stamp[0].changed_ns + 10**9))
    assert "same.txt changed" in what_changed(stamp)  # same size, touched later


async def test_an_item_gone_before_the_device_answers_is_said_and_not_sent(
    device: Device, outboxes: list[Outbox], tmp_path: Path, slow_pauses: None
) -> None:
    gone = a_file(tmp_path / "home", "gone.txt")
    kept = a_file(tmp_path / "home", "kept.txt")
    outbox = await running(device, outboxes)
    lost, sent = device.send(gone), device.send(kept)
    outbox.queue(lost)
    outbox.queue(sent)
    await wait_until(lambda: len(device.saved()) == 2, what="both sends saved")
    gone.unlink()
    device.ticket = TICKET
    outbox.device_seen(DESK)
    await wait_until(lambda: device.started and device.dropped, what="one started, one dropped")
    assert [s.id for s, _ in device.started] == [sent.id]
    assert device.dropped == [(lost, "Nothing was sent: gone.txt was deleted or moved after "
                                     "this send was queued.")]
    await wait_until(lambda: device.saved() == [], what="an empty outbox")


async def test_a_cancelled_send_never_starts_and_leaves_the_file(
    device: Device, outboxes: list[Outbox], slow_pauses: None
) -> None:
    outbox = await running(device, outboxes)
    cancelled, other = device.send(text="never"), device.send(text="later", peer=LAPTOP)
    outbox.queue(cancelled)
    outbox.queue(other)
    await wait_until(lambda: len(device.saved()) == 2, what="both sends saved")
    assert outbox.cancel(cancelled.id) is True
    assert outbox.cancel(cancelled.id) is False  # not there any more
    assert not outbox.holds(cancelled.id)
    await wait_until(lambda: device.saved() == [other.id], what="the cancelled send unsaved")
    device.ticket = TICKET
    outbox.device_seen(DESK)
    outbox.device_seen(LAPTOP)
    await wait_until(lambda: device.started, what="the other send started")
    assert [s.id for s, _ in device.started] == [other.id]
    # Cancelled while it was being admitted: it is never saved nor started.
    racing = device.send(text="quick")
    outbox.queue(racing)
    outbox.cancel(racing.id)
    await stays(lambda: device.saved() == [] and len(device.started) == 1, seconds=0.3,
                what="nothing of the cancelled send")


async def test_a_device_no_longer_trusted_drops_its_sends_saying_why(
    device: Device, outboxes: list[Outbox], slow_pauses: None
) -> None:
    device.error = NotTrusted("Nothing was sent: this device is no longer trusted.")
    outbox = await running(device, outboxes)
    send = device.send(text="hi")
    outbox.queue(send)
    await wait_until(lambda: device.dropped, what="the send dropped")
    assert device.dropped == [(send, "Nothing was sent: this device is no longer trusted.")]
    assert not outbox.holds(send.id) and device.started == []


# --- when a device is tried ------------------------------------------------------------


def test_the_pauses_between_tries_double_up_to_a_minute() -> None:
    schedule = list(itertools.islice(pauses(), 8))
    assert schedule == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert (APP_OUTBOX_FIRST_PAUSE, APP_OUTBOX_LONGEST_PAUSE) == (2.0, 60.0)


async def test_a_device_is_tried_at_once_then_after_each_pause_and_when_it_shows_itself(
    device: Device, outboxes: list[Outbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[float] = []

    def recorded() -> Iterator[float]:
        for pause in itertools.chain([0.05, 0.1], itertools.repeat(3600.0)):
            taken.append(pause)
            yield pause

    monkeypatch.setattr(outbox_module, "pauses", recorded)
    outbox = await running(device, outboxes)
    outbox.queue(device.send(text="hi"))
    # At once, then after each of the two short pauses; then the long one holds.
    await wait_until(lambda: device.tries == 3, what="three tries")
    await stays(lambda: device.tries == 3, seconds=0.3, what="no try during the long pause")
    assert taken == [0.05, 0.1, 3600.0]
    outbox.device_seen(LAPTOP)  # another device: no try
    await stays(lambda: device.tries == 3, seconds=0.1, what="no try for another device")
    outbox.device_seen(DESK)  # desk announced itself: tried now
    await wait_until(lambda: device.tries == 4, what="a try when desk showed itself")
    outbox.wake_all()  # the node restarted: tried again
    await wait_until(lambda: device.tries == 5, what="a try after a restart")
    assert device.started == []
    device.ticket = TICKET
    outbox.queue(device.send(text="another"))  # a new send to desk: tried at once
    await wait_until(lambda: len(device.started) == 2, what="both sends started")
