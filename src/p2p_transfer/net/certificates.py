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


def rsa_self_signed(
    common_name: str, valid_before_now: datetime.timedelta, lifetime: datetime.timedelta
) -> tuple[bytes, bytes]:
    """``ed25519_self_signed`` with an RSA 2048 key, for peers that expect one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - valid_before_now)
        .not_valid_after(now + lifetime)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


#: What the child of ``rsa_self_signed_apart`` runs: the certificate, then the key, PEM.
_MAKE_RSA = (
    "import datetime, sys\n"
    "from p2p_transfer.net.certificates import rsa_self_signed\n"
    "name, before, life = sys.argv[1], *(float(a) for a in sys.argv[2:])\n"
    "cert, key = rsa_self_signed(\n"
    "    name, datetime.timedelta(seconds=before), datetime.timedelta(seconds=life))\n"
    "sys.stdout.buffer.write(cert + key)\n"
)
_KEY_BEGINS = b"-----BEGIN PRIVATE KEY-----"


def rsa_self_signed_apart(
    common_name: str, valid_before_now: datetime.timedelta, lifetime: datetime.timedelta
) -> tuple[bytes, bytes]:
    """``rsa_self_signed`` in a child process: ``cryptography`` would stay loaded in
    ours (~12 MB of a receiver's memory) for a key made once. Blocking; OSError if the
    child fails."""
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root, *filter(None, [os.environ.get("PYTHONPATH")])]
    try:
        made = subprocess.run(
            [
                sys.executable, "-c", _MAKE_RSA, common_name,
                str(valid_before_now.total_seconds()), str(lifetime.total_seconds()),
            ],
            capture_output=True, timeout=RSA_KEY_TIMEOUT, check=False,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
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
