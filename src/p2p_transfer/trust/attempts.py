"""Wrong-code accounting: lock out an endpoint that keeps guessing, cap guessing overall.

Lock-outs are keyed on the authenticated endpoint ID and stored beside the
pairings (0600), so restarting the receiver does not reset a guesser's count.
A global cap on new attempts per minute bounds what many throw-away IDs can do.
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path

from p2p_transfer.limits import (
    GLOBAL_ATTEMPTS_PER_MINUTE,
    LOCKOUT_SECONDS,
    MAX_WRONG_CODES,
    WRONG_CODE_WINDOW,
)
from p2p_transfer.trust.files import write_private_atomically

LOCKOUTS_FILE_NAME = "lockouts.json"
_MINUTE = 60.0


class AttemptLimiter:
    """Counts wrong codes per endpoint and verification attempts overall."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / LOCKOUTS_FILE_NAME
        self._recent_attempts: deque[float] = deque()

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, dict[str, object]]) -> None:
        write_private_atomically(self.path, json.dumps(data).encode())

    def locked_for(self, endpoint_id: str, now: float | None = None) -> float:
        """Seconds this endpoint stays locked out; 0 when it may try."""
        now = time.time() if now is None else now
        record = self._load().get(endpoint_id, {})
        until = record.get("locked_until", 0)
        return max(0.0, float(until) - now) if isinstance(until, int | float) else 0.0

    def begin_attempt(self, now: float | None = None) -> bool:
        """Count a new verification; False when the global per-minute cap is reached."""
        now = time.monotonic() if now is None else now
        while self._recent_attempts and now - self._recent_attempts[0] >= _MINUTE:
            self._recent_attempts.popleft()
        if len(self._recent_attempts) >= GLOBAL_ATTEMPTS_PER_MINUTE:
            return False
        self._recent_attempts.append(now)
        return True

    def record_failure(self, endpoint_id: str, now: float | None = None) -> bool:
        """Note a wrong code; True when it locks the endpoint out."""
        now = time.time() if now is None else now
        data = {k: v for k, v in self._load().items() if _still_relevant(v, now)}
        record = data.setdefault(endpoint_id, {})
        failures = [
            t for t in record.get("failures", [])  # type: ignore[union-attr]
            if isinstance(t, int | float) and now - t < WRONG_CODE_WINDOW
        ]
        failures.append(now)
        record["failures"] = failures
        locked = len(failures) >= MAX_WRONG_CODES
        if locked:
            record["locked_until"] = now + LOCKOUT_SECONDS
            record["failures"] = []
        self._save(data)
        return locked

    def attempts_left(self, endpoint_id: str, now: float | None = None) -> int:
        """Wrong codes this endpoint may still make before it is locked out."""
        now = time.time() if now is None else now
        record = self._load().get(endpoint_id, {})
        failures = record.get("failures", []) if isinstance(record, dict) else []
        recent = [t for t in failures if isinstance(t, int | float) and now - t < WRONG_CODE_WINDOW]
        return 0 if self.locked_for(endpoint_id, now) > 0 else MAX_WRONG_CODES - len(recent)

    def record_success(self, endpoint_id: str) -> None:
        """A right code clears the endpoint's count."""
        data = self._load()
        if data.pop(endpoint_id, None) is not None:
            self._save(data)


def _still_relevant(record: object, now: float) -> bool:
    if not isinstance(record, dict):
        return False
    until = record.get("locked_until", 0)
    failures = record.get("failures", [])
    recent = any(isinstance(t, int | float) and now - t < WRONG_CODE_WINDOW for t in failures)
    return recent or (isinstance(until, int | float) and until > now)
