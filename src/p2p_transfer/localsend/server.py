"""The LocalSend HTTPS server (v2.1 routes) on aiohttp, with the share server's guards.

Connections are counted per address and in total from their TCP accept, and keep
their place only while waiting for an answer or uploading (``share.limiter``);
a ``prepare-upload`` is refused before its body is read when its PIN is wrong or a
session is open; JSON bodies are capped (LOCALSEND_MAX_JSON_BODY, refused unread
when announced larger) and read within a budget (``bodies``); an offer is planned
a few files at a time, leaving the event loop to the rest; an upload's body must be
exactly the size its file announced. The receiving logic is ``LocalSendReceiver``;
this module only maps HTTP onto it and its refusals onto the spec's status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator

from aiohttp import StreamReader, web

from p2p_transfer.limits import (
    CLOSE_GRACE,
    LOCALSEND_HANDSHAKE_TIMEOUT,
    LOCALSEND_MAX_CONNECTIONS,
    LOCALSEND_MAX_CONNECTIONS_PER_IP,
    LOCALSEND_MAX_JSON_BODY,
    LOCALSEND_PLAN_SHARE,
    LOCALSEND_PLAN_STEP,
    LOCALSEND_RETRY_AFTER,
    PUMP_BUFFER_SIZE,
)
from p2p_transfer.localsend.bodies import BodyBudget
from p2p_transfer.localsend.identity import Certificate, own_info
from p2p_transfer.localsend.messages import (
    API_PREFIX,
    DeviceInfo,
    decode_device_info,
    decode_offer_head,
    encode,
)
from p2p_transfer.localsend.offer import LocalSendOffer, OfferPlanner
from p2p_transfer.localsend.receiver import LocalSendReceiver
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.share.limiter import ConnectionLimiter, LimitedSite
from p2p_transfer.transfer.offers import Refused

log = logging.getLogger(__name__)

#: Called with a device that registered itself (``POST /register``) and its address.
RegisterHandler = Callable[[DeviceInfo, str], None]
#: Why a large body is refused while others are being read (503, Retry-After).
BODIES_FULL = "the receiver is reading other large requests; try again in a few seconds"
#: Why a newcomer is refused (503) while every connection is busy.
DEVICE_FULL = "This device has too many LocalSend connections right now; try again shortly."
ADDRESS_FULL = "Too many LocalSend connections from your address; try again shortly."


def client_ip(request: web.BaseRequest) -> str:
    """The peer's IP address (an IPv4-mapped IPv6 address as plain IPv4)."""
    remote = request.remote or "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped) if mapped is not None else str(address)


