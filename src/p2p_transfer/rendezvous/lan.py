"""A code without the code server: the sender offers its nameplate on the LAN (mDNS),
the receiver finds it there and runs the same kind of PAKE directly with it.

The sender registers ``<nameplate>._p2p-transfer-code._tcp.local.`` (its endpoint ID
in TXT) with a one-use TCP listener. The receiver connects and the two run SPAKE2
on the code bound to both endpoint IDs (``trust/pake.py``), each proving the key,
and their tickets cross in the same three messages. One guess: after the first
exchange, right or wrong, the sender withdraws the nameplate and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from p2p_transfer.limits import (
    LAN_CODE_ASK,
    LAN_CODE_ASK_LONGEST,
    LAN_CODE_SEARCH,
    LAN_PAKE_TIMEOUT,
    MAX_RENDEZVOUS_MESSAGE,
)
from p2p_transfer.net import NetError, ticket_endpoint_id
from p2p_transfer.rendezvous.codes import choose_words, nameplate
from p2p_transfer.rendezvous.errors import BadRendezvousMessage, RendezvousError, WrongShortCode
from p2p_transfer.trust.pake import CodeExchange, PakeError

if TYPE_CHECKING:  # zeroconf loads on first use: most commands never offer a code here
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

SERVICE_TYPE = "_p2pt-code._tcp.local."
#: What a code is prefixed with as a SPAKE2 password here (not a 6-digit code's).
_PASSWORD_CONTEXT = "p2p-transfer short code|"
_LENGTH = struct.Struct(">I")


class _Hello(msgspec.Struct, forbid_unknown_fields=True):
    ticket: str
    name: str
    pake: bytes


class _Reply(msgspec.Struct, forbid_unknown_fields=True):
    ticket: str
    name: str
    pake: bytes
    proof: bytes


class _Proof(msgspec.Struct, forbid_unknown_fields=True):
    proof: bytes


@dataclass(frozen=True, slots=True)
class LanSender:
    """A sender found on the LAN for a nameplate."""

    hosts: list[str]
    port: int
    endpoint_id: str


#: Nameplates of codes made without the server: 4 digits, which the server (it hands
#: out the smallest free number) never reaches, so such a code is never a stranger's.
LAN_NAMEPLATES = range(1000, 10000)


def local_code(words: int) -> str:
    """A code made here, for the LAN only: a nameplate of LAN_NAMEPLATES and words of
    magic-wormhole's list."""
    number = LAN_NAMEPLATES[secrets.randbelow(len(LAN_NAMEPLATES))]
    return f"{number}-{choose_words(words)}"


def made_for_the_lan(code: str) -> bool:
    """True for a code a sender made without the server (looked for on the LAN first)."""
    return int(nameplate(code)) in LAN_NAMEPLATES


def _exchange(code: str, receiver_id: str, sender_id: str) -> CodeExchange:
    return CodeExchange(_PASSWORD_CONTEXT + code, receiver_id=receiver_id, sender_id=sender_id)


async def _write(writer: asyncio.StreamWriter, message: msgspec.Struct) -> None:
    data = msgspec.json.encode(message)
    writer.write(_LENGTH.pack(len(data)) + data)
    await writer.drain()


