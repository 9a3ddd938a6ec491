"""The ``p2p-transfer`` command group and its global options."""

from __future__ import annotations

from pathlib import Path

import click

from p2p_transfer import __version__
from p2p_transfer.cli.context import CliContext
from p2p_transfer.cli.devices_command import devices
from p2p_transfer.cli.pair_commands import id_command, pair
from p2p_transfer.cli.share_command import share_command
from p2p_transfer.cli.transfer_commands import receive, send
from p2p_transfer.config import default_device_name, resolve_config_dir
from p2p_transfer.limits import MAX_DEVICE_NAME_CHARS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="p2p-transfer")
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where identity and pairings live (default: $P2P_TRANSFER_HOME or the OS config dir).",
)
@click.option("--name", "device_name", default=None, help="This device's name (default: hostname).")
@click.pass_context
def cli(ctx: click.Context, config_dir: Path | None, device_name: str | None) -> None:
    """Send files between devices: peer to peer, verified, resumable."""
    name = (device_name or default_device_name()).strip()
    if not name or len(name) > MAX_DEVICE_NAME_CHARS:
        raise click.BadParameter(f"1 to {MAX_DEVICE_NAME_CHARS} characters", param_hint="--name")
    ctx.obj = CliContext(config_dir=resolve_config_dir(config_dir), device_name=name)


cli.add_command(receive)
cli.add_command(send)
cli.add_command(pair)
cli.add_command(id_command)
cli.add_command(share_command)
cli.add_command(devices)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="p2p-transfer")
