"""The long-running app: one Node receiving all the time, sends, the share, discovery, settings.

``AppService`` is what the UI server drives. It never prints and never asks a
terminal: questions (accept this offer? which code? accept this upload?)
become prompts the UI answers through the API, and everything that happens is
an event on ``AppService.events`` (the node's own events, forwarded unchanged,
plus the app's ``transfer`` snapshots and prompts). It composes its parts, one
job each, and keeps the node's lifecycle and the settings: the node control
(``node_control.py``), the session tracker (node events → board, by session ID),
the sends (``sends.py``: to devices, by code, Retry, staging), the outbox
(``outbox.py``: sends waiting for a trusted device that is away, kept across restarts),
the prompts, the devices (``devices.py``: trust, lock-outs, the network check, tickets),
the share control, the code receives. A new part is built here and handed only what it
needs.
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
from p2p_transfer.app.devices import DeviceControl
from p2p_transfer.app.errors import AppError, BusyError, NotFoundError
from p2p_transfer.app.events import SettingsEvent, ShareStateEvent, TransferSnapshot
from p2p_transfer.app.files import FileBrowser, Staging
from p2p_transfer.app.history import History, HistoryEntry
from p2p_transfer.app.node_control import NodeControl, NodeOptions, NodeStartError
from p2p_transfer.app.outbox import Outbox, OutboxParts
from p2p_transfer.app.prompts import PromptBook
from p2p_transfer.app.sends import SendControl, SendParts
from p2p_transfer.app.settings import (
    Settings,
    SettingsError,
    SettingsStore,
    defaults,
    validated,
)
from p2p_transfer.app.share_control import ShareControl, ShareRefused
from p2p_transfer.app.targets import Targets
from p2p_transfer.app.tracker import SessionTracker
from p2p_transfer.config import current_umask
from p2p_transfer.events import (
    DeviceEvent,
    Event,
    EventBus,
    SessionState,
    TextEvent,
    VerifiedEvent,
)
from p2p_transfer.limits import APP_TEXTS_KEPT
from p2p_transfer.node import Node
from p2p_transfer.rendezvous import RendezvousError
from p2p_transfer.rendezvous import normalize_code as normalize_short_code
from p2p_transfer.transfer.session import DataTransport
from p2p_transfer.trust.files import ensure_private_dir

__all__ = ["AppError", "AppOptions", "AppService", "BusyError", "NotFoundError"]

log = logging.getLogger(__name__)


def _node_settings(settings: Settings) -> tuple[object, ...]:
    """The settings the node is built with: changing one restarts it."""
    return (settings.device_name, settings.relay, settings.localsend, settings.localsend_port,
            settings.localsend_pin)

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
            self.events.emit, self._record_finished,
            on_removed=lambda record_id: self.sends.card_removed(record_id),
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
        self.outbox = self._outbox(options.config_dir)
        self.code_receives = CodeReceives(
            options.config_dir, self.events.emit, self._on_node_event, self.tracker.decide_offer
        )
        self.sends = SendControl(SendParts(
            self.nodes, self.board, self.tracker, self.targets, self.files, self.staging,
            lambda: self.settings, options.transport, self._spawn, self.outbox,
        ))
        self.devices = DeviceControl(
            self.nodes, options.config_dir, options.discovery, lambda: self.settings,
            self.board, self.targets,
        )
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    def _outbox(self, config_dir: Path) -> Outbox:
        """The outbox, trying devices through the targets and handing its sends to the
        send control (which shows, starts and drops their cards)."""
        return Outbox(OutboxParts(
            config_dir,
            reach=lambda peer_id: self.targets.reach(peer_id),
            show=lambda send: self.sends.show_queued(send),
            start=lambda send, ticket: self.sends.start_queued(send, ticket),
            drop=lambda send, message: self.sends.drop_queued(send, message),
        ))

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
        await self.outbox.load()  # its cards come back, and the dropped files they hold
        await asyncio.to_thread(self.staging.clear_all, self.outbox.batches())
        await asyncio.to_thread(self.code_receives.clear_stale)
        await self._start_node()
        self.outbox.start()

    async def close(self) -> None:
        """Stop the share, every transfer, discovery and the node; wait for history writes."""
        if self._closed:
            return
        self._closed = True
        await self.outbox.close()  # its sends stay saved for the next start
        await self.share.stop()
        await self.code_receives.close()
        await self._stop_node()
        self.prompts.close_all("app stopped")
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.to_thread(self.staging.clear_all, self.outbox.batches())

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
        return self.nodes.running

    async def _start_node(self) -> None:
        try:
            await self.nodes.start(self.settings)
        except NodeStartError as exc:
            raise AppError(str(exc)) from None
        self.outbox.wake_all()  # a new node: every device the outbox waits for is tried

    def _running(self) -> list[TransferRecord]:
        """Transfers under way: not those waiting in the outbox (no node work holds them,
        so a restart of the node does not wait for them or end them)."""
        return [r for r in self.board.active() if not self.outbox.holds(r.id)]

    async def _stop_node(self) -> None:
        await self.nodes.stop(self.settings.device_name)
        self.tracker.forget_arrivals("node stopped")
        for prompt in self.prompts.pending():
            if prompt.kind in ("offer", "code", "code_shown"):
                self.prompts.close(prompt.id, "node stopped")
        for record in self._running():
            self.board.finish(record, SessionState.CANCELLED, "the app stopped", "local")

    async def restart_node(self) -> None:
        """Stop and start the node (a new name or relay); refused while transfers run."""
        if self._running():
            raise BusyError("wait until the running transfers finish (or cancel them)")
        await self._stop_node()
        await self._start_node()
        await self.share.restart(self.running_node)

    def _on_node_event(self, event: Event) -> None:
        """Forward the event unchanged, then fold it into the board and prompts."""
        if isinstance(event, TextEvent):
            self.texts.append(event)  # a tab opened later shows it too
        elif isinstance(event, DeviceEvent) and event.endpoint_id:
            self.outbox.device_seen(event.endpoint_id)  # announced on the LAN: try it now
        elif isinstance(event, VerifiedEvent):
            self.outbox.device_seen(event.peer_id)  # it reached this device: it is on
        self.events.emit(event)
        self.tracker.on_event(event)

    def _record_finished(self, snapshot: TransferSnapshot) -> None:
        self._spawn(self.history.add(HistoryEntry.of(snapshot)), f"app-history {snapshot.id}")

    # --- transfers -------------------------------------------------------------

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

    def cancel(self, record_id: str) -> TransferSnapshot:
        """Stop a running transfer (either direction); both sides end it as cancelled."""
        record = self.board.get(record_id)
        if record is None:
            raise NotFoundError("no such transfer")
        if record.final:
            return record.snapshot()
        if self.outbox.cancel(record_id):  # waiting in the outbox: it never starts
            self.board.finish(record, SessionState.CANCELLED, "cancelled before it was sent",
                              "local")
            return record.snapshot()
        node = self.node
        if (node is None or not node.cancel(record_id)) and not self.code_receives.cancel(
            record_id
        ):
            self.board.finish(record, SessionState.CANCELLED, "cancelled", "local")
        return record.snapshot()

    # --- settings --------------------------------------------------------------

    async def update_settings(self, changes: dict[str, Any]) -> Settings:
        """Apply and save changes; a new name or relay restarts the node (not during transfers)."""
        try:
            new = validated(self.settings, changes)
        except SettingsError as exc:
            raise AppError(str(exc)) from None
        old = self.settings
        restart = _node_settings(new) != _node_settings(old)
        if restart and self._running():
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
