"""The long-running app: one Node receiving all the time, sends, the share, discovery, settings.

``AppService`` is what the UI server drives. It never prints and never asks a
terminal: questions (accept this offer? which code? accept this upload?)
become prompts the UI answers through the API, and everything that happens is
an event on ``AppService.events`` (the node's own events, forwarded unchanged,
plus the app's ``transfer`` snapshots and prompts). Its parts: the session
tracker (node events → board, by session ID), the targets (where a send goes,
and where trusted devices were reached), the send book (what Retry sends again),
the share control, the views.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from p2p_transfer.app.board import TransferBoard, TransferRecord
from p2p_transfer.app.code_receive import CodeReceives
from p2p_transfer.app.events import (
    SettingsEvent,
    ShareStateEvent,
    TransferSnapshot,
)
from p2p_transfer.app.files import FileBrowser, Staging, StagingError
from p2p_transfer.app.history import History, HistoryEntry
from p2p_transfer.app.node_control import NodeControl, NodeOptions, NodeStartError
from p2p_transfer.app.prompts import Prompt, PromptBook, PromptError, PromptGone
from p2p_transfer.app.sends import SendBook, SendRequest
from p2p_transfer.app.settings import (
    Settings,
    SettingsError,
    SettingsStore,
    defaults,
    validated,
)
from p2p_transfer.app.share_control import ShareControl, ShareRefused
from p2p_transfer.app.targets import Destination, Targets, UnresolvedTarget, pasted
from p2p_transfer.app.tracker import SessionTracker
from p2p_transfer.app.views import devices_view, locked_view, wan_view
from p2p_transfer.config import current_umask
from p2p_transfer.doctor import DoctorOptions, diagnose
from p2p_transfer.errors import LocalFault
from p2p_transfer.events import (
    CheckEvent,
    Event,
    EventBus,
    SessionState,
    TextEvent,
)
from p2p_transfer.limits import (
    APP_DECLINE_REASON_CHARS,
    APP_MAX_SEND_PATHS,
    APP_MAX_SEND_TARGETS,
    APP_TEXTS_KEPT,
    LOCALSEND_MAX_PIN_CHARS,
)
from p2p_transfer.net import NetError, parse_ticket
from p2p_transfer.node import Node, RunningSession
from p2p_transfer.protocol import text_preview
from p2p_transfer.rendezvous import RendezvousError
from p2p_transfer.rendezvous import normalize_code as normalize_short_code
from p2p_transfer.transfer import SendOptions, TransferError
from p2p_transfer.transfer.sender import check_text
from p2p_transfer.transfer.session import DataTransport
from p2p_transfer.trust import AttemptLimiter, normalize_code
from p2p_transfer.trust.files import ensure_private_dir
from p2p_transfer.trust.verification import CODE_FORM

log = logging.getLogger(__name__)


def _node_settings(settings: Settings) -> tuple[object, ...]:
    """The settings the node is built with: changing one restarts it."""
    return (settings.device_name, settings.relay, settings.localsend, settings.localsend_port,
            settings.localsend_pin)

class AppError(LocalFault):
    """An action the UI asked for cannot be done; ``status`` is the HTTP status it maps to."""

    status = 400


class NotFoundError(AppError):
    """No such transfer, device, prompt or history entry."""

    status = 404


class BusyError(AppError):
    """Not now: something in progress prevents it (e.g. a restart during transfers)."""

    status = 409


class GoneError(AppError):
    """The question was already answered, expired, or withdrawn."""

    status = 410


@dataclass(frozen=True, slots=True)
class AppOptions:
    """How the app was started (command-line options, or a test's choices)."""

    config_dir: Path
    #: The device name used when no settings are saved yet.
    device_name: str
    #: Use ``device_name`` even if the settings name another (``--name`` was given).
    force_device_name: bool = False
    #: Where the QUIC endpoint binds (``None``: every interface, any port).
    bind_addr: str | None = None
    #: Where the share listens (``None``: the LAN address, else 127.0.0.1).
    share_bind: str | None = None
    #: Folders the file browser may show besides the download folder (default: home).
    browse_roots: tuple[Path, ...] = ()
    #: Announce and browse on the LAN (mDNS).
    discovery: bool = True
    #: Mode mask for received files (read once at start, before threads exist).
    umask: int = field(default_factory=current_umask)
    #: Which channel carries file data, both ways (``--transport``).
    transport: DataTransport = "auto"
    #: Settings given on the command line (``--relay``, ``--mailbox``): they replace the
    #: saved ones, and are saved (None: keep what is saved).
    forced_settings: dict[str, Any] = field(default_factory=dict)


class AppService:
    """Owns the node and everything the UI can do with it."""

    def __init__(self, options: AppOptions) -> None:
        self.options = options
        self.config_dir = options.config_dir
        self.events = EventBus()
        self._settings_store = SettingsStore(options.config_dir)
        self.settings: Settings = defaults(options.device_name)
        self.history = History(options.config_dir)
        self.prompts = PromptBook(self.events.emit)
        self.board = TransferBoard(
            self.events.emit, self._record_finished, on_removed=self._card_removed
        )
        self.tracker = SessionTracker(
            self.board, self.prompts,
            receive_folder=lambda: str(self.settings.download_path),
            auto_accept_trusted=lambda: self.settings.auto_accept_trusted,
        )
        roots = options.browse_roots or (Path.home(),)
        self.files = FileBrowser(lambda: [*roots, self.settings.download_path])
        self.staging = Staging(options.config_dir)
        self.share = ShareControl(
            self.events.emit, self.prompts, self.files, options.share_bind, options.umask
        )
        self.nodes = NodeControl(
            NodeOptions(
                options.config_dir, options.bind_addr, options.discovery, options.umask,
                options.transport,
            ),
            self.events.emit,
            self._on_node_event,
            self.tracker.decide_offer,
        )
        #: The latest text messages received (ours and LocalSend's), for the Incoming view.
        self.texts: deque[TextEvent] = deque(maxlen=APP_TEXTS_KEPT)
        self.targets = Targets(self.nodes)
        self.code_receives = CodeReceives(
            options.config_dir, self.events.emit, self._on_node_event, self.tracker.decide_offer
        )
        self._doctor_lock = asyncio.Lock()
        #: What each send on the board was asked to do (Retry), and its staged batch.
        self.sends = SendBook()
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Load settings, clear stale staging, start the node (receiving) and discovery."""
        ensure_private_dir(self.config_dir)
        fallback = defaults(self.options.device_name)
        self.settings = await asyncio.to_thread(self._settings_store.load, fallback)
        if self.options.force_device_name and self.settings.device_name != self.options.device_name:
            self.settings = validated(self.settings, {"device_name": self.options.device_name})
        if self.options.forced_settings:
            try:
                self.settings = validated(self.settings, self.options.forced_settings)
            except SettingsError as exc:
                raise AppError(str(exc)) from None
        await asyncio.to_thread(self._settings_store.save, self.settings)
        self._share_settings()
        await asyncio.to_thread(self.staging.clear_all)
        await asyncio.to_thread(self.code_receives.clear_stale)
        await self._start_node()

    async def close(self) -> None:
        """Stop the share, every transfer, discovery and the node; wait for history writes."""
        if self._closed:
            return
        self._closed = True
        await self.share.stop()
        await self.code_receives.close()
        await self._stop_node()
        self.prompts.close_all("app stopped")
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.to_thread(self.staging.clear_all)

    def _spawn(self, coroutine: Any, name: str) -> asyncio.Task[Any]:
        """A background task kept referenced until done (and awaited on close)."""
        task = asyncio.create_task(coroutine, name=name)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    # --- the node --------------------------------------------------------------

    @property
    def node(self) -> Node | None:
        """The node while it runs."""
        return self.nodes.node

    @property
    def running_node(self) -> Node:
        """The node, or BusyError while it (re)starts."""
        if self.nodes.node is None:
            raise BusyError(
                f"the node is not running ({self.nodes.message or self.nodes.state})"
            )
        return self.nodes.node

    async def _start_node(self) -> None:
        try:
            await self.nodes.start(self.settings)
        except NodeStartError as exc:
            raise AppError(str(exc)) from None

    async def _stop_node(self) -> None:
        await self.nodes.stop(self.settings.device_name)
        self.tracker.forget_arrivals("node stopped")
        for prompt in self.prompts.pending():
            if prompt.kind in ("offer", "code", "code_shown"):
                self.prompts.close(prompt.id, "node stopped")
        for record in self.board.active():
            self.board.finish(record, SessionState.CANCELLED, "the app stopped", "local")

    async def restart_node(self) -> None:
        """Stop and start the node (a new name or relay); refused while transfers run."""
        if self.board.active():
            raise BusyError("wait until the running transfers finish (or cancel them)")
        await self._stop_node()
        await self._start_node()
        await self.share.restart(self.running_node)

    def _on_node_event(self, event: Event) -> None:
        """Forward the event unchanged, then fold it into the board and prompts."""
        if isinstance(event, TextEvent):
            self.texts.append(event)  # a tab opened later shows it too
        self.events.emit(event)
        self.tracker.on_event(event)

    def _record_finished(self, snapshot: TransferSnapshot) -> None:
        self._spawn(self.history.add(HistoryEntry.of(snapshot)), f"app-history {snapshot.id}")

    # --- sending ---------------------------------------------------------------

    def start_send(
        self,
        targets: list[tuple[str | None, str | None]],
        paths: list[str],
        staging_batch: str | None = None,
        text: str | None = None,
    ) -> list[TransferSnapshot]:
        """Send the paths (and staged files), or a text message, to each target, a session
        per target, in the background; returns the new records. ``targets``: (typed or
        pasted text, picked device) pairs, one of each set. Every target is checked before
        any send starts."""
        node = self.running_node
        if not targets:
            raise AppError("choose a device, or give a ticket, HOST:PORT or device name")
        if len(targets) > APP_MAX_SEND_TARGETS:
            raise AppError(f"at most {APP_MAX_SEND_TARGETS} devices per send")
        chosen = self._chosen(paths, staging_batch, text)
        destinations: dict[str, tuple[Destination, SendRequest]] = {}
        for to, device in targets:  # the same device twice gets one send
            destination = self._destination(to, device)
            request = SendRequest(to, device, tuple(paths), staging_batch, text)
            destinations.setdefault(destination.peer_id or str(destination.dial),
                                    (destination, request))
        return [
            self._launch(node, destination, request, chosen).snapshot()
            for destination, request in destinations.values()
        ]

    def retry(self, record_id: str) -> TransferSnapshot:
        """Send a failed or cancelled send again, to the same device with the same files:
        the receiver offers what it already holds, so the send resumes."""
        node = self.running_node
        record = self.board.get(record_id)
        if record is None:
            raise NotFoundError("no such transfer")
        request = self.sends.get(record_id)
        if not record.can_retry or request is None:
            raise BusyError("only a failed or cancelled send can be tried again, once")
        chosen = self._chosen(list(request.paths), request.batch, request.text)
        if request.by_code:  # a code is good for one try: a new one
            retry = self._launch_by_code(node, request, chosen, retry_of=record_id)
        else:
            destination = self._destination(request.to, request.device)
            retry = self._launch(node, destination, request, chosen, retry_of=record_id)
        self.sends.drop(record_id)  # the retry holds its staged files now
        self.board.note_retry(record, retry.id)
        return retry.snapshot()

    def start_send_by_code(
        self, paths: list[str], staging_batch: str | None = None, text: str | None = None
    ) -> TransferSnapshot:
        """Send the paths (and staged files), or a text, to whoever types the code this
        allocates on the code server (its card carries the code once it is there)."""
        node = self.running_node
        chosen = self._chosen(paths, staging_batch, text)
        request = SendRequest(None, None, tuple(paths), staging_batch, text, by_code=True)
        return self._launch_by_code(node, request, chosen).snapshot()

    def receive_by_code(self, typed: str) -> str:
        """Receive what a code brings (typed as people type it: spaces, capitals), in the
        background: ``code_receive`` events say how meeting its sender goes, then its
        offer is asked as any other. Returns the code as it is used."""
        code = normalize_short_code(typed)
        if code is None:
            raise AppError(
                "that is not a code: a code looks like 7-guitarist-revenge (a number, then "
                "words), as the sending device shows it"
            )
        options = self.nodes.receive_options
        if self.node is None or options is None:
            raise BusyError(
                "the app is not receiving right now (it is starting or restarting); "
                "try again in a moment"
            )
        try:
            mailbox = self.settings.mailbox_url
        except RendezvousError as exc:
            raise AppError(str(exc)) from None
        self.code_receives.start(
            code, self.settings.device_name, self.settings.relay, mailbox, options
        )
        return code

    def _destination(self, to: str | None, device: str | None) -> Destination:
        try:
            return self.targets.resolve(to, device)
        except UnresolvedTarget as exc:
            raise (NotFoundError if exc.missing else AppError)(str(exc)) from None

    def _chosen(
        self, paths: list[str], staging_batch: str | None, text: str | None = None
    ) -> list[Path]:
        """The paths to send, checked against the browser's rule, and the staged items;
        none for a text message (checked instead)."""
        if text is not None:
            if paths or staging_batch:
                raise AppError("send either a text or files, not both")
            try:
                check_text(text, [])
            except TransferError as exc:
                raise AppError(str(exc)) from None
            return []
        if len(paths) > APP_MAX_SEND_PATHS:
            raise AppError(f"at most {APP_MAX_SEND_PATHS} paths per send")
        # A path outside the browsable folders is PathRefused (403), a missing one
        # PathMissing (404), as when browsing.
        chosen = [self.files.check(p) for p in paths]
        try:
            if staging_batch:
                chosen += self.staging.top_level(staging_batch)
        except StagingError as exc:
            raise AppError(str(exc)) from None
        if not chosen:
            raise AppError("choose files or folders to send")
        names = [p.name for p in chosen]
        if len(set(names)) != len(names):
            raise AppError("two of the chosen items have the same name; send them separately")
        return chosen

    def _launch(
        self,
        node: Node,
        destination: Destination,
        request: SendRequest,
        chosen: list[Path],
        retry_of: str = "",
    ) -> TransferRecord:
        """Start one send session and its card."""
        session = node.start_send(
            destination.dial, chosen, self._send_options(request.text), self.tracker.ask_code,
            self.tracker.ask_pin,
        )
        return self._track(
            session, request, chosen, destination.peer_name, destination.peer_id, retry_of
        )

    def _track(
        self, session: RunningSession, request: SendRequest, chosen: list[Path],
        peer_name: str, peer_id: str, retry_of: str,
    ) -> TransferRecord:
        """A send's card, its request (for Retry) and its settling."""
        record = TransferRecord(
            id=session.id,
            direction="send",
            state=SessionState.CONNECTING,
            peer_name=peer_name,
            peer_id=peer_id,
            folder=str(chosen[0].parent) if request.paths else "",
            names=[text_preview(request.text)] if request.text is not None else (
                [p.name for p in chosen]
            ),
            retry_of=retry_of,
            text=request.text is not None,
        )
        self.tracker.track_send(record)
        self.sends.add(session.id, request)
        self._spawn(self._settle(session), f"app-send {session.id}")
        return record

    def _launch_by_code(
        self, node: Node, request: SendRequest, chosen: list[Path], retry_of: str = ""
    ) -> TransferRecord:
        """Start one send by code and its card (no peer until the code is used)."""
        try:
            mailbox = self.settings.mailbox_url
        except RendezvousError as exc:
            raise AppError(str(exc)) from None
        session = node.start_send_by_code(chosen, self._send_options(request.text), mailbox)
        return self._track(session, request, chosen, "", "", retry_of)

    def _send_options(self, text: str | None) -> SendOptions:
        return SendOptions(
            parallel=self.settings.parallel_files, transport=self.options.transport, text=text,
        )

    async def _settle(self, session: RunningSession) -> None:
        """A send that did not fail or get cancelled will not be retried: forget it (and
        its staged copies, once no other send holds them)."""
        await asyncio.gather(session.task, return_exceptions=True)
        record = self.board.get(session.id)
        if record is None or not record.can_retry:
            await self._forget_send(session.id)

    async def _forget_send(self, session_id: str) -> None:
        if (batch := self.sends.drop(session_id)) is not None:
            await asyncio.to_thread(self.staging.remove, batch)

    def _card_removed(self, record_id: str) -> None:
        """A card left the board: it can no longer be retried."""
        self._spawn(self._forget_send(record_id), f"app-forget {record_id}")

    def cancel(self, record_id: str) -> TransferSnapshot:
        """Stop a running transfer (either direction); both sides end it as cancelled."""
        record = self.board.get(record_id)
        if record is None:
            raise NotFoundError("no such transfer")
        if record.final:
            return record.snapshot()
        node = self.node
        if (node is None or not node.cancel(record_id)) and not self.code_receives.cancel(
            record_id
        ):
            self.board.finish(record, SessionState.CANCELLED, "cancelled", "local")
        return record.snapshot()

    # --- prompts ---------------------------------------------------------------

    def answer(self, prompt_id: str, body: dict[str, Any]) -> None:
        """Answer a prompt: ``accept`` (offer, upload), ``code``, or ``dismiss`` (code_shown)."""
        try:
            prompt = self.prompts.get(prompt_id)
        except PromptGone as exc:
            raise GoneError(str(exc)) from None
        try:
            self._answer(prompt, body)
        except PromptGone as exc:
            raise GoneError(str(exc)) from None
        except PromptError as exc:
            raise AppError(str(exc)) from None

    def _answer(self, prompt: Prompt, body: dict[str, Any]) -> None:
        if prompt.kind in ("offer", "upload"):
            accept = body.get("accept")
            if not isinstance(accept, bool):
                raise PromptError('answer with {"accept": true} or {"accept": false}')
            reason = body.get("reason", "")
            if not isinstance(reason, str):
                raise PromptError("reason: text")
            reason = reason[:APP_DECLINE_REASON_CHARS]
            value: Any = (accept, reason) if prompt.kind == "offer" else accept
            self.prompts.answer(prompt.id, value, "accepted" if accept else "declined")
        elif prompt.kind == "pin":
            pin = body.get("pin")
            if not isinstance(pin, str) or not pin.strip() or len(pin) > LOCALSEND_MAX_PIN_CHARS:
                raise PromptError(
                    f'answer with {{"pin": "..."}} (1 to {LOCALSEND_MAX_PIN_CHARS} characters)'
                )
            self.prompts.answer(prompt.id, pin.strip(), "answered")
        elif prompt.kind == "code":
            typed = body.get("code")
            code = normalize_code(typed) if isinstance(typed, str) else None
            if code is None:
                raise PromptError(f"the code is {CODE_FORM}")
            self.prompts.hand(prompt.id, code)  # open until the code is checked
        else:
            if body.get("dismiss") is not True:
                raise PromptError('a shown code is only dismissed: {"dismiss": true}')
            self.prompts.close(prompt.id, "dismissed")

    # --- devices ---------------------------------------------------------------

    def devices(self) -> dict[str, Any]:
        """Discovered devices (with trust), trusted devices (with presence), and devices
        locked out after too many failed codes (which the user may let try again)."""
        node = self.node
        view = devices_view(
            self.nodes.devices(),
            node.pairings.list() if node is not None else [],
            {
                "enabled": self.options.discovery,
                "running": self.nodes.browser is not None,
                "error": self.nodes.discovery_error,
                "localsend": self.settings.localsend,
                "localsend_error": self.nodes.localsend_error,
            },
            self.nodes.localsend_devices(),
        )
        view["locked_out"] = locked_view(AttemptLimiter(self.config_dir).locked_keys())
        return view

    async def check_network(self) -> list[CheckEvent]:
        """``p2p-transfer doctor`` for the app's node: why devices can't see or reach each
        other (one run at a time; a second caller waits for it and gets its own)."""
        node = self.running_node
        options = DoctorOptions(self.settings.download_path, self.config_dir, self.settings.relay)
        async with self._doctor_lock:
            return [check async for check in diagnose(options, node)]

    def forget(self, endpoint_id: str) -> int:
        """Forget one trusted device by its full endpoint ID; returns how many were removed."""
        node = self.running_node
        matches = [p for p in node.pairings.list() if p.endpoint_id == endpoint_id.lower()]
        if not matches:
            raise NotFoundError("no trusted device has that ID")
        return len(node.pairings.remove(matches[0].endpoint_id))

    def forget_all(self) -> int:
        """Forget every trusted device."""
        return self.running_node.pairings.clear()

    def unlock(self, endpoint_id: str) -> None:
        """Let a locked-out device try a code again at once (``pair unlock``); the node's
        limits read the change from their file."""
        limiter = AttemptLimiter(self.config_dir)
        if endpoint_id.lower() not in {k.key for k in limiter.locked_keys()}:
            raise NotFoundError("no locked-out device has that ID")
        limiter.unlock(endpoint_id.lower())

    # --- settings --------------------------------------------------------------

    async def update_settings(self, changes: dict[str, Any]) -> Settings:
        """Apply and save changes; a new name or relay restarts the node (not during transfers)."""
        try:
            new = validated(self.settings, changes)
        except SettingsError as exc:
            raise AppError(str(exc)) from None
        old = self.settings
        restart = _node_settings(new) != _node_settings(old)
        if restart and self.board.active():
            raise BusyError("a new name or relay needs a restart: wait for the transfers to finish")
        if new.download_dir != old.download_dir:
            try:
                await asyncio.to_thread(new.download_path.mkdir, parents=True, exist_ok=True)
            except OSError as exc:
                raise AppError(f"download_dir: cannot create it: {exc.strerror}") from None
        self.settings = new
        await asyncio.to_thread(self._settings_store.save, new)
        if self.nodes.receive_options is not None:
            # Sessions read the target when an offer is accepted: new offers use the new folder.
            self.nodes.receive_options.target = new.download_path
        if self.node is not None:
            self.node.pairings.lifetime = new.pairing_lifetime_seconds
        self.events.emit(self.settings_event())
        if restart:
            self._share_settings()
            try:
                await self.restart_node()
            except AppError as exc:
                # E.g. a relay URL iroh refuses: go back to what worked.
                self.settings = old
                self._share_settings()
                await asyncio.to_thread(self._settings_store.save, old)
                self.events.emit(self.settings_event())
                await self._start_node()
                await self.share.restart(self.running_node)
                raise AppError(f"{exc} (the previous settings are kept)") from None
        self._share_settings()
        if new.download_dir != old.download_dir and self.share.running:
            await self.share.start(self.running_node)
        return new

    def settings_event(self) -> SettingsEvent:
        """The settings as an event (also the API's JSON)."""
        s = self.settings
        return SettingsEvent(
            s.device_name, s.download_dir, s.auto_accept_trusted, s.pairing_lifetime_hours,
            s.parallel_files, s.relay, s.localsend, s.localsend_port, s.localsend_pin,
            s.mailbox,
        )

    # --- share -----------------------------------------------------------------

    def _share_settings(self) -> None:
        self.share.folder = self.settings.download_path
        self.share.device_name = self.settings.device_name

    def share_state(self) -> ShareStateEvent:
        """Whether the share runs, its link, and what it offers."""
        return self.share.state()

    @property
    def share_url(self) -> str | None:
        """The share link while the share runs."""
        return self.share.url

    async def set_share_files(self, paths: list[str]) -> ShareStateEvent:
        """Choose what the share offers; a running share restarts (its link changes)."""
        try:
            return await self.share.set_files(self.running_node, paths)
        except ShareRefused as exc:
            raise AppError(str(exc)) from None

    async def start_share(self, paths: list[str] | None = None) -> ShareStateEvent:
        """(Re)start the share: uploads go to the download folder, ``paths`` are offered."""
        try:
            return await self.share.start(self.running_node, paths)
        except ShareRefused as exc:
            raise AppError(str(exc)) from None

    async def stop_share(self) -> ShareStateEvent:
        """Stop the share (open uploads are told the share went away)."""
        return await self.share.stop()

    # --- WAN -------------------------------------------------------------------

    def wan(self) -> dict[str, Any]:
        """This node's ticket and relay state, and how live transfers reach their peers."""
        return wan_view(self.node, self.settings.relay, self.nodes.relay, self.board.active())

    def inspect_ticket(self, ticket: str) -> dict[str, Any]:
        """What a ticket names (ID, addresses, relay) and whether that device is trusted."""
        try:
            addr = parse_ticket(pasted(ticket))
        except NetError as exc:
            raise AppError(str(exc)) from None
        peer_id = str(addr.id())
        node = self.node
        return {
            "endpoint_id": peer_id,
            "addresses": list(addr.direct_addresses()),
            "relay_url": addr.relay_url(),
            "trusted": node is not None and node.pairings.is_trusted(peer_id),
            "name": self.targets.known_name(peer_id),
            "is_self": node is not None and node.endpoint_id == peer_id,
        }

    # --- state -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything a UI tab needs to draw itself from nothing."""
        node = self.node
        return {
            "node": {
                "state": self.nodes.state,
                "message": self.nodes.message,
                "device_name": self.settings.device_name,
                "endpoint_id": node.endpoint_id if node is not None else None,
                "ticket": node.transport.ticket if node is not None else None,
            },
            "settings": self.settings.to_dict(),
            "transfers": [asdict(s) for s in self.board.snapshots()],
            "prompts": [p.event.to_dict() for p in self.prompts.pending()],
            "share": self.share_state().to_dict(),
            "texts": [t.to_dict() for t in self.texts],
            "time": time.time(),
        }

    async def history_entry(self, entry_id: str) -> HistoryEntry:
        """One history row, or NotFoundError."""
        entry = await self.history.get(entry_id)
        if entry is None:
            raise NotFoundError("no such history entry")
        return entry

    async def new_staging_batch(self) -> str:
        """A fresh staging batch for dropped files."""
        return await asyncio.to_thread(self.staging.create)

    def staged(self, batch: str) -> list[dict[str, Any]]:
        """The top-level items of a staging batch (what would be sent)."""
        try:
            items = self.staging.top_level(batch)
        except StagingError as exc:
            raise NotFoundError(str(exc)) from None
        return [{"name": p.name, "kind": "dir" if p.is_dir() else "file"} for p in items]

    async def drop_staging_batch(self, batch: str) -> None:
        """Delete a staging batch the user removed before sending."""
        if self.sends.holds(batch):
            raise BusyError("this batch is being sent")
        await asyncio.to_thread(self.staging.remove, batch)
