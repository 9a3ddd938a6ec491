"""``receive`` and ``send``: the two halves of a transfer."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from p2p_transfer.cli.by_code import (
    DevicePicker,
    code_argument,
    complete_code,
    confirm_words,
)
from p2p_transfer.cli.context import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    CliContext,
    ask,
    ask_yes_no,
    run_async,
    stdin_is_interactive,
)
from p2p_transfer.cli.durations import Duration
from p2p_transfer.cli.options import AliasedOption, SizeType, examples
from p2p_transfer.cli.render import JsonRenderer, attempt_count, counted, printable

if TYPE_CHECKING:
    from p2p_transfer.cli.terminal import HumanRenderer
    from p2p_transfer.localsend.sender import PinRequest  # aiohttp: loaded only to send there
from p2p_transfer.config import current_umask, default_download_dir
from p2p_transfer.disk.writable import write_problem
from p2p_transfer.events import (
    CheckEvent,
    ErrorEvent,
    Event,
    LogEvent,
    ReceiverOutcome,
    RouteEvent,
    SendSummaryEvent,
    SessionState,
    StateEvent,
    VerifiedEvent,
    Via,
)
from p2p_transfer.limits import (
    CODE_DIGITS,
    DEFAULT_PARALLEL_FILES,
    DEFAULT_RETRY_FOR,
    ENTRY_DISK_COST,
    LOCALSEND_PORT,
    MAX_PARALLEL_FILES,
    MAX_TEXT_BYTES,
)
from p2p_transfer.localsend.messages import short_fingerprint
from p2p_transfer.localsend.receiver import ReceiverSetup
from p2p_transfer.net import RELAY_DEFAULT, NetError
from p2p_transfer.node import Node, NodeConfig, RunningSession
from p2p_transfer.rendezvous import RendezvousError, mailbox_url
from p2p_transfer.rendezvous import normalize_code as normalize_short_code
from p2p_transfer.rendezvous.classic import transit_relay
from p2p_transfer.transfer import (
    CodeRequest,
    Decision,
    IncomingOffer,
    ReceiveOptions,
    SendOptions,
    TransferError,
    TransferResult,
)
from p2p_transfer.transfer.sender import check_text
from p2p_transfer.transfer.session import DataTransport
from p2p_transfer.trust import IdentityError, normalize_code
from p2p_transfer.trust.verification import CODE_FORM
from p2p_transfer.units import format_size


def _renderer(
    as_json: bool, several: bool = False, asks_unverified: bool = False
) -> HumanRenderer | JsonRenderer:
    if as_json:
        return JsonRenderer()
    from p2p_transfer.cli.terminal import HumanRenderer  # rich, only for people

    return HumanRenderer(several=several, asks_unverified=asks_unverified)


def _code_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    """``--code`` as people write it (``026 767``, ``026-767``...), as bare digits."""
    if value is None:
        return None
    code = normalize_code(value)
    if code is None:
        raise click.BadParameter(f"a code is {CODE_FORM}")
    return code


def _send_code_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    """``send --code``: a 6-digit code (bare digits) or a short code (canonical), as people
    write either; which one it must be depends on ``--to`` (``_which_code``)."""
    if value is None:
        return None
    code = normalize_code(value) or normalize_short_code(value)
    if code is None:
        raise click.BadParameter(
            f"a code is {CODE_FORM} (with --to) or a short code like 7-guitarist-revenge "
            "(without --to)"
        )
    return code


def _which_code(code: str | None, with_to: bool) -> tuple[str | None, str | None]:
    """``send --code`` as the 6-digit code of a send with --to, or the short code of a send
    without; the other form is a usage error that says which is which."""
    if code is None:
        return None, None
    short = not code.isdigit()
    if short and with_to:
        raise click.UsageError(
            f"--code {code} is a short code, for a send without --to; with --to, --code is "
            f"the {CODE_DIGITS}-digit code the receiver shows"
        )
    if not short and not with_to:
        raise click.UsageError(
            "without --to, --code is the short code to send with (like "
            f"7-guitarist-revenge); a {CODE_DIGITS}-digit code is the one a receiver shows, "
            "for --to"
        )
    return (None, code) if short else (code, None)


async def _ask_code(request: CodeRequest) -> str:
    """The code the receiver shows, asked until it looks like one (a typo in its form
    costs no attempt); the end of input gives up."""
    if request.retry:
        click.echo("✗ That code was wrong.", err=True)
    count = attempt_count(request.attempt, request.max_attempts)
    question = f"Code shown on {printable(request.peer_name)}{f' ({count})' if count else ''}: "
    while True:
        typed = await ask(question)
        if typed is None:
            raise TransferError("no verification code entered")
        if (code := normalize_code(typed)) is not None:
            return code
        if typed.strip():
            click.echo(f"A code is {CODE_FORM}.", err=True)


def _exit_code(result: TransferResult | None) -> int:
    """0 only when every file arrived verified; 130 when this side cancelled (Ctrl-C)."""
    if result is not None and result.state is SessionState.CANCELLED and result.by == "local":
        return EXIT_INTERRUPTED
    return 0 if result is not None and result.ok else EXIT_FAILURE


@click.command(
    short_help="Wait for files; prints a ticket and QR code.",
    epilog=examples(
        "p2p-transfer receive",
        "p2p-transfer receive 7-guitarist-revenge   # the code `p2p-transfer send` printed",
        "p2p-transfer receive 7-guitarist-revenge --wait 10m   # before the sender is there",
        "p2p-transfer receive --dir ~/Inbox --yes --once",
        "p2p-transfer receive --max-size 2G --relay off   # this network only",
    ),
)
@click.option("--dir", "target", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to save into (default: Downloads/p2p-transfer).")
@click.option("--once", is_flag=True, help="Exit after one sending session.")
@click.option("--yes", "auto_accept", is_flag=True, help="Accept offers without asking.")
@click.option("--yes-trusted", "accept_trusted", is_flag=True,
              help="Accept offers from trusted (paired) devices without asking; ask about "
                   "the others.")
@click.option("--copy", "copy_texts", is_flag=True,
              help="Also put a text received on the clipboard (through the terminal).")
@click.option("--code", "fixed_code", metavar="CODE", default=None, callback=_code_option,
              help=f"Use this {CODE_DIGITS}-digit code (for scripts).")
@click.option("--bind", "--bind-addr", "bind_addr", cls=AliasedOption, metavar="ADDR",
              default=None,
              help="Address to listen on, HOST or HOST:PORT (default: all, any port); a fixed "
                   "port for a firewall rule: --bind 0.0.0.0:41641.")
@click.option("--max-size", type=SizeType(), default=None,
              help="Decline offers that need more than this (e.g. 500M, 2G, 1.5GiB; each new "
                   f"file or folder counts {format_size(ENTRY_DISK_COST)}).")
@click.option("--relay", metavar="RELAY", default=RELAY_DEFAULT, show_default=True,
              help="default (iroh's public relays, for peers behind NAT; tried in the "
                   "background), off (LAN only) or a relay URL.")
@click.option("--transport", type=click.Choice(["auto", "quic", "tcp"]), default="auto",
              show_default=True,
              help="Channel for file data: TCP+TLS on a direct LAN path (auto), or only one.")
@click.option("--no-announce", "--no-discovery", "announce", cls=AliasedOption, is_flag=True,
              flag_value=False, default=True,
              help="Do not announce this device on the LAN (nor to LocalSend devices); "
                   "senders then need the ticket.")
@click.option("--localsend-port", metavar="N", type=click.IntRange(1, 65535),
              default=LOCALSEND_PORT, show_default=True,
              help="TCP port for LocalSend devices (HTTPS).")
@click.option("--no-localsend", "localsend", is_flag=True, flag_value=False, default=True,
              help="Do not receive from LocalSend devices.")
@click.option("--localsend-pin", default=None, metavar="PIN",
              help="LocalSend senders must type this PIN first.")
@click.option("--mailbox", metavar="URL", default=None,
              help="Code server for CODE (default: $P2P_TRANSFER_MAILBOX, else "
                   "magic-wormhole's public one).")
@click.option("--transit-relay", "transit", metavar="HOST:PORT", default=None,
              help="Relay for a CODE from `wormhole send` when no direct path works "
                   "(default: $P2P_TRANSFER_TRANSIT_RELAY, else magic-wormhole's public "
                   "one, transit.magic-wormhole.io:4001).")
@click.option("--wait", metavar="DURATION", type=Duration(), default="0",
              help="With CODE: when its sender is not there yet (the other device runs "
                   "`send --code CODE` later), wait for it this long (seconds, or 10m, 2h); "
                   "without, a code nobody sends with fails at once.")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.argument("code", required=False, metavar="[CODE]", callback=code_argument,
                shell_complete=complete_code)
@click.pass_obj
def receive(
    ctx: CliContext,
    target: Path | None,
    once: bool,
    auto_accept: bool,
    accept_trusted: bool,
    copy_texts: bool,
    fixed_code: str | None,
    bind_addr: str | None,
    max_size: int | None,
    relay: str,
    transport: DataTransport,
    announce: bool,
    localsend_port: int,
    localsend: bool,
    localsend_pin: str | None,
    mailbox: str | None,
    transit: str | None,
    wait: float,
    as_json: bool,
    code: str | None,
) -> None:
    """Wait for files: prints a ticket (and QR code) for the sender; LocalSend devices can
    send here too. With a CODE (from `p2p-transfer send` or `wormhole send`), receive
    what it brings and exit. Files are saved into Downloads/p2p-transfer unless --dir
    says otherwise; each offer is asked about unless --yes (or, from trusted devices,
    --yes-trusted)."""
    if copy_texts and as_json:
        raise click.UsageError("--copy is for a terminal; with --json take the text from "
                               "the text event")
    if wait and code is None:
        raise click.UsageError("--wait is for `receive CODE` (a sender yet to come with that "
                               "code); without a code, receive waits for senders anyway")
    options = ReceiveOptions(
        target=(target or default_download_dir()).expanduser(),
        auto_accept=auto_accept,
        fixed_code=fixed_code,
        max_size=max_size,
        umask=current_umask(),
        transport=transport,
    )
    renderer = _renderer(as_json)
    ctx.logs.to(renderer)
    if copy_texts and not isinstance(renderer, JsonRenderer):
        renderer.copy_texts = True
    job = _ReceiveJob(
        ctx=ctx, options=options, decide=OfferAnswers(accept_trusted), renderer=renderer,
        code=code, bind_addr=bind_addr, relay=relay, announce=announce, once=once,
        localsend=localsend, localsend_port=localsend_port, localsend_pin=localsend_pin,
        mailbox=mailbox, transit=transit, wait=wait,
    )
    # Nothing was under way when Ctrl-C came (a transfer says what it cancelled itself).
    sys.exit(run_async(_run_receive(job), lambda: renderer.cancel_shown, said="stopped"))


class OfferAnswers:
    """The receiver's answer to an offer: yes for a paired sender with ``--yes-trusted``,
    else the person's (no terminal: declined, saying how to accept)."""

    def __init__(self, accept_trusted: bool) -> None:
        self._accept_trusted = accept_trusted
        #: Watches the node's events for senders that came in on their pairing.
        self.paired_sessions = PairedSessions()

    async def __call__(self, offer: IncomingOffer) -> Decision:
        if self._accept_trusted and self.paired_sessions.came_in_paired(offer):
            return Decision(True)
        if not stdin_is_interactive():
            return Decision(False, "the receiver cannot be asked (no terminal); use --yes")
        answer = await ask_yes_no(offer_question(offer))
        return Decision(True) if answer else Decision(False, "declined by the receiver")


