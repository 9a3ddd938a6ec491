"""``doctor``: why devices can't see or reach each other, one check per line."""

from __future__ import annotations

import sys
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


def human_lines(check: CheckEvent) -> list[str]:
    """``✓ multicast       mDNS works…`` and, when there is advice, ``    → …``."""
    lines = [f"{MARKS[check.status]} {check.check:<{NAME_WIDTH}} {check.detail}"]
    if check.advice:
        lines.append(f"  {'':<{NAME_WIDTH}} → {check.advice}")
    return lines


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
                for line in human_lines(check):
                    click.echo(line)
        return EXIT_FAILURE if failed else 0

    sys.exit(run_async(run()))
