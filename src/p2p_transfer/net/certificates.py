"""Self-signed certificates, for peers that pin them by fingerprint (no CA, no names).

``cryptography`` (~10 MB) is loaded here, on first use: a sender and a QUIC-only
receiver never need it.
"""

from __future__ import annotations

import datetime
from typing import Literal


def self_signed(
    key_type: Literal["ec", "rsa"],
    common_name: str,
    valid_before_now: datetime.timedelta,
    lifetime: datetime.timedelta,
) -> tuple[bytes, bytes]:
    """A new key (EC P-256, or RSA 2048 where a peer expects it) and a certificate for
    it, valid from ``valid_before_now`` ago (clocks differ) for ``lifetime``: both PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key = (
        ec.generate_private_key(ec.SECP256R1()) if key_type == "ec"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
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