@dataclass(frozen=True, slots=True)
class _ReceiveJob:
    """What one ``receive`` command was asked to do, for its run."""

    ctx: CliContext
    options: ReceiveOptions
    decide: OfferAnswers
    renderer: HumanRenderer | JsonRenderer
    code: str | None
    bind_addr: str | None
    relay: str
    announce: bool
    once: bool
    localsend: bool
    localsend_port: int
    localsend_pin: str | None
    mailbox: str | None
    transit: str | None
    #: ``--wait``: how long a CODE's sender may take to come.
    wait: float


async def _run_receive(job: _ReceiveJob) -> int:
    """Start the node, then take what a CODE brings or serve until stopped (``--once``:
    one session)."""
    renderer, code = job.renderer, job.code
    try:
        url = mailbox_url(job.mailbox) if code is not None else ""
        relay_for_classic = transit_relay(job.transit) if code is not None else ""
        # A plain receiver keeps its port, so that its ticket keeps working.
        node = await Node.start(NodeConfig(
            job.ctx.config_dir, job.ctx.device_name, job.bind_addr, job.relay,
            stable_port=code is None,
        ))
    except (IdentityError, NetError, RendezvousError) as exc:
        renderer(ErrorEvent(str(exc), detail=exc.detail))
        return EXIT_FAILURE
    node.events.subscribe(renderer)
    node.events.subscribe(job.decide.paired_sessions)
    if problem := await asyncio.to_thread(write_problem, job.options.target):
        renderer(unwritable_folder(job.options.target, problem))
    try:
        if code is not None:
            return await _receive_by_code(
                node, code, job, url, relay_for_classic
            )
        return await _serve(node, job)
    finally:
        renderer.close()
        await node.close()


