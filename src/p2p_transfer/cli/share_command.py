"""``p2p-transfer share``: a link and QR code where browsers upload to and download from here.

The command builds a ``ShareServer``, asks the host about each upload (a
``y/N`` line on stdin, or ``--yes``) and renders the events: rich for people,
JSON lines with ``--json``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import click
import segno
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, TaskID

from p2p_transfer.cli.context import (
    EXIT_FAILURE,
    CliContext,
    discard_typed_ahead,
    read_line,
    run_async,
    stdin_is_interactive,
)
from p2p_transfer.cli.options import AliasedOption, SizeType, examples
from p2p_transfer.cli.render import JsonRenderer, printable
from p2p_transfer.cli.terminal_screen import transfer_bars
from p2p_transfer.config import (
    current_umask,
    default_device_name,
    default_download_dir,
    resolve_config_dir,
)
from p2p_transfer.events import ErrorEvent, Event, LogEvent, ShareUrlEvent
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.share import ShareConfig, UploadRequest, accept_all
from p2p_transfer.share.address import UNSPECIFIED, NoLanAddressError
from p2p_transfer.share.config import Decision
from p2p_transfer.share.public import PublicShareError, PublicTunnel, load_ngrok
from p2p_transfer.share.server import ShareServer
from p2p_transfer.units import format_size

#: Where the share's events go: the terminal's view or JSON lines.
Renderer = Callable[[Event], None]

#: Longest file name shown in a progress line before it is shortened.
_LABEL_CHARS = 40
#: Answers that accept; anything else (including an empty line) declines.
_YES = frozenset({"y", "yes"})


class TerminalDecider:
    """Asks ``Accept NAME (SIZE) from IP? [y/N]`` on stderr, one upload at a time.

    Answers are lines: ``y`` or ``n`` answer the open question; ``y ID`` or
    ``n ID`` answer only the request with that ID (scripts reading ``--json``
    use these, so an answer meant for a withdrawn question never lands on the
    next one). On a terminal, lines typed while no question was open are
    dropped, so a stray ``y`` accepts nothing. Lines are read on the event loop
    (``context.read_line``), so Ctrl-C at the question ends the program cleanly.
    """

    def __init__(self, view: HumanShareView | None) -> None:
        self._view = view
        self._lock = asyncio.Lock()

    async def __call__(self, request: UploadRequest) -> Decision:
        async with self._lock:
            if stdin_is_interactive():
                discard_typed_ahead()
            if self._view is not None:
                self._view.pause()
            click.echo(
                f"Accept {request.file_name!r} ({format_size(request.file_size)}) "
                f"from {request.who}? [y/N] ",
                err=True, nl=False,
            )
            try:
                answer = await self._answer(request.request_id)
            except asyncio.CancelledError:
                # Withdrawn (no answer in time, the browser left: the view says which,
                # or Ctrl-C): what comes next starts on a line of its own.
                click.echo("", err=True)
                raise
            finally:
                if self._view is not None:
                    self._view.resume()
            if answer is None:
                click.echo("", err=True)
                return "The owner cannot be asked right now."
            return answer

    async def _answer(self, request_id: str) -> bool | None:
        """The next line that answers this request; None once stdin is closed."""
        while True:
            line = await read_line()
            if line is None:
                return None
            word, _, target = line.strip().partition(" ")
            if target and target.strip() != request_id:
                continue  # meant for another (withdrawn) request
            return word.lower() in _YES


class HumanShareView:
    """The share's events for a person: link, QR code, one progress bar per upload."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._paused = False

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.name}", None)
        if handler is not None:
            handler(event)

    def _print(self, *args: Any) -> None:
        target = self._progress.console if self._progress is not None else self.console
        target.print(*args)

    # A question on the terminal must not be overdrawn by the live progress bars.
    def pause(self) -> None:
        """Stop redrawing the progress bars (a question is being asked)."""
        if self._progress is not None and not self._paused:
            self._progress.stop()
        self._paused = True

    def resume(self) -> None:
        """Redraw the progress bars again."""
        if self._progress is not None and self._paused:
            self._progress.start()
        self._paused = False

    def close(self) -> None:
        """Stop the live display."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _bars(self) -> Progress:
        if self._progress is None:
            self._progress = transfer_bars(self.console)
            if not self._paused:
                self._progress.start()
        return self._progress

    def _end_bar(self, request_id: str) -> None:
        task = self._tasks.pop(request_id, None)
        if task is not None and self._progress is not None:
            self._progress.remove_task(task)
            if not self._tasks:
                self.close()

    def _on_share_url(self, event: Any) -> None:
        where = "Public link" if event.public else "Share link"
        self.console.print(f"\n{where}: [bold]{event.url}[/]", soft_wrap=True)
        segno.make(event.url, error="m").terminal(out=self.console.file, compact=True)
        if event.public:
            self.console.print("[yellow]Anyone with this link can reach this share.[/]")

    def _on_share_upload_accepted(self, event: Any) -> None:
        label = event.file_name
        if len(label) > _LABEL_CHARS:
            label = label[: _LABEL_CHARS - 1] + "…"
        self._tasks[event.request_id] = self._bars().add_task(label, total=event.file_size)

    def _on_share_upload_progress(self, event: Any) -> None:
        task = self._tasks.get(event.request_id)
        if task is not None and self._progress is not None:
            self._progress.update(task, completed=event.received_bytes)

    def _on_share_upload_complete(self, event: Any) -> None:
        self._end_bar(event.request_id)
        self._print(
            f"[green]✓[/] received {event.path} ({format_size(event.size)}) "
            f"in {event.seconds:.1f} s"
        )

    def _on_share_upload_failed(self, event: Any) -> None:
        self._end_bar(event.request_id)
        self._print(f"[red]✗[/] {event.file_name}: {event.message}")

    def _on_share_upload_rejected(self, event: Any) -> None:
        why = "declined" if event.code == "declined" else event.reason
        self._print(f"[yellow]–[/] {event.file_name}: not accepted ({why})")

    def _on_share_download_started(self, event: Any) -> None:
        what = "from byte " + str(event.offset) if event.offset else format_size(event.bytes)
        self._print(f"[cyan]↗[/] {event.client} downloads {event.item} ({what})")

    def _on_share_download_done(self, event: Any) -> None:
        if not event.ok:
            self._print(f"[dim]  {event.item}: {event.message}[/]")

    def _on_error(self, event: ErrorEvent) -> None:
        self._print(f"[red]error:[/] {event.message}")

    def _on_log(self, event: LogEvent) -> None:
        self._print(f"[dim]{escape(printable(f'{event.source}: {event.message}'))}[/]")


@click.command(
    "share",
    short_help="A link and QR code: browsers upload and download.",
    epilog=examples(
        "p2p-transfer share                          # browsers upload to this machine",
        "p2p-transfer share --yes --max-size 500M",
        "p2p-transfer share slides.pdf photos/       # and download these",
    ),
)
@click.option("--dir", "upload_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Folder for uploads (default: Downloads/p2p-transfer).")
@click.option("--bind", "--bind-addr", "bind_addr", cls=AliasedOption, metavar="ADDR",
              default=None, help="Address to listen on (default: this machine's LAN address).")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port to listen on (default: any free port).")
@click.option("--yes", "auto_accept", is_flag=True, help="Accept every upload without asking.")
@click.option("--max-size", type=SizeType(), default=None,
              help="Refuse uploads larger than this (e.g. 500M, 2G, 1.5GiB).")
@click.option("--public", is_flag=True,
              help="Also serve through an ngrok tunnel (needs NGROK_AUTHTOKEN and the "
                   "[public] extra).")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.pass_context
def share_command(
    ctx: click.Context,
    upload_dir: Path | None,
    bind_addr: str | None,
    port: int,
    auto_accept: bool,
    max_size: int | None,
    public: bool,
    as_json: bool,
    paths: tuple[Path, ...],
) -> None:
    """Share a link and QR code: browsers upload files here, and download PATHs."""
    view = None if as_json else HumanShareView()
    render = JsonRenderer() if as_json else view
    assert render is not None
    if isinstance(ctx.obj, CliContext):
        ctx.obj.logs.to(render)

    ngrok = None
    if public:
        try:
            ngrok = load_ngrok()
        except PublicShareError as exc:
            _fail(render, as_json, str(exc))

    cli_context: CliContext | None = ctx.obj
    device_name = cli_context.device_name if cli_context else default_device_name()
    config_dir = cli_context.config_dir if cli_context else resolve_config_dir(None)
    folder = (upload_dir or default_download_dir()).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(render, as_json, f"cannot share: {exc}")
    config = ShareConfig(
        upload_dir=folder,
        decide=accept_all if auto_accept else TerminalDecider(view),
        bind=bind_addr,
        port=port,
        shared=list(paths),
        max_size=max_size,
        device_name=device_name,
        umask=current_umask(),
    )
    node = Node.without_endpoint(NodeConfig(config_dir, device_name))
    stop_rendering = node.events.subscribe(render)

    sys.exit(run_async(_serve(
        node, config, render, view, ngrok, stop_rendering, paths, auto_accept
    )))


def _fail(render: Renderer, as_json: bool, message: str) -> NoReturn:
    """The share cannot start: an error event with --json, else click's error line."""
    if as_json:
        render(ErrorEvent(message))
        sys.exit(EXIT_FAILURE)
    raise click.ClickException(message)


