"""``doctor``: why devices can't see or reach each other, one check per line."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import click

from p2p_transfer.cli.context import EXIT_FAILURE, CliContext, run_async
from p2p_transfer.cli.options import examples
from p2p_transfer.cli.render import JsonRenderer
from p2p_transfer.config import default_download_dir
from p2p_transfer.doctor import DoctorOptions, diagnose
from p2p_transfer.events import CheckEvent
from p2p_transfer.net import RELAY_OFF
from p2p_transfer.node import Node, NodeConfig

#: How each status starts its line for people.
MARKS = {"ok": "✓", "warn": "!", "fail": "✗"}
#: Width of the check names' column.
NAME_WIDTH = 16


def human_lines(check: CheckEvent, width: int | None = None) -> list[str]:
    """``✓ multicast       mDNS works…`` and, when there is advice, ``    → …``; with
    ``width``, wrapped between words with a hanging indent (a terminal would cut words)."""
    head = f"{MARKS[check.status]} {check.check:<{NAME_WIDTH}} "
    lines = _wrapped(head, check.detail, width)
    if check.advice:
        lines += _wrapped(f"  {'':<{NAME_WIDTH}} → ", check.advice, width)
    return lines


def _wrapped(head: str, text: str, width: int | None) -> list[str]:
    """``head`` then ``text``; its further lines indented under the text's start."""
    if width is None or width <= len(head) + 20:  # too narrow to indent: the terminal wraps
        return [head + text]
    return textwrap.wrap(text, width, initial_indent=head, subsequent_indent=" " * len(head),
                         break_long_words=False, break_on_hyphens=False)


def _terminal_width() -> int | None:
    """The terminal's columns when a person reads the output; None when it is piped."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


@click.command(
    "doctor",
    short_help="Find out why devices can't see or reach each other.",
    epilog=examples(
        "p2p-transfer doctor",
        "p2p-transfer doctor --relay default          # also check iroh's public relays",
        "p2p-transfer doctor --dir /media/usb --json",
    ),
)
@click.option("--dir", "download_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="The folder received files go to (default: Downloads/p2p-transfer).")
@click.option("--relay", metavar="RELAY", default=RELAY_OFF, show_default=True,
              help="Also check this relay: default (iroh's public relays) or a URL.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per check.")
@click.pass_obj
def doctor(ctx: CliContext, download_dir: Path | None, relay: str, as_json: bool) -> None:
    """Check why devices can't see or reach each other (multicast, isolation, firewall)."""
    options = DoctorOptions(
        download_dir=(download_dir or default_download_dir()).expanduser(),
        config_dir=ctx.config_dir,
        relay=relay,
    )
    node = Node.without_endpoint(NodeConfig(ctx.config_dir, ctx.device_name))
    render = JsonRenderer() if as_json else None
    if render is not None:
        ctx.logs.to(render)

    async def run() -> int:
        failed = False
        async for check in diagnose(options, node):
            failed |= check.status == "fail"
            if render is not None:
                render(check)
            else:
                for line in human_lines(check, _terminal_width()):
                    click.echo(line)
        return EXIT_FAILURE if failed else 0

    sys.exit(run_async(run()))
