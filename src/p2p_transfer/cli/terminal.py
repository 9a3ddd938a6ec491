"""The event stream for people at a terminal: progress bars, the ticket's QR code.

Kept apart from the JSON renderer so scripts (``--json``) never load rich.
"""

from __future__ import annotations

import re

import segno
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from p2p_transfer.cli.render import attempt_count, human_size, printable
from p2p_transfer.events import (
    CodeEvent,
    ConnectionEvent,
    DecisionEvent,
    DeviceEvent,
    DiscoveryErrorEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    FileFailedEvent,
    LocalSendReadyEvent,
    LogEvent,
    OfferEvent,
    ProgressEvent,
    RelayEvent,
    SessionState,
    StateEvent,
    TextEvent,
    TicketEvent,
    VerifiedEvent,
)
from p2p_transfer.trust.verification import format_code

#: How many ``HOST:PORT`` alternatives the receiver prints.
ADDRESSES_SHOWN = 3
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """Peer-supplied text made safe for a terminal: no control characters, no markup."""
    return escape(printable(text))


def shown_text(text: str) -> str:
    """A peer's text message made safe for a terminal: its lines and tabs kept, every
    other control character (escape sequences) replaced, no markup."""
    return escape(_CONTROL_BUT_LINES.sub("?", text))


