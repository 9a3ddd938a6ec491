"""The terminal's lines, one class per job; each handles its events as ``on_<event name>``
and ``HumanRenderer`` dispatches to them. All print through the shared ``Screen``."""

from __future__ import annotations

import asyncio

import segno

from p2p_transfer.cli.render import attempt_count, counted
from p2p_transfer.cli.terminal_screen import Screen, SessionView
from p2p_transfer.cli.terminal_text import (
    ADDRESSES_SHOWN,
    CONTROL_BUT_LINES,
    LABEL_CHARS,
    OTHER_WAYS,
    UNVERIFIED,
    clipboard_sequence,
    declined_line,
    shown,
    shown_lines,
    terminal_sequences_allowed,
    text_body,
    via_note,
)
from p2p_transfer.events import (
    CheckEvent,
    CodeEvent,
    CodeWaitEvent,
    ConnectionEvent,
    DecisionEvent,
    DeviceEvent,
    DialingEvent,
    DiscoveryErrorEvent,
    DoneEvent,
    ErrorEvent,
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
from p2p_transfer.units import format_size

#: The terminal's key for the wait of ``receive CODE --wait`` (no session exists yet).
CODE_WAIT = "code-wait"


class ReachLines:
    """Before a transfer: the ticket or code to type, finding and reaching the device."""

    def __init__(self, screen: Screen, show_qr: bool, asks_unverified: bool) -> None:
        self.screen = screen
        self._show_qr = show_qr
        #: The command asks before sending to a LocalSend device found by name (its question
        #: says the warning, so the route's line need not).
        self._asks_unverified = asks_unverified
        #: The ticket is on screen (a later one, naming the relay, is a line).
        self._ticket_shown = False

    def on_ticket(self, event: TicketEvent) -> None:
        if self._ticket_shown:  # the same device, now also reachable through its relay
            self.screen.print("This ticket also works across the internet (through the relay):")
            self.screen.print(f"  p2p-transfer send --to {event.ticket} FILE...")
            return
        self._ticket_shown = True
        self.screen.console.print(f"[bold]{shown(event.device_name)}[/] is ready to receive.")
        if self._show_qr:
            qr = segno.make(event.ticket, error="l")
            qr.terminal(out=self.screen.console.file, compact=True)
        self.screen.console.print("On the sending device run:")
        self.screen.console.print(
            f"  p2p-transfer send --to {event.ticket} FILE...", soft_wrap=True
        )
        if event.announced:
            self.screen.console.print(
                f"or, on this network: p2p-transfer send --to {shown(event.device_name)} FILE..."
            )
        for address in event.addresses[:ADDRESSES_SHOWN]:
            self.screen.console.print(f"or: p2p-transfer send --to {address} FILE...")

    def on_invite(self, event: InviteEvent) -> None:
        """The code, its QR (magic-wormhole's URI: phone apps such as Warp scan it) and the
        command to type on the other device."""
        if self._show_qr:
            segno.make(f"wormhole-transfer:{event.code}", error="l").terminal(
                out=self.screen.console.file, compact=True
            )
        where = (
            "" if event.via == "mailbox" else
            " [yellow](the code server is out of reach: this code works on this network only)[/]"
        )
        self.screen.console.print(f"Code: [bold]{shown(event.code)}[/]{where}")
        self.screen.console.print(f"On the other device: p2p-transfer receive {shown(event.code)}")
        self.screen.console.print("[dim]Waiting for the code to be used… (Ctrl-C to cancel)[/]")

    def on_code_wait(self, event: CodeWaitEvent) -> None:
        """``receive CODE --wait``: whose sender it waits for, for how long, and the time
        it has waited so far."""
        minutes, seconds = divmod(int(event.wait), 60)
        where = "" if event.via == "mailbox" else " on this network (no code server)"
        self.screen.start_waiting(
            self.screen.session(CODE_WAIT),
            f"waiting for the sender of {shown(event.code)}{where} (up to {minutes}:"
            f"{seconds:02d}; Ctrl-C to stop)…",
        )

    def on_rendezvous(self, event: RendezvousEvent) -> None:
        if CODE_WAIT in self.screen.sessions:  # the sender came
            self.screen.stop_waiting(self.screen.sessions[CODE_WAIT])
        way = "the code server" if event.via == "mailbox" else "this network (no code server)"
        runs = "" if event.peer == "p2p-transfer" else " (a magic-wormhole client)"
        self.screen.print(f"[dim]code used{runs}; met through {way}[/]")

    def on_relay(self, event: RelayEvent) -> None:
        style = "dim" if event.connected else "yellow"
        self.screen.print(f"[{style}]{shown(event.message)}[/]")

    def on_lookup(self, event: LookupEvent) -> None:
        session = self.screen.session(event.session)
        session.direction = "send"
        if event.what == "name":  # seconds where multicast is dropped: said at once
            self.screen.print(f"[dim]looking for {shown(event.to)} on this network…[/]")
            return
        try:  # an address answers at once, or is said to be asked after a moment
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        session.reach_notice = loop.call_later(
            REACH_NOTICE_DELAY, self.screen.print,
            f"[dim]asking {shown(event.to)} for its ticket…[/]",
        )

    def on_route(self, event: RouteEvent) -> None:
        session = self.screen.session(event.session)
        if session.reach_notice is not None:  # the lookup's answer came
            session.reach_notice.cancel()
        self.screen.named(session, event.peer_name)
        who = shown(event.peer_name or event.to)
        # Each line names the device already: no "name:" before it with several receivers.
        if event.found == "pairing":
            where = ", ".join(event.addresses) or "its relay"
            until = " until it answers there" if session.queued else ""
            self.screen.print(f"[dim]{who} is not announced on this network; trying where it was "
                        f"last reached ({shown(where)}){until}…[/]")
        if event.warning and not (self._asks_unverified and event.found == "localsend"):
            self.screen.print(f"[yellow]![/] {shown(event.warning)}")

    def on_dialing(self, event: DialingEvent) -> None:
        session = self.screen.session(event.session)
        session.direction = "send"
        who = event.peer_name or event.peer_id[:10]
        self.screen.named(session, who)
        if session.reach_notice is not None:
            session.reach_notice.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not inside a command's event loop: nothing is waited for
        session.reach_notice = loop.call_later(
            REACH_NOTICE_DELAY, self.screen.print, f"[dim]trying to reach {shown(who)}…[/]"
        )

    def on_connection(self, event: ConnectionEvent) -> None:
        session = self.screen.session(event.session)
        if session.reach_notice is not None:
            session.reach_notice.cancel()
        if session.connected:
            return  # the same connection, now also naming its data path
        session.connected = True
        if session.direction == "receive":  # said after the answer, it would only confuse
            return
        rtt = f", {event.rtt_ms:.0f} ms" if event.rtt_ms is not None else ""
        self.screen.say(event.session, f"[dim]connected ({event.path}{rtt})[/]")

    def on_device(self, event: DeviceEvent) -> None:
        addresses = ", ".join(event.addresses)
        which = "LocalSend" if event.protocol == "localsend" else event.endpoint_id[:12]
        self.screen.print(
            f"[dim]found {shown(event.device_name)} ({which}) at {shown(addresses)}[/]"
        )

    def on_discovery_error(self, event: DiscoveryErrorEvent) -> None:
        self.screen.print(f"[yellow]not announced on the LAN:[/] {shown(event.message)} "
                    "(senders can still use the ticket)")

    def on_localsend(self, event: LocalSendReadyEvent) -> None:
        fingerprint = f"{event.fingerprint[:4]} {event.fingerprint[4:8]}"
        self.screen.print(
            f"LocalSend devices can send here too: [bold]{shown(event.alias)}[/] "
            f"(port {event.port}, fingerprint {fingerprint})"
        )


class OfferLines:
    """Meeting a peer: the 6-digit code, the offer and its answer, what resumes."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen

    def on_code(self, event: CodeEvent) -> None:
        session = self.screen.session(event.session)
        code = format_code(event.code)
        count = attempt_count(event.attempt, event.max_attempts)
        if session.code_shown:  # the same code, asked for again
            self.screen.print(
                f"[yellow]✗[/] {shown(event.peer_name)} typed a wrong code; waiting for "
                f"{count or 'another try'} (the code is still [bold]{code}[/])"
            )
            return
        session.code_shown = True
        self.screen.print(
            f"\n[bold]{shown(event.peer_name)}[/] ({event.peer_id[:10]}…) wants to connect.\n"
            f"Verification code: [bold reverse] {code} [/]  (type it on the sending device"
            f"{'; ' + count if count else ''})\n"
        )

    def on_verified(self, event: VerifiedEvent) -> None:
        self.screen.named(self.screen.session(event.session), event.peer_name)
        how = {"code": "verified by code", "short-code": "verified by the short code"}.get(
            event.by, "trusted device"
        )
        self.screen.print(f"[green]✓[/] {shown(event.peer_name)}: {how}")

    def on_offer(self, event: OfferEvent) -> None:
        session = self.screen.session(event.session)
        session.direction, session.peer_name = "receive", event.sender
        self.screen.pause(event.session)  # the user may be asked about it next
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
            self.screen.print(
                f"{sender} wants to send a text ({format_size(event.bytes)}): "
                f"{shown(event.preview)}"
            )
            return
        self.screen.print(
            f"{sender} offers {counted(event.files, 'file')}, "
            f"{format_size(event.bytes)}: {names}{more}"
            + (f" ({'; '.join(held)})" if held else "")
        )

    def on_offer_sent(self, event: OfferSentEvent) -> None:
        session = self.screen.session(event.session)
        session.peer_name = event.peer_name
        if session.reach_notice is not None:  # reached: the offer is with it
            session.reach_notice.cancel()
        what = f"the text ({format_size(event.bytes)})" if event.text else (
            f"({counted(event.files, 'file')}, {format_size(event.bytes)})"
        )
        self.screen.stop_waiting(session)
        self.screen.start_waiting(
            session, f"waiting for {shown(event.peer_name)} to accept {what}…"
        )

    def on_decision(self, event: DecisionEvent) -> None:
        session = self.screen.session(event.session)
        self.screen.resume(event.session)
        if session.direction == "send":  # the receiving user answered
            self.screen.stop_waiting(session)
            if event.accepted:
                self.screen.print(f"[green]✓[/] {shown(session.peer_name)} accepted")
            elif not event.reason:  # LocalSend says no more than that
                who = shown(session.peer_name) or "the receiver"
                self.screen.print(f"[yellow]✗ {who} declined[/]")
                return
        if not event.accepted:
            self.screen.say(event.session, declined_line(event.reason))

    def on_resume(self, event: ResumeEvent) -> None:
        said = []
        if event.bytes > event.whole_bytes:
            said.append(f"resuming: {format_size(event.bytes - event.whole_bytes)} already there")
        if event.whole_files:
            said.append(
                f"{counted(event.whole_files, 'file')} ({format_size(event.whole_bytes)}) "
                "already there: skipped if identical"
            )
        self.screen.say(event.session, "; ".join(said))


class TextLines:
    """A text received: shown as it is, and with ``receive --copy`` put on the clipboard."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        #: ``receive --copy``: a text received also goes to the clipboard.
        self.copy_texts = False

    def on_text(self, event: TextEvent) -> None:
        """A header line, then the text as it is, unboxed and never cut into lines by us
        (the terminal wraps it): what a person copies from the screen is the text."""
        via = f" via {OTHER_WAYS[event.via][0]}" if event.via in OTHER_WAYS else ""
        sequences = terminal_sequences_allowed(self.screen.console)
        self.screen.print(f"[bold]Text from {shown(event.sender)}{via}:[/]")
        self.screen.print(text_body(event.text, links=sequences), soft_wrap=True)
        if self.copy_texts:  # what the screen shows: no escape reaches a later paste either
            self._copy(CONTROL_BUT_LINES.sub("?", event.text), sequences)

    def _copy(self, text: str, sequences: bool) -> None:
        """``receive --copy``: the text to the clipboard through the terminal (OSC 52)."""
        if not sequences:
            self.screen.print("[yellow]not copied:[/] --copy goes through the terminal, and this "
                        "output is not one that takes it; copy the text above")
            return
        self.screen.console.file.write(clipboard_sequence(text))
        self.screen.console.file.flush()
        self.screen.print("[dim]copied to the clipboard through the terminal (if it is not there, "
                    "the terminal does not allow it: copy the text above)[/]")


class TransferLines:
    """The transfer's state: progress bars, files saved or failed, how a session ended.
    Lines about a transfer's state while it runs (waiting, reconnecting) belong here."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        #: A cancel was already told (Ctrl-C need not say it again).
        self.cancel_shown = False

    def on_progress(self, event: ProgressEvent) -> None:
        session = self.screen.session(event.session)
        session.direction = event.direction
        session.bytes_done = event.bytes_done
        bars = self.screen.live_bars()
        verb = "Sending" if event.direction == "send" else "Receiving"
        description = f"{verb} {event.files_done}/{counted(event.files_total, 'file')}"
        if self.screen.several and session.peer_name:
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

    # --- a broken path, reached again; a send waiting for its receiver ----------------

    def on_queued(self, event: QueuedEvent) -> None:
        """``send --wait``: what the send waits for, and for how long."""
        session = self.screen.session(event.session)
        session.direction, session.queued = "send", True
        minutes, seconds = divmod(int(event.wait), 60)
        self.screen.say(
            event.session,
            f"[yellow]waiting for {shown(event.to)} to be reachable (up to {minutes}:"
            f"{seconds:02d}); the send starts by itself when it is — Ctrl-C to stop[/]",
        )

    def on_reconnecting(self, event: ReconnectingEvent) -> None:
        """``waiting for desk to come back (0:12)…``, once per try; the first says why."""
        who = shown(event.peer_name) or "the receiver"
        if event.waited < 1:
            self.screen.say(
                event.session, f"[yellow]connection to {who} lost: {shown(event.reason)}[/]"
            )
        minutes, seconds = divmod(int(event.waited), 60)
        self.screen.say(
            event.session, f"[yellow]waiting for {who} to come back ({minutes}:{seconds:02d})…[/]"
        )

    def on_reconnected(self, event: ReconnectedEvent) -> None:
        """``reconnected to desk over 10.0.0.7:41641 (direct) after 3.1 s``."""
        over = f" over {event.remote_addr}" if event.remote_addr else ""
        self.screen.say(
            event.session,
            f"[green]reconnected to {shown(event.peer_name)}{over} ({event.path}) after "
            f"{event.seconds:.1f} s — continuing[/]",
        )

    def on_file_done(self, event: FileDoneEvent) -> None:
        if event.saved_as:
            self.screen.say(
                event.session, f"{shown(event.path)}: saved as [bold]{shown(event.saved_as)}[/]"
            )

    def on_file_failed(self, event: FileFailedEvent) -> None:
        self.screen.say(event.session, f"[red]✗[/] {shown(event.path)}: {shown(event.message)}")

    def on_done(self, event: DoneEvent) -> None:
        session = self.screen.session(event.session)
        self.screen.end_bars(session)
        if event.text:
            if event.direction == "send":  # the receiver shows it in a box
                to = f" to {shown(session.peer_name)}" if session.peer_name else ""
                how = "" if event.verified else via_note(event.via, text=True)
                self.screen.print(
                    f"[green]✓ text ({format_size(event.bytes_total)}) delivered{to}[/]{how}"
                )
            return
        moved = "received" if event.direction == "receive" else "sent"
        if not event.ok:
            arrived = "verified" if event.verified else f"{moved} ({UNVERIFIED})"
            self.screen.say(
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
        name, checked = OTHER_WAYS.get(event.via, OTHER_WAYS["localsend"])
        how = "verified" if event.verified else f"{moved} via {name}"
        unverified = "" if event.verified else f" — [yellow]{checked}[/]"
        self.screen.say(
            event.session,
            f"[green]✓ {counted(event.files, 'file')}, {format_size(event.bytes_total)} "
            f"{how}{where}[/] in {event.seconds:.1f} s"
            + (f" ({'; '.join(notes)})" if notes else "") + unverified,
        )

    def on_state(self, event: StateEvent) -> None:
        if not event.state.final:
            self.screen.named(self.screen.session(event.session), event.peer_name)
            return
        session = self.screen.session(event.session)
        if session.reach_notice is not None:
            session.reach_notice.cancel()
        self.screen.stop_waiting(session)
        self.screen.resume(event.session)
        self.screen.end_bars(session)
        if event.state is SessionState.CANCELLED:
            self.screen.say(event.session, f"[yellow]✗ {self._cancelled(event, session)}[/]")
            self.cancel_shown = True
        # failures come as errors, declines as decisions, success as done
        del self.screen.sessions[event.session]

    @staticmethod
    def _cancelled(event: StateEvent, session: SessionView) -> str:
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


class ResultLines:
    """What is left to say: the summary of several receivers, errors, checks, logs."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen

    def on_summary(self, event: SendSummaryEvent) -> None:
        """A line per receiver: ✓ and what it got, or ✗ and why not."""
        got = sum(r.state is SessionState.DONE for r in event.receivers)
        self.screen.print(f"\n{got} of {len(event.receivers)} receivers got everything:")
        for receiver in event.receivers:
            name = receiver.peer_name or (
                receiver.to if len(receiver.to) <= LABEL_CHARS else receiver.to[:20] + "…"
            )
            self.screen.print(f"  {self._outcome(receiver, shown(name))}")

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

    def on_error(self, event: ErrorEvent) -> None:
        if event.session is None:
            self.screen.stop_waiting(None)
        elif (session := self.screen.sessions.get(event.session)) is not None:
            self.screen.stop_waiting(session)
        self.screen.say(event.session, f"[red]error:[/] {shown_lines(event.message)}")

    def on_check(self, event: CheckEvent) -> None:
        """A check of this device's own (the download folder at start): what is wrong, and
        what to do."""
        mark = {"ok": "[green]✓[/]", "warn": "[yellow]![/]"}.get(event.status, "[red]✗[/]")
        # Not cut by us: a path in it stays whole for copying.
        self.screen.print(f"{mark} {shown(event.check)}: {shown(event.detail)}", soft_wrap=True)
        if event.advice:
            self.screen.print(f"  → {shown(event.advice)}")

    def on_log(self, event: LogEvent) -> None:
        self.screen.print(f"[dim]{shown(event.source)}: {shown(event.message)}[/]")
