"""HTTP share: a token link (and QR code) where any browser uploads files to this
machine, each one confirmed by the host, and downloads the files it shares.

``ShareServer`` is the whole feature; front ends (the CLI, later the desktop app)
give it a ``ShareConfig`` with their own ``decide`` callback and render the
events it emits. Nothing here prints.
"""

from p2p_transfer.share.config import (
    Decider,
    Decision,
    ShareConfig,
    UploadRequest,
    accept_all,
)
from p2p_transfer.share.server import ShareServer

__all__ = [
    "Decider",
    "Decision",
    "ShareConfig",
    "ShareServer",
    "UploadRequest",
    "accept_all",
]