class HumanRenderer:
    """Progress bars, the ticket's QR code, codes and outcomes, for a terminal."""

    def __init__(self, console: Console | None = None, show_qr: bool = True) -> None:
        self.console = console or Console(stderr=False, highlight=False)
        self._show_qr = show_qr
        self._progress: Progress | None = None
        self._overall: TaskID | None = None
        self._files: dict[str, TaskID] = {}
        #: A cancel was already told (Ctrl-C need not say it again).
        self.cancel_shown = False
        #: Sessions whose code is on screen: a code event for one of them is a retry.
        self._codes_shown: set[str] = set()

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.name}", None)
        if handler is not None:
            handler(event)

    def close(self) -> None:
        """Stop the live display."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _print(self, *args: object) -> None:
        target = self._progress.console if self._progress is not None else self.console
        target.print(*args)

    def _on_ticket(self, event: TicketEvent) -> None:
        self.console.print(f"[bold]{shown(event.device_name)}[/] is ready to receive.")
        if self._show_qr:
            qr = segno.make(event.ticket, error="l")
            qr.terminal(out=self.console.file, compact=True)
        self.console.print("On the sending device run:")
        self.console.print(f"  p2p-transfer send --to {event.ticket} FILE...", soft_wrap=True)
        self.console.print(f"or, on this network: p2p-transfer send --to {shown(event.device_name)}"
                           " FILE...")
        for address in event.addresses[:ADDRESSES_SHOWN]:
            self.console.print(f"or: p2p-transfer send --to {address} FILE...")

    def _on_localsend(self, event: LocalSendReadyEvent) -> None:
        fingerprint = f"{event.fingerprint[:4]} {event.fingerprint[4:8]}"
        self.console.print(
            f"LocalSend devices can send here too: [bold]{shown(event.alias)}[/] "
            f"(port {event.port}, fingerprint {fingerprint})"
        )

    def _on_relay(self, event: RelayEvent) -> None:
        style = "dim" if event.connected else "yellow"
        self._print(f"[{style}]{shown(event.message)}[/]")

    def _on_connection(self, event: ConnectionEvent) -> None:
        rtt = f", {event.rtt_ms:.0f} ms" if event.rtt_ms is not None else ""
        self._print(f"[dim]connected ({event.path}{rtt})[/]")

    def _on_code(self, event: CodeEvent) -> None:
        code = format_code(event.code)
        count = attempt_count(event.attempt, event.max_attempts)
        if event.session in self._codes_shown:  # the same code, asked for again
            self._print(
                f"[yellow]✗[/] {shown(event.peer_name)} typed a wrong code; waiting for "
                f"{count or 'another try'} (the code is still [bold]{code}[/])"
            )
            return
        self._codes_shown.add(event.session)
        self._print(
            f"\n[bold]{shown(event.peer_name)}[/] ({event.peer_id[:10]}…) wants to connect.\n"
            f"Verification code: [bold reverse] {code} [/]  (type it on the sending device"
            f"{'; ' + count if count else ''})\n"
        )

    def _on_verified(self, event: VerifiedEvent) -> None:
        how = "verified by code" if event.by == "code" else "trusted device"
        self._print(f"[green]✓[/] {shown(event.peer_name)}: {how}")

    def _on_offer(self, event: OfferEvent) -> None:
        sender = f"[bold]{shown(event.sender)}[/]"
        if event.via == "localsend":
            model = f"{shown(event.device_model)} · " if event.device_model else ""
            sender += f" (via LocalSend · {model}{shown(event.sender_id[:8].upper())})"
        if event.text:
            self._print(f"{sender} wants to send a text message")
            return
        names = ", ".join(shown(name) for name in event.sample)
        more = "…" if event.files > len(event.sample) else ""
        self._print(
            f"{sender} offers {event.files} file(s), {human_size(event.bytes)}: {names}{more}"
        )

    def _on_text(self, event: TextEvent) -> None:
        via = " via LocalSend" if event.via == "localsend" else ""
        self._print(Panel(
            shown_text(event.text), title=f"Text from {shown(event.sender)}{via}",
            title_align="left", expand=False,
        ))

    def _on_decision(self, event: DecisionEvent) -> None:
        if not event.accepted:
            self._print(f"[yellow]declined:[/] {shown(event.reason)}")

    def _on_progress(self, event: ProgressEvent) -> None:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}", table_column=None),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            verb = "Sending" if event.direction == "send" else "Receiving"
            self._overall = self._progress.add_task(verb, total=event.bytes_total)
        assert self._overall is not None
        progress = self._progress
        progress.update(
            self._overall,
            completed=event.bytes_done,
            description=f"{event.files_done}/{event.files_total} files",
        )
        active = {f.path: f for f in event.active}
        for path in list(self._files):
            if path not in active:
                progress.remove_task(self._files.pop(path))
        for path, item in active.items():
            if path not in self._files:
                label = path if len(path) <= 40 else "…" + path[-39:]
                self._files[path] = progress.add_task(f"  {shown(label)}", total=item.size)
            progress.update(self._files[path], completed=item.bytes_done)

    def _on_file_failed(self, event: FileFailedEvent) -> None:
        self._print(f"[red]✗[/] {shown(event.path)}: {shown(event.message)}")

    def _on_done(self, event: DoneEvent) -> None:
        self.close()
        for task in self._files.values():
            del task
        self._files.clear()
        if event.ok:
            where = f" into {shown(event.target)}" if event.target else ""
            resumed = event.bytes_total - event.bytes_transferred
            extra = f" ({human_size(resumed)} already there)" if resumed > 0 else ""
            # LocalSend carries no end-to-end hash we always have: say what happened.
            how = ("received" if event.direction == "receive" else "sent") + " via LocalSend" \
                if event.via == "localsend" else "verified"
            self.console.print(
                f"[green]✓ {event.files} file(s), {human_size(event.bytes_total)} "
                f"{how}{where}[/] in {event.seconds:.1f} s{extra}"
            )
        else:
            self.console.print(
                f"[red]✗ {event.files_failed} file(s) failed[/], {event.files} verified"
            )

    def _on_device(self, event: DeviceEvent) -> None:
        addresses = ", ".join(event.addresses)
        self._print(
            f"[dim]found {shown(event.device_name)} ({event.endpoint_id[:12]}) at {addresses}[/]"
        )

    def _on_discovery_error(self, event: DiscoveryErrorEvent) -> None:
        self._print(f"[yellow]not announced on the LAN:[/] {shown(event.message)} "
                    "(senders can still use the ticket)")

    def _on_error(self, event: ErrorEvent) -> None:
        self._print(f"[red]error:[/] {shown(event.message)}")

    def _on_state(self, event: StateEvent) -> None:
        if event.state.final:
            self._codes_shown.discard(event.session)
        if event.state is not SessionState.CANCELLED:
            return  # failures come as errors, declines as decisions, success as done
        self.close()
        if event.by == "peer":
            who = shown(event.peer_name) if event.peer_name else "the other device"
            self.console.print(f"[yellow]✗ cancelled by {who}[/]")
        elif event.message in ("", "cancelled"):
            self.console.print("[yellow]✗ cancelled[/]")
        else:
            self.console.print(f"[yellow]✗ cancelled:[/] {shown(event.message)}")
        self.cancel_shown = True

    def _on_log(self, event: LogEvent) -> None:
        self._print(f"[dim]{shown(event.source)}: {shown(event.message)}[/]")
