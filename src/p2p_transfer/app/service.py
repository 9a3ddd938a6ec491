"""The long-running app: one Node receiving all the time, sends, the share, discovery, settings.

``AppService`` is what the UI server drives. It never prints and never asks a
terminal: questions (accept this offer? which code? accept this upload?)
become prompts the UI answers through the API, and everything that happens is
an event on ``AppService.events`` (the node's own events, forwarded unchanged,
plus the app's ``transfer`` snapshots and prompts).

How node events are matched to transfers: a send runs in a task of ours with
the context variable ``_SEND_RECORD`` set, so every event it emits (also from
its worker tasks) names its record. A receive runs in a session task the node
creates; its code, verification, offer and error events are emitted from that
task itself, so the task identifies the session, and its end (a done-callback)
closes whatever the session left open.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from p2p_transfer.app.board import TransferBoard, TransferRecord
from p2p_transfer.app.events import (
    CodePromptEvent,
    CodeShownEvent,
    NodeStateEvent,
    OfferPromptEvent,
    SettingsEvent,
    ShareStateEvent,
    TransferSnapshot,
    UploadPromptEvent,
)
from p2p_transfer.app.files import FileBrowser, PathRefused, Staging, StagingError
from p2p_transfer.app.history import History, HistoryEntry
from p2p_transfer.app.prompts import Prompt, PromptBook, PromptError, PromptGone
from p2p_transfer.app.settings import Settings, SettingsError, SettingsStore, defaults, validated
from p2p_transfer.config import current_umask
from p2p_transfer.discovery import (
    Device,
    DeviceBrowser,
    DiscoveryError,
    device_ticket,
    looks_like_ticket,
)
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import (
    CodeEvent,
    ConnectionEvent,
    DecisionEvent,
    DiscoveryErrorEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    EventBus,
    FileFailedEvent,
    OfferEvent,
    ProgressEvent,
    RelayEvent,
    VerifiedEvent,
)
from p2p_transfer.limits import (
    APP_CODE_SHOWN_SECONDS,
    APP_MAX_SEND_PATHS,
    APP_MAX_SHARED_ITEMS,
    CODE_ENTRY_TIMEOUT,
    DECISION_TIMEOUT,
    SHARE_ANSWER_TIMEOUT,
)
from p2p_transfer.net import NetError, parse_ticket
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.share import ShareConfig, ShareServer, UploadRequest
from p2p_transfer.share.address import NoLanAddressError
from p2p_transfer.transfer import (
    Decision,
    IncomingOffer,
    ReceiveOptions,
    SendOptions,
    TransferError,
)
from p2p_transfer.trust import IdentityError, is_valid_code_format
from p2p_transfer.trust.files import ensure_private_dir

log = logging.getLogger(__name__)

#: The send record whose task (or worker task) is running; None elsewhere.
_SEND_RECORD: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "p2p_transfer_app_send_record", default=None
)
#: Where the share listens when the machine has no LAN address (offline, or a test namespace).
SHARE_FALLBACK_BIND = "127.0.0.1"
#: Random bytes of a record ID.
_RECORD_ID_BYTES = 8
NodeState = Literal["starting", "running", "stopped"]


class AppError(P2PTransferError):
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


@dataclass(slots=True)
class _ReceiveSession:
    """What the app knows of one incoming connection, by the node's session task."""

    task: asyncio.Task[Any]
    peer_id: str = ""
    peer_name: str = ""
    verified: str = ""
    record: TransferRecord | None = None
    code_prompt: str | None = None
    error: str = ""