async def _serve(node: Node, job: _ReceiveJob) -> int:
    """A receiver without a code: announced, its ticket shown, LocalSend let in, serving."""
    if job.announce:
        await node.announce_on_lan()
    node.announce_ticket()
    node.connect_relay_in_background()
    await node.answer_address_queries()
    if job.localsend:
        await _serve_localsend(
            node, ReceiverSetup(job.options, job.decide, job.localsend_pin),
            job.localsend_port, job.announce, job.renderer,
        )
    result = await node.serve(job.options, job.decide, once=job.once)
    return _exit_code(result)


def unwritable_folder(folder: Path, problem: str) -> CheckEvent:
    """Said as soon as it is known: offers of files will be declined, and why."""
    return CheckEvent(
        "download folder", "fail", f"cannot save into {folder} ({problem})",
        "offers of files are declined until it is writable: choose another folder (--dir) "
        "or fix this one",
    )


class PairedSessions:
    """Sessions whose sender came in on its pairing (not by typing the code just now):
    ``--yes-trusted`` accepts only their offers, as the app's setting does."""

    def __init__(self) -> None:
        self._sessions: set[str] = set()

    def __call__(self, event: Event) -> None:
        if isinstance(event, VerifiedEvent) and event.by == "pairing":
            self._sessions.add(event.session)
        elif isinstance(event, StateEvent) and event.state.final:
            self._sessions.discard(event.session)

    def came_in_paired(self, offer: IncomingOffer) -> bool:
        return offer.via != "localsend" and offer.session in self._sessions


