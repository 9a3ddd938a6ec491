"""Who is who: this node's key, the peers it trusts, and verification codes."""

from p2p_transfer.trust.attempts import AttemptLimiter
from p2p_transfer.trust.identity import IdentityError, endpoint_id_of, load_or_create_secret_key
from p2p_transfer.trust.pairing import Pairing, PairingStore
from p2p_transfer.trust.pake import CodeExchange, PakeError
from p2p_transfer.trust.verification import (
    VerificationSlots,
    generate_code,
    is_valid_code_format,
)

__all__ = [
    "AttemptLimiter",
    "CodeExchange",
    "IdentityError",
    "Pairing",
    "PairingStore",
    "PakeError",
    "VerificationSlots",
    "endpoint_id_of",
    "generate_code",
    "is_valid_code_format",
    "load_or_create_secret_key",
]
