"""Warnings of the program's parts become log events for the renderer, not stderr lines."""

from __future__ import annotations

import logging
import warnings

import pytest

import p2p_transfer.discovery.mdns
from p2p_transfer.events import Event, LogEvent
from p2p_transfer.logs import FORWARDED_LOGGERS, forward_logs, source_of


def test_warnings_become_log_events_and_nothing_reaches_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[Event] = []
    undo = forward_logs(seen.append)
    try:
        logging.getLogger("p2p_transfer.share.upload").warning("cannot create %r", "a.txt")
        logging.getLogger("zeroconf").warning("multicast\nis off")
        logging.getLogger("p2p_transfer.app.service").info("not for the user")
        try:
            raise OSError("disk on fire")
        except OSError:
            logging.getLogger("aiohttp.server").exception("Error handling request")
    finally:
        undo()
    assert seen == [
        LogEvent("warning", "share", "cannot create 'a.txt'"),
        LogEvent("warning", "discovery", "multicast"),
        LogEvent("error", "web server", "Error handling request: disk on fire"),
    ]
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert seen[0].to_dict() == {
        "event": "log", "level": "warning", "source": "share", "message": "cannot create 'a.txt'"
    }


def test_the_event_loop_s_complaints_become_log_events(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[Event] = []
    undo = forward_logs(seen.append)
    try:
        logging.getLogger("asyncio").error("Task exception was never retrieved\nfuture: <Task>")
        logging.getLogger("asyncio").warning("Executing <Task> took 0.2 seconds")
    finally:
        undo()
    assert seen == [
        LogEvent("error", "event loop", "Task exception was never retrieved"),
        LogEvent("warning", "event loop", "Executing <Task> took 0.2 seconds"),
    ]
    assert capsys.readouterr().err == ""


def test_warnings_of_the_warnings_module_become_log_events_of_the_part_that_warned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[Event] = []
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        undo = forward_logs(seen.append)
        try:
            warnings.warn_explicit("this call is deprecated\nuse another", DeprecationWarning,
                                   p2p_transfer.discovery.mdns.__file__, 1)
            warnings.warn_explicit("odd", UserWarning, "/nowhere/known.py", 1)
        finally:
            undo()
    assert seen == [
        LogEvent("warning", "discovery", "this call is deprecated"),
        LogEvent("warning", "python", "odd"),
    ]
    assert capsys.readouterr().err == ""


def test_undo_gives_the_loggers_back() -> None:
    logger = logging.getLogger("p2p_transfer")
    before = (logger.propagate, logger.level, list(logger.handlers))
    others = [(lg.propagate, lg.level, list(lg.handlers))
              for lg in map(logging.getLogger, FORWARDED_LOGGERS)]
    shown = warnings.showwarning
    forward_logs(lambda event: None)()
    assert (logger.propagate, logger.level, list(logger.handlers)) == before
    assert [(lg.propagate, lg.level, list(lg.handlers))
            for lg in map(logging.getLogger, FORWARDED_LOGGERS)] == others
    assert warnings.showwarning is shown


def test_sources_read_like_the_program_s_parts() -> None:
    assert source_of("p2p_transfer.discovery.mdns") == "discovery"
    assert source_of("p2p_transfer.app") == "app"
    assert source_of("aiohttp.access") == "web server"
    assert source_of("asyncio") == "event loop"
    assert source_of("somebody.else") == "somebody.else"