async def _receive_by_code(
    node: Node, code: str, job: _ReceiveJob, mailbox: str, relay: str
) -> int:
    """``receive CODE``: meet the code's sender (``--wait``: one that comes later), take
    what it sends, exit."""
    code = await confirm_words(code)
    try:
        result = await node.receive_by_code(
            code, job.options, job.decide, mailbox, relay, job.wait
        )
    except RendezvousError as exc:
        job.renderer(ErrorEvent(str(exc), detail=exc.detail))
        return EXIT_FAILURE
    return _exit_code(result)


def offer_question(offer: IncomingOffer) -> str:
    """The y/N question for an offer; a LocalSend one says who it claims to be, and that
    nothing proves it."""
    size = format_size(offer.total_bytes)
    what = f"a text ({size})" if offer.text else f"{counted(offer.files, 'file')}, {size}"
    if offer.via == "magic-wormhole":
        return (f"Accept {what} from a magic-wormhole client (`wormhole send`; checked by "
                "a SHA-256 of the whole transfer)?")
    if offer.via != "localsend":
        return f"Accept {what} from {printable(offer.peer_name)}?"
    model = f"{offer.device_model}, " if offer.device_model else ""
    return (
        f"Accept {what} from {printable(offer.peer_name)} via LocalSend ({printable(model)}"
        f"{short_fingerprint(offer.peer_id)}; LocalSend does not prove who sends)?"
    )