class LocalSendServer:
    """Serves ``/api/localsend/v2/*`` over HTTPS until ``stop``."""

    def __init__(
        self,
        certificate: Certificate,
        alias: str,
        receiver: LocalSendReceiver,
        *,
        sock: socket.socket,
        on_register: RegisterHandler | None = None,
    ) -> None:
        """``sock``: the listening socket, bound by the service before anyone connected."""
        self.certificate = certificate
        self.alias = alias
        self.receiver = receiver
        self._sock = sock
        self.on_register = on_register
        self._limiter = ConnectionLimiter(
            LOCALSEND_MAX_CONNECTIONS, LOCALSEND_MAX_CONNECTIONS_PER_IP,
            full=DEVICE_FULL, ip_full=ADDRESS_FULL,
        )
        self._bodies = BodyBudget()
        self._planning = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._site: LimitedSite | None = None

    @property
    def port(self) -> int:
        """The TCP port listened on."""
        return int(self._sock.getsockname()[1])

    def info(self, *, announce: bool | None = None) -> DeviceInfo:
        """How we describe ourselves to other devices."""
        return own_info(self.alias, self.certificate.fingerprint, self.port, announce=announce)

    async def start(self) -> None:
        """Listen; raises OSError when the port is taken."""
        app = web.Application(client_max_size=LOCALSEND_MAX_JSON_BODY)
        prefix = API_PREFIX
        app.router.add_get(f"{prefix}/info", self._info)
        app.router.add_post(f"{prefix}/register", self._register)
        app.router.add_post(f"{prefix}/prepare-upload", self._prepare_upload)
        app.router.add_post(f"{prefix}/upload", self._upload)
        app.router.add_post(f"{prefix}/cancel", self._cancel)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=CLOSE_GRACE,
            keepalive_timeout=LOCALSEND_HANDSHAKE_TIMEOUT, handler_cancellation=True,
        )
        await runner.setup()
        host, port = self._sock.getsockname()[:2]
        site = LimitedSite(
            runner, host, port, self._limiter, sock=self._sock,
            has_token=lambda target: target.startswith(API_PREFIX + "/"),
            head_timeout=LOCALSEND_HANDSHAKE_TIMEOUT,
            tls=self.certificate.server_context(),
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site

    async def stop(self) -> None:
        """Stop listening and end open requests."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._site is not None:
            await self._site.stop()
        await runner.cleanup()

    @contextlib.contextmanager
    def _worth_keeping(self, request: web.Request) -> Iterator[None]:
        """While the block runs (``request``'s body is in and we plan its offer or wait
        for the user's answer, or it uploads a file), its connection keeps its slot and
        no deadline hangs over it; before and after, it is one a newcomer may take the
        place of, and it has LOCALSEND_HANDSHAKE_TIMEOUT to start such a request (see
        share/limiter.py). Anyone can ask ``info`` or ``register``: those earn nothing."""
        if self._site is not None:
            self._site.prove(request)
        try:
            yield
        finally:
            if self._site is not None:
                self._site.unprove(request)

    # --- handlers -------------------------------------------------------------------

    async def _info(self, request: web.Request) -> web.StreamResponse:
        return _json(encode(self.info()))

    async def _register(self, request: web.Request) -> web.StreamResponse:
        if (refusal := _oversized(request)) is not None:
            return refusal
        with self._bodies.held_for(client_ip(request), request.content_length) as room:
            if not room:
                return _refused(503, BODIES_FULL, unread=True)
            body = await _json_body(request)
            if isinstance(body, web.StreamResponse):
                return body
            try:
                peer = decode_device_info(body)
            except ProtocolError as exc:
                return _refused(400, str(exc))
        if self.on_register is not None and peer.fingerprint != self.certificate.fingerprint:
            self.on_register(peer, client_ip(request))
        return _json(encode(self.info()))

    async def _prepare_upload(self, request: web.Request) -> web.StreamResponse:
        ip = client_ip(request)
        try:  # PIN and busy first: a refused offer's body is never read
            self.receiver.admit(ip, request.query.get("pin"))
        except Refused as exc:
            return _refused(exc.status, str(exc), unread=True)
        if (refusal := _oversized(request)) is not None:
            return refusal
        with self._bodies.held_for(ip, request.content_length) as room:
            if not room:
                return _refused(503, BODIES_FULL, unread=True)
            body = await _json_body(request)
            if isinstance(body, web.StreamResponse):
                return body
            with self._worth_keeping(request):  # the sender's part is done: ours now
                planned = await self._planned(body)
                del body
                if isinstance(planned, web.StreamResponse):
                    return planned
        sender, offer = planned
        try:
            with self._worth_keeping(request):
                reply = await self.receiver.prepare_upload(sender, offer, ip)
        except Refused as exc:
            return _refused(exc.status, str(exc))
        if self.on_register is not None:
            self.on_register(sender, ip)
        if reply is None:
            return web.Response(status=204)
        return _json(encode(reply))

    async def _planned(self, body: bytes) -> tuple[DeviceInfo, LocalSendOffer] | web.Response:
        """The offer of a body read within the body budget, planned one at a time (the
        memory is in planning; see ``_plan``), or its refusal (400)."""
        try:
            async with self._planning:
                return await _plan(body)
        except ProtocolError as exc:
            return _refused(400, str(exc))

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        session_id, file_id, token = (query.get(k, "") for k in ("sessionId", "fileId", "token"))
        if not (session_id and file_id and token):
            return _refused(400, "sessionId, fileId and token are required", unread=True)
        length = request.content_length
        content = request.content
        try:  # a wrong token or session is refused before the first await
            with self._worth_keeping(request):
                await self.receiver.upload(
                    session_id, file_id, token, client_ip(request), length,
                    lambda size: _body(content, size),
                )
        except Refused as exc:
            return _refused(exc.status, str(exc), unread=not content.at_eof())
        return web.Response(status=200)

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        try:
            self.receiver.cancel(request.query.get("sessionId", ""), client_ip(request))
        except Refused as exc:
            return _refused(exc.status, str(exc))
        return web.Response(status=200)


async def _plan(body: bytes) -> tuple[DeviceInfo, LocalSendOffer]:
    """A ``prepare-upload`` body read as its sender and its files' JSON (one C call: ~5 ms
    for the largest), then its offer planned (each file decoded, named and numbered)
    LOCALSEND_PLAN_STEP files at a time, taking at most LOCALSEND_PLAN_SHARE of the
    time; raises ProtocolError."""
    head = decode_offer_head(body)
    planner = OfferPlanner(head.files)
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        if (offer := planner.plan(LOCALSEND_PLAN_STEP)) is not None:
            return head.info, offer
        # The interpreter free meanwhile, most of the time: the loop, and the threads that
        # call into it (iroh's), get through at once instead of waiting their turn for it.
        took = loop.time() - started
        await asyncio.sleep(took * (1 - LOCALSEND_PLAN_SHARE) / LOCALSEND_PLAN_SHARE)


def _oversized(request: web.Request) -> web.StreamResponse | None:
    """The refusal of a body announced larger than LOCALSEND_MAX_JSON_BODY, if it is."""
    limit = LOCALSEND_MAX_JSON_BODY
    if request.content_length is not None and request.content_length > limit:
        return _refused(413, f"the body is larger than {limit // 1024} KiB", unread=True)
    return None


async def _json_body(request: web.Request) -> bytes | web.StreamResponse:
    """The request's JSON body, or the refusal when it turns out too large."""
    if (refusal := _oversized(request)) is not None:
        return refusal
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = LOCALSEND_MAX_JSON_BODY
        return _refused(413, f"the body is larger than {limit // 1024} KiB", unread=True)


async def _body(content: StreamReader, size: int) -> AsyncIterator[list[bytes]]:
    """An upload's body in batches of about PUMP_BUFFER_SIZE bytes, each the pieces as
    they came (joining them would copy every byte once more): ``size`` bytes and
    whatever more came or comes with them (so the receiver sees a body longer than
    announced), or less when it ends early."""
    received = 0
    batch: list[bytes] = []
    batched = 0
    while received < size:
        piece = await content.readany()
        if not piece:
            break
        batch.append(piece)
        batched += len(piece)
        received += len(piece)
        if batched >= PUMP_BUFFER_SIZE:
            yield batch
            batch, batched = [], 0
    if received == size and (extra := await content.read(1)):
        batch.append(extra)
    if batch:
        yield batch


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


def _refused(status: int, message: str, *, unread: bool = False) -> web.Response:
    """An error answer with a one-line reason; a body left unread ends the connection."""
    response = web.Response(status=status, text=message + "\n")
    if status == 503:
        response.headers["Retry-After"] = str(LOCALSEND_RETRY_AFTER)
    if unread:
        response.force_close()
    return response
