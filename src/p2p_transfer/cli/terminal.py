"""The event stream for people at a terminal: progress bars, the ticket's QR code.

Kept apart from the JSON renderer so scripts (``--json``) never load rich.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import segno
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.style import Style
from rich.text import Text

from p2p_transfer.cli.render import attempt_count, counted, printable
from p2p_transfer.events import (
    CheckEvent,
    CodeEvent,
    ConnectionEvent,
    DecisionEvent,
    DeviceEvent,
    DialingEvent,
    DiscoveryErrorEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    FileDoneEvent,
    FileFailedEvent,
    InviteEvent,
    LocalSendReadyEvent,
    LogEvent,
    LookupEvent,
    OfferEvent,
    OfferSentEvent,
    ProgressEvent,
    QueuedEvent,
    ReceiverOutcome,
    ReconnectedEvent,
    ReconnectingEvent,
    RelayEvent,
    RendezvousEvent,
    ResumeEvent,
    RouteEvent,
    SendSummaryEvent,
    SessionState,
    StateEvent,
    TextEvent,
    TicketEvent,
    VerifiedEvent,
)
from p2p_transfer.limits import REACH_NOTICE_DELAY
from p2p_transfer.trust.verification import format_code
from p2p_transfer.units import format_rate, format_size

#: How many ``HOST:PORT`` alternatives the receiver prints.
ADDRESSES_SHOWN = 3
#: Longest file name in a progress line before it is shortened from the left.
LABEL_CHARS = 40


def shown(text: str) -> str:
    """Peer-supplied text made safe for a terminal: no control characters, no markup."""
    return escape(printable(text))


_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown_lines(text: str) -> str:
    """A message of several lines (an ambiguity listing every device): each line made safe
    as ``shown`` makes it, the lines after the first indented under it, so no line of it
    can pass for a line of its own."""
    first, *rest = text.split("\n")
    return "\n".join([shown(first), *(f"  {shown(line)}" for line in rest)])


#: What the summary says of files that came over LocalSend: nothing was hashed end to end.
UNVERIFIED = "not verified end to end"
#: What the classic magic-wormhole transfer checks: no per-file BLAKE3, one SHA-256 ack.
WORMHOLE_CHECKED = "SHA-256 of the whole transfer, acknowledged by the receiver"
#: Protocols other than ours, by ``via``: their name and what they checked end to end.
_OTHER_WAYS: dict[str, tuple[str, str]] = {
    "localsend": ("LocalSend", UNVERIFIED),
    "magic-wormhole": ("magic-wormhole", WORMHOLE_CHECKED),
}


#: A text over magic-wormhole has no SHA-256: it goes in a message under the code's key.
WORMHOLE_TEXT_CHECKED = "sent under the code's key, acknowledged by the receiver"


def via_note(via: str, text: bool = False) -> str:
    """`` via LocalSend — not verified end to end`` (or magic-wormhole's check) beside a
    result that did not come our way: never "verified" where BLAKE3 did not check it."""
    name, checked = _OTHER_WAYS.get(via, _OTHER_WAYS["localsend"])
    if text and via == "magic-wormhole":
        checked = WORMHOLE_TEXT_CHECKED
    return f" via {name} — [yellow]{checked}[/]"


#: A web address in a text, up to the first blank (or control character, which a text
#: shown never holds: they are replaced before).
_URL = re.compile(r"\bhttps?://[^\s\x00-\x1f\x7f-\x9f]+")
#: Punctuation that ends a sentence after an address rather than belonging to it.
_URL_TAIL = ".,;:!?)]}'\""
#: Terminals known not to understand OSC 8 links or OSC 52 (they would print them).
_PLAIN_TERMINALS = {"dumb", "linux", "vt100", "vt220"}


def terminal_sequences_allowed(console: Console) -> bool:
    """True for a terminal that may take links (OSC 8) and clipboard writes (OSC 52):
    a real terminal that is not one known to show such sequences as text."""
    return console.is_terminal and os.environ.get("TERM", "") not in _PLAIN_TERMINALS


def text_body(text: str, links: bool) -> Text:
    """A received text as it goes on screen: control characters (escape sequences) replaced
    so the text cannot drive the terminal, no markup, lines and tabs kept; with ``links``
    its web addresses are terminal hyperlinks (OSC 8) to exactly what is shown."""
    safe = _CONTROL_BUT_LINES.sub("?", text)
    body = Text(safe)
    if links:
        for match in _URL.finditer(safe):
            url = match[0].rstrip(_URL_TAIL)
            body.stylize(Style(link=url), match.start(), match.start() + len(url))
    return body


def clipboard_sequence(text: str) -> str:
    """OSC 52: asks the terminal to put ``text`` on the system clipboard (base64 carries it,
    so nothing in the text can end the sequence early)."""
    return f"\x1b]52;c;{base64.b64encode(text.encode()).decode()}\x07"


def declined_line(reason: str) -> str:
    """``declined: not enough disk space…``; a reason that says "declined" already is said
    once (``declined by the receiver``)."""
    if reason.startswith("declined"):
        return f"[yellow]{shown(reason)}[/]"
    return f"[yellow]declined:[/] {shown(reason)}" if reason else "[yellow]declined[/]"


class RateColumn(ProgressColumn):
    """Speed in IEC units (``12.5 MiB/s``), like every other size this program shows."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        # Nothing until there is a speed to say (a tiny file is done before there is one).
        return Text("" if speed is None else format_rate(speed), style="progress.data.speed")


def transfer_bars(console: Console) -> Progress:
    """Progress bars for bytes moving: name, bar, done/total, speed, time left."""
    return Progress(
        TextColumn("{task.description}", table_column=None),
        BarColumn(),
        DownloadColumn(binary_units=True),
        RateColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@dataclass(slots=True)
class _Session:
    """What the terminal remembers of one session while it runs."""

    direction: str = ""
    peer_name: str = ""
    connected: bool = False
    #: Prints "trying to reach …" if the connection takes a while.
    reach_notice: asyncio.TimerHandle | None = None
    overall: TaskID | None = None
    files: dict[str, TaskID] = field(default_factory=dict)
    #: Bytes the receiver holds of this transfer (the last progress said), for a cancel.
    bytes_done: int = 0
    #: Its code is on screen: a code event for it is a retry.
    code_shown: bool = False
    #: Its line in the "waiting for … to accept" display, while it waits.
    waiting: TaskID | None = None


class HumanRenderer:
    """Progress bars, the ticket's QR code, codes and outcomes, for a terminal.

    With ``several`` (a send to several receivers) each session's lines begin with its
    receiver's name, and the summary event lists how each one went.
    """

    def __init__(
        self,
        console: Console | None = None,
        show_qr: bool = True,
        several: bool = False,
        asks_unverified: bool = False,
    ) -> None:
        self.console = console or Console(stderr=False, highlight=False)
        self._show_qr = show_qr
        self._several = several
        #: The command asks before sending to a LocalSend device found by name (its question
        #: says the warning, so the route's line need not).
        self._asks_unverified = asks_unverified
        self._bars: Progress | None = None
        #: "waiting for NAME to accept…" with the time elapsed, while receivers decide.
        self._waiting: Progress | None = None
        #: Questions that may be on screen (an offer's, a code's): no live display may
        #: draw over them.
        self._questions_open: set[str] = set()
        #: Questions of the command's own (a code, a PIN) being asked, and the lines that
        #: came meanwhile: they wait, so none lands on the question's line.
        self._asking = 0
        self._held: list[tuple[tuple[object, ...], dict[str, Any]]] = []
        self._sessions: dict[str, _Session] = {}
        #: A cancel was already told (Ctrl-C need not say it again).
        self.cancel_shown = False
        #: The ticket is on screen (a later one, naming the relay, is a line).
        self._ticket_shown = False

    #: ``receive --copy``: a text received also goes to the clipboard.
    copy_texts = False

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.name}", None)
        if handler is not None:
            handler(event)

    @property
    def drawing(self) -> bool:
        """A live display (bars, the wait for an answer) redraws itself now: nothing may be
        asked on the terminal meanwhile."""
        return any(
            live is not None and live.live.is_started for live in (self._bars, self._waiting)
        )

    def close(self) -> None:
        """Stop the live displays (what they show last stays on screen)."""
        if self._waiting is not None:
            self._waiting.stop()
            self._waiting = None
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
        for session in self._sessions.values():
            if session.reach_notice is not None:
                session.reach_notice.cancel()

    def _session(self, session_id: str) -> _Session:
        return self._sessions.setdefault(session_id, _Session())

    def _print(self, *args: object, **options: Any) -> None:
        if self._asking:
            self._held.append((args, options))
            return
        target = self._bars.console if self._bars is not None else self.console
        target.print(*args, **options)

    def _say(self, session_id: str | None, line: str) -> None:
        """A line about one session: with several receivers, it names whom it is about."""
        session = self._sessions.get(session_id) if session_id is not None else None
        if self._several and session is not None and session.peer_name:
            line = f"{shown(session.peer_name)}: {line}"
        self._print(line)

    def _named(self, session: _Session, peer_name: str) -> None:
        if peer_name:
            session.peer_name = peer_name

    # --- the live displays -------------------------------------------------------------

    @contextlib.contextmanager
    def asking(self, key: str) -> Iterator[None]:
        """While a question of the command's own (a code, a PIN) is on screen: the live
        displays stop, and other sessions' lines wait until it is answered."""
        self._pause(key)
        self._asking += 1
        try:
            yield
        finally:
            self._asking -= 1
            if not self._asking:
                held, self._held = self._held, []
                for args, options in held:
                    self._print(*args, **options)
            self._resume(key)

    def _pause(self, key: str) -> None:
        """A question comes: live displays stop redrawing (their last state stays above it;
        the waiting display, which the answer replaces, goes)."""
        if not self._questions_open:
            for live in (self._bars, self._waiting):
                if live is not None:
                    live.stop()
        self._questions_open.add(key)

    def _resume(self, key: str) -> None:
        """The question was answered: live displays draw again once no other one is open."""
        if key not in self._questions_open:
            return
        self._questions_open.discard(key)
        if not self._questions_open:
            for live in (self._bars, self._waiting):
                if live is not None:
                    live.start()

    def _start_waiting(self, session: _Session, description: str) -> None:
        """Show "waiting for NAME to accept…" with the time elapsed; with several receivers
        (whose bars may already move: one live display at a time) as a plain line."""
        if self._several:
            self._print(description)
            return
        if self._waiting is None:
            self._waiting = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,  # the answer replaces it
            )
            if not self._questions_open:
                self._waiting.start()
        session.waiting = self._waiting.add_task(description, total=None)

    def _stop_waiting(self, session: _Session | None) -> None:
        """A session's wait is over (None: every session's)."""
        if self._waiting is None:
            return
        for each in self._sessions.values() if session is None else [session]:
            if each.waiting is not None:
                self._waiting.remove_task(each.waiting)
                each.waiting = None
        if not self._waiting.tasks:
            self._waiting.stop()
            self._waiting = None

    def _live_bars(self) -> Progress:
        if self._bars is None:
            self._bars = transfer_bars(self.console)
            if not self._questions_open:
                self._bars.start()
        return self._bars

    def _end_bars(self, session: _Session) -> None:
        """A session ended: its file bars go, its overall bar stays as it ended; the
        display stops when no other session has bars, so nothing draws over what follows."""
        bars = self._bars
        if bars is None:
            return
        for task in session.files.values():
            bars.remove_task(task)
        session.files.clear()
        session.overall = None
        if not any(other.overall is not None for other in self._sessions.values()):
            bars.stop()
            self._bars = None

    # --- before the transfer -----------------------------------------------------------

    def _on_ticket(self, event: TicketEvent) -> None:
        if self._ticket_shown:  # the same device, now also reachable through its relay
            self._print("This ticket also works across the internet (through the relay):")
            self._print(f"  p2p-transfer send --to {event.ticket} FILE...")
            return
        self._ticket_shown = True
        self.console.print(f"[bold]{shown(event.device_name)}[/] is ready to receive.")
        if self._show_qr:
            qr = segno.make(event.ticket, error="l")
            qr.terminal(out=self.console.file, compact=True)
        self.console.print("On the sending device run:")
        self.console.print(f"  p2p-transfer send --to {event.ticket} FILE...", soft_wrap=True)
        if event.announced:
            self.console.print(
                f"or, on this network: p2p-transfer send --to {shown(event.device_name)} FILE..."
            )
        for address in event.addresses[:ADDRESSES_SHOWN]:
            self.console.print(f"or: p2p-transfer send --to {address} FILE...")

    def _on_invite(self, event: InviteEvent) -> None:
        """The code, its QR (magic-wormhole's URI: phone apps such as Warp scan it) and the
        command to type on the other device."""
        if self._show_qr:
            segno.make(f"wormhole-transfer:{event.code}", error="l").terminal(
                out=self.console.file, compact=True
            )
        where = (
            "" if event.via == "mailbox" else
            " [yellow](the code server is out of reach: this code works on this network only)[/]"
        )
        self.console.print(f"Code: [bold]{shown(event.code)}[/]{where}")
        self.console.print(f"On the other device: p2p-transfer receive {shown(event.code)}")
        self.console.print("[dim]Waiting for the code to be used… (Ctrl-C to cancel)[/]")

    def _on_rendezvous(self, event: RendezvousEvent) -> None:
        way = "the code server" if event.via == "mailbox" else "this network (no code server)"
        runs = "" if event.peer == "p2p-transfer" else " (a magic-wormhole client)"
        self._print(f"[dim]code used{runs}; met through {way}[/]")

    def _on_relay(self, event: RelayEvent) -> None:
        style = "dim" if event.connected else "yellow"
        self._print(f"[{style}]{shown(event.message)}[/]")

    def _on_lookup(self, event: LookupEvent) -> None:
        session = self._session(event.session)
        session.direction = "send"
        if event.what == "name":  # seconds where multicast is dropped: said at once
            self._print(f"[dim]looking for {shown(event.to)} on this network…[/]")
            return
        try:  # an address answers at once, or is said to be asked after a moment
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        session.reach_notice = loop.call_later(
            REACH_NOTICE_DELAY, self._print, f"[dim]asking {shown(event.to)} for its ticket…[/]"
        )

    def _on_route(self, event: RouteEvent) -> None:
        session = self._session(event.session)
        if session.reach_notice is not None:  # the lookup's answer came
            session.reach_notice.cancel()
        self._named(session, event.peer_name)
        who = shown(event.peer_name or event.to)
        # Each line names the device already: no "name:" before it with several receivers.
        if event.found == "pairing":
            where = ", ".join(event.addresses) or "its relay"
            self._print(f"[dim]{who} is not announced on this network; trying where it was "
                        f"last reached ({shown(where)})…[/]")
        if event.warning and not (self._asks_unverified and event.found == "localsend"):
            self._print(f"[yellow]![/] {shown(event.warning)}")

    def _on_dialing(self, event: DialingEvent) -> None:
        session = self._session(event.session)
        session.direction = "send"
        who = event.peer_name or event.peer_id[:10]
        self._named(session, who)
        if session.reach_notice is not None:
            session.reach_notice.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not inside a command's event loop: nothing is waited for
        session.reach_notice = loop.call_later(
            REACH_NOTICE_DELAY, self._print, f"[dim]trying to reach {shown(who)}…[/]"
        )

    def _on_connection(self, event: ConnectionEvent) -> None:
        session = self._session(event.session)
        if session.reach_notice is not None:
            session.reach_notice.cancel()
        if session.connected:
            return  # the same connection, now also naming its data path
        session.connected = True
        if session.direction == "receive":  # said after the answer, it would only confuse
            return
        rtt = f", {event.rtt_ms:.0f} ms" if event.rtt_ms is not None else ""
        self._say(event.session, f"[dim]connected ({event.path}{rtt})[/]")

    # --- a broken path, reached again (issue 26) ------------------------------------------

    def _on_queued(self, event: QueuedEvent) -> None:
        """``send --wait``: what the send waits for, and for how long."""
        session = self._session(event.session)
        session.direction = "send"
        minutes, seconds = divmod(int(event.wait), 60)
        self._say(
            event.session,
            f"[yellow]waiting for {shown(event.to)} to be reachable (up to {minutes}:"
            f"{seconds:02d}); the send starts by itself when it is — Ctrl-C to stop[/]",
        )

    def _on_reconnecting(self, event: ReconnectingEvent) -> None:
        """``waiting for desk to come back (0:12)…``, once per try; the first says why."""
        who = shown(event.peer_name) or "the receiver"
        if event.waited < 1:
            self._say(event.session, f"[yellow]connection to {who} lost: {shown(event.reason)}[/]")
        minutes, seconds = divmod(int(event.waited), 60)
        waited = f"{minutes}:{seconds:02d}"
        self._say(event.session, f"[yellow]waiting for {who} to come back ({waited})…[/]")

    def _on_reconnected(self, event: ReconnectedEvent) -> None:
        """``reconnected to desk over 10.0.0.7:41641 (direct) after 3.1 s``."""
        over = f" over {event.remote_addr}" if event.remote_addr else ""
        self._say(
            event.session,
            f"[green]reconnected to {shown(event.peer_name)}{over} ({event.path}) after "
            f"{event.seconds:.1f} s — continuing[/]",
        )

    def _on_code(self, event: CodeEvent) -> None:
        session = self._session(event.session)
        code = format_code(event.code)
        count = attempt_count(event.attempt, event.max_attempts)
        if session.code_shown:  # the same code, asked for again
            self._print(
                f"[yellow]✗[/] {shown(event.peer_name)} typed a wrong code; waiting for "
                f"{count or 'another try'} (the code is still [bold]{code}[/])"
            )
            return
        session.code_shown = True
        self._print(
            f"\n[bold]{shown(event.peer_name)}[/] ({event.peer_id[:10]}…) wants to connect.\n"
            f"Verification code: [bold reverse] {code} [/]  (type it on the sending device"
            f"{'; ' + count if count else ''})\n"
        )

    def _on_verified(self, event: VerifiedEvent) -> None:
        self._named(self._session(event.session), event.peer_name)
        how = {"code": "verified by code", "short-code": "verified by the short code"}.get(
            event.by, "trusted device"
        )
        self._print(f"[green]✓[/] {shown(event.peer_name)}: {how}")

    def _on_offer(self, event: OfferEvent) -> None:
        session = self._session(event.session)
        session.direction, session.peer_name = "receive", event.sender
        self._pause(event.session)  # the user may be asked about it next
        names = ", ".join(shown(name) for name in event.sample)
        more = "…" if event.files > len(event.sample) else ""
        held = []
        if event.already_there:
            held.append(f"{event.already_there} already there: skipped if identical")
        if event.partly_there:
            held.append(f"{event.partly_there} partly there: will resume")
        sender = f"[bold]{shown(event.sender)}[/]"
        if event.via == "localsend":
            model = f"{shown(event.device_model)} · " if event.device_model else ""
            sender += f" (via LocalSend · {model}{shown(event.sender_id[:8].upper())})"
        if event.text:
            self._print(
                f"{sender} wants to send a text ({format_size(event.bytes)}): "
                f"{shown(event.preview)}"
            )
            return
        self._print(
            f"{sender} offers {counted(event.files, 'file')}, "
            f"{format_size(event.bytes)}: {names}{more}"
            + (f" ({'; '.join(held)})" if held else "")
        )

    def _on_text(self, event: TextEvent) -> None:
        """A header line, then the text as it is, unboxed and never cut into lines by us
        (the terminal wraps it): what a person copies from the screen is the text."""
        via = f" via {_OTHER_WAYS[event.via][0]}" if event.via in _OTHER_WAYS else ""
        sequences = terminal_sequences_allowed(self.console)
        self._print(f"[bold]Text from {shown(event.sender)}{via}:[/]")
        self._print(text_body(event.text, links=sequences), soft_wrap=True)
        if self.copy_texts:  # what the screen shows: no escape reaches a later paste either
            self._copy(_CONTROL_BUT_LINES.sub("?", event.text), sequences)

    def _copy(self, text: str, sequences: bool) -> None:
        """``receive --copy``: the text to the clipboard through the terminal (OSC 52)."""
        if not sequences:
            self._print("[yellow]not copied:[/] --copy goes through the terminal, and this "
                        "output is not one that takes it; copy the text above")
            return
        self.console.file.write(clipboard_sequence(text))
        self.console.file.flush()
        self._print("[dim]copied to the clipboard through the terminal (if it is not there, "
                    "the terminal does not allow it: copy the text above)[/]")

    def _on_localsend(self, event: LocalSendReadyEvent) -> None:
        fingerprint = f"{event.fingerprint[:4]} {event.fingerprint[4:8]}"
        self._print(
            f"LocalSend devices can send here too: [bold]{shown(event.alias)}[/] "
            f"(port {event.port}, fingerprint {fingerprint})"
        )

    def _on_offer_sent(self, event: OfferSentEvent) -> None:
        session = self._session(event.session)
        session.peer_name = event.peer_name
        if session.reach_notice is not None:  # reached: the offer is with it
            session.reach_notice.cancel()
        what = f"the text ({format_size(event.bytes)})" if event.text else (
            f"({counted(event.files, 'file')}, {format_size(event.bytes)})"
        )
        self._stop_waiting(session)
        self._start_waiting(session, f"waiting for {shown(event.peer_name)} to accept {what}…")

    def _on_decision(self, event: DecisionEvent) -> None:
        session = self._session(event.session)
        self._resume(event.session)
        if session.direction == "send":  # the receiving user answered
            self._stop_waiting(session)
            if event.accepted:
                self._print(f"[green]✓[/] {shown(session.peer_name)} accepted")
            elif not event.reason:  # LocalSend says no more than that
                who = shown(session.peer_name) or "the receiver"
                self._print(f"[yellow]✗ {who} declined[/]")
                return
        if not event.accepted:
            self._say(event.session, declined_line(event.reason))

    def _on_resume(self, event: ResumeEvent) -> None:
        said = []
        if event.bytes > event.whole_bytes:
            said.append(f"resuming: {format_size(event.bytes - event.whole_bytes)} already there")
        if event.whole_files:
            said.append(
                f"{counted(event.whole_files, 'file')} ({format_size(event.whole_bytes)}) "
                "already there: skipped if identical"
            )
        self._say(event.session, "; ".join(said))

    # --- the transfer ------------------------------------------------------------------

    def _on_progress(self, event: ProgressEvent) -> None:
        session = self._session(event.session)
        session.direction = event.direction
        session.bytes_done = event.bytes_done
        bars = self._live_bars()
        verb = "Sending" if event.direction == "send" else "Receiving"
        description = f"{verb} {event.files_done}/{counted(event.files_total, 'file')}"
        if self._several and session.peer_name:
            description = f"{shown(session.peer_name)}: {description.lower()}"
        if session.overall is None:
            session.overall = bars.add_task(description, total=event.bytes_total)
        bars.update(session.overall, completed=event.bytes_done, description=description)
        active = {f.path: f for f in event.active}
        for path in list(session.files):
            if path not in active:
                bars.remove_task(session.files.pop(path))
        for path, item in active.items():
            if path not in session.files:
                label = path if len(path) <= LABEL_CHARS else "…" + path[-(LABEL_CHARS - 1):]
                session.files[path] = bars.add_task(f"  {shown(label)}", total=item.size)
            bars.update(session.files[path], completed=item.bytes_done)

    def _on_file_done(self, event: FileDoneEvent) -> None:
        if event.saved_as:
            self._say(
                event.session, f"{shown(event.path)}: saved as [bold]{shown(event.saved_as)}[/]"
            )

    def _on_file_failed(self, event: FileFailedEvent) -> None:
        self._say(event.session, f"[red]✗[/] {shown(event.path)}: {shown(event.message)}")

    def _on_done(self, event: DoneEvent) -> None:
        session = self._session(event.session)
        self._end_bars(session)
        if event.text:
            if event.direction == "send":  # the receiver shows it in a box
                to = f" to {shown(session.peer_name)}" if session.peer_name else ""
                how = "" if event.verified else via_note(event.via, text=True)
                self._print(
                    f"[green]✓ text ({format_size(event.bytes_total)}) delivered{to}[/]{how}"
                )
            return
        moved = "received" if event.direction == "receive" else "sent"
        if not event.ok:
            arrived = "verified" if event.verified else f"{moved} ({UNVERIFIED})"
            self._say(
                event.session,
                f"[red]✗ {counted(event.files_failed, 'file')} failed[/], {event.files} {arrived}",
            )
            return
        where = f" into {shown(event.target)}" if event.target else ""
        notes = []
        already = event.bytes_total - event.bytes_transferred
        if already > 0 and event.files_identical < event.files:
            notes.append(f"{format_size(already)} already there")
        if event.files_identical:
            notes.append(
                f"{counted(event.files_identical, 'file')} already there, identical: skipped"
            )
        # "verified" only where BLAKE3 and the peer's key checked it; LocalSend checks neither,
        # magic-wormhole one SHA-256 of the whole transfer.
        name, checked = _OTHER_WAYS.get(event.via, _OTHER_WAYS["localsend"])
        how = "verified" if event.verified else f"{moved} via {name}"
        unverified = "" if event.verified else f" — [yellow]{checked}[/]"
        self._say(
            event.session,
            f"[green]✓ {counted(event.files, 'file')}, {format_size(event.bytes_total)} "
            f"{how}{where}[/] in {event.seconds:.1f} s"
            + (f" ({'; '.join(notes)})" if notes else "") + unverified,
        )

    # --- endings -----------------------------------------------------------------------

    def _on_state(self, event: StateEvent) -> None:
        if not event.state.final:
            self._named(self._session(event.session), event.peer_name)
            return
        session = self._session(event.session)
        if session.reach_notice is not None:
            session.reach_notice.cancel()
        self._stop_waiting(session)
        self._resume(event.session)
        self._end_bars(session)
        if event.state is SessionState.CANCELLED:
            self._say(event.session, f"[yellow]✗ {self._cancelled(event, session)}[/]")
            self.cancel_shown = True
        # failures come as errors, declines as decisions, success as done
        del self._sessions[event.session]

    @staticmethod
    def _cancelled(event: StateEvent, session: _Session) -> str:
        """``cancelled by laptop — 436 MiB kept; run the same command to continue``..."""
        peer = shown(event.peer_name or session.peer_name) or "the other device"
        if session.direction == "receive" and session.bytes_done:
            who = f"{peer} cancelled" if event.by == "peer" else "cancelled"
            return f"{who}; partial files kept for resume"
        if event.by == "peer":
            said = f"cancelled by {peer}"
        elif event.message in ("", "cancelled"):
            said = "cancelled"
        else:
            said = f"cancelled: {shown(event.message)}"
        if session.direction == "send" and session.bytes_done:
            # Sent, not confirmed: the receiver holds about this much (a little less).
            said += (f" — about {format_size(session.bytes_done)} kept; run the same command "
                     "to continue")
        return said

    def _on_summary(self, event: SendSummaryEvent) -> None:
        """A line per receiver: ✓ and what it got, or ✗ and why not."""
        got = sum(r.state is SessionState.DONE for r in event.receivers)
        self._print(f"\n{got} of {len(event.receivers)} receivers got everything:")
        for receiver in event.receivers:
            name = receiver.peer_name or (
                receiver.to if len(receiver.to) <= LABEL_CHARS else receiver.to[:20] + "…"
            )
            self._print(f"  {self._outcome(receiver, shown(name))}")

    @staticmethod
    def _outcome(receiver: ReceiverOutcome, name: str) -> str:
        size = format_size(receiver.bytes)
        if receiver.state is SessionState.DONE:
            what = f"text, {size}" if receiver.text else (
                f"{counted(receiver.files, 'file')}, {size}"
            )
            how = "" if receiver.verified else f" via LocalSend — [yellow]{UNVERIFIED}[/]"
            return f"[green]✓[/] {name}: {what}{how}"
        why = receiver.message
        if receiver.state is SessionState.DECLINED and not why.startswith("declined"):
            why = f"declined: {why}" if why else "declined"
        elif receiver.state is SessionState.CANCELLED and why in ("", "cancelled"):
            why = "cancelled"
        return f"[red]✗[/] {name}: {shown(why or str(receiver.state))}"

    def _on_device(self, event: DeviceEvent) -> None:
        addresses = ", ".join(event.addresses)
        which = "LocalSend" if event.protocol == "localsend" else event.endpoint_id[:12]
        self._print(
            f"[dim]found {shown(event.device_name)} ({which}) at {shown(addresses)}[/]"
        )

    def _on_discovery_error(self, event: DiscoveryErrorEvent) -> None:
        self._print(f"[yellow]not announced on the LAN:[/] {shown(event.message)} "
                    "(senders can still use the ticket)")

    def _on_error(self, event: ErrorEvent) -> None:
        if event.session is None:
            self._stop_waiting(None)
        elif (session := self._sessions.get(event.session)) is not None:
            self._stop_waiting(session)
        self._say(event.session, f"[red]error:[/] {shown_lines(event.message)}")

    def _on_check(self, event: CheckEvent) -> None:
        """A check of this device's own (the download folder at start): what is wrong, and
        what to do."""
        mark = {"ok": "[green]✓[/]", "warn": "[yellow]![/]"}.get(event.status, "[red]✗[/]")
        # Not cut by us: a path in it stays whole for copying.
        self._print(f"{mark} {shown(event.check)}: {shown(event.detail)}", soft_wrap=True)
        if event.advice:
            self._print(f"  → {shown(event.advice)}")

    def _on_log(self, event: LogEvent) -> None:
        self._print(f"[dim]{shown(event.source)}: {shown(event.message)}[/]")
