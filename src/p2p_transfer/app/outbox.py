"""The outbox: sends to a trusted device that is away, kept until the device can be reached.

A send from the app to a trusted device that is not on the LAN waits here, its card
``queued``, instead of failing. The outbox survives a restart: ``app-outbox.json`` in
the config dir (0600, replaced atomically) holds each send's device (endpoint ID and
name), what it sends (paths, or a text) and when it was queued; the files themselves
are read only when the send starts. What each item was when queued (``Stamp``: size,
files, newest change) is noted, so an item changed or gone by then is said on the
card and nothing is sent, never something other than what was chosen.

Each device with sends waiting is tried at once, then after pauses that double from
``APP_OUTBOX_FIRST_PAUSE`` to ``APP_OUTBOX_LONGEST_PAUSE``, and at once whenever it
shows itself (it announces itself on the LAN, or contacts this device). What a try is
(the LAN table, the addresses it was last reached at) is the caller's ``reach``; what
starting a send means (a session under the card's ID) is the caller's ``start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from p2p_transfer.discovery.records import is_endpoint_id
from p2p_transfer.errors import LocalFault
from p2p_transfer.limits import (
    APP_MAX_SEND_PATHS,
    APP_OUTBOX_FIRST_PAUSE,
    APP_OUTBOX_LONGEST_PAUSE,
    APP_OUTBOX_MAX_AGE,
    APP_OUTBOX_MAX_FILE_BYTES,
    APP_OUTBOX_MAX_SENDS,
    MAX_TEXT_BYTES,
)
from p2p_transfer.trust.files import write_private_atomically

log = logging.getLogger(__name__)

OUTBOX_FILE_NAME = "app-outbox.json"
_FORMAT_VERSION = 1
#: A send's ID: a session ID (hex), also in the API's paths.
_SEND_ID = re.compile(r"[0-9a-f]{8,64}")
#: A day, in seconds (a unit, to say the age limit in days).
_DAY = 24 * 3600


class NotTrusted(LocalFault):
    """The device a send waits for is no longer trusted (forgotten, or its pairing
    expired): the send is dropped, and the message says why and what to do."""


# --- what an item was when it was queued ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stamp:
    """One chosen item as it was when its send was queued: a file, or a folder's tree."""

    path: str
    folder: bool
    #: Files in it (1 for a file), their bytes, and the newest change of anything in it
    #: (a folder's own time changes when an entry is added, removed or renamed).
    files: int
    size: int
    changed_ns: int

    @classmethod
    def of(cls, path: Path) -> Stamp:
        """The item as it is now; OSError when it is gone or cannot be read."""
        info = path.stat()
        if not stat.S_ISDIR(info.st_mode):
            return cls(str(path), False, 1, info.st_size, info.st_mtime_ns)
        files, size, changed = 0, 0, info.st_mtime_ns
        for root, dirs, names in os.walk(path, onerror=_raise):
            for name in [*dirs, *names]:
                entry = os.lstat(os.path.join(root, name))
                changed = max(changed, entry.st_mtime_ns)
                if stat.S_ISREG(entry.st_mode):
                    files, size = files + 1, size + entry.st_size
        return cls(str(path), True, files, size, changed)


def _raise(error: OSError) -> None:
    raise error


def stamps_of(paths: Iterable[str]) -> tuple[Stamp, ...]:
    """Every chosen item as it is now (OSError when one is gone)."""
    return tuple(Stamp.of(Path(p)) for p in paths)


def _named(paths: Sequence[str]) -> str:
    """``a.txt``, ``a.txt and b.txt``, ``a.txt, b.txt and 3 more``."""
    names = [Path(p).name for p in paths]
    if len(names) <= 2:
        return " and ".join(names)
    return f"{names[0]}, {names[1]} and {len(names) - 2} more"


