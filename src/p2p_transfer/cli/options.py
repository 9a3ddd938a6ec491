"""Options every command spells the same way: sizes, old names kept as aliases, examples."""

from __future__ import annotations

from typing import Any

import click

from p2p_transfer.units import SizeError, parse_size


class SizeType(click.ParamType):
    """A size as people type it: ``1048576``, ``500M``, ``2G``, ``1.5GiB``."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except SizeError as exc:
            self.fail(str(exc), param, ctx)


#: The old spellings of options (``--bind-addr``, ``--no-discovery``): they work, but no
#: help text or "did you mean" ever offers them.
HIDDEN_SPELLINGS: set[str] = set()


class AliasedOption(click.Option):
    """An option known by its first spelling; the others are old names that still work
    and stay out of ``--help`` (``--bind-addr`` is ``--bind``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        HIDDEN_SPELLINGS.update(self.opts[1:])
        HIDDEN_SPELLINGS.update(self.secondary_opts)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        spellings, secondary = self.opts, self.secondary_opts
        self.opts, self.secondary_opts = spellings[:1], []
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts, self.secondary_opts = spellings, secondary


def examples(*lines: str) -> str:
    """A command's ``--help`` epilog: example command lines, kept as written."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)
