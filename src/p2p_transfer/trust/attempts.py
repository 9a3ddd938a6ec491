"""Verification attempts: how many one key, one address and everyone together may make.

An attempt is one code check. It counts as failed from the moment its code is shown
until the right code arrives: pending while it runs, then wrong if a wrong code was
typed, or unanswered if it ended without one (the peer said hello and left, its
prompt was closed, the time ran out). Only typed codes are wrong codes (the sender's
"attempt 2 of 5"), but a key is locked out after MAX_WRONG_CODES wrong codes or
MAX_UNANSWERED_CODES codes left unanswered, a pending attempt counting toward both
(so parallel connections get no extra guesses, and a key that says hello and hangs
up is shown few codes); an
address is locked out after MAX_ADDRESS_FAILURES failed attempts of either kind;
all peers together start a bounded number of attempts per minute, with a reserve
for addresses that have not tried lately. The receiving user can lift a key's
lock-out (``unlock``). Everything is stored beside the pairings (0600), so
restarting the receiver resets none of it, and re-read when another process (``pair
unlock``) changed it.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from p2p_transfer.limits import (
    FRESH_ADDRESS_ATTEMPTS_PER_MINUTE,
    GLOBAL_ATTEMPTS_PER_MINUTE,
    LOCKOUT_SECONDS,
    MAX_ADDRESS_FAILURES,
    MAX_UNANSWERED_CODES,
    MAX_WRONG_CODES,
    WRONG_CODE_WINDOW,
)
from p2p_transfer.trust.files import write_private_atomically

LOCKOUTS_FILE_NAME = "lockouts.json"
_FORMAT_VERSION = 3
#: What a key's failed attempt is: running (its code shown, no guess yet), ended
#: without a guess, or a wrong code typed.
PENDING = "pending"
UNANSWERED = "unanswered"
WRONG = "wrong"
_AS_WRONG = (PENDING, WRONG)
_AS_UNANSWERED = (PENDING, UNANSWERED)
_MINUTE = 60.0
#: The address of peers whose address is not known (reached through a relay).
RELAYED = "relayed"


def address_group(ip: str | None) -> str:
    """What counts as one address: an IPv4 address, an IPv6 /64 (one network's share;
    a single host gets a whole /64), or RELAYED for peers without a known address."""
    if not ip:
        return RELAYED
    try:
        address = ipaddress.ip_address(ip.strip("[]").split("%", 1)[0])
    except ValueError:
        return RELAYED
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an attempt may not start now; ``kind`` and ``retry_after`` go to the peer."""

    message: str
    kind: Literal["locked_out", "busy"]
    retry_after: float


@dataclass(slots=True)
class _Record:
    """Failed attempts of one key (each tagged UNANSWERED or WRONG) or of one address
    (each tagged with the key that made it), and the end of its lock-out."""

    failures: list[tuple[float, str]] = field(default_factory=list)
    locked_until: float = 0.0

    def recent(
        self, now: float, tags: tuple[str, ...] | None = None
    ) -> list[tuple[float, str]]:
        """The failures within WRONG_CODE_WINDOW (either way: a clock set back counts),
        of those ``tags`` if given."""
        return [f for f in self.failures
                if abs(now - f[0]) < WRONG_CODE_WINDOW and (tags is None or f[1] in tags)]

    def locked_for(
        self, limit: int, now: float, tags: tuple[str, ...] | None = None
    ) -> float:
        """Seconds left of its lock-out; a record at its limit whose last attempt has not
        been settled yet (still running, or the process stopped) counts as locked."""
        until = self.locked_until
        recent = self.recent(now, tags)
        if len(recent) >= limit:
            until = max(until, recent[-1][0] + LOCKOUT_SECONDS)
        return max(0.0, until - now)

    def settle(self, limit: int, now: float, tags: tuple[str, ...] | None = None) -> None:
        """An attempt failed: at the limit, the lock-out starts now (the failures stay:
        an unlock takes one key's off an address and looks again)."""
        self.failures = self.recent(now)
        if len(self.recent(now, tags)) >= limit:
            self.locked_until = now + LOCKOUT_SECONDS

    def mark(self, started: float | None, tag: str) -> None:
        """The pending attempt that started at ``started`` (None: the latest) ended as
        ``tag``; nothing when there is none (it was forgotten: a right code, an unlock)."""
        pending = [i for i, f in enumerate(self.failures)
                   if f[1] == PENDING and started in (None, f[0])]
        if pending:
            self.failures[pending[-1]] = (self.failures[pending[-1]][0], tag)

    def relevant(self, now: float) -> bool:
        return bool(self.recent(now)) or self.locked_until > now


@dataclass(frozen=True, slots=True)
class LockedKey:
    """A key that may not try a code now: for how long, and because of what."""

    key: str
    seconds: float
    #: "wrong" (wrong codes typed) or "unanswered" (codes shown and left unanswered).
    cause: str


