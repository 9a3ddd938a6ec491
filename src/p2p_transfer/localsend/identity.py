"""This device as LocalSend sees it: a self-signed certificate made once, its fingerprint.

The spec (section 2): in HTTPS mode a device's fingerprint is the SHA-256 of its
certificate. The certificate and key live in the config dir (``localsend/``,
0600, never through a symlink) so other devices recognize us across restarts.
It is not our p2p identity (an Ed25519 key): LocalSend knows nothing of that.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from p2p_transfer.errors import LocalFault
from p2p_transfer.localsend.messages import PROTOCOL_VERSION, DeviceInfo
from p2p_transfer.net.certificates import rsa_self_signed_apart
from p2p_transfer.trust.files import ensure_private_dir, write_private_atomically

#: Where the certificate and key live, inside the config dir.
FOLDER = "localsend"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
#: The fingerprint a device that never made a certificate claims when it sends: made
#: once, so a receiver sees the same sender every time (not a new one per send).
SENDER_FINGERPRINT_FILE = "sender-fingerprint"
#: LocalSend peers pin the fingerprint, not the dates: a long life avoids a new identity.
_CERT_LIFETIME = datetime.timedelta(days=10 * 365)
#: Valid from a day before it was made: devices' clocks differ.
_CLOCK_SKEW = datetime.timedelta(days=1)


class CertificateError(LocalFault):
    """The stored certificate cannot be used (unreadable, a symlink, or not ours)."""


@dataclass(frozen=True, slots=True)
class Certificate:
    """Our LocalSend certificate: the files and the fingerprint peers know us by."""

    cert_path: Path
    key_path: Path
    #: Uppercase hex SHA-256 of the certificate (DER), as LocalSend devices show it.
    fingerprint: str

    def server_context(self) -> ssl.SSLContext:
        """TLS for our HTTPS server (TLS 1.2 too: phones' LocalSend may not do 1.3)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def fingerprint_of(der: bytes) -> str:
    """The LocalSend fingerprint of a certificate (DER): its SHA-256, uppercase hex."""
    return hashlib.sha256(der).hexdigest().upper()


def load_or_create_certificate(config_dir: Path) -> Certificate:
    """Our certificate from ``config_dir``, made (once) if missing. Blocking: run in a thread."""
    folder = ensure_private_dir(config_dir / FOLDER)
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if not cert_path.exists() and not key_path.exists():
        # RSA, as the official app uses: every LocalSend client accepts it.
        try:
            cert_pem, key_pem = rsa_self_signed_apart(
                "LocalSend User", _CLOCK_SKEW, _CERT_LIFETIME
            )
        except OSError as exc:
            raise CertificateError(f"cannot make a LocalSend certificate: {exc}") from None
        write_private_atomically(key_path, key_pem)
        write_private_atomically(cert_path, cert_pem)
    for path in (cert_path, key_path):
        if path.is_symlink() or not path.is_file():
            raise CertificateError(f"{path} is not a plain file; remove it to make a new one")
        if os.stat(path).st_mode & 0o077:
            raise CertificateError(f"{path} is readable by others; run chmod 600 on it")
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CertificateError(f"{cert_path} is not a certificate: {exc}") from None
    return Certificate(cert_path, key_path, fingerprint_of(der))


def existing_fingerprint(config_dir: Path) -> str | None:
    """Our fingerprint if a certificate was made already (never makes one)."""
    try:
        pem = (config_dir / FOLDER / CERT_FILE).read_text()
        return fingerprint_of(ssl.PEM_cert_to_DER_cert(pem))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def sender_fingerprint(config_dir: Path) -> str:
    """The fingerprint we claim when we send: our certificate's if one was made, else one
    made once and kept (a sender needs no certificate, and makes none). Blocking."""
    if (fingerprint := existing_fingerprint(config_dir)) is not None:
        return fingerprint
    path = config_dir / FOLDER / SENDER_FINGERPRINT_FILE
    try:
        kept = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        kept = ""
    if len(kept) == 64 and all(c in "0123456789ABCDEF" for c in kept):
        return kept
    made = secrets.token_hex(32).upper()
    ensure_private_dir(config_dir / FOLDER)
    write_private_atomically(path, made.encode())
    return made


def device_model() -> str:
    """What we call our device model: the operating system, as the official desktop app."""
    return platform.system() or "Computer"


def own_info(
    alias: str, fingerprint: str, port: int, *, announce: bool | None = None
) -> DeviceInfo:
    """How we describe ourselves (register, prepare-upload, announcements)."""
    return DeviceInfo(
        alias=alias, version=PROTOCOL_VERSION, device_model=device_model(),
        device_type="desktop", fingerprint=fingerprint, port=port, protocol="https",
        download=False, announce=announce,
    )
