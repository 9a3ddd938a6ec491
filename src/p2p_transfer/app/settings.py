"""The app's settings: a small JSON file in the config dir, private (0600), validated on load.

A damaged or hand-edited file never stops the app: each bad value falls back
to its default, and the next save rewrites the file whole.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from p2p_transfer.config import default_download_dir
from p2p_transfer.errors import LocalFault
from p2p_transfer.limits import (
    APP_MAX_PAIRING_HOURS,
    APP_MIN_PAIRING_HOURS,
    DEFAULT_PAIRING_LIFETIME,
    DEFAULT_PARALLEL_FILES,
    LOCALSEND_MAX_PIN_CHARS,
    LOCALSEND_PORT,
    MAX_DEVICE_NAME_CHARS,
    MAX_PARALLEL_FILES,
)
from p2p_transfer.net import RELAY_DEFAULT, RELAY_OFF, NetError, relay_mode
from p2p_transfer.rendezvous import mailbox_url
from p2p_transfer.trust.files import write_private_atomically

log = logging.getLogger(__name__)

SETTINGS_FILE_NAME = "app-settings.json"
#: Layout version of the settings file.
_FORMAT_VERSION = 1
_SECONDS_PER_HOUR = 3600.0


class SettingsError(LocalFault, ValueError):
    """A setting was given a value it cannot take; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What the user can change in the Settings and WAN views."""

    device_name: str
    download_dir: str
    #: Offers from devices paired (and not expired) are accepted without asking.
    auto_accept_trusted: bool = False
    pairing_lifetime_hours: float = DEFAULT_PAIRING_LIFETIME / _SECONDS_PER_HOUR
    parallel_files: int = DEFAULT_PARALLEL_FILES
    #: ``off``, ``default`` (iroh's public relays) or a relay URL. On by default, as for
    #: the CLI's send and receive: tickets and codes then work across the internet, and
    #: the relay is reached in the background (a LAN without internet is not slowed).
    relay: str = RELAY_DEFAULT
    #: Receive from LocalSend devices (and announce to them), on this TCP port.
    localsend: bool = True
    localsend_port: int = LOCALSEND_PORT
    #: A PIN LocalSend senders must type first ("" for none).
    localsend_pin: str = ""
    #: The code server for send and receive with a code: a ws:// or wss:// URL, or ""
    #: for $P2P_TRANSFER_MAILBOX, else magic-wormhole's public one.
    mailbox: str = ""

    @property
    def pairing_lifetime_seconds(self) -> float:
        """The pairing lifetime as the pairing store takes it."""
        return self.pairing_lifetime_hours * _SECONDS_PER_HOUR

    @property
    def mailbox_url(self) -> str:
        """The code server actually used (the setting, else the environment's, else the
        public one)."""
        return mailbox_url(self.mailbox or None)

    @property
    def download_path(self) -> Path:
        """The download folder as a path."""
        return Path(self.download_dir)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the API's and the file's)."""
        return asdict(self)


def defaults(device_name: str) -> Settings:
    """Settings of a fresh install."""
    return Settings(device_name=device_name, download_dir=str(default_download_dir()))


def validated(current: Settings, changes: dict[str, Any]) -> Settings:
    """``current`` with ``changes`` applied, each checked; SettingsError names the first bad one."""
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise SettingsError(f"unknown setting: {unknown[0]}")
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        clean[key] = _CHECKS[key](value)
    return replace(current, **clean)


def _device_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError("device_name: give a name")
    name = value.strip()
    if len(name) > MAX_DEVICE_NAME_CHARS or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        raise SettingsError(
            f"device_name: 1 to {MAX_DEVICE_NAME_CHARS} characters, no control characters"
        )
    return name


def _download_dir(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError("download_dir: give a folder")
    path = Path(value.strip()).expanduser()
    if not path.is_absolute():
        raise SettingsError("download_dir: must be an absolute path (or start with ~)")
    if path.exists() and not path.is_dir():
        raise SettingsError(f"download_dir: {path} is not a folder")
    return str(path)


def _flag(name: str) -> Any:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{name}: true or false")
        return value

    return check


def _pairing_hours(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError("pairing_lifetime_hours: a number of hours")
    if not APP_MIN_PAIRING_HOURS <= value <= APP_MAX_PAIRING_HOURS:
        raise SettingsError(
            f"pairing_lifetime_hours: {APP_MIN_PAIRING_HOURS} to {APP_MAX_PAIRING_HOURS}"
        )
    return float(value)


def _parallel(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError("parallel_files: a whole number")
    if not 1 <= value <= MAX_PARALLEL_FILES:
        raise SettingsError(f"parallel_files: 1 to {MAX_PARALLEL_FILES}")
    return value


def _relay(value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError("relay: off, default or an http(s) URL")
    choice = value.strip()
    if choice in (RELAY_OFF, RELAY_DEFAULT):
        return choice
    if not choice.startswith(("http://", "https://")):
        raise SettingsError("relay: off, default or an http(s) URL")
    try:
        relay_mode(choice)  # what the endpoint will be given: refuse it now, not at restart
    except NetError as exc:
        raise SettingsError(f"relay: {exc}") from None
    return choice


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise SettingsError("localsend_port: a port number from 1 to 65535")
    return value


def _pin(value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError("localsend_pin: text (empty for no PIN)")
    pin = value.strip()
    if len(pin) > LOCALSEND_MAX_PIN_CHARS or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in pin):
        raise SettingsError(
            f"localsend_pin: at most {LOCALSEND_MAX_PIN_CHARS} characters, no control characters"
        )
    return pin


def _mailbox(value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError("mailbox: a ws:// or wss:// URL (empty for the default)")
    url = value.strip()
    if url and not url.startswith(("ws://", "wss://")):
        raise SettingsError("mailbox: a ws:// or wss:// URL (empty for the default)")
    return url


_CHECKS = {
    "device_name": _device_name,
    "download_dir": _download_dir,
    "auto_accept_trusted": _flag("auto_accept_trusted"),
    "pairing_lifetime_hours": _pairing_hours,
    "parallel_files": _parallel,
    "relay": _relay,
    "localsend": _flag("localsend"),
    "localsend_port": _port,
    "localsend_pin": _pin,
    "mailbox": _mailbox,
}


class SettingsStore:
    """Reads and writes the settings file in the config dir."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / SETTINGS_FILE_NAME

    def load(self, fallback: Settings) -> Settings:
        """The saved settings; each missing or bad value is taken from ``fallback``."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return fallback
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return fallback
        saved = raw.get("settings") if isinstance(raw, dict) else None
        if not isinstance(saved, dict):
            return fallback
        settings = fallback
        for key, value in saved.items():
            try:
                settings = validated(settings, {key: value})
            except SettingsError as exc:
                log.warning("ignoring setting in %s: %s", self.path, exc)
        return settings

    def save(self, settings: Settings) -> None:
        """Replace the file atomically, mode 0600."""
        data = {"version": _FORMAT_VERSION, "settings": settings.to_dict()}
        write_private_atomically(self.path, json.dumps(data, indent=2).encode())