async def _read(reader: asyncio.StreamReader, kind: type[msgspec.Struct]) -> msgspec.Struct:
    try:
        (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        if length > MAX_RENDEZVOUS_MESSAGE:
            raise BadRendezvousMessage(f"a message of {length:,} bytes")
        return msgspec.json.decode(await reader.readexactly(length), type=kind)
    except asyncio.IncompleteReadError:
        raise WrongShortCode("the other side hung up during the key exchange") from None
    except msgspec.DecodeError as exc:
        raise BadRendezvousMessage(f"a malformed message ({exc})") from None


def _ipv4_addresses() -> list[str]:
    """This machine's IPv4 addresses, loopback last (a LAN of one host has only it)."""
    import ifaddr

    found = {
        ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips
        if isinstance(ip.ip, str) and not ip.ip.startswith("169.254.")
    }
    return sorted(found, key=lambda host: (host.startswith("127."), host))


async def _connect(sender: LanSender) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first of the sender's addresses that answers."""
    failure: OSError = OSError("the sender announced no address")
    for host in sender.hosts:
        try:
            return await asyncio.open_connection(host, sender.port)
        except OSError as exc:
            failure = exc
    raise failure


def _endpoint_of(ticket: str) -> str:
    try:
        return ticket_endpoint_id(ticket)
    except NetError:
        raise BadRendezvousMessage("its ticket is damaged") from None


class LanOffer:
    """Sender: the code offered on this LAN until one receiver tries it."""

    def __init__(self, code: str, ticket: str, name: str) -> None:
        self.code = code
        self._ticket = ticket
        self._name = name
        self._own_id = ticket_endpoint_id(ticket)
        self._met: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
        self._server: asyncio.Server | None = None
        self._zc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    async def start(self) -> None:
        """Listen and announce the nameplate; RendezvousError when the LAN cannot."""
        self._server = await asyncio.start_server(self._serve, "0.0.0.0", 0)
        port = self._server.sockets[0].getsockname()[1]
        from zeroconf import Error as ZeroconfError
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

        try:
            self._zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
            self._info = AsyncServiceInfo(
                SERVICE_TYPE, f"{nameplate(self.code)}.{SERVICE_TYPE}", port=port,
                properties={"id": self._own_id},
                addresses=[socket.inet_aton(host) for host in _ipv4_addresses()],
            )
            # The first await registers; the task it returns ends when probing is done.
            await (await self._zc.async_register_service(self._info))
        except (ZeroconfError, OSError) as exc:
            await self.close()
            raise RendezvousError(f"the code cannot be offered on this network: {exc}") from None

    async def wait(self) -> tuple[str, str]:
        """The receiver's ticket and name once one typed the right code; WrongShortCode when
        the one try was wrong (the code is then withdrawn)."""
        try:
            return await self._met
        finally:
            await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._met.done():  # one try per code
            writer.close()
            return
        try:
            async with asyncio.timeout(LAN_PAKE_TIMEOUT):
                met = await self._meet(reader, writer)
            if not self._met.done():
                self._met.set_result(met)
        except (RendezvousError, TimeoutError, OSError) as exc:
            if not self._met.done():
                self._met.set_exception(exc if isinstance(exc, RendezvousError) else WrongShortCode(
                    "someone tried the code and stopped halfway; it is used up now — run "
                    "send again for a new one"
                ))
        finally:
            writer.close()

    async def _meet(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, str]:
        hello = await _read(reader, _Hello)
        assert isinstance(hello, _Hello)
        exchange = _exchange(self.code, _endpoint_of(hello.ticket), self._own_id)
        try:
            exchange.finish(hello.pake)
        except PakeError:
            raise BadRendezvousMessage("a malformed key exchange message") from None
        await _write(writer, _Reply(self._ticket, self._name, exchange.message,
                                    exchange.sender_proof()))
        answer = await _read(reader, _Proof)
        assert isinstance(answer, _Proof)
        if not exchange.check_receiver(answer.proof):
            raise WrongShortCode(
                f"someone typed a wrong code: {self.code} is used up now — run send again "
                "for a new one"
            )
        return hello.ticket, hello.name

    async def close(self) -> None:
        """Withdraw the nameplate and stop listening."""
        if self._zc is not None:
            from zeroconf import Error as ZeroconfError

            zc, self._zc = self._zc, None
            with contextlib.suppress(ZeroconfError, OSError):
                if self._info is not None:
                    await zc.async_unregister_service(self._info)
                await zc.async_close()
        if self._server is not None:
            self._server.close()


async def find_sender(code: str, timeout: float) -> LanSender | None:
    """The sender offering ``code``'s nameplate on this LAN, if one answers in time."""
    from zeroconf import DNSQuestionType, IPVersion
    from zeroconf import Error as ZeroconfError
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    try:
        zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
    except (ZeroconfError, OSError):
        return None
    try:
        info = AsyncServiceInfo(SERVICE_TYPE, f"{nameplate(code)}.{SERVICE_TYPE}")
        loop = asyncio.get_running_loop()
        started = loop.time()
        ask = min(LAN_CODE_ASK, timeout)
        # Multicast answers (QM): a unicast one goes to whichever socket shares port 5353
        # first on this host, maybe the sender's own. Asked afresh every LAN_CODE_ASK s:
        # a sender still probing its name does not answer the first questions. A long
        # wait (``receive CODE --wait``) asks less and less often after LAN_CODE_SEARCH.
        while not await info.async_request(
            zc.zeroconf, int(ask * 1000), question_type=DNSQuestionType.QM,
        ):
            elapsed = loop.time() - started
            if elapsed >= timeout:
                return None
            if elapsed >= LAN_CODE_SEARCH:
                ask = min(ask * 2, LAN_CODE_ASK_LONGEST)
            ask = min(ask, max(timeout - elapsed, 0.05))
        sender_id = (info.decoded_properties or {}).get("id") or ""
        hosts = info.parsed_addresses(IPVersion.V4Only)
        if not hosts or not info.port or not sender_id:
            return None
        return LanSender(hosts, info.port, sender_id)
    finally:
        with contextlib.suppress(ZeroconfError, OSError):
            await zc.async_close()


async def meet_sender(
    sender: LanSender, code: str, ticket: str, name: str
) -> tuple[str, str]:
    """Receiver: the key exchange with a sender found on the LAN; its ticket and name.
    WrongShortCode when the code was wrong (the sender then withdraws it)."""
    own_id = ticket_endpoint_id(ticket)
    exchange = _exchange(code, own_id, sender.endpoint_id)
    try:
        async with asyncio.timeout(LAN_PAKE_TIMEOUT):
            reader, writer = await _connect(sender)
            try:
                await _write(writer, _Hello(ticket, name, exchange.message))
                reply = await _read(reader, _Reply)
                assert isinstance(reply, _Reply)
                if _endpoint_of(reply.ticket) != sender.endpoint_id:
                    raise BadRendezvousMessage("its ticket names another device")
                try:
                    exchange.finish(reply.pake)
                except PakeError:
                    raise BadRendezvousMessage("a malformed key exchange message") from None
                right = exchange.check_sender(reply.proof)
                # A proof either way: a wrong one tells the sender the code is burned.
                await _write(writer, _Proof(exchange.receiver_proof() if right else b""))
            finally:
                writer.close()
    except (TimeoutError, OSError):
        raise RendezvousError("the sender on this network stopped answering") from None
    if not right:
        raise WrongShortCode(
            f"wrong code: {code} does not match the sender's, and it is used up now — ask "
            "for a new one"
        )
    return reply.ticket, reply.name
