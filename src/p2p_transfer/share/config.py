"""What a share server is told: where uploads go, what it offers, who decides, and its limits.

Every limit defaults to its named constant in ``p2p_transfer.limits``; tests pass
small values so that crossing a 10 s or 60 s deadline takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from p2p_transfer.limits import (
    SHARE_ANSWER_TIMEOUT,
    SHARE_DATA_TIMEOUT,
    SHARE_HANDSHAKE_TIMEOUT,
    SHARE_MAX_ACTIVE_UPLOADS,
    SHARE_MAX_CONNECTIONS,
    SHARE_MAX_CONNECTIONS_PER_IP,
    SHARE_MAX_PENDING_UPLOADS,
    SHARE_PING_INTERVAL,
)

#: Port 0 lets the system choose a free port; the URL carries whichever it is.
DEFAULT_PORT = 0


@dataclass(frozen=True, slots=True)
class UploadRequest:
    """One file a browser wants to upload, as the host is asked about it."""

    request_id: str
    #: The sanitized name the file will get (before ``name (N)`` numbering).
    file_name: str
    file_size: int
    #: The browser's IP address.
    client: str
    #: The upload's session ID (the ``session`` of its events).
    session: str = ""
    #: Which browser it says it is ("Chrome on Android"; "" when it names none we know).
    browser: str = ""

    @property
    def who(self) -> str:
        """The browser as the host is told of it: ``Chrome on Android at 192.168.1.7``."""
        return f"{self.browser} at {self.client}" if self.browser else self.client


#: ``True`` accepts; ``False`` declines; a string declines with that reason.
Decision = bool | str
#: Asks the host about one upload (terminal prompt, ``--yes``, or a dialog).
Decider = Callable[[UploadRequest], Awaitable[Decision]]


async def accept_all(request: UploadRequest) -> Decision:
    """The ``--yes`` decider: every upload is accepted."""
    return True


@dataclass(slots=True)
class ShareConfig:
    """Settings of one share server; only ``upload_dir`` or ``shared`` is needed."""

    #: Folder uploads are written to; ``None`` offers downloads only.
    upload_dir: Path | None
    #: Decides each upload; by default every one is declined.
    decide: Decider | None = None
    #: Address to listen on; ``None`` means this machine's LAN address.
    bind: str | None = None
    port: int = DEFAULT_PORT
    #: Files and folders offered for download (folders as a streamed zip).
    shared: Sequence[Path] = ()
    #: Largest upload accepted, in bytes; ``None`` for no limit but free space.
    max_size: int | None = None
    #: Shown on the page ("Send files to …").
    device_name: str = ""
    #: Finished uploads get ``0o666 & ~umask`` (like other new files); ``None`` keeps 0600.
    umask: int | None = None
    #: Peers (reverse proxies such as the ngrok tunnel) whose X-Forwarded-For is believed.
    trusted_proxies: frozenset[str] = field(default_factory=frozenset)
    #: Also bounds a new TCP connection's silence and an idle keep-alive connection.
    handshake_timeout: float = SHARE_HANDSHAKE_TIMEOUT
    answer_timeout: float = SHARE_ANSWER_TIMEOUT
    data_timeout: float = SHARE_DATA_TIMEOUT
    ping_interval: float = SHARE_PING_INTERVAL
    max_connections: int = SHARE_MAX_CONNECTIONS
    max_connections_per_ip: int = SHARE_MAX_CONNECTIONS_PER_IP
    max_pending_uploads: int = SHARE_MAX_PENDING_UPLOADS
    max_active_uploads: int = SHARE_MAX_ACTIVE_UPLOADS
