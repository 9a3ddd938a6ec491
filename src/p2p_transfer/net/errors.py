"""Turning iroh's errors into one clear line."""

from __future__ import annotations

import re

from iroh import iroh_ffi

from p2p_transfer.errors import P2PTransferError


class NetError(P2PTransferError):
    """A network operation failed; the message is one line for the user."""


_APPLICATION_CLOSE = re.compile(r'reason: b"([^"]*)"')


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
        return message.split(" (/", 1)[0].strip() or str(error.kind())
    return str(error) or type(error).__name__
