"""Warnings of the program's parts reach the user as events, never as raw stderr lines.

The app, the share and discovery log through ``logging`` (so do aiohttp, zeroconf
and asyncio beneath them), and libraries warn through the ``warnings`` module.
``forward_logs`` turns every warning or error of those into a ``LogEvent`` for the
renderer in use: a dim line in a terminal, a ``log`` line under ``--json``.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import TextIO

from p2p_transfer.events import Event, LogEvent

#: Logger name (prefix) → the part of the program a person knows it as.
_SOURCES = {
    "p2p_transfer.app": "app",
    "p2p_transfer.share": "share",
    "p2p_transfer.discovery": "discovery",
    "p2p_transfer": "p2p-transfer",
    "aiohttp": "web server",
    "zeroconf": "discovery",
    "asyncio": "event loop",
}
#: The loggers whose warnings are forwarded (with their children).
FORWARDED_LOGGERS = ("p2p_transfer", "aiohttp", "zeroconf", "asyncio")
#: Source of a ``warnings`` warning raised from code outside the known parts.
PYTHON_SOURCE = "python"


def source_of(logger_name: str) -> str:
    """The part of the program a logger belongs to, as a person would name it."""
    for prefix, source in _SOURCES.items():
        if logger_name == prefix or logger_name.startswith(prefix + "."):
            return source
    return logger_name


def _module_of(filename: str) -> str:
    """The name of the loaded module whose file is ``filename`` ("" if none is): where a
    ``warnings`` warning was raised, as a logger name would say it."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return ""


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


class _EventHandler(logging.Handler):
    """Hands each record to ``emit`` as a one-line LogEvent (no traceback)."""

    def __init__(self, emit: Callable[[Event], None]) -> None:
        super().__init__(logging.WARNING)
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = _first_line(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                message = f"{message}: {record.exc_info[1]}"
            level = "error" if record.levelno >= logging.ERROR else "warning"
            self._emit(LogEvent(level, source_of(record.name), message))
        except Exception:  # a renderer's failure must not break the code that logged
            self.handleError(record)

    def show_warning(
        self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
        file: TextIO | None = None, line: str | None = None,
    ) -> None:
        """``warnings.showwarning``: the warning as a LogEvent from the part that raised it."""
        module = _module_of(filename) if filename else ""
        source = source_of(module) if module else PYTHON_SOURCE
        try:
            self._emit(LogEvent("warning", source, _first_line(str(message))))
        except Exception:  # as for a record: never break the code that warned
            record = logging.LogRecord("py.warnings", logging.WARNING, filename, lineno,
                                       str(message), None, None)
            self.handleError(record)


def forward_logs(emit: Callable[[Event], None]) -> Callable[[], None]:
    """Send warnings of our loggers, of the libraries beneath them and of the ``warnings``
    module to ``emit`` instead of stderr; returns the undo."""
    handler = _EventHandler(emit)
    loggers = [logging.getLogger(name) for name in FORWARDED_LOGGERS]
    saved = [(logger.propagate, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
        if logger.level == logging.NOTSET or logger.level > logging.WARNING:
            logger.setLevel(logging.WARNING)
    shown_before = warnings.showwarning
    warnings.showwarning = handler.show_warning

    def undo() -> None:
        for logger, (propagate, level) in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.setLevel(level)
        if warnings.showwarning == handler.show_warning:
            warnings.showwarning = shown_before

    return undo
