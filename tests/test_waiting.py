"""The tests' waiting helpers, and the rule that keeps fixed sleeps out of the tests.

A test that sleeps for something to happen fails on a loaded machine (the flakes of
issue 22); every pause goes through ``waiting``, which names what it waits for.
"""

from __future__ import annotations

import ast
import asyncio
import re
import threading
import time
from pathlib import Path

import pytest

import waiting
from waiting import stays, wait_until, wait_until_blocking

TESTS = Path(__file__).resolve().parent
#: The one module allowed to sleep: its polling loops and its named pauses.
HELPER = Path(waiting.__file__).resolve()
#: A sleep written inside a string, such as code run by ``python -c``.
_SLEEP_CALL = re.compile(r"\bsleep\s*\(")


def _sleeps_in(path: Path) -> list[int]:
    """The lines of ``path`` that use a ``sleep``: calls, references, imports, and calls
    written in strings."""
    return sorted({
        node.lineno for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if _is_sleep_use(node)
    })


def _is_sleep_use(node: ast.AST) -> bool:
    match node:
        case ast.Attribute(attr="sleep") | ast.Name(id="sleep"):
            return True
        case ast.ImportFrom(names=names):
            return any(alias.name == "sleep" for alias in names)
        case ast.Constant(value=str(text)):
            return _SLEEP_CALL.search(text) is not None
    return False


def test_no_test_sleeps_outside_the_waiting_helpers() -> None:
    """Tests wait for a condition (``wait_until``, ``stays``), or pause on purpose through
    ``hold_for``; a bare sleep is a guess at how long something takes."""
    found = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.resolve() != HELPER
        for line in _sleeps_in(path)
    ]
    assert found == [], "sleeps outside tests/waiting.py (use its helpers): " + ", ".join(found)


def test_the_sleep_finder_sees_every_spelling(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text((  # written with NAP here, or this file would break its own rule
        "import asyncio, time\n"
        "from time import NAP as nap\n"
        "async def f():\n"
        "    await asyncio.NAP(1)\n"
        "    time.NAP(1)\n"
        "    run(['python', '-c', 'import time; time.NAP (60)'])\n"
        "    # a comment about NAP(1) is no pause\n"
    ).replace("NAP", "sleep"))
    assert _sleeps_in(sample) == [2, 4, 5, 6]


async def test_wait_until_returns_the_value_once_the_condition_holds() -> None:
    seen: list[str] = []
    asyncio.get_running_loop().call_later(0.05, seen.append, "it")
    started = time.monotonic()
    assert await wait_until(lambda: list(seen), 5, what="the event") == ["it"]
    assert time.monotonic() - started < 4


async def test_wait_until_takes_an_async_condition() -> None:
    calls = 0

    async def third_time() -> int:
        nonlocal calls
        calls += 1
        return calls if calls >= 3 else 0

    assert await wait_until(third_time, 5, every=0.001, what="the third call") == 3


async def test_wait_until_says_what_never_came_and_how_it_stood() -> None:
    state = {"files": 2}
    started = time.monotonic()
    with pytest.raises(AssertionError) as failed:
        await wait_until(
            lambda: state["files"] == 3, 0.1, what=lambda: f"3 files; {state['files']} so far"
        )
    assert str(failed.value) == "timed out after 0.1 s waiting for 3 files; 2 so far"
    assert time.monotonic() - started >= 0.1  # the whole timeout, not less


def test_wait_until_blocking_waits_for_another_thread() -> None:
    done = threading.Event()
    threading.Timer(0.05, done.set).start()
    assert wait_until_blocking(done.is_set, 5, what="the thread") is True


def test_wait_until_blocking_says_what_never_came() -> None:
    with pytest.raises(AssertionError, match=r"^timed out after 0\.1 s waiting for the moon$"):
        wait_until_blocking(lambda: False, 0.1, what="the moon")


async def test_stays_lasts_the_whole_period_when_nothing_changes() -> None:
    started = time.monotonic()
    await stays(lambda: True, seconds=0.2, what="quiet")
    assert time.monotonic() - started >= 0.2


async def test_stays_fails_as_soon_as_the_condition_breaks() -> None:
    quiet = [True]
    asyncio.get_running_loop().call_later(0.05, quiet.clear)
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"^the line quiet stopped holding after .* of 5 s$"):
        await stays(lambda: quiet, seconds=5, what="the line quiet")
    assert time.monotonic() - started < 4
