"""ProgressTracker: throttled progress events with rate and ETA, on a fake clock."""

from __future__ import annotations

import pytest

from p2p_transfer.events import FileProgress, ProgressEvent
from p2p_transfer.limits import PROGRESS_EVENTS_PER_SECOND
from p2p_transfer.transfer.progress import MAX_ACTIVE_FILES_SHOWN, ProgressTracker

MB = 1_000_000


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Collects emitted events together with the fake time they were emitted at."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.events: list[ProgressEvent] = []
        self.times: list[float] = []

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)
        self.times.append(self.clock.now)

    @property
    def last(self) -> ProgressEvent:
        return self.events[-1]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recorder(clock: FakeClock) -> Recorder:
    return Recorder(clock)


def tracker_for(
    clock: FakeClock, recorder: Recorder, total: int = 100 * MB, files: int = 1
) -> ProgressTracker:
    return ProgressTracker("t1", "send", total, files, recorder, clock=clock)


def run_at_rate(
    tracker: ProgressTracker, clock: FakeClock, rate: float, seconds: float, step: float = 0.001
) -> None:
    """Move bytes of file 0 at ``rate`` bytes/s in ``step``-second ticks."""
    start = clock.now
    ticks = round(seconds / step)
    for i in range(1, ticks + 1):
        clock.now = start + i * step
        tracker.advance(0, round(rate * step))


def test_at_most_ten_events_per_second(clock: FakeClock, recorder: Recorder) -> None:
    tracker = tracker_for(clock, recorder)
    tracker.start_file(0, "big.bin", 100 * MB)
    run_at_rate(tracker, clock, rate=MB, seconds=10.0)  # 10,000 advances
    times = recorder.times
    assert 9 * 10 <= len(times) <= PROGRESS_EVENTS_PER_SECOND * 10 + 1
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t < start + 1.0]
        assert len(in_window) <= PROGRESS_EVENTS_PER_SECOND


def test_finishing_many_small_files_is_throttled(clock: FakeClock, recorder: Recorder) -> None:
    tracker = tracker_for(clock, recorder, total=10_000, files=10_000)
    for index in range(10_000):
        clock.now = index * 0.0001  # 10,000 files in one second
        tracker.start_file(index, f"f{index}", 1)
        tracker.advance(index, 1)
        tracker.finish_file(index)
    assert len(recorder.events) <= PROGRESS_EVENTS_PER_SECOND + 1


def test_flush_always_emits_the_current_state(clock: FakeClock, recorder: Recorder) -> None:
    tracker = tracker_for(clock, recorder, total=1000)
    tracker.start_file(0, "a", 1000)
    tracker.advance(0, 10)
    tracker.advance(0, 990)  # throttled: same instant as the previous event
    assert recorder.last.bytes_done == 10
    tracker.finish_file(0)
    tracker.flush()
    tracker.flush()
    assert len(recorder.events) == 3
    assert (recorder.last.bytes_done, recorder.last.files_done, recorder.last.active) == (
        1000, 1, [],
    )  # fmt: skip


def test_flush_with_nothing_moved(clock: FakeClock, recorder: Recorder) -> None:
    tracker = tracker_for(clock, recorder, total=1000, files=2)
    tracker.flush()
    event = recorder.last
    assert (event.bytes_done, event.rate, event.eta) == (0, 0.0, None)
    assert (event.session, event.direction, event.files_total) == ("t1", "send", 2)


def test_rate_and_eta_at_a_steady_rate(clock: FakeClock, recorder: Recorder) -> None:
    tracker = tracker_for(clock, recorder, total=20 * MB)
    tracker.start_file(0, "a", 20 * MB)
    run_at_rate(tracker, clock, rate=MB, seconds=5.0)
    event = recorder.last
    assert event.rate == pytest.approx(MB, rel=0.02)
    assert event.bytes_done == pytest.approx(5 * MB, rel=0.03)
    assert event.eta == pytest.approx(15.0, rel=0.05)


def test_rate_follows_a_slowdown(clock: FakeClock, recorder: Recorder) -> None:
    tracker = tracker_for(clock, recorder)
    tracker.start_file(0, "a", 100 * MB)
    run_at_rate(tracker, clock, rate=4 * MB, seconds=3.0)
    assert recorder.last.rate == pytest.approx(4 * MB, rel=0.02)
    run_at_rate(tracker, clock, rate=MB, seconds=3.0)
    assert recorder.last.rate == pytest.approx(MB, rel=0.05)


