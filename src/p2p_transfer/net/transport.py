"""The iroh endpoint: one per process, identity-bearing; relays as the node chooses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from iroh import iroh_ffi

from p2p_transfer.errors import LocalFault
from p2p_transfer.limits import CLOSE_GRACE, CONNECT_TIMEOUT, HANDSHAKE_TIMEOUT
from p2p_transfer.net.binding import apply_binding_fix
from p2p_transfer.net.connection import CloseCode, PeerConnection
from p2p_transfer.net.errors import NetError, describe_iroh_error, iroh_detail

#: Application protocol negotiated on every connection.
ALPN = b"p2p-transfer/1"
#: Bind address when none is given: every interface, any free port.
DEFAULT_BIND = "0.0.0.0:0"
#: ``--relay`` values besides a URL.
RELAY_OFF = "off"
RELAY_DEFAULT = "default"


def relay_mode(choice: str) -> iroh_ffi.RelayMode:
    """``off`` (LAN only), ``default`` (iroh's public relays) or a relay server URL."""
    if choice == RELAY_OFF:
        return iroh_ffi.RelayMode.disabled()
    if choice == RELAY_DEFAULT:
        return iroh_ffi.RelayMode.default_mode()
    if not choice.startswith(("http://", "https://")):
        raise NetError(f"--relay takes off, default or an http(s) URL, not {choice!r}")
    try:
        return iroh_ffi.RelayMode.custom_from_urls([choice])
    except iroh_ffi.IrohError as exc:
        raise NetError(
            f"invalid relay URL {choice!r}: {describe_iroh_error(exc)}", iroh_detail(exc)
        ) from None


def default_relays() -> list[str]:
    """iroh's public relays (``--relay default``), as iroh writes their URLs."""
    return list(iroh_ffi.RelayMode.default_mode().relay_map().urls())


def _only_relay(choice: str) -> str | None:
    """The relay a node uses when it can use only one (a URL), else None."""
    return None if choice in (RELAY_OFF, RELAY_DEFAULT) else choice


class DamagedTicket(NetError, LocalFault):
    """A ticket that does not decode (cut short, a character changed)."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "this ticket is damaged — copy it again from the receiving device", detail
        )


class Unreachable(NetError):
    """Nobody answered at the addresses a ticket names (or not the device it names)."""


def normalize_ticket(text: str) -> str:
    """A ticket as pasted, without the whitespace around and inside it (a ticket copied
    from a wrapped terminal has line breaks) and in lower case, as tickets are written."""
    return "".join(text.split()).lower()


def parse_ticket(ticket: str) -> iroh_ffi.EndpointAddr:
    """Decode a ticket (as pasted: see ``normalize_ticket``) into an address; a damaged
    one raises DamagedTicket."""
    try:
        return iroh_ffi.EndpointTicket.from_string(normalize_ticket(ticket)).endpoint_addr()
    except iroh_ffi.IrohError as exc:
        raise DamagedTicket(iroh_detail(exc)) from None


def ticket_endpoint_id(ticket: str) -> str:
    """The endpoint ID (public key, hex) a ticket names."""
    return str(parse_ticket(ticket).id())


def ticket_addresses(ticket: str) -> list[str]:
    """The direct addresses a ticket carries."""
    return list(parse_ticket(ticket).direct_addresses())


def ticket_via(ticket: str, address: str) -> str:
    """The same peer, to be dialed first at ``address`` (the one the user knows works)."""
    addr = parse_ticket(ticket)
    addresses = [address, *(a for a in addr.direct_addresses() if a != address)]
    try:
        return str(
            iroh_ffi.EndpointTicket.from_addr(
                iroh_ffi.EndpointAddr(addr.id(), addr.relay_url(), addresses)
            )
        )
    except iroh_ffi.IrohError as exc:
        raise NetError(
            f"invalid address {address!r}: {describe_iroh_error(exc)}", iroh_detail(exc)
        ) from None


async def _connection_within(
    connecting: Awaitable[iroh_ffi.Connection], timeout: float
) -> iroh_ffi.Connection:
    """``asyncio.wait_for`` for a connection, without losing a cancellation.

    Python 3.11's ``wait_for`` returns the result when the call it awaits ends
    just as the task is cancelled (iroh's calls finish rather than stop), and
    the cancelled caller would carry on with a connection nobody wants.
    """
    connection = await asyncio.wait_for(connecting, timeout)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        with contextlib.suppress(iroh_ffi.IrohError):
            connection.close(CloseCode.CANCELLED, b"cancelled")
        raise asyncio.CancelledError
    return connection


class IncomingConnection:
    """A peer knocking: its IP is known before any handshake work is spent on it."""

    def __init__(self, incoming: iroh_ffi.Incoming, remote_ip: str | None) -> None:
        self._incoming = incoming
        self.remote_ip = remote_ip

    async def establish(self, timeout: float = HANDSHAKE_TIMEOUT) -> PeerConnection:
        """Finish the handshake, authenticating the peer's endpoint ID."""
        try:
            accepting = await self._incoming.accept()
            # Safe to time out: no stream exists yet whose data could be lost.
            return PeerConnection(await _connection_within(accepting.connect(), timeout))
        except TimeoutError:
            raise NetError("handshake timed out") from None
        except iroh_ffi.IrohError as exc:
            raise NetError(describe_iroh_error(exc)) from None

    async def refuse(self) -> None:
        """Turn the peer away without a handshake."""
        try:
            await self._incoming.refuse()
        except iroh_ffi.IrohError:
            pass


def _ip_of(socket_addr: str) -> str:
    """'1.2.3.4:5' -> '1.2.3.4'; '[::1]:5' -> '::1'."""
    host = socket_addr.rsplit(":", 1)[0]
    return host.strip("[]")


class Transport:
    """Owns the process's iroh endpoint; connect out, accept in, close once."""

    def __init__(self, endpoint: iroh_ffi.Endpoint, relay: str | None = None) -> None:
        self._endpoint = endpoint
        #: The one relay this endpoint may use (``--relay URL``): its home, once it answers.
        self._relay = relay
        self._closed = False

    @classmethod
    async def bind(
        cls, secret_key: bytes, bind_addr: str | None = None, relay: str = RELAY_OFF
    ) -> Transport:
        """Bind an endpoint with this identity; LAN only unless a relay is chosen
        (``default``: iroh's public ones, the nearest found by latency; a URL: that one)."""
        mode = relay_mode(relay)
        apply_binding_fix()
        iroh_ffi.uniffi_set_event_loop(asyncio.get_running_loop())
        options = iroh_ffi.EndpointOptions(
            preset=iroh_ffi.preset_minimal(),
            bind_addr=_normalize_bind(bind_addr or DEFAULT_BIND),
            secret_key=secret_key,
            alpns=[ALPN],
            relay_mode=mode,
        )
        try:
            endpoint = await iroh_ffi.Endpoint.bind(options)
        except iroh_ffi.IrohError as exc:
            raise NetError(
                f"cannot bind {bind_addr}: {describe_iroh_error(exc)}", iroh_detail(exc)
            ) from None
        return cls(endpoint, _only_relay(relay))

    async def wait_for_relay(self, timeout: float) -> bool:
        """True once a home relay is reachable; False after ``timeout`` (no internet)."""
        try:
            # Safe to time out: waiting for the relay moves no stream data.
            await asyncio.wait_for(self._endpoint.online(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def relay_url(self) -> str | None:
        """The home relay peers can reach this node through, if any."""
        return self._endpoint.addr().relay_url()

    @property
    def endpoint_id(self) -> str:
        """This node's public key, hex."""
        return str(self._endpoint.id())

    @property
    def ticket(self) -> str:
        """A ticket carrying this node's ID, addresses and relay. A node with one relay
        names it from the start, before it answers (without internet it never does):
        that relay is where the node will be, so a peer on the internet can use the
        ticket once it is there. With several (iroh's public ones), only the one iroh
        chose, once it did."""
        addr = self._endpoint.addr()
        if addr.relay_url() is None and self._relay is not None:
            addr = iroh_ffi.EndpointAddr(addr.id(), self._relay, addr.direct_addresses())
        return str(iroh_ffi.EndpointTicket.from_addr(addr))

    @property
    def local_udp_socket(self) -> tuple[str, int] | None:
        """The IPv4 host and port the endpoint listens on, if any."""
        for socket_addr in self._endpoint.bound_sockets():
            if not socket_addr.startswith("["):
                host, _, port = socket_addr.rpartition(":")
                return host, int(port)
        return None

    @property
    def addresses(self) -> list[str]:
        """Direct socket addresses peers can reach this node on."""
        return list(self._endpoint.addr().direct_addresses())

    async def connect(self, ticket: str, timeout: float = CONNECT_TIMEOUT) -> PeerConnection:
        """Connect to the node a ticket names; DamagedTicket or Unreachable when not."""
        addr = parse_ticket(ticket)
        try:
            # Safe to time out: no stream exists yet whose data could be lost.
            connecting = self._endpoint.connect(addr, ALPN)
            return PeerConnection(await _connection_within(connecting, timeout))
        except TimeoutError:
            raise Unreachable(f"no answer in {timeout:.0f} s") from None
        except iroh_ffi.IrohError as exc:
            raise Unreachable(describe_iroh_error(exc), iroh_detail(exc)) from None

    async def next_incoming(self) -> IncomingConnection | None:
        """The next connection attempt, not yet handshaken; None once the endpoint closed."""
        incoming = await self._endpoint.accept_next()
        if incoming is None:
            return None
        try:
            remote = await incoming.remote_addr()
        except iroh_ffi.IrohError:
            remote = None
        ip = _ip_of(str(remote.addr)) if remote is not None and remote.is_ip() else None
        return IncomingConnection(incoming, ip)

    async def accept(self) -> PeerConnection | None:
        """The next established connection (no admission policy); None once closed."""
        while (incoming := await self.next_incoming()) is not None:
            try:
                return await incoming.establish()
            except NetError:
                continue
        return None

    async def close(self) -> None:
        """Close the endpoint, giving pending connection closes time to reach peers."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._endpoint.close(), CLOSE_GRACE * 3)
        except (TimeoutError, iroh_ffi.IrohError):
            pass


def _normalize_bind(addr: str) -> str:
    """Accept ``HOST`` as ``HOST:0`` so ``--bind 127.0.0.1`` means any port."""
    if addr.startswith("["):
        return addr if "]:" in addr else f"{addr}:0"
    return addr if addr.count(":") == 1 else (f"{addr}:0" if ":" not in addr else f"[{addr}]:0")


def split_bind(addr: str) -> tuple[str, int]:
    """A ``--bind`` address as host and port (0: any port)."""
    host, _, port = _normalize_bind(addr).rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port) if port.isdigit() else 0


def bind_host(addr: str) -> str:
    """The host of a ``--bind`` address (``HOST``, ``HOST:PORT``, ``[V6]:PORT``), for
    listeners that keep a port of their own (LocalSend's)."""
    return _normalize_bind(addr).rpartition(":")[0].removeprefix("[").removesuffix("]")