def what_changed(stamps: Sequence[Stamp]) -> str:
    """"" when every item is as it was queued; else one sentence for the card that says
    which items are gone or changed, and that nothing was sent."""
    gone: list[str] = []
    changed: list[str] = []
    for queued in stamps:
        try:
            now = Stamp.of(Path(queued.path))
        except OSError:
            gone.append(queued.path)
            continue
        if now != queued:
            changed.append(queued.path)
    if gone:
        one = len(gone) == 1
        also = f", and {_named(changed)} changed" if changed else ""
        return (f"Nothing was sent: {_named(gone)} {'was' if one else 'were'} deleted or "
                f"moved after this send was queued{also}.")
    if changed:
        them = "it as it is" if len(changed) == 1 else "them as they are"
        return (f"Nothing was sent: {_named(changed)} changed after this send was queued; "
                f"Retry sends {them} now.")
    return ""


# --- the sends and their file ------------------------------------------------------------


@dataclass(slots=True)
class QueuedSend:
    """One send waiting in the outbox."""

    #: The card's ID, and its session's once it starts.
    id: str
    peer_id: str
    peer_name: str
    #: What is sent: the chosen paths and the staged items, absolute.
    chosen: tuple[str, ...]
    #: As the user asked (for Retry): the paths picked, the staging batch, or a text.
    paths: tuple[str, ...] = ()
    batch: str | None = None
    text: str | None = None
    queued_at: float = field(default_factory=time.time)
    #: What each chosen item was when queued; None until noted (not yet saved).
    stamps: tuple[Stamp, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stamps": [asdict(s) for s in self.stamps or ()]}

    @classmethod
    def from_dict(cls, raw: Any) -> QueuedSend:
        """A send as saved; ValueError or TypeError when it is not one."""
        if not isinstance(raw, dict):
            raise TypeError("not an object")
        stamps = tuple(Stamp(**s) for s in raw.get("stamps", []))
        send = cls(**{**raw, "stamps": stamps})
        texts = [send.id, send.peer_id, send.peer_name, *send.chosen, *send.paths]
        if not all(isinstance(t, str) for t in [*texts, *filter(None, [send.batch, send.text])]):
            raise TypeError(f"send {send.id!r}: a name or path is not text")
        if not _SEND_ID.fullmatch(send.id) or not is_endpoint_id(send.peer_id):
            raise ValueError(f"send {send.id!r}: not a send's ID and a device's endpoint ID")
        if len(send.chosen) > APP_MAX_SEND_PATHS or not isinstance(send.queued_at, float | int):
            raise ValueError(f"send {send.id!r}: too many paths, or no time")
        if send.text is not None and len(send.text.encode()) > MAX_TEXT_BYTES:
            raise ValueError(f"send {send.id!r}: text too long")
        return cls(send.id, send.peer_id, send.peer_name, tuple(send.chosen),
                   tuple(send.paths), send.batch, send.text, float(send.queued_at), stamps)


class OutboxFile:
    """``app-outbox.json``: read at start, replaced atomically (0600) on each change."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / OUTBOX_FILE_NAME

    @staticmethod
    def encode(sends: Iterable[QueuedSend]) -> bytes:
        data = {"version": _FORMAT_VERSION, "sends": [s.to_dict() for s in sends]}
        return json.dumps(data, indent=1).encode()

    def save(self, sends: Sequence[QueuedSend]) -> None:
        if sends:
            write_private_atomically(self.path, self.encode(sends))
        else:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def load(self) -> list[QueuedSend]:
        """The saved sends, at most ``APP_OUTBOX_MAX_SENDS``; a damaged or oversized file
        is ignored and said (a warning), as each damaged send in it is."""
        try:
            with self.path.open("rb") as handle:
                data = handle.read(APP_OUTBOX_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("the outbox %s cannot be read (%s): the sends waiting in it are not "
                        "sent; send them again", self.path, exc.strerror)
            return []
        try:
            if len(data) > APP_OUTBOX_MAX_FILE_BYTES:
                raise ValueError(f"larger than {APP_OUTBOX_MAX_FILE_BYTES} bytes")
            raw = json.loads(data)
            entries = raw["sends"] if isinstance(raw, dict) else None
            if not isinstance(entries, list):
                raise ValueError("no list of sends")
        except (ValueError, KeyError) as exc:
            log.warning("the outbox %s is damaged and ignored (%s): the sends waiting in it "
                        "are not sent; send them again", self.path, exc)
            return []
        sends: list[QueuedSend] = []
        for entry in entries[:APP_OUTBOX_MAX_SENDS]:
            try:
                sends.append(QueuedSend.from_dict(entry))
            except (ValueError, TypeError) as exc:
                log.warning("a send in the outbox %s is damaged and ignored (%s): send it "
                            "again", self.path, exc)
        return sends


def pauses(first: float = APP_OUTBOX_FIRST_PAUSE,
           longest: float = APP_OUTBOX_LONGEST_PAUSE) -> Iterator[float]:
    """The pauses between two tries to reach a device: doubling from ``first``, then
    ``longest`` for as long as its sends wait."""
    pause = first
    while True:
        yield pause
        pause = min(pause * 2, longest)


def too_old_message(peer_name: str) -> str:
    """What the card of a send dropped for its age says."""
    days = APP_OUTBOX_MAX_AGE / _DAY
    return (f"Nothing was sent: {peer_name} could not be reached within {days:g} days, so "
            "the send left the outbox; Retry queues it again.")


# --- the outbox --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxParts:
    """What the outbox needs from the app (built by ``AppService``)."""

    config_dir: Path
    #: A ticket where the device answers now, or None while it is away; NotTrusted when
    #: it is no longer trusted.
    reach: Callable[[str], Awaitable[str | None]]
    #: A send's card appears, queued (a send saved by an earlier run).
    show: Callable[[QueuedSend], None]
    #: Start the send to the device at this ticket, under the card's ID.
    start: Callable[[QueuedSend, str], None]
    #: The send leaves the outbox unsent; its card fails with this sentence.
    drop: Callable[[QueuedSend, str], None]
    now: Callable[[], float] = time.time


class Outbox:
    """The waiting sends, their file, and one watcher per device they wait for."""

    def __init__(self, parts: OutboxParts) -> None:
        self._p = parts
        self.file = OutboxFile(parts.config_dir)
        self._sends: dict[str, QueuedSend] = {}
        #: One task per device with sends waiting, and what wakes it before its pause ends.
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._saving = asyncio.Lock()
        self._running = False

    # --- what the app asks ------------------------------------------------------------

    def holds(self, send_id: str) -> bool:
        """True while this send waits here (its card is the outbox's)."""
        return send_id in self._sends

    def batches(self) -> set[str]:
        """The staging batches waiting sends hold (kept across restarts)."""
        return {s.batch for s in self._sends.values() if s.batch}

    def room(self) -> int:
        """How many more sends may wait."""
        return max(0, APP_OUTBOX_MAX_SENDS - len(self._sends))

    async def load(self) -> None:
        """Take the sends an earlier run left: each card appears, queued; one older than
        ``APP_OUTBOX_MAX_AGE`` leaves at once, its card saying so. Tries begin with
        ``start``."""
        for send in await asyncio.to_thread(self.file.load):
            if send.id in self._sends:
                continue
            self._sends[send.id] = send
            self._p.show(send)
        self._expire()
        await self._save()

    def start(self) -> None:
        """Begin trying each device sends wait for (the node runs now)."""
        self._running = True
        for peer_id in {s.peer_id for s in self._sends.values() if s.stamps is not None}:
            self._watch(peer_id)

    def queue(self, send: QueuedSend) -> None:
        """Let ``send`` wait here (its card exists, queued): its items are noted and it is
        saved in the background, then its device is tried at once."""
        if not self.room():
            raise ValueError("the outbox is full")
        self._sends[send.id] = send
        self._spawn(self._admit(send))

    def cancel(self, send_id: str) -> bool:
        """Take a waiting send out (it is never sent); False when it does not wait here."""
        if self._sends.pop(send_id, None) is None:
            return False
        self._spawn(self._save())
        return True

    def device_seen(self, peer_id: str) -> None:
        """The device showed itself: try it now, not after its pause."""
        if (wake := self._wakes.get(peer_id)) is not None:
            wake.set()

    def wake_all(self) -> None:
        """Try every device now (the node has just (re)started)."""
        for wake in self._wakes.values():
            wake.set()

    async def close(self) -> None:
        """Stop trying; the sends stay saved for the next start."""
        self._running = False
        watchers = list(self._watchers.values())
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- inside ----------------------------------------------------------------------

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _admit(self, send: QueuedSend) -> None:
        """Note what the items are now, save, and try the device."""
        try:
            stamps = await asyncio.to_thread(stamps_of, send.chosen)
        except OSError as exc:
            if self._sends.pop(send.id, None) is not None:
                self._p.drop(send, f"Nothing was sent: {exc.filename or 'an item'} cannot be "
                                   f"read ({exc.strerror}).")
            return
        if send.id not in self._sends:
            return  # cancelled meanwhile
        send.stamps = stamps
        if len(self.file.encode(self._ready())) > APP_OUTBOX_MAX_FILE_BYTES:
            del self._sends[send.id]
            self._p.drop(send, "Nothing was sent: the outbox cannot hold that many paths; "
                               "send fewer at once.")
            return
        await self._save()
        if self._running:
            self._watch(send.peer_id)

    def _ready(self) -> list[QueuedSend]:
        """The sends whose items are noted: what is saved, and what may start."""
        return [s for s in self._sends.values() if s.stamps is not None]

    async def _save(self) -> None:
        """Write what waits now (one write at a time, each of the state it finds)."""
        async with self._saving:
            ready = self._ready()
            try:
                await asyncio.to_thread(self.file.save, ready)
            except OSError as exc:
                log.warning("the outbox %s cannot be saved (%s): the sends waiting now are "
                            "lost if the app stops; keep it open until they are sent",
                            self.file.path, exc.strerror)

    def _watch(self, peer_id: str) -> None:
        """Make sure a watcher tries ``peer_id``, and tries it now."""
        wake = self._wakes.setdefault(peer_id, asyncio.Event())
        wake.set()
        if peer_id not in self._watchers:
            task = asyncio.ensure_future(self._watcher(peer_id, wake))
            self._watchers[peer_id] = task

    async def _watcher(self, peer_id: str, wake: asyncio.Event) -> None:
        """``_try``, leaving the table the moment it ends (a send queued just then finds
        no watcher, and starts one)."""
        try:
            await self._try(peer_id, wake)
        except Exception:
            log.exception("trying to reach %s for the outbox failed", peer_id)
        finally:
            if self._watchers.get(peer_id) is asyncio.current_task():
                del self._watchers[peer_id]
                self._wakes.pop(peer_id, None)

    def _waiting_for(self, peer_id: str) -> list[QueuedSend]:
        return [s for s in self._ready() if s.peer_id == peer_id]

    async def _try(self, peer_id: str, wake: asyncio.Event) -> None:
        """Try the device until none of its sends waits: at once when woken, else after
        the next pause (or when the oldest send grows too old)."""
        schedule = pauses()
        while True:
            self._expire()
            if not self._waiting_for(peer_id):
                return
            wake.clear()
            try:
                ticket = await self._p.reach(peer_id)
            except NotTrusted as exc:
                for send in self._waiting_for(peer_id):
                    del self._sends[send.id]
                    self._p.drop(send, str(exc))
                await self._save()
                return
            if ticket is not None:
                await self._start_all(peer_id, ticket)
                continue
            oldest = min(s.queued_at for s in self._waiting_for(peer_id))
            until_too_old = oldest + APP_OUTBOX_MAX_AGE - self._p.now()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(next(schedule), until_too_old))):
                    await wake.wait()

    async def _start_all(self, peer_id: str, ticket: str) -> None:
        """The device answers: start each of its sends whose items are as queued; say of
        each other one what changed."""
        for send in self._waiting_for(peer_id):
            changed = await asyncio.to_thread(what_changed, send.stamps or ())
            if self._sends.pop(send.id, None) is None:
                continue  # cancelled meanwhile
            if changed:
                self._p.drop(send, changed)
            else:
                self._p.start(send, ticket)
        await self._save()

    def _expire(self) -> None:
        """Drop the sends that waited too long (their cards say so)."""
        now = self._p.now()
        old = [s for s in self._ready() if now - s.queued_at >= APP_OUTBOX_MAX_AGE]
        for send in old:
            del self._sends[send.id]
            self._p.drop(send, too_old_message(send.peer_name))
        if old:
            self._spawn(self._save())
