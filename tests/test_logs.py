"""Warnings of the program's parts become log events for the renderer, not stderr lines."""

from __future__ import annotations

import logging

import pytest

from p2p_transfer.events import Event, LogEvent
from p2p_transfer.logs import forward_logs, source_of


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


def test_undo_gives_the_loggers_back() -> None:
    logger = logging.getLogger("p2p_transfer")
    before = (logger.propagate, logger.level, list(logger.handlers))
    forward_logs(lambda event: None)()
    assert (logger.propagate, logger.level, list(logger.handlers)) == before


def test_sources_read_like_the_program_s_parts() -> None:
    assert source_of("p2p_transfer.discovery.mdns") == "discovery"
    assert source_of("p2p_transfer.app") == "app"
    assert source_of("aiohttp.access") == "web server"
    assert source_of("somebody.else") == "somebody.else"