def test_eta_shrinks_as_the_transfer_proceeds(clock: FakeClock, recorder: Recorder) -> None:
    tracker = tracker_for(clock, recorder, total=10 * MB)
    tracker.start_file(0, "a", 10 * MB)
    run_at_rate(tracker, clock, rate=MB, seconds=9.9)
    etas = [e.eta for e in recorder.events if e.eta is not None]
    assert etas[-1] < etas[len(etas) // 2] < etas[0]
    assert etas[-1] == pytest.approx(0.1, abs=0.1)


def test_skipped_bytes_are_done_but_not_transferred(clock: FakeClock, recorder: Recorder) -> None:
    """Resumed bytes count towards progress, not towards bytes moved or speed."""
    tracker = tracker_for(clock, recorder, total=10 * MB, files=2)
    tracker.skip(6 * MB)  # e.g. a resumed .part of the first file
    tracker.start_file(0, "a", 8 * MB, done=6 * MB)
    run_at_rate(tracker, clock, rate=MB, seconds=2.0)
    tracker.flush()
    event = recorder.last
    assert tracker.bytes_transferred == pytest.approx(2 * MB, rel=0.01)
    assert event.bytes_done == pytest.approx(8 * MB, rel=0.01)
    assert event.rate == pytest.approx(MB, rel=0.05)  # not inflated by the 6 MB skipped
    assert event.eta == pytest.approx(2.0, rel=0.05)
    assert event.active == [FileProgress("a", tracker.bytes_done, 8 * MB)]


def test_active_files_are_listed_and_bounded(clock: FakeClock, recorder: Recorder) -> None:
    tracker = tracker_for(clock, recorder, total=100, files=20)
    for index in range(20):
        tracker.start_file(index, f"f{index}", 5)
    tracker.advance(3, 2)
    tracker.finish_file(0)
    tracker.flush()
    active = recorder.last.active
    assert len(active) == MAX_ACTIVE_FILES_SHOWN
    assert active[0] == FileProgress("f1", 0, 5)
    assert FileProgress("f3", 2, 5) in active
    assert recorder.last.files_done == 1


def test_seconds_follow_the_clock(clock: FakeClock, recorder: Recorder) -> None:
    clock.now = 100.0
    tracker = tracker_for(clock, recorder)
    clock.now = 102.5
    assert tracker.seconds == 2.5


def test_idle_seconds_count_from_the_last_byte(clock: FakeClock, recorder: Recorder) -> None:
    """The receiver's stall watchdog relies on this: only moved bytes are activity."""
    tracker = tracker_for(clock, recorder)
    clock.now = 30.0
    assert tracker.idle_seconds == 30.0
    tracker.advance(0, 1)
    clock.now = 45.0
    tracker.skip(1000)  # resumed bytes are not traffic
    tracker.finish_file(0)
    tracker.flush()
    assert tracker.idle_seconds == 15.0


def test_a_small_file_that_moved_whole_counts_as_its_start_and_its_bytes(
    clock: FakeClock, recorder: Recorder
) -> None:
    """One step per small file: the same counts and active file as start_file + advance."""
    one_step = tracker_for(clock, recorder, total=300, files=2)
    one_step.moved_whole(0, "a.txt", 100)
    one_step.moved_whole(1, "b.txt", 200, done=50)  # 50 bytes were here already
    two_steps = ProgressTracker("t1", "send", 300, 2, lambda event: None, clock=clock)
    two_steps.start_file(0, "a.txt", 100)
    two_steps.advance(0, 100)
    two_steps.skip(50)
    two_steps.start_file(1, "b.txt", 200, 50)
    two_steps.advance(1, 150)
    for tracker in (one_step, two_steps):
        assert (tracker.bytes_done, tracker.bytes_transferred) == (300, 250)
    one_step.flush()
    assert recorder.last.active == [
        FileProgress("a.txt", 100, 100), FileProgress("b.txt", 200, 200),
    ]
    one_step.finish_file(0)
    one_step.finish_file(1)
    one_step.flush()
    assert recorder.last.files_done == 2 and recorder.last.active == []
