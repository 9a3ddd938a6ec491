"""Who is who: this node's key, the peers it trusts, and verification codes."""

from p2p_transfer.trust.attempts import AttemptLimiter, Refusal, address_group
from p2p_transfer.trust.identity import IdentityError, endpoint_id_of, load_or_create_secret_key
from p2p_transfer.trust.pairing import Pairing, PairingStore
from p2p_transfer.trust.pake import CodeExchange, PakeError
from p2p_transfer.trust.verification import (
    VerificationSlots,
    format_code,
    generate_code,
    is_valid_code_format,
    normalize_code,
)
from p2p_transfer.trust.vouched import VouchedPeer

__all__ = [
    "AttemptLimiter",
    "CodeExchange",
    "IdentityError",
    "Pairing",
    "PairingStore",
    "PakeError",
    "Refusal",
    "VerificationSlots",
    "VouchedPeer",
    "address_group",
    "endpoint_id_of",
    "format_code",
    "generate_code",
    "is_valid_code_format",
    "load_or_create_secret_key",
    "normalize_code",
]
