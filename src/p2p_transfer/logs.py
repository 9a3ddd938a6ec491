"""Warnings of the program's parts reach the user as events, never as raw stderr lines.

The app, the share and discovery log through ``logging`` (so do aiohttp and
zeroconf beneath them). ``forward_logs`` turns every warning or error of those
loggers into a ``LogEvent`` for the renderer in use: a dim line in a terminal,
a ``log`` line under ``--json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from p2p_transfer.events import Event, LogEvent

#: Logger name (prefix) → the part of the program a person knows it as.
_SOURCES = {
    "p2p_transfer.app": "app",
    "p2p_transfer.share": "share",
    "p2p_transfer.discovery": "discovery",
    "p2p_transfer": "p2p-transfer",
    "aiohttp": "web server",
    "zeroconf": "discovery",
}


def source_of(logger_name: str) -> str:
    """The part of the program a logger belongs to, as a person would name it."""
    for prefix, source in _SOURCES.items():
        if logger_name == prefix or logger_name.startswith(prefix + "."):
            return source
    return logger_name


class _EventHandler(logging.Handler):
    """Hands each record to ``emit`` as a one-line LogEvent (no traceback)."""

    def __init__(self, emit: Callable[[Event], None]) -> None:
        super().__init__(logging.WARNING)
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().splitlines()[0] if record.getMessage() else ""
            if record.exc_info and record.exc_info[1] is not None:
                message = f"{message}: {record.exc_info[1]}"
            level = "error" if record.levelno >= logging.ERROR else "warning"
            self._emit(LogEvent(level, source_of(record.name), message))
        except Exception:  # a renderer's failure must not break the code that logged
            self.handleError(record)


def forward_logs(emit: Callable[[Event], None]) -> Callable[[], None]:
    """Send warnings of our loggers to ``emit`` instead of stderr; returns the undo."""
    handler = _EventHandler(emit)
    loggers = [logging.getLogger(name) for name in ("p2p_transfer", "aiohttp", "zeroconf")]
    saved = [(logger.propagate, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
        if logger.level == logging.NOTSET or logger.level > logging.WARNING:
            logger.setLevel(logging.WARNING)

    def undo() -> None:
        for logger, (propagate, level) in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.setLevel(level)

    return undo
