"""One code on magic-wormhole's mailbox server, through the library itself.

``CodeChannel`` wraps one wormhole: allocate a code (sender) or claim one
(receiver), wait for the other side's key and versions, then exchange a few
messages under the key. Library failures become this package's typed errors.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from p2p_transfer.events import Direction
from p2p_transfer.limits import CODE_PEER_TIMEOUT, CODE_WORDS, MAILBOX_CONNECT_TIMEOUT
from p2p_transfer.rendezvous import twisted_loop
from p2p_transfer.rendezvous.abilities import APP_ID, OUR_ABILITIES, PeerKind, peer_kind
from p2p_transfer.rendezvous.errors import (
    CodeNotWaiting,
    CodeServerError,
    MailboxUnreachable,
    PeerWentAway,
    RendezvousError,
    WrongShortCode,
)
from p2p_transfer.units import format_duration

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


class CodeChannel:
    """One side of one code on the mailbox server."""

    def __init__(self, url: str, wormhole: Any, role: Direction) -> None:
        self.url = url
        self.role = role
        self.server = server_name(url)
        self.wormhole = wormhole
        self.code = ""
        self._closed = False

    @classmethod
    def open(cls, url: str, role: Direction) -> CodeChannel:
        """Start connecting to the server (nothing is awaited yet) as the sending or the
        receiving side of a code."""
        import wormhole  # Twisted and the library load only for a send by code

        reactor = twisted_loop.reactor_for_loop()
        return cls(url, wormhole.create(APP_ID, url, reactor, versions=OUR_ABILITIES), role)

    async def allocate(self) -> str:
        """A new code from the server; MailboxUnreachable when it does not answer in time."""
        with _closed_already():
            self.wormhole.allocate_code(CODE_WORDS)
        self.code = await self._reaching_server(self.wormhole.get_code())
        return self.code

    async def claim(self, code: str) -> str:
        """Use ``code`` (typed by the person, or chosen by the sender: either side may
        come first); the server must answer in time. Returns the code."""
        self.code = code
        with _closed_already():
            self.wormhole.set_code(code)
        await self._reaching_server(self.wormhole.get_welcome())
        return code

    async def wait_for_peer(
        self, timeout: float | None = None, waiting: float = 0.0
    ) -> PeerKind:
        """Until the other side's key and versions came (``timeout``: its key must come
        that soon, as for a claimed code, whose sender has posted it long ago; or, with
        ``waiting``, the receiver waits that long for a sender yet to come); what it runs.
        WrongShortCode when the key exchange failed (a wrong code: both sides see it)."""
        try:
            await self._library(
                self.wormhole.get_unverified_key(), timeout, CodeNotWaiting(
                    f"no one is sending with the code {self.code}: it was used already, "
                    "mistyped, or the sender stopped; ask for a new code" if not waiting else
                    f"no one sent with the code {self.code} within {format_duration(waiting)}: "
                    "check it with the sender, or ask for a new one"
                ),
            )
            versions = await self._library(self.wormhole.get_versions(), CODE_PEER_TIMEOUT)
        except RendezvousError:
            await self.close()
            raise
        return peer_kind(versions)

    async def send(self, data: bytes) -> None:
        """A message under the code's key (the library encrypts it)."""
        self.wormhole.send_message(data)

    async def receive(self, timeout: float) -> bytes:
        """The other side's next message."""
        return bytes(await self._library(self.wormhole.get_message(), timeout))

    async def close(self) -> None:
        """Leave the mailbox (its nameplate is released: the code cannot be used again)."""
        if self._closed:
            return
        self._closed = True
        try:
            await twisted_loop.wait(self.wormhole.close(), MAILBOX_CONNECT_TIMEOUT)
        except Exception:  # a failed goodbye changes nothing for us
            pass

    async def _reaching_server(self, deferred: Any) -> Any:
        try:
            return await self._library(
                deferred, MAILBOX_CONNECT_TIMEOUT, MailboxUnreachable(self.server)
            )
        except RendezvousError:
            await self.close()
            raise

    async def _library(
        self, deferred: Any, timeout: float | None, on_timeout: RendezvousError | None = None
    ) -> Any:
        """Await one of the library's Deferreds, its failures as our errors."""
        from wormhole import errors

        try:
            return await twisted_loop.wait(deferred, timeout)
        except TimeoutError:
            raise on_timeout or PeerWentAway(
                "the other side stopped answering; run the command again"
            ) from None
        except errors.WrongPasswordError:
            raise WrongShortCode(
                f"someone typed a wrong code: {self.code} is used up now — run send again "
                "for a new one" if self.role == "send" else
                f"wrong code: {self.code} does not match the sender's, and it is used up "
                "now — ask for a new one"
            ) from None
        except errors.ServerConnectionError:
            raise MailboxUnreachable(self.server) from None
        except (errors.LonelyError, errors.WormholeClosed):
            raise PeerWentAway("the other side went away before the transfer began") from None
        except errors.KeyFormatError:
            raise CodeNotWaiting(f"{self.code} is not a code (like 7-guitarist-revenge)") from None
        except errors.ServerError as exc:
            raise CodeServerError(_server_refusal(str(exc), self.code)) from None
        except errors.WelcomeError as exc:
            raise CodeServerError(f"the code server {self.server} says: {exc}") from None


@contextlib.contextmanager
def _closed_already() -> Iterator[None]:
    """The library refuses a code once its connection failed (a server that refused at
    once): the failure itself comes from the Deferred awaited next."""
    from automat import NoTransition

    with contextlib.suppress(NoTransition):
        yield


def _server_refusal(message: str, code: str) -> str:
    """The server's complaint, in words for people."""
    if "crowded" in message:
        return f"the code {code} is in use by two other devices already; ask for a new one"
    return f"the code server refused: {message}"
