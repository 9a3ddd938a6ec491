"""The desktop app: a long-running node with a local web UI (``p2p-transfer app``).

``AppService`` owns the node and does everything; ``AppServer`` serves the UI
and the JSON API for it on 127.0.0.1, behind a per-run key.
"""

from p2p_transfer.app.server import AppServer, open_folder
from p2p_transfer.app.service import AppError, AppOptions, AppService

__all__ = ["AppError", "AppOptions", "AppServer", "AppService", "open_folder"]
