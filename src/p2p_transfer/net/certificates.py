"""Self-signed certificates, for peers that pin them by fingerprint (no CA, no names).

Our own TCP data channel uses Ed25519, signed by libsodium (PyNaCl) and written out
here: loading ``cryptography`` took a receiver ~13 MB and ~40 ms at its first TCP
transfer. RSA, which LocalSend's peers expect, comes from ``cryptography`` in a child
process, so that no long-lived process keeps it loaded.
"""

from __future__ import annotations

import base64
import datetime
import os
import subprocess
import sys
from pathlib import Path

from nacl import bindings as sodium

from p2p_transfer.limits import RSA_KEY_TIMEOUT

#: DER of the object identifiers used: Ed25519 (RFC 8410) and an X.500 common name.
_ED25519 = bytes.fromhex("06032b6570")
_COMMON_NAME = bytes.fromhex("0603550403")
_SEQUENCE, _SET, _INTEGER, _BIT_STRING, _OCTET_STRING = 0x30, 0x31, 0x02, 0x03, 0x04
_UTF8_STRING, _UTC_TIME, _GENERALIZED_TIME, _VERSION_TAG = 0x0C, 0x17, 0x18, 0xA0


def ed25519_self_signed(
    common_name: str, valid_before_now: datetime.timedelta, lifetime: datetime.timedelta
) -> tuple[bytes, bytes]:
    """A new Ed25519 key and an X.509 v3 certificate for it, valid from
    ``valid_before_now`` ago (clocks differ) for ``lifetime``: both PEM."""
    public, secret = sodium.crypto_sign_keypair()  # secret: the 32-byte seed, then public
    algorithm = _der(_SEQUENCE, _ED25519)
    name = _der(_SEQUENCE, _der(_SET, _der(
        _SEQUENCE, _COMMON_NAME, _der(_UTF8_STRING, common_name.encode())
    )))
    now = datetime.datetime.now(datetime.UTC)
    certificate_body = _der(
        _SEQUENCE,
        _der(_VERSION_TAG, _der(_INTEGER, b"\x02")),  # v3
        _der(_INTEGER, b"\x01" + os.urandom(15)),  # a positive serial, 128 bits
        algorithm,
        name,
        _der(_SEQUENCE, _time(now - valid_before_now), _time(now + lifetime)),
        name,
        _der(_SEQUENCE, algorithm, _der(_BIT_STRING, b"\x00" + public)),
    )
    signature = sodium.crypto_sign(certificate_body, secret)[: sodium.crypto_sign_BYTES]
    certificate = _der(
        _SEQUENCE, certificate_body, algorithm, _der(_BIT_STRING, b"\x00" + signature)
    )
    key = _der(  # PKCS #8
        _SEQUENCE, _der(_INTEGER, b"\x00"), algorithm,
        _der(_OCTET_STRING, _der(_OCTET_STRING, secret[: sodium.crypto_sign_SEEDBYTES])),
    )
    return _pem("CERTIFICATE", certificate), _pem("PRIVATE KEY", key)


#: The program ``rsa_self_signed_apart`` runs: the certificate, then the key, PEM.
_RSA_PROGRAM = Path(__file__).with_name("rsa_certificate.py")
_KEY_BEGINS = b"-----BEGIN PRIVATE KEY-----"


def rsa_self_signed_apart(
    common_name: str, valid_before_now: datetime.timedelta, lifetime: datetime.timedelta
) -> tuple[bytes, bytes]:
    """``ed25519_self_signed`` with an RSA 2048 key, for peers that expect one, made in a
    child process: ``cryptography`` would stay loaded in ours (~12 MB of a receiver's
    memory) for a key made once. Blocking; OSError if the child fails."""
    try:
        made = subprocess.run(
            [
                # -P: the program's folder (this package's modules) stays off sys.path
                sys.executable, "-P", str(_RSA_PROGRAM), common_name,
                str(valid_before_now.total_seconds()), str(lifetime.total_seconds()),
            ],
            capture_output=True, timeout=RSA_KEY_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise OSError(f"making an RSA key took over {RSA_KEY_TIMEOUT:g} s") from None
    cert, found, key = made.stdout.partition(_KEY_BEGINS)
    if made.returncode != 0 or not found:
        said = made.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
        raise OSError(f"making an RSA key failed ({said[-1][:200]})")
    return cert, found + key


def _der(tag: int, *contents: bytes) -> bytes:
    """One DER element: its tag, its length (short or long form), its contents."""
    body = b"".join(contents)
    if len(body) < 0x80:
        return bytes((tag, len(body))) + body
    length = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + body


def _time(moment: datetime.datetime) -> bytes:
    """A validity time as RFC 5280 wants it: UTCTime through 2049, then GeneralizedTime."""
    if moment.year < 2050:
        return _der(_UTC_TIME, moment.strftime("%y%m%d%H%M%SZ").encode())
    return _der(_GENERALIZED_TIME, moment.strftime("%Y%m%d%H%M%SZ").encode())


def _pem(label: str, der: bytes) -> bytes:
    encoded = base64.b64encode(der).decode()
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()