async def _serve_localsend(
    node: Node,
    setup: ReceiverSetup,
    port: int,
    announce: bool,
    renderer: HumanRenderer | JsonRenderer,
) -> None:
    """Let LocalSend devices send here; a taken port is a warning, not the end."""
    from p2p_transfer.localsend import CertificateError

    try:
        await node.start_localsend(setup, port, announce=announce)
    except (OSError, CertificateError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        renderer(LogEvent(
            "warning", "localsend",
            f"LocalSend devices cannot send here: TCP port {port}: {reason} "
            "(use --localsend-port N or --no-localsend)",
        ))


@click.command(
    short_help="Send files, folders or a text to one or more receivers.",
    epilog=examples(
        "p2p-transfer send photos/   # prints a code for `p2p-transfer receive CODE`",
        "p2p-transfer send --code 7-guitarist-revenge photos/   # a code chosen beforehand",
        "p2p-transfer send --to endpointacjy…7qaaab report.pdf photos/",
        "p2p-transfer send --to laptop notes.txt        # a receiver on this network",
        "p2p-transfer send --to laptop --to phone photos/   # to each of them",
        "p2p-transfer send --to laptop --text 'https://example.org/a-long-link'",
        "p2p-transfer send --to laptop --text - < note.txt   # the text from stdin",
        "p2p-transfer send --to 192.168.1.20:41641 --code 026767 big.iso",
        "p2p-transfer send --to localsend:192.168.1.30 photo.jpg   # a LocalSend device",
        "p2p-transfer send --to phone --yes photo.jpg   # a LocalSend device, without asking",
    ),
)
@click.option("--to", "targets", metavar="TICKET|NAME|HOST:PORT|localsend:HOST[:PORT]",
              multiple=True,
              help="The receiver's ticket, its HOST:PORT, or its device name (or endpoint-ID "
                   "prefix) on this LAN; a LocalSend device by localsend:HOST[:PORT] or name. "
                   "Give it several times to send to each receiver. Without --to, a short "
                   "code is printed for `p2p-transfer receive CODE` on the other device.")
@click.option("--text", metavar="TEXT", default=None,
              help="Send this text (a note, a link, a password; up to "
                   f"{format_size(MAX_TEXT_BYTES)}) instead of files; - reads it from stdin.")
@click.option("--code", metavar="CODE", default=None, callback=_send_code_option,
              help="With --to: the verification code the receiver shows (asked for when "
                   "not given). Without --to: the short code to use instead of a new one "
                   "(7-guitarist-revenge), for a receiver that may already wait with it "
                   "(`receive CODE --wait`).")
@click.option("--parallel", metavar="N", type=click.IntRange(1, MAX_PARALLEL_FILES),
              default=DEFAULT_PARALLEL_FILES, show_default=True, help="Files in flight at once.")
@click.option("--follow-symlinks", is_flag=True, help="Send what symlinks point to.")
@click.option("--transport", type=click.Choice(["auto", "quic", "tcp"]), default="auto",
              show_default=True,
              help="Channel for file data: TCP+TLS on a direct LAN path (auto), or only one.")
@click.option("--relay", metavar="RELAY", default=RELAY_DEFAULT, show_default=True,
              help="default (iroh's public relays, for peers behind NAT; tried in the "
                   "background), off (LAN only) or a relay URL.")
@click.option("--yes", "unverified_ok", is_flag=True,
              help="Send to a LocalSend device found by name without asking (its files go "
                   "unverified by the receiver's key).")
@click.option("--mailbox", metavar="URL", default=None,
              help="Code server for a send without --to (default: $P2P_TRANSFER_MAILBOX, "
                   "else magic-wormhole's public one).")
@click.option("--transit-relay", "transit", metavar="HOST:PORT", default=None,
              help="Relay for a code typed into `wormhole receive` when no direct path "
                   "works (default: $P2P_TRANSFER_TRANSIT_RELAY, else magic-wormhole's "
                   "public one, transit.magic-wormhole.io:4001).")
@click.option("--wait", metavar="DURATION", type=Duration(), default="0",
              help="When the receiver can't be reached yet (off, away, not on this network "
                   "yet), wait for it this long (seconds, or 10m, 2h), then send.")
@click.option("--retry-for", metavar="DURATION", type=Duration(),
              default=f"{DEFAULT_RETRY_FOR:.0f}s", show_default=True,
              help="When the connection breaks during a transfer, keep trying to reach the "
                   "receiver for this long (seconds, or 90s, 10m, 2h), then continue where it "
                   "stopped; 0 gives up at once.")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.argument("paths", nargs=-1, metavar="[PATH]...",
                type=click.Path(exists=True, path_type=Path))
@click.pass_obj
def send(
    ctx: CliContext,
    targets: tuple[str, ...],
    text: str | None,
    code: str | None,
    parallel: int,
    follow_symlinks: bool,
    relay: str,
    transport: DataTransport,
    unverified_ok: bool,
    mailbox: str | None,
    transit: str | None,
    wait: float,
    retry_for: float,
    as_json: bool,
    paths: tuple[Path, ...],
) -> None:
    """Send files and folders, or a text (--text), to a receiver; with several --to, to
    each of them at once (a line each at the end says how it went); without --to, to
    whoever types the short code this prints. A name only a LocalSend device answers to
    is asked about first (its files go unverified)."""
    if text is not None and paths:
        raise click.UsageError("send either --text or files, not both")
    if text is None and not paths:
        raise click.UsageError("name the files or folders to send (or --text)")
    receivers = list(dict.fromkeys(targets))  # the same receiver twice gets one send
    code, chosen = _which_code(code, bool(receivers))
    several = len(receivers) > 1
    asks_unverified = not (as_json or unverified_ok)
    renderer = _renderer(as_json, several, asks_unverified)
    ctx.logs.to(renderer)
    if text is not None:
        try:
            text = _text_to_send(text)
            check_text(text, [])
        except TransferError as exc:
            renderer(ErrorEvent(str(exc)))
            sys.exit(EXIT_FAILURE)
    options = SendOptions(
        parallel=parallel, follow_symlinks=follow_symlinks, code=code, transport=transport,
        text=text, retry_for=retry_for, wait=wait,
    )
    job = _SendJob(
        ctx=ctx, receivers=receivers, paths=list(paths), options=options, renderer=renderer,
        relay=relay, mailbox=mailbox, transit=transit, as_json=as_json,
        asks_unverified=asks_unverified, chosen_code=chosen,
    )
    sys.exit(run_async(_run_send(job), lambda: renderer.cancel_shown))


class SendQuestions:
    """What a send may ask the person at the terminal: the receiver's code, a LocalSend
    PIN, whether to send unverified; the live displays wait while each is on screen."""

    def __init__(self, renderer: HumanRenderer | JsonRenderer) -> None:
        self._renderer = renderer

    async def code(self, request: CodeRequest) -> str:
        with _asking(self._renderer, request.session):
            return await _ask_code(request)

    async def pin(self, request: PinRequest) -> str:
        if not stdin_is_interactive():
            raise TransferError(f"{request.peer_name} asks for a PIN; run send in a terminal")
        again = "Wrong PIN. " if request.retry else ""
        with _asking(self._renderer, request.session):
            pin = await ask(f"{again}PIN for {printable(request.peer_name)} (LocalSend): ",
                            hidden=True)
        if pin is None:
            raise TransferError("no PIN entered")
        return pin.strip()

    async def confirm(self, route: RouteEvent) -> bool:
        """A LocalSend device found by name: go on only when the user says so."""
        if not stdin_is_interactive():
            raise TransferError(f"{route.warning}; nothing sent (add --yes to send anyway)")
        with _asking(self._renderer, route.session):
            return await ask_yes_no(f"{printable(route.warning)} — continue?")


@dataclass(frozen=True, slots=True)
class _SendJob:
    """What one ``send`` command was asked to do, for its run."""

    ctx: CliContext
    receivers: list[str]
    paths: list[Path]
    options: SendOptions
    renderer: HumanRenderer | JsonRenderer
    relay: str
    mailbox: str | None
    transit: str | None
    as_json: bool
    asks_unverified: bool
    #: ``--code`` without ``--to``: the short code to send with (None: a new one).
    chosen_code: str | None = None


async def _run_send(job: _SendJob) -> int:
    """Start the node, then send by code (no --to) or to each receiver."""
    renderer, receivers = job.renderer, job.receivers
    try:
        url = mailbox_url(job.mailbox) if not receivers else ""
        relay_for_classic = transit_relay(job.transit) if not receivers else ""
        node = await Node.start(
            NodeConfig(job.ctx.config_dir, job.ctx.device_name, relay=job.relay)
        )
    except (IdentityError, NetError, RendezvousError) as exc:
        renderer(ErrorEvent(str(exc), detail=exc.detail))
        return EXIT_FAILURE
    node.events.subscribe(renderer)
    taken = _routes_taken(node)
    questions = SendQuestions(renderer)
    try:
        if not receivers:
            picker = (
                DevicePicker(node, job.paths, job.options, questions.code, questions.pin)
                if stdin_is_interactive() and not job.as_json else None
            )
            return _exit_code(await _send_by_code(
                node, job, url, relay_for_classic, picker
            ))
        return await _send_to_receivers(node, job, questions, taken)
    finally:
        renderer.close()
        await node.close()


async def _send_to_receivers(
    node: Node, job: _SendJob, questions: SendQuestions, taken: dict[str, Via]
) -> int:
    """A send with --to: to each receiver at once; with several, a summary at the end."""
    # Without a terminal nobody can be asked: the first wrong code ends the send.
    sessions = [
        node.start_send(to, job.paths, job.options,
                        questions.code if stdin_is_interactive() else None, questions.pin,
                        questions.confirm if job.asks_unverified else None)
        for to in job.receivers
    ]
    results = [await session.outcome() for session in sessions]
    if len(job.receivers) > 1:
        job.renderer(_summary(
            job.receivers, sessions, results, job.options.text is not None, taken
        ))
    return _sends_exit_code(results)


async def _send_by_code(
    node: Node, job: _SendJob, mailbox: str, relay: str, picker: DevicePicker | None
) -> TransferResult:
    """A send without --to: its code (a new one, or ``--code``) waits for the other
    device (or, in a terminal, the person picks a device on this network instead)."""
    session = node.start_send_by_code(
        job.paths, job.options, mailbox, picker.redirect if picker is not None else None,
        relay, job.chosen_code,
    )
    picking = asyncio.create_task(picker.run(session)) if picker is not None else None
    try:
        return await session.outcome()
    finally:
        if picking is not None:
            picking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await picking


def _text_to_send(text: str) -> str:
    """``--text``'s value, or with ``-`` what stdin holds (one final line break dropped),
    read no further than a text may be long."""
    if text != "-":
        return text
    if stdin_is_interactive():
        click.echo("Type the text; end it with Ctrl-D on a line of its own.", err=True)
    data = sys.stdin.buffer.read(MAX_TEXT_BYTES + 2)  # room for a final line break
    if len(data.removesuffix(b"\n").removesuffix(b"\r")) > MAX_TEXT_BYTES:
        raise TransferError(
            f"the text on stdin is over the {MAX_TEXT_BYTES:,} bytes "
            f"({format_size(MAX_TEXT_BYTES)}) a text message holds; send it as a file"
        )
    try:
        return data.decode().removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        raise TransferError("the text on stdin is not UTF-8") from None


@contextlib.contextmanager
def _asking(renderer: HumanRenderer | JsonRenderer, key: str) -> Iterator[None]:
    """The terminal's live displays wait while a question is on screen."""
    if isinstance(renderer, JsonRenderer):
        yield
        return
    with renderer.asking(key):
        yield


def _routes_taken(node: Node) -> dict[str, Via]:
    """The protocol each send session took, from its ``route`` event."""
    taken: dict[str, Via] = {}

    def note(event: Event) -> None:
        if isinstance(event, RouteEvent):
            taken[event.session] = event.via

    node.events.subscribe(note)
    return taken


def _summary(
    receivers: list[str], sessions: list[RunningSession], results: list[TransferResult],
    text: bool, taken: dict[str, Via],
) -> SendSummaryEvent:
    """How the send went for each receiver, in the order they were given."""
    outcomes = [
        ReceiverOutcome(
            to, session.id, session.lifecycle.peer_name, result.state, result.files,
            result.bytes_total if result.ok else result.bytes_transferred, text, result.message,
            taken.get(session.id, "p2p-transfer"),
        )
        for to, session, result in zip(receivers, sessions, results, strict=True)
    ]
    return SendSummaryEvent(all(result.ok for result in results), outcomes)


def _sends_exit_code(results: list[TransferResult]) -> int:
    """0 only when every receiver got every file; 130 when this side cancelled."""
    codes = [_exit_code(result) for result in results]
    if EXIT_INTERRUPTED in codes:
        return EXIT_INTERRUPTED
    return max(codes)
