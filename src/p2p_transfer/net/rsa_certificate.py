"""An RSA 2048 key and a self-signed certificate for it, for peers that expect RSA
(LocalSend's), made by running this file as a program.

``certificates.rsa_self_signed_apart`` runs it by its path, so the child imports
``cryptography`` and nothing of ours: importing ``p2p_transfer.net`` (asyncio, iroh)
took the child ~0.1 of its ~0.25 CPU-s. Keep it free of imports from this package.
"""

from __future__ import annotations

import datetime
import sys


def rsa_self_signed(
    common_name: str, valid_before_now: datetime.timedelta, lifetime: datetime.timedelta
) -> tuple[bytes, bytes]:
    """A new RSA 2048 key and an X.509 certificate for it, valid from ``valid_before_now``
    ago (clocks differ) for ``lifetime``: both PEM."""
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


def main(argv: list[str]) -> None:
    """``NAME SECONDS_BEFORE_NOW LIFETIME_SECONDS``: the certificate, then the key, on stdout."""
    name, before, life = argv[0], *(float(a) for a in argv[1:3])
    cert, key = rsa_self_signed(
        name, datetime.timedelta(seconds=before), datetime.timedelta(seconds=life)
    )
    sys.stdout.buffer.write(cert + key)


if __name__ == "__main__":
    main(sys.argv[1:])
