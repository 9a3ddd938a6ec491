"""One code on magic-wormhole's mailbox server: its WebSocket protocol, on asyncio.

``CodeChannel`` is one side of one code: bind, allocate a nameplate (sender) or claim
the code's (either side may come first), open its mailbox, agree the key (SPAKE2,
wormhole_key), then exchange boxed messages in phase order, as the wormhole CLI
does; its clients share codes with ours. Why not the magic-wormhole library: it
brings Twisted, ~30 MB of a sender's memory for a handful of messages. Failures are
this package's typed errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from p2p_transfer import __version__
from p2p_transfer.events import Direction
from p2p_transfer.limits import (
    CODE_PEER_TIMEOUT,
    CODE_WORDS,
    MAILBOX_CONNECT_TIMEOUT,
    MAILBOX_MAX_FRAME,
    MAILBOX_MAX_PENDING,
)
from p2p_transfer.rendezvous.abilities import APP_ID, OUR_ABILITIES, PeerKind, peer_kind
from p2p_transfer.rendezvous.codes import choose_words, nameplate
from p2p_transfer.rendezvous.errors import (
    BadRendezvousMessage,
    CodeNotWaiting,
    CodeServerError,
    MailboxUnreachable,
    PeerWentAway,
    RendezvousError,
    WrongShortCode,
)
from p2p_transfer.rendezvous.wormhole_key import CodeKey, KeyMismatch, finish_pake, start_pake
from p2p_transfer.trust.pake import Spake2Symmetric
from p2p_transfer.units import format_duration

T = TypeVar("T")

#: The wormhole CLI's mailbox server (its default: codes are shared with its users).
DEFAULT_MAILBOX = "ws://relay.magic-wormhole.io:4000/v1"
#: Environment variable naming another mailbox server (a self-hosted one).
MAILBOX_ENV = "P2P_TRANSFER_MAILBOX"


def mailbox_url(choice: str | None) -> str:
    """``--mailbox``, else $P2P_TRANSFER_MAILBOX, else the public server."""
    url = choice or os.environ.get(MAILBOX_ENV) or DEFAULT_MAILBOX
    if not url.startswith(("ws://", "wss://")):
        raise RendezvousError(f"--mailbox takes a ws:// or wss:// URL, not {url!r}")
    return url


def server_name(url: str) -> str:
    """The host a person knows the server by (``relay.magic-wormhole.io``)."""
    return urlsplit(url).hostname or url


_PHASE = re.compile(r"[0-9]{1,9}")
#: A code as the server takes it: a nameplate number, then words.
_CLAIMABLE = re.compile(r"[0-9]+-\S+")


class CodeChannel:
    """One side of one code on the mailbox server."""

    def __init__(self, url: str, role: Direction) -> None:
        self.url = url
        self.role = role
        self.server = server_name(url)
        self.code = ""
        self._side = os.urandom(5).hex()
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._changed = asyncio.Condition()
        self._failure: RendezvousError | None = None  # what every waiter gets from now on
        self._welcomed = self._ended = False
        self._replies: dict[str, dict[str, Any]] = {}  # "allocated", "claimed", "closed"
        self._spake: Spake2Symmetric | None = None
        self._key: CodeKey | None = None
        self._their_side = ""
        self._their_versions: tuple[object] | None = None
        self._inbox: dict[int, bytes] = {}
        self._next_in = self._next_out = 0
        self._nameplate = self._mailbox = ""
        self._released = self._closed = False
        self._post("bind", appid=APP_ID, side=self._side,
                   client_version=["p2p-transfer", __version__])
        self._connection = asyncio.create_task(self._run())

    @classmethod
    def open(cls, url: str, role: Direction) -> CodeChannel:
        """Start connecting to the server (nothing is awaited yet) as the sending or the
        receiving side of a code."""
        return cls(url, role)

    async def allocate(self) -> str:
        """A new code from the server; MailboxUnreachable when it does not answer in time."""
        self._post("allocate")
        allocated = await self._reaching_server(lambda: self._replies.get("allocated"))
        number = str(allocated.get("nameplate", ""))
        if not number.isdigit():
            await self._refused(f"the code server {self.server} gave no nameplate number")
        return await self._use(f"{number}-{choose_words(CODE_WORDS)}")

    async def claim(self, code: str) -> str:
        """Use ``code`` (typed by the person, or chosen by the sender: either side may
        come first); the server must answer in time. Returns the code."""
        if not _CLAIMABLE.fullmatch(code):
            raise CodeNotWaiting(f"{code} is not a code (like 7-guitarist-revenge)")
        return await self._use(code)

    async def wait_for_peer(
        self, timeout: float | None = None, waiting: float = 0.0
    ) -> PeerKind:
        """Until the other side's key and versions came (``timeout``: its key must come
        that soon, as for a claimed code, whose sender has posted it long ago; or, with
        ``waiting``, the receiver waits that long for a sender yet to come); what it runs.
        WrongShortCode when the key exchange failed (a wrong code: both sides see it)."""
        try:
            await self._until(lambda: self._key, timeout, CodeNotWaiting(
                f"no one is sending with the code {self.code}: it was used already, "
                "mistyped, or the sender stopped; ask for a new code" if not waiting else
                f"no one sent with the code {self.code} within {format_duration(waiting)}: "
                "check it with the sender, or ask for a new one"
            ))
            (versions,) = await self._until(lambda: self._their_versions, CODE_PEER_TIMEOUT)
        except RendezvousError:
            await self.close()
            raise
        return peer_kind(versions)

    def send(self, data: bytes) -> None:
        """A message under the code's key (after ``wait_for_peer``), in phase order."""
        assert self._key is not None, "wait_for_peer() first"
        phase = str(self._next_out)
        self._next_out += 1
        self._post("add", phase=phase, body=self._key.seal(self._side, phase, data).hex())

    async def receive(self, timeout: float | None) -> bytes:
        """The other side's next message (PeerWentAway when none comes in ``timeout``)."""
        data = await self._until(lambda: self._inbox.pop(self._next_in, None), timeout)
        self._next_in += 1
        return data

    def derive_key(self, purpose: str, length: int) -> bytes:
        """A key for ``purpose`` from the code's (transit's, for a wormhole client)."""
        assert self._key is not None, "wait_for_peer() first"
        return self._key.derive(purpose, length)

    def verifier(self) -> bytes:
        """The same on both sides only when both typed the same code."""
        assert self._key is not None, "wait_for_peer() first"
        return self._key.verifier

    async def close(self) -> None:
        """Leave the mailbox (its nameplate is released: the code cannot be used again)."""
        if self._closed:
            return
        self._closed = True
        if self._welcomed and not self._ended:
            if self._nameplate and not self._released:
                self._post("release", nameplate=self._nameplate)
            if self._mailbox:
                self._post("close", mailbox=self._mailbox, mood=self._mood())
                with contextlib.suppress(RendezvousError):  # a failed goodbye changes nothing
                    await self._until(lambda: self._replies.get("closed"),
                                      MAILBOX_CONNECT_TIMEOUT, closing=True)
        self._connection.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._connection

    # --- the code ----------------------------------------------------------------

    async def _use(self, code: str) -> str:
        """Claim the code's nameplate, open its mailbox and post our half of the key."""
        self.code, self._nameplate = code, nameplate(code)
        self._post("claim", nameplate=self._nameplate)
        claimed = await self._reaching_server(lambda: self._replies.get("claimed"))
        self._mailbox = str(claimed.get("mailbox", ""))
        self._post("open", mailbox=self._mailbox)
        self._spake, body = start_pake(code, APP_ID)
        self._post("add", phase="pake", body=body.hex())
        return code

    def _hear(self, side: str, phase: str, body: bytes) -> None:
        """A message of the mailbox; when the peer broke a rule, nothing more is taken from
        it, but the connection stays for our last messages (a wrong code's peer needs our
        version to see it too) and our goodbye."""
        try:
            self._take(side, phase, body)
        except (BadRendezvousMessage, WrongShortCode) as exc:
            self._failure = exc

    def _take(self, side: str, phase: str, body: bytes) -> None:
        """One message of the mailbox (ours come back too, and are skipped)."""
        if side == self._side or (self._their_side and side != self._their_side):
            return
        if not self._their_side:
            self._their_side = side
            self._released = True  # the code did its job: nobody else may use it
            self._post("release", nameplate=self._nameplate)
        if phase == "pake" and self._key is None and self._spake is not None:
            self._key = finish_pake(self._spake, body)
            versions = json.dumps({"app_versions": OUR_ABILITIES}).encode()
            self._post("add", phase="version", body=self._key.seal(
                self._side, "version", versions).hex())
        elif phase == "version" and self._key is not None:
            self._their_versions = (self._versions(body),)
        elif _PHASE.fullmatch(phase) and self._key is not None:
            if len(self._inbox) >= MAILBOX_MAX_PENDING:
                raise BadRendezvousMessage(
                    f"it sent over {MAILBOX_MAX_PENDING} messages without an answer"
                )
            try:
                self._inbox[int(phase)] = self._key.open(side, phase, body)
            except KeyMismatch:
                raise BadRendezvousMessage("a message that is not under the code's key") from None

    def _versions(self, body: bytes) -> object:
        """The other side's ``app_versions``; a box that does not open is a wrong code."""
        assert self._key is not None
        try:
            message = json.loads(self._key.open(self._their_side, "version", body))
        except KeyMismatch:
            raise WrongShortCode(
                f"someone typed a wrong code: {self.code} is used up now — run send again "
                "for a new one" if self.role == "send" else
                f"wrong code: {self.code} does not match the sender's, and it is used up "
                "now — ask for a new one"
            ) from None
        except ValueError:
            raise BadRendezvousMessage("its version message is not JSON") from None
        if not isinstance(message, dict):
            raise BadRendezvousMessage("its version message is not an object")
        return message.get("app_versions", {})

    def _mood(self) -> str:
        """What the server records of how this code went."""
        if isinstance(self._failure, WrongShortCode):
            return "scary"
        if self._their_versions is not None:
            return "happy"
        return "lonely" if self._key is None else "errory"

    # --- the connection ----------------------------------------------------------

    def _post(self, kind: str, **fields: object) -> None:
        """Queue a command for the server (sent in order once connected)."""
        command = {"type": kind, "id": os.urandom(2).hex(), **fields}
        self._outbox.put_nowait(json.dumps(command))

    async def _run(self) -> None:
        """Connect, then send what is posted and take what the server says, until the
        connection ends (a failure for whoever waits)."""
        import aiohttp  # loads only for a send by code

        failure: RendezvousError = MailboxUnreachable(self.server)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(self.url, max_msg_size=MAILBOX_MAX_FRAME) as ws,
            ):
                writer = asyncio.create_task(self._write(ws))
                try:
                    async for frame in ws:
                        if frame.type == aiohttp.WSMsgType.TEXT:
                            await self._dispatch(frame.data)
                finally:
                    writer.cancel()
            if self._welcomed:
                failure = CodeServerError(
                    f"the connection to the code server {self.server} broke; run the "
                    "command again"
                )
        except RendezvousError as exc:
            failure = exc
        except (aiohttp.ClientError, OSError, ValueError):
            pass
        self._ended = True
        self._failure = self._failure or failure
        async with self._changed:
            self._changed.notify_all()

    async def _write(self, ws: Any) -> None:
        while True:
            await ws.send_str(await self._outbox.get())

    async def _dispatch(self, text: str) -> None:
        """One message from the server; RendezvousError ends the channel."""
        try:
            message = json.loads(text)
            kind = message["type"]
            if kind == "message" and self._failure is None:
                self._hear(str(message["side"]), str(message["phase"]),
                           bytes.fromhex(message["body"]))
        except (ValueError, KeyError, TypeError):
            raise CodeServerError(
                f"{self.server} does not speak magic-wormhole's mailbox protocol"
            ) from None
        if kind == "welcome":
            welcome = message.get("welcome")
            if isinstance(welcome, dict) and "error" in welcome:
                raise CodeServerError(f"the code server {self.server} says: {welcome['error']}")
            self._welcomed = True
        elif kind == "error":
            raise CodeServerError(_server_refusal(str(message.get("error")), self.code))
        elif kind in ("allocated", "claimed", "closed"):
            self._replies[kind] = message
        async with self._changed:
            self._changed.notify_all()

    async def _until(
        self, ready: Callable[[], T | None], timeout: float | None,
        on_timeout: RendezvousError | None = None, closing: bool = False,
    ) -> T:
        """What ``ready`` returns once it is not None, unless the channel failed (then its
        failure: nothing more is taken from it; ``closing`` waits on unless the connection
        ended); ``on_timeout`` (else PeerWentAway) after ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                while self._failure is None or (closing and not self._ended):
                    if (value := ready()) is not None:
                        return value
                    await self._changed.wait()
                raise self._failure
        except TimeoutError:
            raise on_timeout or PeerWentAway(
                "the other side stopped answering; run the command again"
            ) from None

    async def _reaching_server(self, ready: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        """The server's reply, which must come in time; the channel closes if not."""
        try:
            return await self._until(
                ready, MAILBOX_CONNECT_TIMEOUT, MailboxUnreachable(self.server)
            )
        except RendezvousError:
            await self.close()
            raise

    async def _refused(self, reason: str) -> None:
        await self.close()
        raise CodeServerError(reason)


def _server_refusal(message: str, code: str) -> str:
    """The server's complaint, in words for people."""
    if "crowded" in message:
        return f"the code {code} is in use by two other devices already; ask for a new one"
    return f"the code server refused: {message}"