async def _serve(
    node: Node, config: ShareConfig, render: Renderer, view: HumanShareView | None,
    ngrok: ModuleType | None, stop_rendering: Callable[[], None], paths: tuple[Path, ...],
    auto_accept: bool,
) -> int:
    """Serve the share until Ctrl-C or SIGTERM (``--public``: through an ngrok tunnel)."""
    try:
        server = await node.open_share(config)
    except NoLanAddressError as exc:
        render(ErrorEvent(str(exc)))
        return EXIT_FAILURE
    except (OSError, ValueError) as exc:
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        render(ErrorEvent(f"cannot share: {what}"))
        return EXIT_FAILURE
    tunnel: PublicTunnel | None = None
    try:
        if view is not None:
            _describe(view.console, config.upload_dir, paths, auto_accept, config.max_size)
        if ngrok is not None:
            tunnel = await _open_tunnel(ngrok, server, node, render)
            if tunnel is None:
                return EXIT_FAILURE
        await asyncio.Event().wait()  # until Ctrl-C or SIGTERM
        return 0
    finally:
        if tunnel is not None:
            await tunnel.close()
        if view is not None:
            # Stopping ends every upload; the person who stopped it needs no line each.
            stop_rendering()
        await node.close()
        if view is not None:
            view.close()


async def _open_tunnel(
    ngrok: ModuleType, server: ShareServer, node: Node, render: Renderer
) -> PublicTunnel | None:
    """``--public``: the share through an ngrok tunnel, its address said as a share URL
    (None, the error said, when the tunnel cannot open)."""
    host, bound_port = server.address
    if host in UNSPECIFIED:
        host = "::1" if ":" in host else "127.0.0.1"
    server.trusted_proxies.add(host)
    try:
        tunnel = await PublicTunnel.open(ngrok, host, bound_port)
    except PublicShareError as exc:
        render(ErrorEvent(str(exc)))
        return None
    node.events.emit(ShareUrlEvent(
        url=f"{tunnel.base_url}/{server.token}", token=server.token, public=True
    ))
    return tunnel


def _describe(
    console: Console, folder: Path, paths: tuple[Path, ...], auto_accept: bool,
    max_size: int | None,
) -> None:
    """What the host should know once, under the QR code."""
    limit = f", up to {format_size(max_size)} each" if max_size is not None else ""
    console.print(f"Uploads go to [bold]{folder}[/]{limit}.")
    if auto_accept:
        console.print("Every upload is accepted (--yes).")
    elif not sys.stdin.isatty():
        console.print("[yellow]No terminal to ask on: answer with lines 'y' or 'n' on stdin.[/]")
    else:
        console.print("You will be asked to accept each file.")
    for path in paths:
        kind = "folder, as zip" if path.is_dir() else format_size(path.stat().st_size)
        console.print(f"  offered: {path.name} ({kind})")
    console.print("[dim]Ctrl-C stops sharing.[/]")
