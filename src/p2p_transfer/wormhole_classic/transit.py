"""magic-wormhole's transit, on asyncio: direct TCP or the transit relay, then records.

Why not the library's own ``wormhole.transit``: it buffers a record whatever length
its 4-byte header declares (a peer can fill our memory), writes what arrives into a
file synchronously with no push-back (our writer runs in a worker thread), and needs
a running Twisted reactor. The wire format is small and this follows it exactly:
the same handshake strings and key derivations (HKDF-SHA256 of the transit key).

Both sides listen and dial each other's direct hints; the relays (ours and the
peer's) are dialled ``WORMHOLE_RELAY_DELAY`` later. The sender picks the first
connection whose handshake completes and says ``go``; the others hear ``nevermind``.
After that, every record is a NaCl SecretBox with a counting nonce.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from p2p_transfer.limits import (
    DATA_STALL_TIMEOUT,
    WORMHOLE_MAX_PENDING_TRANSIT,
    WORMHOLE_MAX_RECORD_SIZE,
    WORMHOLE_RELAY_DELAY,
    WORMHOLE_TRANSIT_TIMEOUT,
)
from p2p_transfer.net.interfaces import lan_interfaces
from p2p_transfer.protocol import ProtocolError
from p2p_transfer.transfer import TransferError
from p2p_transfer.trust.pake import hkdf_sha256
from p2p_transfer.units import format_size
from p2p_transfer.wormhole_classic.messages import TcpHint, TransitHints

#: The wormhole CLI's transit relay.
DEFAULT_TRANSIT_RELAY = "tcp:transit.magic-wormhole.io:4001"
#: Bytes of the transit key (a SecretBox key).
TRANSIT_KEY_SIZE = SecretBox.KEY_SIZE
_NONCE_SIZE = SecretBox.NONCE_SIZE
#: What a record adds to its plaintext: the nonce and the MAC.
_RECORD_OVERHEAD = _NONCE_SIZE + SecretBox.MACBYTES
_GO = b"go\n"
_RELAY_OK = b"ok\n"

Role = Literal["sender", "receiver"]


class TransitUnreachable(TransferError):
    """No transit connection came up: neither directly nor through a relay."""


def parse_relay(text: str) -> TcpHint:
    """``tcp:HOST:PORT`` (the wormhole CLI's form) or ``HOST:PORT`` as a relay hint."""
    value = text.removeprefix("tcp:")
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\s]+):(\d{1,5})", value)
    if match is None:
        raise ValueError(f"not a transit relay address: {text!r} (use HOST:PORT)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 < port < 65536:
        raise ValueError(f"not a port: {port}")
    return TcpHint(host, port)


@dataclass(frozen=True, slots=True)
class _Keys:
    """What one side says and expects, derived from the transit key."""

    send_handshake: bytes
    expect_handshake: bytes
    relay_token: bytes
    send_key: bytes
    receive_key: bytes

    @classmethod
    def derive(cls, role: Role, key: bytes, side: str) -> _Keys:
        sender = b"transit sender %s ready\n\n" % _hex_of(key, b"transit_sender")
        receiver = b"transit receiver %s ready\n\n" % _hex_of(key, b"transit_receiver")
        to_receiver = _derive(key, b"transit_record_sender_key", SecretBox.KEY_SIZE)
        to_sender = _derive(key, b"transit_record_receiver_key", SecretBox.KEY_SIZE)
        relay = b"please relay %s for side %s\n" % (
            _hex_of(key, b"transit_relay_token"), side.encode("ascii")
        )
        if role == "sender":
            return cls(sender, receiver, relay, to_receiver, to_sender)
        return cls(receiver, sender, relay, to_sender, to_receiver)


def _derive(key: bytes, purpose: bytes, length: int) -> bytes:
    return hkdf_sha256(key, salt=b"", info=purpose, length=length)


def _hex_of(key: bytes, purpose: bytes) -> bytes:
    """A handshake's token: 32 bytes derived for ``purpose``, in hex."""
    return _derive(key, purpose, 32).hex().encode("ascii")


class RecordPipe:
    """An established transit connection: encrypted, ordered records both ways."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keys: _Keys,
        relayed: bool,
        remote: str,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._send_box = SecretBox(keys.send_key)
        self._receive_box = SecretBox(keys.receive_key)
        self._send_nonce = 0
        self._receive_nonce = 0
        #: Whether the bytes go through a transit relay.
        self.relayed = relayed
        #: The address connected to (the relay's, when relayed).
        self.remote = remote

    async def send(self, data: bytes) -> None:
        """Seal and write one record (waits while the socket's buffer is full)."""
        nonce = self._send_nonce.to_bytes(_NONCE_SIZE, "big")
        self._send_nonce += 1
        sealed = self._send_box.encrypt(data, nonce)
        self._writer.write(len(sealed).to_bytes(4, "big") + bytes(sealed))
        await self._writer.drain()

    async def receive(self, max_size: int = WORMHOLE_MAX_RECORD_SIZE) -> bytes | None:
        """The next record's plaintext, None when the peer closed between records.

        A declared length beyond ``max_size`` is refused before its body is read; a
        record that fails authentication or comes out of order ends the transfer.
        """
        async with asyncio.timeout(DATA_STALL_TIMEOUT):
            try:
                header = await self._reader.readexactly(4)
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    return None
                raise TransferError("the transit connection broke mid-record") from None
            length = int.from_bytes(header, "big")
            if not _RECORD_OVERHEAD <= length <= max_size + _RECORD_OVERHEAD:
                raise ProtocolError(
                    f"the other side sent a record of {format_size(length)}; "
                    f"at most {format_size(max_size)} is accepted"
                )
            try:
                sealed = await self._reader.readexactly(length)
            except asyncio.IncompleteReadError:
                raise TransferError("the transit connection broke mid-record") from None
        if int.from_bytes(sealed[:_NONCE_SIZE], "big") != self._receive_nonce:
            raise ProtocolError("the other side sent a record out of order")
        self._receive_nonce += 1
        try:
            return self._receive_box.decrypt(sealed)
        except CryptoError:
            raise ProtocolError("a record failed its authentication check") from None

    async def close(self) -> None:
        """Close the connection (what was written is flushed first, briefly)."""
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()


class Transit:
    """One side's transit: its listener and hints, then ``connect`` to the peer."""

    def __init__(
        self, role: Role, key: bytes, relays: list[TcpHint], listen: bool = True
    ) -> None:
        if len(key) != TRANSIT_KEY_SIZE:
            raise ValueError(f"a transit key is {TRANSIT_KEY_SIZE} bytes")
        self.role: Role = role
        self._keys = _Keys.derive(role, key, os.urandom(8).hex())
        self._relays = list(relays)
        self._listen = listen
        self._server: asyncio.Server | None = None
        self._direct: list[TcpHint] = []
        self._peer = TransitHints()
        self._race: _Race | None = None
        self._pending_inbound = 0

    async def start(self) -> tuple[list[TcpHint], list[TcpHint]]:
        """Start listening (unless told not to); our direct hints and our relays.

        A peer may dial in at once, before ``connect``: its handshake starts then.
        """
        self._race_now()
        if self._listen and self._server is None:
            self._server = await asyncio.start_server(self._inbound, "0.0.0.0", 0)
            port = self._server.sockets[0].getsockname()[1]
            addresses = await asyncio.to_thread(_lan_addresses)
            self._direct = [TcpHint(address, port) for address in addresses]
        return list(self._direct), list(self._relays)

    def add_peer_hints(self, hints: TransitHints) -> None:
        """Where the peer said it can be reached (it may say so more than once)."""
        self._peer = self._peer + hints

    async def connect(self, timeout: float = WORMHOLE_TRANSIT_TIMEOUT) -> RecordPipe:
        """The first connection both sides agree on, within ``timeout``."""
        race = self._race_now()
        direct = [hint for hint in self._peer.direct if _dialable(hint.host)]
        for hint in direct:
            race.run(self._dial(hint, relayed=False))
        ours = TransitHints((), tuple(self._relays))
        relays = sorted((ours + self._peer).relays, key=lambda hint: -hint.priority)
        delay = WORMHOLE_RELAY_DELAY if direct else 0.0
        for hint in relays:
            race.run(self._dial(hint, relayed=True, delay=delay))
        def unreachable() -> TransitUnreachable:
            return _unreachable(relays, direct, race.failures)

        if self._server is None:  # nothing can come in: when every dial failed, it is over
            race.give_up_with(unreachable)
        try:
            async with asyncio.timeout(timeout):
                return await race.winner
        except TimeoutError:
            raise unreachable() from None
        finally:
            await race.stop()

    async def close(self) -> None:
        """Stop listening and drop every connection that did not win."""
        if self._race is not None:
            await self._race.stop()
        if self._server is not None:
            self._server.close()
            self._server = None

    def _race_now(self) -> _Race:
        if self._race is None:
            self._race = _Race(self._keys, self.role)
        return self._race

    async def _dial(self, hint: TcpHint, relayed: bool, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        assert self._race is not None
        race = self._race
        try:
            reader, writer = await asyncio.open_connection(hint.host, hint.port)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc) or "refused"
            race.failures[hint.describe()] = reason.lower()
            raise
        try:
            if relayed:
                writer.write(self._keys.relay_token)
                await _expect(reader, _RELAY_OK)
            await race.handshake(reader, writer, relayed, hint.describe())
        except (OSError, asyncio.IncompleteReadError) as exc:
            race.failures[hint.describe()] = (
                "closed on us" if isinstance(exc, asyncio.IncompleteReadError) else
                str(exc) or type(exc).__name__
            )
            writer.close()
            raise
        except BaseException:
            writer.close()
            raise

    async def _inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        race = self._race
        crowded = self._pending_inbound >= WORMHOLE_MAX_PENDING_TRANSIT
        if race is None or race.winner.done() or crowded:
            writer.close()  # connected already, or too many strangers at once
            return
        self._pending_inbound += 1
        task = race.run(race.handshake(reader, writer, False, _peer_of(writer)))
        try:
            await asyncio.wait([task])
        finally:
            self._pending_inbound -= 1


class _Race:
    """Connection attempts that run at once; the first to agree with the peer wins."""

    def __init__(self, keys: _Keys, role: Role) -> None:
        self._keys = keys
        self._role = role
        self.winner: asyncio.Future[RecordPipe] = asyncio.get_running_loop().create_future()
        self.contenders: set[asyncio.Task[None]] = set()
        self._give_up: Callable[[], TransitUnreachable] | None = None
        #: Why each hint (``HOST:PORT``) that failed did: said when all of them did.
        self.failures: dict[str, str] = {}

    def run(self, attempt: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(attempt)
        self.contenders.add(task)
        task.add_done_callback(self._ended)
        return task

    def give_up_with(self, error: Callable[[], TransitUnreachable]) -> None:
        """Fail with ``error()`` once no attempt is left (now, if none runs)."""
        self._give_up = error
        self._maybe_lost()

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.contenders.discard(task)
        if not task.cancelled():
            task.exception()  # a failed attempt is just a loser; mark it seen
        self._maybe_lost()

    def _maybe_lost(self) -> None:
        if self._give_up is not None and not self.contenders and not self.winner.done():
            self.winner.set_exception(self._give_up())

    async def handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, relayed: bool,
        remote: str,
    ) -> None:
        """Say who we are, check who they are; then the sender decides, the receiver hears."""
        try:
            writer.write(self._keys.send_handshake)
            await _expect(reader, self._keys.expect_handshake)
            if self._role == "sender":
                if self.winner.done():
                    writer.write(b"nevermind\n")
                    writer.close()
                    return
                writer.write(_GO)
            else:
                await _expect(reader, _GO)
        except BaseException:
            writer.close()
            raise
        if self.winner.done():  # another connection heard "go" first
            writer.close()
            return
        self.winner.set_result(RecordPipe(reader, writer, self._keys, relayed, remote))

    async def stop(self) -> None:
        for task in list(self.contenders):
            task.cancel()
        await asyncio.gather(*self.contenders, return_exceptions=True)


def _unreachable(
    relays: list[TcpHint], direct: list[TcpHint], failures: dict[str, str]
) -> TransitUnreachable:
    """Every way failed: the relay (and why), then the direct paths (and why), in words."""

    def tried(hints: list[TcpHint]) -> str:
        return ", ".join(
            f"{hint.describe()} ({failures.get(hint.describe(), 'no answer')})"
            for hint in hints
        )

    relay = (f"can't reach the transit relay {tried(relays)}" if relays
             else "no transit relay to try")
    paths = tried(direct) or "the other side offered none"
    return TransitUnreachable(
        f"{relay}, and no direct path: {paths} — check --transit-relay HOST:PORT, or put "
        "the two devices on one network"
    )


async def _expect(reader: asyncio.StreamReader, expected: bytes) -> None:
    """Read exactly ``expected`` or fail (a wrong key, or not a wormhole peer at all)."""
    got = await reader.readexactly(len(expected))
    if not hmac.compare_digest(got, expected):
        raise ConnectionError("transit handshake mismatch")


def _lan_addresses() -> list[str]:
    """Addresses to offer as direct hints: the LAN's, else loopback (as the library does)."""
    found = [address for interface in lan_interfaces() for address in interface.addresses]
    return found or ["127.0.0.1"]


def _dialable(host: str) -> bool:
    """IP literals only: a host name from a peer would make us look it up in DNS."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _peer_of(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"

