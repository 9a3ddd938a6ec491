"""Keys and addresses in iroh's own formats: secret keys, endpoint IDs, tickets."""

from __future__ import annotations

from iroh import iroh_ffi

from p2p_transfer.net.errors import NetError, describe_iroh_error


def generate_secret_key() -> bytes:
    """A fresh Ed25519 secret key (32 bytes)."""
    return bytes(iroh_ffi.SecretKey.generate().to_bytes())


def public_id(secret_key: bytes) -> str:
    """The endpoint ID (the public key, hex) of a secret key."""
    return str(iroh_ffi.SecretKey.from_bytes(secret_key).public())


def ticket_for(endpoint_id: str, addresses: list[str]) -> str:
    """An ``endpoint…`` ticket for this ID at these direct addresses (no relay)."""
    try:
        node_id = iroh_ffi.EndpointId.from_bytes(bytes.fromhex(endpoint_id))
        addr = iroh_ffi.EndpointAddr(node_id, None, addresses)
        return str(iroh_ffi.EndpointTicket.from_addr(addr))
    except iroh_ffi.IrohError as exc:
        raise NetError(describe_iroh_error(exc)) from None
