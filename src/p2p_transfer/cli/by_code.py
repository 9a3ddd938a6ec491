"""Sending and receiving by a short code, for the terminal: the code's wait (with the
LAN's devices to pick from instead) and a typed code's checks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from p2p_transfer.cli.context import read_line, stdin_is_interactive
from p2p_transfer.cli.render import printable
from p2p_transfer.events import Event, InviteEvent, RendezvousEvent, StateEvent
from p2p_transfer.node import Node, RunningSession
from p2p_transfer.rendezvous.codes import complete, normalize_code, unknown_words
from p2p_transfer.transfer import CodePrompt, SendOptions

if TYPE_CHECKING:
    from p2p_transfer.discovery import Device, DeviceBrowser
    from p2p_transfer.localsend.sender import PinPrompt
    from p2p_transfer.node.codes import Redirect


def code_argument(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``receive CODE`` as people type it (spaces for dashes, capitals), canonical."""
    if value is None:
        return None
    code = normalize_code(value)
    if code is None:
        raise click.BadParameter("a code looks like 7-guitarist-revenge (a number, then words)")
    return code


def complete_code(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[str]:
    """Shell completion of a code's words (the word list magic-wormhole's codes use)."""
    return complete(incomplete)


async def confirm_words(code: str) -> str:
    """A code whose words are not in the list is most likely mistyped, and a wrong code
    burns it: in a terminal, offer the nearest words first (a code made up with
    ``wormhole send --code`` may still be used as typed)."""
    unknown = unknown_words(code)
    if not unknown or not stdin_is_interactive():
        return code
    import difflib

    from p2p_transfer.cli.context import ask_yes_no
    from p2p_transfer.rendezvous.codes import known_words

    words = code.split("-")
    fixed = [
        next(iter(difflib.get_close_matches(w, known_words(), n=1)), w) if w in unknown else w
        for w in words
    ]
    suggestion = "-".join(fixed)
    listed = ", ".join(repr(w) for w in unknown)
    if suggestion != code and await ask_yes_no(
        f"{listed} is not a word of a code; did you mean {suggestion}?"
    ):
        return suggestion
    return code


class DevicePicker:
    """While a code waits, the devices on this network, numbered: typing a number sends
    to that device instead (the code is then cancelled)."""

    def __init__(
        self,
        node: Node,
        paths: list[Path],
        options: SendOptions,
        ask_code: CodePrompt | None,
        ask_pin: PinPrompt | None,
    ) -> None:
        self._node = node
        self._paths = paths
        self._options = options
        self._ask_code = ask_code
        self._ask_pin = ask_pin
        self.redirect: asyncio.Future[Redirect] = asyncio.get_running_loop().create_future()
        self._listed: list[Device] = []

    async def run(self, session: RunningSession) -> None:
        """List devices and read a number until the code is used or the session ends."""
        from p2p_transfer.discovery import Discovery, DiscoveryError

        try:
            discovery = await Discovery.start(own_endpoint_id=self._node.endpoint_id)
        except DiscoveryError:
            return  # no multicast here: the code alone will do
        over, invited = asyncio.Event(), asyncio.Event()
        unsubscribe = self._node.events.subscribe(_watch_wait(session.id, invited.set, over.set))
        lister = asyncio.create_task(self._list(await discovery.browse(), invited))
        reader = asyncio.create_task(self._read_picks())
        try:
            await asyncio.wait(
                {reader, asyncio.create_task(over.wait())}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            unsubscribe()
            for task in (lister, reader):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await discovery.close()

    async def _list(self, browser: DeviceBrowser, invited: asyncio.Event) -> None:
        await invited.wait()  # the code first, then what else there is
        while True:
            for device in browser.devices():
                if all(device.endpoint_id != d.endpoint_id for d in self._listed):
                    if not self._listed:
                        click.echo("Or send to a device on this network: type its number "
                                   "and Enter.", err=True)
                    self._listed.append(device)
                    click.echo(f"  {len(self._listed)}. {printable(device.name)}", err=True)
            await browser.wait_for_change(timeout=60.0)

    async def _read_picks(self) -> None:
        """Read lines until one names a listed device, then redirect the send there."""
        from p2p_transfer.discovery import device_ticket

        while (line := await read_line()) is not None:
            typed = line.strip()
            if not typed:
                continue
            if typed.isdigit() and 1 <= int(typed) <= len(self._listed):
                device = self._listed[int(typed) - 1]
                click.echo(f"Sending to {printable(device.name)}; the code is cancelled.",
                           err=True)
                self.redirect.set_result(self._node.redirect_to(
                    device_ticket(device), self._paths, self._options, self._ask_code,
                    self._ask_pin,
                ))
                return
            click.echo(f"No device {printable(typed)} here; type a number from the list.",
                       err=True)


def _watch_wait(
    session_id: str, invited: Callable[[], None], over: Callable[[], None]
) -> Callable[[Event], None]:
    """A subscriber calling ``invited`` once the code is shown, and ``over`` once it was
    used or the session moved past it."""

    def watch(event: Event) -> None:
        if getattr(event, "session", None) != session_id:
            return
        if isinstance(event, InviteEvent):
            invited()
        elif isinstance(event, RendezvousEvent) or (
            isinstance(event, StateEvent) and event.state.final
        ):
            over()

    return watch
