"""Progress of one transfer, turned into at most PROGRESS_EVENTS_PER_SECOND events."""

from __future__ import annotations

import time
from collections.abc import Callable

from p2p_transfer.events import Direction, FileProgress, ProgressEvent
from p2p_transfer.limits import MAX_ACTIVE_FILES_SHOWN, PROGRESS_EVENTS_PER_SECOND

#: Weight of the newest rate sample in the smoothed rate.
RATE_SMOOTHING = 0.3


class ProgressTracker:
    """Counts bytes and files; emits a throttled ProgressEvent through ``emit``."""

    def __init__(
        self,
        session: str,
        direction: Direction,
        bytes_total: int,
        files_total: int,
        emit: Callable[[ProgressEvent], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.direction = direction
        self.bytes_total = bytes_total
        self.files_total = files_total
        self.bytes_done = 0
        self.bytes_transferred = 0
        self.files_done = 0
        self._emit = emit
        self._clock = clock
        self._started = clock()
        self._last_emit = float("-inf")
        self._last_sample = (self._started, 0)
        self._rate = 0.0
        self._active: dict[int, FileProgress] = {}
        self._last_activity = self._started

    @property
    def seconds(self) -> float:
        """Time since the tracker started."""
        return self._clock() - self._started

    @property
    def idle_seconds(self) -> float:
        """Time since bytes last moved (or since the start)."""
        return self._clock() - self._last_activity

    def skip(self, size: int) -> None:
        """Count bytes already present on the receiver (resumed or identical)."""
        self.bytes_done += size

    def start_file(self, index: int, path: str, size: int, done: int = 0) -> None:
        """A file's bytes begin to move."""
        self._active[index] = FileProgress(path, done, size)

    def moved_whole(self, index: int, path: str, size: int, done: int = 0) -> None:
        """``skip(done)``, ``start_file`` and ``advance`` by the rest, for a small file whose
        bytes moved in one piece (a transfer of many small files: one step each)."""
        count = size - done
        self.bytes_done += size
        self.bytes_transferred += count
        self._last_activity = now = self._clock()
        self._active[index] = FileProgress(path, size, size)
        self._maybe_emit(now)

    def advance(self, index: int, count: int) -> None:
        """``count`` more bytes of file ``index`` moved."""
        self.bytes_done += count
        self.bytes_transferred += count
        self._last_activity = now = self._clock()
        current = self._active.get(index)
        if current is not None:
            self._active[index] = FileProgress(
                current.path, current.bytes_done + count, current.size
            )
        self._maybe_emit(now)

    def finish_file(self, index: int) -> None:
        """A file is settled (verified or failed)."""
        self._active.pop(index, None)
        self.files_done += 1
        self._maybe_emit()

    def flush(self) -> None:
        """Emit the current state now, regardless of the rate limit."""
        self._maybe_emit(force=True)

    def _maybe_emit(self, now: float | None = None, force: bool = False) -> None:
        if now is None:
            now = self._clock()
        if not force and now - self._last_emit < 1.0 / PROGRESS_EVENTS_PER_SECOND:
            return
        self._last_emit = now
        sample_time, sample_bytes = self._last_sample
        if now > sample_time:
            instant = (self.bytes_transferred - sample_bytes) / (now - sample_time)
            self._rate = instant if self._rate == 0 else (
                RATE_SMOOTHING * instant + (1 - RATE_SMOOTHING) * self._rate
            )
            self._last_sample = (now, self.bytes_transferred)
        remaining = max(0, self.bytes_total - self.bytes_done)
        eta = remaining / self._rate if self._rate > 0 else None
        active = list(self._active.values())[:MAX_ACTIVE_FILES_SHOWN]
        self._emit(
            ProgressEvent(
                session=self.session,
                direction=self.direction,
                bytes_done=self.bytes_done,
                bytes_total=self.bytes_total,
                files_done=self.files_done,
                files_total=self.files_total,
                rate=round(self._rate, 1),
                eta=round(eta, 1) if eta is not None else None,
                active=active,
            )
        )
