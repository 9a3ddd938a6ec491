"""This node's identity: an Ed25519 secret key kept in a private file.

The endpoint ID peers see is the public half, authenticated by QUIC's TLS, so
pairings bind to it and not to any name a peer claims.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from p2p_transfer.errors import LocalFault
from p2p_transfer.limits import SECRET_KEY_SIZE
from p2p_transfer.net.keys import generate_secret_key, public_id
from p2p_transfer.trust.files import PRIVATE_FILE_MODE

KEY_FILE_NAME = "identity.key"


class IdentityError(LocalFault):
    """The key file exists but cannot be trusted or read."""


def load_or_create_secret_key(config_dir: Path) -> bytes:
    """Read this node's secret key, creating it (0600, exclusively) on first use."""
    path = config_dir / KEY_FILE_NAME
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    key = generate_secret_key()
    # Written in full under a temporary name, then linked into place: a crash
    # never leaves a short key, and link() fails (like O_EXCL) if one appeared.
    temp = config_dir / f".{KEY_FILE_NAME}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temp, path)
    except FileExistsError:
        return _read_key(path)  # another process created it first
    finally:
        os.unlink(temp)
    return key


def _read_key(path: Path) -> bytes:
    """Open without following links, then check the opened file itself."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IdentityError(f"{path} is a symlink; refusing to use it as a key") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IdentityError(f"{path} is not a regular file")
        if info.st_mode & 0o077:
            raise IdentityError(
                f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
                "run: chmod 600 " + str(path)
            )
        if info.st_size != SECRET_KEY_SIZE:
            raise IdentityError(
                f"{path} has {info.st_size} bytes, expected {SECRET_KEY_SIZE}"
            )
        data = os.read(fd, SECRET_KEY_SIZE + 1)
    finally:
        os.close(fd)
    if len(data) != SECRET_KEY_SIZE:
        raise IdentityError(f"{path} has the wrong length")
    return data


def endpoint_id_of(secret_key: bytes) -> str:
    """The public endpoint ID (hex) of a secret key."""
    return public_id(secret_key)


def existing_endpoint_id(config_dir: Path) -> str | None:
    """This device's endpoint ID if it has an identity yet (never creates one); None
    also for an unusable key file, whose problems the commands that need it report."""
    if not (config_dir / KEY_FILE_NAME).is_file():
        return None
    try:
        return endpoint_id_of(load_or_create_secret_key(config_dir))
    except (IdentityError, OSError):
        return None
