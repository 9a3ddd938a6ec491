"""Verification attempts: how many one key, one address and everyone together may make.

An attempt is one code check. It counts as failed from the moment its code is shown
until the right code arrives, so a peer that says hello and leaves, or lets the time
run out, has used an attempt just like one that typed a wrong code. Keys (the
authenticated endpoint IDs) and addresses are locked out after repeated failures;
all peers together start a bounded number of attempts per minute, with a reserve
for addresses that have not tried lately. Everything is stored beside the pairings
(0600), so restarting the receiver resets none of it.
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from p2p_transfer.limits import (
    FRESH_ADDRESS_ATTEMPTS_PER_MINUTE,
    GLOBAL_ATTEMPTS_PER_MINUTE,
    LOCKOUT_SECONDS,
    MAX_ADDRESS_FAILURES,
    MAX_WRONG_CODES,
    WRONG_CODE_WINDOW,
)
from p2p_transfer.trust.files import write_private_atomically

LOCKOUTS_FILE_NAME = "lockouts.json"
_FORMAT_VERSION = 2
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
    """Failed attempts of one key or address (with the key that made each), and the
    end of its lock-out."""

    failures: list[tuple[float, str]] = field(default_factory=list)
    locked_until: float = 0.0

    def recent(self, now: float) -> list[tuple[float, str]]:
        """The failures within WRONG_CODE_WINDOW (either way: a clock set back counts)."""
        return [f for f in self.failures if abs(now - f[0]) < WRONG_CODE_WINDOW]

    def locked_for(self, limit: int, now: float) -> float:
        """Seconds left of its lock-out; a record at its limit whose last attempt has not
        been settled yet (still running, or the process stopped) counts as locked."""
        until = self.locked_until
        recent = self.recent(now)
        if len(recent) >= limit:
            until = max(until, recent[-1][0] + LOCKOUT_SECONDS)
        return max(0.0, until - now)

    def settle(self, limit: int, now: float) -> None:
        """An attempt failed: at the limit, the lock-out starts now."""
        self.failures = self.recent(now)
        if len(self.failures) >= limit:
            self.locked_until = now + LOCKOUT_SECONDS
            self.failures = []

    def relevant(self, now: float) -> bool:
        return bool(self.recent(now)) or self.locked_until > now


class AttemptLimiter:
    """Counts attempts per key, per address and overall, and refuses those over a limit."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / LOCKOUTS_FILE_NAME
        self._keys: dict[str, _Record] = {}
        self._addresses: dict[str, _Record] = {}
        #: When each attempt of the last minute started, from any key.
        self._recent: list[float] = []
        self._load()

    # --- asking -------------------------------------------------------------------

    def refusal(self, key: str, address: str, now: float | None = None) -> Refusal | None:
        """Why ``key`` from ``address`` may not start an attempt now; None when it may."""
        now = time.time() if now is None else now
        key_record = self._keys.get(key, _Record())
        if (locked := key_record.locked_for(MAX_WRONG_CODES, now)) > 0:
            return Refusal(
                f"too many wrong codes; try again in {_minutes(locked)} min", "locked_out", locked
            )
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
        """Attempts this key may still fail before it is locked out."""
        now = time.time() if now is None else now
        record = self._keys.get(key, _Record())
        if record.locked_for(MAX_WRONG_CODES, now) > 0:
            return 0
        return max(0, MAX_WRONG_CODES - len(record.recent(now)))

    def locked_for(self, key: str, now: float | None = None) -> float:
        """Seconds this key stays locked out; 0 when it may try."""
        now = time.time() if now is None else now
        return self._keys.get(key, _Record()).locked_for(MAX_WRONG_CODES, now)

    # --- counting -------------------------------------------------------------------

    def begin(self, key: str, address: str, now: float | None = None) -> int:
        """Count a new attempt, as failed until ``succeed``; returns its number among the
        key's recent attempts (1 for a key with no failures)."""
        now = time.time() if now is None else now
        key_record = self._keys.setdefault(key, _Record())
        key_record.failures = [*key_record.recent(now), (now, "")]
        address_record = self._addresses.setdefault(address, _Record())
        address_record.failures = [*address_record.recent(now), (now, key)]
        self._recent = [*self._started_this_minute(now), now]
        self._save(now)
        return len(key_record.failures)

    def fail(self, key: str, address: str, now: float | None = None) -> None:
        """An attempt ended without the right code: start the lock-outs it completes."""
        now = time.time() if now is None else now
        self._keys.setdefault(key, _Record()).settle(MAX_WRONG_CODES, now)
        self._addresses.setdefault(address, _Record()).settle(MAX_ADDRESS_FAILURES, now)
        self._save(now)

    def succeed(self, key: str, address: str, now: float | None = None) -> None:
        """The right code: the key's failures are forgotten, and so are the attempts it
        charged to its address."""
        now = time.time() if now is None else now
        self._keys.pop(key, None)
        record = self._addresses.get(address)
        if record is not None:
            record.failures = [f for f in record.failures if f[1] != key]
        self._save(now)

    def _started_this_minute(self, now: float) -> list[float]:
        return [t for t in self._recent if abs(now - t) < _MINUTE]

    # --- the file ---------------------------------------------------------------------

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return  # none yet, or damaged: nothing to go on
        if not isinstance(data, dict):
            return
        if data.get("version") != _FORMAT_VERSION:
            data = {"keys": data}  # the first format: endpoint ID -> record
        self._keys = _records(data.get("keys"))
        self._addresses = _records(data.get("addresses"))
        recent = data.get("recent")
        self._recent = [t for t in recent if _is_time(t)] if isinstance(recent, list) else []

    def _save(self, now: float) -> None:
        self._keys = {k: r for k, r in self._keys.items() if r.relevant(now)}
        self._addresses = {a: r for a, r in self._addresses.items() if r.relevant(now)}
        self._recent = self._started_this_minute(now)
        data = {
            "version": _FORMAT_VERSION,
            "keys": {k: _key_json(r) for k, r in self._keys.items()},
            "addresses": {a: _address_json(r) for a, r in self._addresses.items()},
            "recent": self._recent,
        }
        write_private_atomically(self.path, json.dumps(data).encode())


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
            if _is_time(item):  # a key's failure: its time
                failures.append((float(item), ""))
            elif isinstance(item, list) and len(item) == 2 and _is_time(item[0]) and isinstance(
                item[1], str
            ):  # an address's failure: its time and the key that made it
                failures.append((float(item[0]), item[1]))
        until = entry.get("locked_until", 0.0)
        records[name] = _Record(failures, float(until) if _is_time(until) else 0.0)
    return records


def _key_json(record: _Record) -> dict[str, Any]:
    return {"failures": [t for t, _ in record.failures], "locked_until": record.locked_until}


def _address_json(record: _Record) -> dict[str, Any]:
    return {"failures": [[t, k] for t, k in record.failures], "locked_until": record.locked_until}