class AttemptLimiter:
    """Counts attempts per key, per address and overall, and refuses those over a limit."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / LOCKOUTS_FILE_NAME
        self._keys: dict[str, _Record] = {}
        self._addresses: dict[str, _Record] = {}
        #: When each attempt of the last minute started, from any key.
        self._recent: list[float] = []
        #: The file as last read or written (another process may change it: ``pair unlock``).
        self._seen: tuple[int, int, int] | None = None
        self._load(starting=True)

    # --- asking -------------------------------------------------------------------

    def refusal(self, key: str, address: str, now: float | None = None) -> Refusal | None:
        """Why ``key`` from ``address`` may not start an attempt now; None when it may."""
        now = time.time() if now is None else now
        self._refresh()
        locked, cause = self._key_lock(key, now)
        if locked > 0:
            why = "too many wrong codes" if cause == WRONG else (
                "too many codes shown and left unanswered"
            )
            return Refusal(f"{why}; try again in {_minutes(locked)} min", "locked_out", locked)
        address_record = self._addresses.get(address, _Record())
        if (locked := address_record.locked_for(MAX_ADDRESS_FAILURES, now)) > 0:
            return Refusal(
                "too many failed verifications from this network; "
                f"try again in {_minutes(locked)} min", "locked_out", locked,
            )
        started = len(self._started_this_minute(now))
        fresh = not address_record.recent(now)
        if started >= GLOBAL_ATTEMPTS_PER_MINUTE and not (
            fresh and started < GLOBAL_ATTEMPTS_PER_MINUTE + FRESH_ADDRESS_ATTEMPTS_PER_MINUTE
        ):
            return Refusal(
                "too many verification attempts right now; try again in a minute", "busy",
                _MINUTE,
            )
        return None

    def attempts_left(self, key: str, now: float | None = None) -> int:
        """Wrong codes this key may still type before it is locked out (0 while locked)."""
        now = time.time() if now is None else now
        self._refresh()
        if self._key_lock(key, now)[0] > 0:
            return 0
        typed = len(self._keys.get(key, _Record()).recent(now, _AS_WRONG))
        return max(0, MAX_WRONG_CODES - typed)

    def unanswered_left(self, key: str, now: float | None = None) -> int:
        """Codes this key may still be shown and leave unanswered before it is locked out."""
        now = time.time() if now is None else now
        self._refresh()
        shown = len(self._keys.get(key, _Record()).recent(now, _AS_UNANSWERED))
        return max(0, MAX_UNANSWERED_CODES - shown)

    def locked_for(self, key: str, now: float | None = None) -> float:
        """Seconds this key stays locked out; 0 when it may try."""
        now = time.time() if now is None else now
        self._refresh()
        return self._key_lock(key, now)[0]

    def locked_keys(self, now: float | None = None) -> list[LockedKey]:
        """Every key locked out now, for the user who may lift it (``unlock``)."""
        now = time.time() if now is None else now
        self._refresh()
        locks = ((key, *self._key_lock(key, now)) for key in self._keys)
        return [LockedKey(key, seconds, cause) for key, seconds, cause in locks if seconds > 0]

    def _key_lock(self, key: str, now: float) -> tuple[float, str]:
        """Seconds left of the key's lock-out and its cause (WRONG or UNANSWERED)."""
        record = self._keys.get(key)
        if record is None:
            return 0.0, ""
        by_wrong = record.locked_for(MAX_WRONG_CODES, now, _AS_WRONG)
        by_unanswered = _Record(record.recent(now, _AS_UNANSWERED)).locked_for(
            MAX_UNANSWERED_CODES, now
        )
        # Both at once (attempts still pending count for both): the kind seen more often.
        wrong = len(record.recent(now, (WRONG,)))
        unanswered = len(record.recent(now, (UNANSWERED,)))
        if (by_wrong, wrong) >= (by_unanswered, unanswered):
            return by_wrong, WRONG
        return by_unanswered, UNANSWERED

    # --- counting -------------------------------------------------------------------

    def begin(self, key: str, address: str, now: float | None = None) -> int:
        """Count a new attempt, as failed (pending) until ``fail``, ``unanswered`` or
        ``succeed`` (``now`` names it to them); returns its number among the key's
        attempts: 1 plus the wrong codes it typed lately (codes it left unanswered do
        not count there)."""
        now = time.time() if now is None else now
        self._refresh()
        key_record = self._keys.setdefault(key, _Record())
        key_record.failures = [*key_record.recent(now), (now, PENDING)]
        address_record = self._addresses.setdefault(address, _Record())
        address_record.failures = [*address_record.recent(now), (now, key)]
        self._recent = [*self._started_this_minute(now), now]
        self._save(now)
        return len(key_record.recent(now, (WRONG,))) + 1

    def fail(
        self, key: str, address: str, now: float | None = None, started: float | None = None
    ) -> None:
        """A wrong code was typed in the attempt begun at ``started`` (None: the latest):
        it counts as wrong; start the lock-outs it completes."""
        now = time.time() if now is None else now
        self._refresh()
        record = self._keys.setdefault(key, _Record())
        record.mark(started, WRONG)
        record.settle(MAX_WRONG_CODES, now, _AS_WRONG)
        self._addresses.setdefault(address, _Record()).settle(MAX_ADDRESS_FAILURES, now)
        self._save(now)

    def unanswered(self, key: str, started: float, now: float | None = None) -> None:
        """The attempt begun at ``started`` ended without a guess: no wrong code, but one
        more code left unanswered (the lock-out it completes starts from its start)."""
        now = time.time() if now is None else now
        self._refresh()
        if (record := self._keys.get(key)) is not None:
            record.mark(started, UNANSWERED)
            self._save(now)

    def succeed(self, key: str, address: str, now: float | None = None) -> None:
        """The right code: the key's failures are forgotten, and so are the attempts it
        charged to its address."""
        now = time.time() if now is None else now
        self._refresh()
        self._forget(key)
        self._save(now)

    def unlock(self, key: str, now: float | None = None) -> bool:
        """The receiving user lifts ``key``'s lock-out: its failures are forgotten, here and
        in its addresses' counts (an address locked by them alone is open again). False
        when it had none."""
        now = time.time() if now is None else now
        self._refresh()
        had = key in self._keys or any(
            f[1] == key for record in self._addresses.values() for f in record.failures
        )
        self._forget(key)
        for record in self._addresses.values():
            if record.locked_until > now and len(record.recent(now)) < MAX_ADDRESS_FAILURES:
                record.locked_until = 0.0
        self._save(now)
        return had

    def _forget(self, key: str) -> None:
        self._keys.pop(key, None)
        for record in self._addresses.values():
            record.failures = [f for f in record.failures if f[1] != key]

    def _started_this_minute(self, now: float) -> list[float]:
        return [t for t in self._recent if abs(now - t) < _MINUTE]

    # --- the file ---------------------------------------------------------------------

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def _refresh(self) -> None:
        """Read the file again if another process wrote it since (a lock-out lifted)."""
        if self._signature() != self._seen:
            self._keys, self._addresses, self._recent = {}, {}, []
            self._load()

    def _load(self, starting: bool = False) -> None:
        """Read the file; when ``starting``, attempts a stopped process left pending are
        over: left unanswered."""
        self._seen = self._signature()
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return  # none yet, or damaged: nothing to go on
        if not isinstance(data, dict):
            return
        if data.get("version") not in (2, _FORMAT_VERSION):
            data = {"keys": data}  # the first format: endpoint ID -> record
        self._keys = _records(data.get("keys"))
        for record in self._keys.values():  # before format 3 every failure was a wrong code
            record.failures = [(t, _loaded_tag(tag, starting)) for t, tag in record.failures]
        self._addresses = _records(data.get("addresses"))
        recent = data.get("recent")
        self._recent = [t for t in recent if _is_time(t)] if isinstance(recent, list) else []

    def _save(self, now: float) -> None:
        self._keys = {k: r for k, r in self._keys.items() if r.relevant(now)}
        self._addresses = {a: r for a, r in self._addresses.items() if r.relevant(now)}
        self._recent = self._started_this_minute(now)
        data = {
            "version": _FORMAT_VERSION,
            "keys": {k: _record_json(r) for k, r in self._keys.items()},
            "addresses": {a: _record_json(r) for a, r in self._addresses.items()},
            "recent": self._recent,
        }
        write_private_atomically(self.path, json.dumps(data).encode())
        self._seen = self._signature()


def _loaded_tag(tag: str, starting: bool) -> str:
    if tag == PENDING:
        return UNANSWERED if starting else PENDING
    return tag if tag == UNANSWERED else WRONG


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _records(raw: object) -> dict[str, _Record]:
    """Records as stored; anything malformed is left out (it grants nothing either way)."""
    if not isinstance(raw, dict):
        return {}
    records = {}
    for name, entry in raw.items():
        if not isinstance(name, str) or not isinstance(entry, dict):
            continue
        failures = []
        for item in entry.get("failures", []) if isinstance(entry.get("failures"), list) else []:
            if _is_time(item):  # a failure of the second format's keys: its time
                failures.append((float(item), ""))
            elif isinstance(item, list) and len(item) == 2 and _is_time(item[0]) and isinstance(
                item[1], str
            ):  # its time and its tag (a key's kind of failure, an address's key)
                failures.append((float(item[0]), item[1]))
        until = entry.get("locked_until", 0.0)
        records[name] = _Record(failures, float(until) if _is_time(until) else 0.0)
    return records


def _record_json(record: _Record) -> dict[str, Any]:
    return {"failures": [[t, tag] for t, tag in record.failures],
            "locked_until": record.locked_until}
