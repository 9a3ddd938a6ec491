"""Where things live: config dir, download folder, device name."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import platformdirs

from p2p_transfer.limits import MAX_DEVICE_NAME_CHARS

APP_NAME = "p2p-transfer"
#: Environment variable overriding the config dir (tests isolate peers with it).
HOME_ENV = "P2P_TRANSFER_HOME"


def resolve_config_dir(option: Path | None = None) -> Path:
    """``--config-dir``, else ``$P2P_TRANSFER_HOME``, else the platform's config dir."""
    if option is not None:
        return option.expanduser()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME))


def default_download_dir() -> Path:
    """A ``p2p-transfer`` folder in the user's Downloads folder."""
    return Path(platformdirs.user_downloads_dir()) / APP_NAME


def default_device_name() -> str:
    """The host name, shortened to the device-name limit."""
    return (socket.gethostname() or "device")[:MAX_DEVICE_NAME_CHARS]


def current_umask() -> int:
    """The process umask (read once at start, before any threads exist)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
