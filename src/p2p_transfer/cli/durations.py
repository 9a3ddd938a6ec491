"""Durations on the command line: ``60``, ``90s``, ``10m``, ``2h`` (``0`` for none)."""

from __future__ import annotations

import re

import click

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smh]?)", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (a number of seconds, or with a unit s, m or h); ValueError
    when it is none of those."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: give seconds, or e.g. 90s, 10m, 2h")
    return float(match[1]) * _UNIT_SECONDS[match[2].lower()]


class Duration(click.ParamType):
    """A click option's value as seconds."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
