"""Talking to a LocalSend device's HTTPS server: register, prepare-upload, upload, cancel.

LocalSend devices use self-signed certificates, so trust is a pinned SHA-256
fingerprint: the one the device announced (found by discovery), or else the one
its first answer came with, kept for the rest of the session, so every upload
goes to the server that accepted the offer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterable, Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import aiohttp

from p2p_transfer.limits import LOCALSEND_CONNECT_TIMEOUT, LOCALSEND_MAX_JSON_BODY
from p2p_transfer.localsend.address import LocalSendError
from p2p_transfer.localsend.identity import fingerprint_of
from p2p_transfer.localsend.messages import (
    DeviceInfo,
    FileInfo,
    PrepareUpload,
    PrepareUploadReply,
    Target,
    decode_device_info,
    decode_prepare_reply,
    encode,
)
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.transfer.session import Declined, LockedOut, PeerError


class PinRequired(PeerError):
    """The device asks for a PIN (401): none was given, or it was wrong."""


class Busy(LockedOut):
    """The device is busy with another session (409)."""


class NoAnswer(LocalSendError):
    """Nothing answered at the device's address (refused, timed out, TLS failed)."""


#: Bytes read at a time from a device's answer.
_READ_SIZE = 64 * 1024


def _unverified() -> ssl.SSLContext:
    """TLS that accepts a self-signed certificate: the fingerprint is checked instead."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class LocalSendClient:
    """One HTTP client for a send (or for answering announcements); close it after use."""

    def __init__(self, own: DeviceInfo) -> None:
        self.own = own
        self._tls = _unverified()
        sent = aiohttp.TraceConfig()
        sent.on_request_headers_sent.append(_headers_sent)
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._tls, limit=0),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=LOCALSEND_CONNECT_TIMEOUT,
                sock_read=LOCALSEND_CONNECT_TIMEOUT,
            ),
            trace_configs=[sent],
        )

    async def close(self) -> None:
        await self._http.close()

    async def _post(
        self,
        target: Target,
        route: str,
        params: dict[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] | None = None,
        *,
        size: int | None = None,
        read_timeout: float | None = LOCALSEND_CONNECT_TIMEOUT,
        on_sent: Callable[[], None] | None = None,
    ) -> tuple[int, bytes, Target]:
        """POST and read the answer; returns the status, body and the target with its
        fingerprint learned (checked against the one expected, if any). ``on_sent`` is
        called once the request is on its way (connected, headers written)."""
        headers = {"Content-Type": "application/json" if isinstance(body, bytes) or body is None
                   else "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        pin = aiohttp.Fingerprint(bytes.fromhex(target.fingerprint)) if (
            target.scheme == "https" and target.fingerprint
        ) else None
        try:
            async with self._http.post(
                f"{target.base_url}/{route}", params=params, data=body, headers=headers,
                ssl=pin if pin is not None else self._tls,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=LOCALSEND_CONNECT_TIMEOUT, sock_read=read_timeout
                ),
                trace_request_ctx=on_sent,
            ) as response:
                learned = target
                if target.scheme == "https" and target.fingerprint is None:
                    learned = replace(target, fingerprint=_peer_fingerprint(response))
                return response.status, await _bounded_body(response, target), learned
        except aiohttp.ServerFingerprintMismatch:
            raise LocalSendError(
                f"{target.name} presented another certificate than it announced; not sending"
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise NoAnswer(
                f"cannot reach {target.name} at {target.host}:{target.port} "
                f"({_describe(exc)})"
            ) from None

    async def register(self, target: Target) -> tuple[DeviceInfo, Target]:
        """Tell a device about us (answering its announcement); its info and certificate."""
        status, data, learned = await self._post(target, "register", body=encode(self.own))
        if status != 200:
            raise LocalSendError(f"{target.name} answered register with HTTP {status}")
        try:
            return decode_device_info(data), learned
        except ProtocolError as exc:
            raise LocalSendError(f"{target.name}: {exc}") from None

    async def prepare_upload(
        self,
        target: Target,
        files: dict[str, FileInfo],
        pin: str | None,
        answer_timeout: float,
        on_sent: Callable[[], None] | None = None,
    ) -> tuple[PrepareUploadReply | None, Target]:
        """Offer ``files``; the tokens (None: nothing to upload, 204). ``on_sent`` is called
        when the offer is on its way, so the wait for the device's user can be said.
        Raises ``Declined``, ``PinRequired``, ``Busy``, ``LockedOut`` or ``LocalSendError``."""
        request = PrepareUpload(info=self.own, files=files)
        params = {"pin": pin} if pin else None
        status, data, learned = await self._post(
            target, "prepare-upload", params, encode(request), read_timeout=answer_timeout,
            on_sent=on_sent,
        )
        name = target.name
        if status == 204:
            return None, learned
        if status == 200:
            try:
                return decode_prepare_reply(data), learned
            except ProtocolError as exc:
                raise LocalSendError(f"{name}: {exc}") from None
        if status == 401:
            raise PinRequired(f"{name} asks for a PIN" if not pin else f"{name}: wrong PIN")
        if status == 403:
            raise Declined(f"declined by {name}")
        if status == 409:
            raise Busy(f"{name} is busy with another transfer; try again shortly", 0.0)
        if status == 429:
            raise LockedOut(f"{name} refuses for now after wrong PINs; wait a minute", 60.0)
        raise LocalSendError(f"{name} answered HTTP {status}: {_reason(data)}")

    async def upload(
        self,
        target: Target,
        session_id: str,
        file_id: str,
        token: str,
        body: AsyncIterable[bytes],
        size: int,
    ) -> None:
        """Send one file's bytes; raises ``LocalSendError`` unless the device says 200."""
        params = {"sessionId": session_id, "fileId": file_id, "token": token}
        status, data, _ = await self._post(
            target, "upload", params, body, size=size, read_timeout=None
        )
        if status not in (200, 204):
            raise LocalSendError(f"{target.name} refused a file: HTTP {status} {_reason(data)}")

    async def cancel(self, target: Target, session_id: str) -> None:
        """Tell the device we cancel (best effort)."""
        try:
            async with asyncio.timeout(LOCALSEND_CONNECT_TIMEOUT):
                await self._post(target, "cancel", {"sessionId": session_id})
        except (LocalSendError, TimeoutError):
            pass


async def _headers_sent(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
) -> None:
    """A request's ``on_sent`` (its trace context), once it is on its way."""
    if callable(context.trace_request_ctx):
        context.trace_request_ctx()


async def _bounded_body(response: aiohttp.ClientResponse, target: Target) -> bytes:
    """The answer's body, at most LOCALSEND_MAX_JSON_BODY bytes (a device's answers are
    small JSON; a flood is not read)."""
    data = bytearray()
    while chunk := await response.content.read(_READ_SIZE):
        data += chunk
        if len(data) > LOCALSEND_MAX_JSON_BODY:
            raise LocalSendError(f"{target.name} answered with more than "
                                 f"{LOCALSEND_MAX_JSON_BODY // 1024} KiB")
    return bytes(data)


def _peer_fingerprint(response: aiohttp.ClientResponse) -> str | None:
    connection = response.connection
    transport = connection.transport if connection is not None else None
    tls = transport.get_extra_info("ssl_object") if transport is not None else None
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    return fingerprint_of(der) if der else None


def _reason(data: bytes) -> str:
    """A device's error text, one short line."""
    text = data[:200].decode(errors="replace").strip().splitlines()
    return text[0] if text else ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error is not None:
        return exc.os_error.strerror or str(exc.os_error)
    return str(exc) or type(exc).__name__