@dataclass(slots=True)
class _SendJob:
    record: TransferRecord
    task: asyncio.Task[None] | None = None
    staging_batch: str | None = None


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
        self.board = TransferBoard(self.events.emit, self._record_finished)
        roots = options.browse_roots or (Path.home(),)
        self.files = FileBrowser(lambda: [*roots, self.settings.download_path])
        self.staging = Staging(options.config_dir)
        self.node: Node | None = None
        self._node_lock = asyncio.Lock()
        self._node_state: NodeState = "stopped"
        self._node_message = ""
        self._unsubscribe_node: Any = None
        self._serve_task: asyncio.Task[Any] | None = None
        self._receive_options: ReceiveOptions | None = None
        self._sessions: dict[asyncio.Task[Any], _ReceiveSession] = {}
        self._receives: dict[str, TransferRecord] = {}
        self._jobs: dict[str, _SendJob] = {}
        self._relay: RelayEvent | None = None
        self._browser: DeviceBrowser | None = None
        self._discovery_error = ""
        self._share: ShareServer | None = None
        self._share_files: list[Path] = []
        self._share_notice = ""
        self._share_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.events.subscribe(self._watch_own_events)

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Load settings, clear stale staging, start the node (receiving) and discovery."""
        ensure_private_dir(self.config_dir)
        fallback = defaults(self.options.device_name)
        self.settings = await asyncio.to_thread(self._settings_store.load, fallback)
        if self.options.force_device_name and self.settings.device_name != self.options.device_name:
            self.settings = validated(self.settings, {"device_name": self.options.device_name})
        await asyncio.to_thread(self._settings_store.save, self.settings)
        await asyncio.to_thread(self.staging.clear_all)
        await self._start_node()

    async def close(self) -> None:
        """Stop the share, every transfer, discovery and the node; wait for history writes."""
        if self._closed:
            return
        self._closed = True
        await self.stop_share()
        for job in list(self._jobs.values()):
            if job.task is not None:
                job.task.cancel()
        await asyncio.gather(
            *(j.task for j in self._jobs.values() if j.task is not None), return_exceptions=True
        )
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
    def running_node(self) -> Node:
        """The node, or BusyError while it (re)starts."""
        if self.node is None:
            raise BusyError(f"the node is not running ({self._node_message or self._node_state})")
        return self.node

    def _set_node_state(self, state: NodeState, message: str = "") -> None:
        self._node_state = state
        self._node_message = message
        node = self.node
        self.events.emit(NodeStateEvent(
            state,
            self.settings.device_name,
            node.endpoint_id if node is not None else "",
            message,
        ))

    async def _start_node(self) -> None:
        async with self._node_lock:
            self._set_node_state("starting")
            settings = self.settings
            config = NodeConfig(
                self.config_dir, settings.device_name, self.options.bind_addr, settings.relay
            )
            try:
                node = await Node.start(config)
            except (IdentityError, NetError) as exc:
                self._set_node_state("stopped", str(exc))
                raise AppError(f"cannot start the node: {exc}") from None
            node.pairings.lifetime = settings.pairing_lifetime_seconds
            self.node = node
            self._unsubscribe_node = node.events.subscribe(self._on_node_event)
            self._receive_options = ReceiveOptions(
                target=settings.download_path, umask=self.options.umask
            )
            self._serve_task = asyncio.create_task(
                node.serve(self._receive_options, self._decide_offer), name="app-serve"
            )
            self._serve_task.add_done_callback(self._serve_ended)
            self._relay = None
            if settings.relay != "off":
                self._spawn(node.connect_relay(), "app-relay")
            node.announce_ticket()
            if self.options.discovery:
                await self._start_discovery(node)
            await node.answer_address_queries()  # others may send to HOST:PORT
            self._set_node_state("running")

    def _serve_ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("the receiver stopped", exc_info=exc)
            self._node_message = f"receiving stopped: {exc}"
            self.events.emit(ErrorEvent(f"receiving stopped: {exc}"))

    async def _stop_node(self) -> None:
        async with self._node_lock:
            self._browser = None  # the node closes its discovery
            node, self.node = self.node, None
            if self._serve_task is not None:
                self._serve_task.cancel()
                await asyncio.gather(self._serve_task, return_exceptions=True)
                self._serve_task = None
            if node is not None:
                await node.close()
            if self._unsubscribe_node is not None:
                self._unsubscribe_node()
                self._unsubscribe_node = None
            for prompt in self.prompts.pending():
                if prompt.kind in ("offer", "code", "code_shown"):
                    self.prompts.close(prompt.id, "node stopped")
            self._set_node_state("stopped")

    async def restart_node(self) -> None:
        """Stop and start the node (a new name or relay); refused while transfers run."""
        if self.board.active():
            raise BusyError("wait until the running transfers finish (or cancel them)")
        await self._stop_node()
        await self._start_node()

    async def _start_discovery(self, node: Node) -> None:
        """Announce on the LAN and keep the device table (trouble is only an event)."""
        self._discovery_error = ""
        await node.announce_on_lan()
        if node.discovery is None:
            return
        try:
            self._browser = await node.discovery.browse()
        except (DiscoveryError, OSError) as exc:
            self.events.emit(DiscoveryErrorEvent(f"cannot look for devices: {exc}"))

    def _watch_own_events(self, event: Event) -> None:
        """Remember what the Devices and WAN views report (discovery trouble, relay state)."""
        if isinstance(event, DiscoveryErrorEvent):
            self._discovery_error = event.message
        elif isinstance(event, RelayEvent):
            self._relay = event

    # --- node events -> board and prompts ---------------------------------------

    def _on_node_event(self, event: Event) -> None:
        """Forward the event unchanged, then fold it into the board and prompts."""
        self.events.emit(event)
        record_id = _SEND_RECORD.get()
        job = self._jobs.get(record_id) if record_id is not None else None
        if job is not None:
            self._on_send_event(job.record, event)
            return
        if isinstance(event, CodeEvent | VerifiedEvent | OfferEvent | ErrorEvent):
            task = asyncio.current_task()
            if task is not None and (isinstance(event, ErrorEvent) and task not in self._sessions):
                return  # an error not from a receive session: forwarded is enough
            if task is not None:
                self._on_session_event(self._session(task), event)
            return
        transfer_id = getattr(event, "transfer_id", None)
        record = self._receives.get(transfer_id) if transfer_id else None
        if record is None:
            return
        if isinstance(event, DecisionEvent):
            if event.accepted:
                self.board.update(record, state="transferring")
            else:
                self.board.finish(record, "declined", event.reason)
        elif isinstance(event, ProgressEvent | FileFailedEvent | DoneEvent):
            self.board.apply(record, event)

    def _on_send_event(self, record: TransferRecord, event: Event) -> None:
        if isinstance(event, ConnectionEvent):
            self.board.update(
                record, state="verifying", transfer_id=event.transfer_id, peer_id=event.peer_id,
                path=event.path, rtt_ms=event.rtt_ms,
            )
        elif isinstance(event, VerifiedEvent):
            self.board.update(
                record, state="waiting", verified=event.by, peer_name=event.peer_name,
                peer_id=event.peer_id,
            )
        elif isinstance(event, DecisionEvent):
            if event.accepted:
                self.board.update(record, state="transferring")
            else:
                self.board.finish(record, "declined", event.reason or "declined")
        elif isinstance(event, ProgressEvent | FileFailedEvent | DoneEvent):
            self.board.apply(record, event)

    def _session(self, task: asyncio.Task[Any]) -> _ReceiveSession:
        session = self._sessions.get(task)
        if session is None:
            session = self._sessions[task] = _ReceiveSession(task)
            task.add_done_callback(self._session_ended)
        return session

    def _on_session_event(self, session: _ReceiveSession, event: Event) -> None:
        if isinstance(event, CodeEvent):
            session.peer_id, session.peer_name = event.peer_id, event.peer_name
            self._close_code(session, "replaced")
            session.code_prompt = self.prompts.open(
                "code_shown",
                lambda pid, deadline: CodeShownEvent(
                    pid, event.code, event.peer_name, event.peer_id, deadline
                ),
                CODE_ENTRY_TIMEOUT,
                expire_after=APP_CODE_SHOWN_SECONDS,
            ).id
        elif isinstance(event, VerifiedEvent):
            session.peer_id, session.peer_name = event.peer_id, event.peer_name
            session.verified = event.by
            self._close_code(session, "verified")
        elif isinstance(event, OfferEvent):
            record = TransferRecord(
                id=_record_id("r"),
                direction="receive",
                state="waiting",
                peer_name=event.sender,
                peer_id=event.sender_id,
                transfer_id=event.transfer_id,
                verified=session.verified,
                files_total=event.files,
                bytes_total=event.bytes,
                folder=str(self._receive_options.target) if self._receive_options else "",
                names=list(event.sample),
            )
            session.record = record
            self._receives[event.transfer_id] = record
            self.board.add(record)
        elif isinstance(event, ErrorEvent):
            session.error = event.message
            self._close_code(session, "failed")
            if session.record is not None:
                self.board.finish(session.record, "failed", event.message)

    def _close_code(self, session: _ReceiveSession, outcome: str) -> None:
        if session.code_prompt is not None:
            self.prompts.close(session.code_prompt, outcome)
            session.code_prompt = None

    def _session_ended(self, task: asyncio.Task[Any]) -> None:
        session = self._sessions.pop(task, None)
        if session is None:
            return
        self._close_code(session, "ended")
        record = session.record
        if record is not None:
            if not record.final:
                state = "cancelled" if task.cancelled() or record.cancel_requested else "failed"
                self.board.finish(record, state, session.error or "the connection ended")
            if self._receives.get(record.transfer_id) is record:
                del self._receives[record.transfer_id]

    def _record_finished(self, snapshot: TransferSnapshot) -> None:
        self._spawn(self.history.add(HistoryEntry.of(snapshot)), f"app-history {snapshot.id}")

    # --- receiving -------------------------------------------------------------

    async def _decide_offer(self, offer: IncomingOffer) -> Decision:
        """The node's question about an offer: auto-accept a trusted device, else ask the UI."""
        record = self._receives.get(offer.transfer_id)
        verified = record.verified if record is not None else ""
        if verified == "pairing" and self.settings.auto_accept_trusted:
            return Decision(True)
        prompt = self.prompts.open(
            "offer",
            lambda pid, deadline: OfferPromptEvent(
                pid, offer.transfer_id, offer.peer_name, offer.peer_id, offer.files,
                offer.folders, offer.total_bytes, list(offer.sample), verified, deadline,
            ),
            DECISION_TIMEOUT,
        )
        try:
            accept, reason = await self.prompts.wait(prompt)
        except PromptGone:
            return Decision(False, "the receiver is not answering right now")
        return Decision(True) if accept else Decision(False, reason or "declined by the receiver")

    # --- sending ---------------------------------------------------------------

    def resolve_target(self, to: str | None, device: str | None) -> tuple[str, str, str]:
        """(what to dial, peer name, peer ID) for a send.

        ``to`` is a ticket (checked now, so a mistyped one fails at once), or
        ``HOST:PORT`` or a LAN device name, which the send resolves when it
        starts (that takes a network round trip). ``device`` is the endpoint ID
        of a device in the Devices list.
        """
        text = (to or "").strip()
        if text:
            if not looks_like_ticket(text):
                return text, text, ""
            try:
                addr = parse_ticket(text)
            except NetError as exc:
                raise AppError(str(exc)) from None
            peer_id = str(addr.id())
            return text, self._known_name(peer_id), peer_id
        if device:
            found = self._device(device)
            if found is None:
                raise NotFoundError(
                    "that device is not on the LAN right now; ask for its ticket instead"
                )
            try:
                return device_ticket(found), found.name, found.endpoint_id
            except DiscoveryError as exc:
                raise AppError(str(exc)) from None
        raise AppError("choose a device, or give a ticket, HOST:PORT or device name")

    def _known_name(self, peer_id: str) -> str:
        node = self.node
        if node is not None:
            for pairing in node.pairings.list():
                if pairing.endpoint_id == peer_id:
                    return pairing.name
        device = self._device(peer_id)
        return device.name if device is not None else peer_id[:10]

    def _device(self, endpoint_id: str) -> Device | None:
        if self._browser is None:
            return None
        return next(
            (d for d in self._browser.devices() if d.endpoint_id == endpoint_id.lower()), None
        )

    def start_send(
        self,
        to: str | None,
        device: str | None,
        paths: list[str],
        staging_batch: str | None = None,
    ) -> TransferSnapshot:
        """Check the target and paths, then send in the background; returns the new record."""
        node = self.running_node
        target, peer_name, peer_id = self.resolve_target(to, device)
        if len(paths) > APP_MAX_SEND_PATHS:
            raise AppError(f"at most {APP_MAX_SEND_PATHS} paths per send")
        try:
            chosen = [self.files.check(p) for p in paths]
            if staging_batch:
                chosen += self.staging.top_level(staging_batch)
        except (PathRefused, StagingError) as exc:
            raise AppError(str(exc)) from None
        if not chosen:
            raise AppError("choose files or folders to send")
        names = [p.name for p in chosen]
        if len(set(names)) != len(names):
            raise AppError("two of the chosen items have the same name; send them separately")
        record = TransferRecord(
            id=_record_id("s"),
            direction="send",
            state="connecting",
            peer_name=peer_name,
            peer_id=peer_id,
            folder="" if staging_batch else str(chosen[0].parent),
            names=names,
        )
        job = _SendJob(record, staging_batch=staging_batch)
        self._jobs[record.id] = job
        self.board.add(record)
        context = contextvars.copy_context()
        context.run(_SEND_RECORD.set, record.id)
        job.task = asyncio.get_running_loop().create_task(
            self._run_send(node, job, target, chosen), name=f"app-send {record.id}",
            context=context,
        )
        return record.snapshot()

    async def _run_send(
        self, node: Node, job: _SendJob, target: str, paths: list[Path]
    ) -> None:
        record = job.record
        options = SendOptions(parallel=self.settings.parallel_files)

        async def ask_code(peer_name: str) -> str:
            return await self._ask_code(record, peer_name)

        try:
            ticket = target if looks_like_ticket(target) else await node.resolve(target)
            if not record.peer_id:
                self.board.update(record, peer_id=str(parse_ticket(ticket).id()))
            result = await node.send(ticket, paths, options, ask_code)
            if result.ok:
                self.board.finish(record, "done")
            else:
                self.board.finish(record, "failed", result.message)
        except (TransferError, NetError, DiscoveryError) as exc:
            message = str(exc)
            if message.startswith("receiver declined:"):
                self.board.finish(record, "declined", message.split(":", 1)[1].strip())
            else:
                self.board.finish(record, "failed", message)
        except asyncio.CancelledError:
            self.board.finish(record, "cancelled", "cancelled")
        except Exception as exc:  # a bug must not leave the record running forever
            log.exception("send %s failed", record.id)
            self.board.finish(record, "failed", f"unexpected error: {exc}")
        finally:
            self._jobs.pop(record.id, None)
            if job.staging_batch:
                await asyncio.to_thread(self.staging.remove, job.staging_batch)

    async def _ask_code(self, record: TransferRecord, peer_name: str) -> str:
        """The node's question on the sending side: the code the receiver shows."""
        self.board.update(record, state="verifying", peer_name=peer_name)
        prompt = self.prompts.open(
            "code",
            lambda pid, deadline: CodePromptEvent(pid, record.id, peer_name, deadline),
            CODE_ENTRY_TIMEOUT,
            expire_after=CODE_ENTRY_TIMEOUT,
        )
        try:
            code = await self.prompts.wait(prompt)
        except PromptGone:
            raise TransferError(
                f"no code entered (the receiver waits {CODE_ENTRY_TIMEOUT:.0f} s)"
            ) from None
        return str(code)

    def cancel(self, record_id: str) -> TransferSnapshot:
        """Stop a running transfer (either direction)."""
        record = self.board.get(record_id)
        if record is None:
            raise NotFoundError("no such transfer")
        if record.final:
            return record.snapshot()
        record.cancel_requested = True
        if record.direction == "send":
            job = self._jobs.get(record_id)
            if job is not None and job.task is not None:
                job.task.cancel()
        else:
            session = next((s for s in self._sessions.values() if s.record is record), None)
            if session is not None:
                session.task.cancel()
            else:
                self.board.finish(record, "cancelled", "cancelled")
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
            value: Any = (accept, reason[:200]) if prompt.kind == "offer" else accept
            self.prompts.answer(prompt.id, value, "accepted" if accept else "declined")
        elif prompt.kind == "code":
            code = body.get("code")
            if not isinstance(code, str) or not is_valid_code_format(code.strip()):
                raise PromptError("the code is 6 digits")
            self.prompts.answer(prompt.id, code.strip(), "answered")
        else:
            if body.get("dismiss") is not True:
                raise PromptError('a shown code is only dismissed: {"dismiss": true}')
            self.prompts.close(prompt.id, "dismissed")

    # --- devices ---------------------------------------------------------------

    def devices(self) -> dict[str, Any]:
        """Discovered devices (with trust) and trusted devices (with presence)."""
        node = self.node
        pairings = node.pairings.list() if node is not None else []
        trusted_ids = {p.endpoint_id: p for p in pairings}
        found = self._browser.devices() if self._browser is not None else []
        online = {d.endpoint_id for d in found}
        return {
            "discovery": {
                "enabled": self.options.discovery,
                "running": self._browser is not None,
                "error": self._discovery_error,
            },
            "devices": [
                {
                    "name": d.name,
                    "endpoint_id": d.endpoint_id,
                    "short_id": d.endpoint_id[:12],
                    "addresses": list(d.addresses),
                    "trusted": d.endpoint_id in trusted_ids,
                    "last_seen": d.last_seen or None,
                }
                for d in found
            ],
            "trusted": [
                {
                    "name": p.name,
                    "endpoint_id": p.endpoint_id,
                    "short_id": p.endpoint_id[:12],
                    "paired_at": p.paired_at,
                    "expires_at": p.expires_at,
                    "online": p.endpoint_id in online,
                }
                for p in pairings
            ],
        }

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

    # --- settings --------------------------------------------------------------

    async def update_settings(self, changes: dict[str, Any]) -> Settings:
        """Apply and save changes; a new name or relay restarts the node (not during transfers)."""
        try:
            new = validated(self.settings, changes)
        except SettingsError as exc:
            raise AppError(str(exc)) from None
        old = self.settings
        restart = (new.device_name, new.relay) != (old.device_name, old.relay)
        if restart and self.board.active():
            raise BusyError("a new name or relay needs a restart: wait for the transfers to finish")
        if new.download_dir != old.download_dir:
            try:
                await asyncio.to_thread(new.download_path.mkdir, parents=True, exist_ok=True)
            except OSError as exc:
                raise AppError(f"download_dir: cannot create it: {exc.strerror}") from None
        self.settings = new
        await asyncio.to_thread(self._settings_store.save, new)
        if self._receive_options is not None:
            # Sessions read the target when an offer is accepted: new offers use the new folder.
            self._receive_options.target = new.download_path
        if self.node is not None:
            self.node.pairings.lifetime = new.pairing_lifetime_seconds
        self.events.emit(self.settings_event())
        if restart:
            try:
                await self.restart_node()
            except AppError as exc:
                # E.g. a relay URL iroh refuses: go back to what worked.
                self.settings = old
                await asyncio.to_thread(self._settings_store.save, old)
                self.events.emit(self.settings_event())
                await self._start_node()
                raise AppError(f"{exc} (the previous settings are kept)") from None
        if new.download_dir != old.download_dir and self._share is not None:
            await self.start_share(self._share_files)
        return new

    def settings_event(self) -> SettingsEvent:
        """The settings as an event (also the API's JSON)."""
        s = self.settings
        return SettingsEvent(
            s.device_name, s.download_dir, s.auto_accept_trusted, s.pairing_lifetime_hours,
            s.parallel_files, s.relay,
        )

    # --- share -----------------------------------------------------------------

    def share_state(self) -> ShareStateEvent:
        """Whether the share runs, its link, and what it offers."""
        server = self._share
        return ShareStateEvent(
            running=server is not None,
            url=server.url if server is not None else None,
            upload_dir=self.settings.download_dir,
            files=[str(p) for p in self._share_files],
            notice=self._share_notice,
        )

    @property
    def share_url(self) -> str | None:
        """The share link while the share runs."""
        return self._share.url if self._share is not None else None

    def _checked_share_files(self, paths: list[str] | list[Path]) -> list[Path]:
        if len(paths) > APP_MAX_SHARED_ITEMS:
            raise AppError(f"at most {APP_MAX_SHARED_ITEMS} shared items")
        try:
            offered = [self.files.check(str(p)) for p in paths]
        except PathRefused as exc:
            raise AppError(str(exc)) from None
        return list(dict.fromkeys(offered))

    async def set_share_files(self, paths: list[str]) -> ShareStateEvent:
        """Choose what the share offers; a running share restarts (its link changes)."""
        offered = self._checked_share_files(paths)
        if self._share is not None:
            return await self.start_share(offered)
        self._share_files = offered
        state = self.share_state()
        self.events.emit(state)
        return state

    async def start_share(self, paths: list[str] | list[Path] | None = None) -> ShareStateEvent:
        """(Re)start the share: uploads go to the download folder, ``paths`` are offered.

        Without ``paths``, the files chosen before (``set_share_files``) are offered.
        """
        async with self._share_lock:
            if paths is not None:
                offered = self._checked_share_files(paths)
            else:
                offered = list(self._share_files)
            await self._stop_share_server()
            folder = self.settings.download_path
            try:
                await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
                server = await self._listen(folder, offered)
            except (OSError, ValueError) as exc:
                self._share_notice = f"cannot share: {exc}"
                self.events.emit(self.share_state())
                raise AppError(self._share_notice) from None
            self._share, self._share_files = server, offered
            state = self.share_state()
            self.events.emit(state)
            return state

    async def _listen(self, folder: Path, offered: list[Path]) -> ShareServer:
        bind = self.options.share_bind
        self._share_notice = ""
        for attempt in (bind, SHARE_FALLBACK_BIND):
            config = ShareConfig(
                upload_dir=folder,
                decide=self._decide_upload,
                bind=attempt,
                shared=offered,
                device_name=self.settings.device_name,
                umask=self.options.umask,
            )
            server = ShareServer(config, self.events)
            try:
                await server.start()
            except NoLanAddressError:
                self._share_notice = (
                    "No LAN address found: the link works on this computer only."
                )
                continue
            return server
        raise OSError("no address to listen on")

    async def stop_share(self) -> ShareStateEvent:
        """Stop the share (open uploads are told the share went away)."""
        async with self._share_lock:
            await self._stop_share_server()
            self._share_notice = ""
            state = self.share_state()
            self.events.emit(state)
            return state

    async def _stop_share_server(self) -> None:
        server, self._share = self._share, None
        if server is not None:
            await server.stop()
            for prompt in self.prompts.pending():
                if prompt.kind == "upload":
                    self.prompts.close(prompt.id, "share stopped")

    async def _decide_upload(self, request: UploadRequest) -> bool | str:
        """The share's question about one browser upload, asked in the UI."""
        prompt = self.prompts.open(
            "upload",
            lambda pid, deadline: UploadPromptEvent(
                pid, request.request_id, request.file_name, request.file_size, request.client,
                deadline,
            ),
            SHARE_ANSWER_TIMEOUT,
        )
        try:
            return bool(await self.prompts.wait(prompt))
        except PromptGone:
            return "The owner is not answering right now."

    # --- WAN -------------------------------------------------------------------

    def wan(self) -> dict[str, Any]:
        """This node's ticket and relay state, and how live transfers reach their peers."""
        node = self.node
        relay = self._relay
        return {
            "ticket": node.transport.ticket if node is not None else None,
            "endpoint_id": node.endpoint_id if node is not None else None,
            "addresses": node.transport.addresses if node is not None else [],
            "relay": {
                "setting": self.settings.relay,
                "connected": relay.connected if relay is not None else None,
                "url": relay.url if relay is not None else None,
                "message": relay.message if relay is not None else "",
            },
            "connections": [
                {
                    "transfer": r.id,
                    "direction": r.direction,
                    "peer_name": r.peer_name,
                    "peer_id": r.peer_id,
                    "path": r.path or "unknown",
                    "rtt_ms": r.rtt_ms,
                }
                for r in self.board.active()
                if r.state != "connecting"
            ],
        }

    def inspect_ticket(self, ticket: str) -> dict[str, Any]:
        """What a ticket names (ID, addresses, relay) and whether that device is trusted."""
        try:
            addr = parse_ticket(ticket)
        except NetError as exc:
            raise AppError(str(exc)) from None
        peer_id = str(addr.id())
        node = self.node
        return {
            "endpoint_id": peer_id,
            "addresses": list(addr.direct_addresses()),
            "relay_url": addr.relay_url(),
            "trusted": node is not None and node.pairings.is_trusted(peer_id),
            "name": self._known_name(peer_id),
            "is_self": node is not None and node.endpoint_id == peer_id,
        }

    # --- state -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything a UI tab needs to draw itself from nothing."""
        node = self.node
        return {
            "node": {
                "state": self._node_state,
                "message": self._node_message,
                "device_name": self.settings.device_name,
                "endpoint_id": node.endpoint_id if node is not None else None,
                "ticket": node.transport.ticket if node is not None else None,
            },
            "settings": self.settings.to_dict(),
            "transfers": [asdict(s) for s in self.board.snapshots()],
            "prompts": [p.event.to_dict() for p in self.prompts.pending()],
            "share": self.share_state().to_dict(),
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
        if any(j.staging_batch == batch for j in self._jobs.values()):
            raise BusyError("this batch is being sent")
        await asyncio.to_thread(self.staging.remove, batch)


def _record_id(prefix: str) -> str:
    return prefix + secrets.token_hex(_RECORD_ID_BYTES)

