"""The ``p2p-transfer`` command group and its global options."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

import click

from p2p_transfer import __version__
from p2p_transfer.cli.context import EXIT_INTERRUPTED, CliContext
from p2p_transfer.cli.options import HIDDEN_SPELLINGS, examples
from p2p_transfer.cli.render import LogRoute
from p2p_transfer.config import default_device_name, resolve_config_dir
from p2p_transfer.limits import MAX_DEVICE_NAME_CHARS
from p2p_transfer.logs import forward_logs

#: Each command and where it lives, imported only when run: ``send`` need not
#: load the web server's libraries (memory is a budget, not an afterthought).
COMMANDS = {
    "receive": "p2p_transfer.cli.transfer_commands:receive",
    "send": "p2p_transfer.cli.transfer_commands:send",
    "devices": "p2p_transfer.cli.devices_command:devices",
    "doctor": "p2p_transfer.cli.doctor_command:doctor",
    "share": "p2p_transfer.cli.share_command:share_command",
    "pair": "p2p_transfer.cli.pair_commands:pair",
    "id": "p2p_transfer.cli.pair_commands:id_command",
    "app": "p2p_transfer.cli.app_command:app_command",
}


class LazyGroup(click.Group):
    """A command group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """An unknown command names the close one people meant (``recieve``: ``receive``)."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            import difflib  # only for a mistyped command

            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            if close:
                ctx.fail(f"No such command {name!r}. Did you mean {close[0]!r}?")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        """An unknown option never suggests an old spelling kept only as an alias."""
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as exc:
            if exc.possibilities:
                kept = [p for p in exc.possibilities if p not in HIDDEN_SPELLINGS]
                exc.possibilities = kept or None  # type: ignore[misc]
            raise


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples(
        "p2p-transfer receive                      # on the receiving device",
        "p2p-transfer send --to TICKET photos/     # on the sending device",
        "p2p-transfer app                          # or all of it in a local web UI",
    ),
)
@click.version_option(__version__, prog_name="p2p-transfer")
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where identity and pairings live (default: $P2P_TRANSFER_HOME or the OS config dir).",
)
@click.option("--name", "device_name", metavar="NAME", default=None,
              help="This device's name (default: hostname).")
@click.pass_context
def cli(ctx: click.Context, config_dir: Path | None, device_name: str | None) -> None:
    """Send files between devices: peer to peer, verified, resumable."""
    name = (device_name or default_device_name()).strip()
    if not name or len(name) > MAX_DEVICE_NAME_CHARS:
        raise click.BadParameter(f"1 to {MAX_DEVICE_NAME_CHARS} characters", param_hint="--name")
    # ``main`` hands over the route it forwards the warnings to (a test's runner does not).
    logs = ctx.obj if isinstance(ctx.obj, LogRoute) else LogRoute()
    ctx.obj = CliContext(config_dir=resolve_config_dir(config_dir), device_name=name, logs=logs)


def main() -> None:
    """Console-script entry point. Ctrl-C before a command's event loop runs (while it
    loads) ends it as a later one does: "cancelled" and status 130, not click's
    "Aborted!" and 1.

    Every command's warnings (ours, aiohttp's, zeroconf's, asyncio's, the ``warnings``
    module's) become ``log`` events from here to the process's end: none reaches stderr
    raw, none is lost, and under ``--json`` stdout stays JSON lines."""
    logs = LogRoute()
    forward_logs(logs)
    try:
        status = cli.main(prog_name="p2p-transfer", standalone_mode=False, obj=logs)
    except click.Abort:
        click.echo("cancelled", err=True)
        status = EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        status = exc.exit_code
    except SystemExit as exc:  # how a command ends: sys.exit(its status)
        if exc.code is not None and not isinstance(exc.code, int):
            raise  # a message to print: the ordinary exit prints it
        status = exc.code
    exit_now(status if isinstance(status, int) else 0)


def exit_now(status: int) -> NoReturn:
    """End the process once its command is over, without tearing the interpreter down
    object by object: after a transfer of 10,000 files that took 60-110 ms between the
    last line and the exit, against ~15 ms this way. The exit handlers still run and
    both streams are flushed; a thread still running (a command that left one) gets
    the ordinary exit, which waits for it."""
    if threading.active_count() > 1:
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
            stream.flush()
    os._exit(status)
