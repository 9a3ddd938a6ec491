"""Turning iroh's errors into one clear line."""

from __future__ import annotations

import errno
import os
import re

from iroh import iroh_ffi

from p2p_transfer.errors import P2PTransferError


class NetError(P2PTransferError):
    """A network operation failed; the message is one line for the user, ``detail``
    iroh's own words (for ``--json`` and logs)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


_APPLICATION_CLOSE = re.compile(r'reason: b"([^"]*)"')
#: An error type's name as Rust prints it (``ConnectError::Connecting``): never for people.
_INTERNAL_NAME = re.compile(r"\b\w+::\w+")
#: Where in iroh's sources an error was raised: `` (/home/…/endpoint.rs:61:37)``.
_SOURCE_LOCATION = re.compile(r"\s*\([^()]*\.rs:\d+:\d+\)")
#: Plain words for an iroh error whose message is only internal names, by its kind.
_KIND_WORDS = {
    "ALPN": "the peer does not speak this program's protocol",
    "BIND": "cannot use that address",
    "CONNECT": "could not connect",
    "CONNECTION": "connection failed",
    "KEY_PARSING": "not a valid key",
    "TICKET_PARSING": "not a valid ticket",
    "RELAY": "the relay failed",
    "STREAM": "the peer stopped the stream",
    "TIMEOUT": "timed out",
    "CLOSED": "the endpoint is closed",
}


def describe_iroh_error(error: BaseException) -> str:
    """One readable line for an IrohError (whose ``str()`` is empty)."""
    if isinstance(error, iroh_ffi.IrohError):
        message = error.message()
        match = _APPLICATION_CLOSE.search(message)
        if match:
            return match.group(1) or "connection closed by peer"
        if "TimedOut" in message:
            return "connection to peer timed out"
        if "ConnectionLost" in message or "LocallyClosed" in message:
            return "connection lost"
        if "Reset" in message:
            return "peer stopped the stream"
        if "invalid peer certificate" in message:  # the key there is not the one we dial
            return "another device answers at its address: is the ticket mistyped?"
        first = message.split(" (/", 1)[0].strip()
        if first and not _INTERNAL_NAME.search(first):
            return first
        kind = getattr(error.kind(), "name", "")
        return _KIND_WORDS.get(kind, "network error")
    return str(error) or type(error).__name__


def iroh_detail(error: BaseException) -> str:
    """An iroh error's full message on one line, without source locations: the
    ``detail`` scripts and logs get (``ParseError::Postcard; Hit the end of buffer``)."""
    if isinstance(error, iroh_ffi.IrohError):
        text = _SOURCE_LOCATION.sub("", error.message())
        lines = [line.strip() for line in text.splitlines()]
        return "; ".join(line for line in lines if line and line != "Caused by:")
    return str(error)


#: Why a TCP connection could not be made, in words (asyncio's own text is
#: ``Connect call failed ('127.0.0.1', 9)``: a Python tuple, not a sentence).
_CONNECT_WORDS = {
    errno.ECONNREFUSED: "nothing there accepts the connection; check the port, and that "
                        "p2p-transfer receive or the app runs on that device",
    errno.ETIMEDOUT: "it does not answer; check the address, and that no firewall drops it",
    errno.EHOSTUNREACH: "no route to that address; check that you are on the same network",
    errno.ENETUNREACH: "no route to that network; check your network connection",
    errno.ECONNRESET: "the connection was reset; try again",
}


def describe_connect_error(exc: OSError) -> str:
    """One plain sentence for a failed TCP connect (never the tuple asyncio puts in it)."""
    if exc.errno in _CONNECT_WORDS:
        return _CONNECT_WORDS[exc.errno]
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    # Several addresses, each failing (asyncio then joins their messages): no one cause.
    return "no address of it accepts the connection; check the address and port"
