"""``p2p-transfer app``: the desktop app, a long-running node with a local web UI.

Starts the node (receiving all the time, LAN discovery), serves the UI on
127.0.0.1 behind a per-run key and opens it in the default browser. One app
per config dir: a second ``app`` only prints (and opens) the first one's link.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from p2p_transfer.app import AppOptions, AppServer, AppService
from p2p_transfer.app.service import AppError
from p2p_transfer.cli.context import EXIT_FAILURE, CliContext, run_async
from p2p_transfer.cli.options import AliasedOption, examples
from p2p_transfer.cli.render import JsonRenderer, print_log
from p2p_transfer.config import current_umask
from p2p_transfer.disk.writable import write_problem
from p2p_transfer.errors import LocalFault
from p2p_transfer.events import ErrorEvent, Event, LogEvent
from p2p_transfer.limits import APP_DEFAULT_PORT
from p2p_transfer.transfer.session import DataTransport
from p2p_transfer.trust.files import ensure_private_dir, write_private_atomically

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one app per config dir is not enforced
    fcntl = None  # type: ignore[assignment]

#: Held (flock) by the running app, so a second one finds it.
LOCK_FILE_NAME = "app.lock"
#: The running app's UI link (0600: it carries the key).
URL_FILE_NAME = "app-url"


class AlreadyRunning(LocalFault):
    """Another app holds this config dir; ``url`` is its link, if readable."""

    def __init__(self, url: str | None) -> None:
        super().__init__("another app is running with this config dir")
        self.url = url


@contextlib.contextmanager
def single_instance(config_dir: Path) -> Iterator[None]:
    """Hold the config dir's app lock for the duration, or raise AlreadyRunning."""
    ensure_private_dir(config_dir)
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(config_dir / LOCK_FILE_NAME, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    handle: IO[bytes] = os.fdopen(fd, "wb")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(read_url(config_dir)) from None
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(config_dir / URL_FILE_NAME)
    finally:
        handle.close()


def read_url(config_dir: Path) -> str | None:
    """The running app's link, if it wrote one."""
    try:
        return (config_dir / URL_FILE_NAME).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def open_in_browser(url: str) -> None:
    """Open the UI in the default browser (never blocks the event loop for long)."""
    with contextlib.suppress(webbrowser.Error):
        webbrowser.open(url, new=2)


def _say(as_json: bool, url: str, already_running: bool = False) -> None:
    if as_json:
        data: dict[str, Any] = {"event": "ui_url", "url": url}
        if already_running:
            data["already_running"] = True
        click.echo(json.dumps(data))
    elif already_running:
        click.echo(f"p2p-transfer app is already running: {url}")
    else:
        click.echo(f"p2p-transfer app: {url}")
        click.echo("Open that link to use the app (it carries this session's key). Ctrl-C stops.")


class _HumanNotes:
    """Without --json the terminal only hears about failures; the UI shows the rest."""

    def __call__(self, event: Event) -> None:
        if event.name in ("error", "discovery_error"):
            message = getattr(event, "message", "")
            click.echo(f"{event.name.replace('_', ' ')}: {message}", err=True)
        elif isinstance(event, LogEvent):
            print_log(event)


async def _check_download_folder(service: AppService) -> None:
    """Said at start, to the terminal and every open tab: offers of files would be declined."""
    options = service.nodes.receive_options
    if options is None:
        return
    if problem := await asyncio.to_thread(write_problem, options.target):
        service.events.emit(LogEvent(
            "warning", "app", f"cannot save received files into {options.target} ({problem}): "
            "offers of files are declined until it is writable; choose another folder in "
            "Settings or fix this one",
        ))


@click.command(
    "app",
    short_help="Start the desktop app: a local web UI.",
    epilog=examples(
        "p2p-transfer app",
        "p2p-transfer app --port 8384 --no-browser  # then open the link it prints",
        "p2p-transfer app --no-announce             # not seen by others on the LAN",
    ),
)
@click.option("--port", type=click.IntRange(0, 65535), default=APP_DEFAULT_PORT,
              show_default=True, help="Port of the UI on 127.0.0.1 (0: any free port).")
@click.option("--no-browser", is_flag=True, help="Do not open the UI in the browser.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"event": "ui_url", "url"} and then every event as JSON lines.')
@click.option("--bind", "--bind-addr", "bind_addr", cls=AliasedOption, metavar="ADDR",
              default=None, help="Address the QUIC endpoint listens on (default: all).")
@click.option("--share-bind", metavar="ADDR", default=None,
              help="Address the share link listens on (default: the LAN address).")
@click.option("--no-announce", "--no-discovery", "no_discovery", cls=AliasedOption,
              is_flag=True, help="Stay off LAN discovery: do not announce this device (nor "
                                 "list others).")
@click.option("--transport", type=click.Choice(["auto", "quic", "tcp"]), default="auto",
              show_default=True,
              help="Channel for file data: TCP+TLS on a direct LAN path (auto), or only one.")
@click.option("--relay", metavar="RELAY", default=None,
              help="Relay for peers off the LAN: default (iroh's public relays), off, or a "
                   "URL; saved as the app's setting (default: the saved setting, else on).")
@click.option("--mailbox", metavar="URL", default=None,
              help="Code server for send and receive with a code (ws:// or wss://); saved "
                   "as the app's setting (default: $P2P_TRANSFER_MAILBOX, else "
                   "magic-wormhole's public one).")
@click.pass_context
def app_command(
    ctx: click.Context,
    port: int,
    no_browser: bool,
    as_json: bool,
    bind_addr: str | None,
    share_bind: str | None,
    no_discovery: bool,
    transport: DataTransport,
    relay: str | None,
    mailbox: str | None,
) -> None:
    """Start the desktop app: a local web UI for everything the CLI does."""
    obj: CliContext = ctx.obj
    named = ctx.find_root().params.get("device_name") is not None
    options = AppOptions(
        config_dir=obj.config_dir,
        device_name=obj.device_name,
        force_device_name=named,
        bind_addr=bind_addr,
        share_bind=share_bind,
        discovery=not no_discovery,
        umask=current_umask(),
        transport=transport,
        forced_settings={
            key: value for key, value in (("relay", relay), ("mailbox", mailbox))
            if value is not None
        },
    )

    try:
        with single_instance(obj.config_dir):
            status = run_async(_run(options, obj, port, as_json, no_browser))
    except AlreadyRunning as exc:
        if exc.url is None:
            click.echo("error: another app is running with this config dir", err=True)
            sys.exit(EXIT_FAILURE)
        _say(as_json, exc.url, already_running=True)
        if not no_browser:
            open_in_browser(exc.url)
        status = 0
    sys.exit(status)


async def _run(
    options: AppOptions, obj: CliContext, port: int, as_json: bool, no_browser: bool
) -> int:
    """Start the app's service and server, say its URL, and serve until stopped."""
    service = AppService(options)
    render = JsonRenderer() if as_json else _HumanNotes()
    service.events.subscribe(render)
    # Warnings reach the terminal and every open UI tab, as the node's events do.
    obj.logs.to(service.events.emit)
    server = AppServer(service, port)
    try:
        await service.start()
        await server.start()
    except (AppError, OSError) as exc:
        await server.stop()
        await service.close()
        message = getattr(exc, "strerror", None) or str(exc)
        render(ErrorEvent(f"cannot start: {message}"))
        return EXIT_FAILURE
    try:
        await asyncio.to_thread(
            write_private_atomically, obj.config_dir / URL_FILE_NAME, server.url.encode()
        )
        _say(as_json, server.url)
        await _check_download_folder(service)
        if not no_browser:
            await asyncio.to_thread(open_in_browser, server.url)
        try:
            await asyncio.Event().wait()  # until Ctrl-C or SIGTERM
        except asyncio.CancelledError:
            # Stopping is how an app ends: not a failure. Clean up, then exit 0.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        return 0
    finally:
        await server.stop()
        await service.close()
