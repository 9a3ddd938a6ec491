"""Short codes (``7-guitarist-revenge``): where two devices meet before a transfer.

The meeting place is magic-wormhole's mailbox server, spoken to by our own client
(mailbox, wormhole_key), with the wormhole CLI's application ID so codes are
shared with its clients. Both sides agree a key on the code (SPAKE2),
then say what they run; two sides of ours swap endpoint tickets under that key.
"""

from p2p_transfer.rendezvous.codes import looks_like_code, nameplate, normalize_code
from p2p_transfer.rendezvous.errors import (
    BadRendezvousMessage,
    CodeNotWaiting,
    MailboxUnreachable,
    PeerWentAway,
    RendezvousError,
    WrongShortCode,
)
from p2p_transfer.rendezvous.mailbox import DEFAULT_MAILBOX, MAILBOX_ENV, mailbox_url

__all__ = [
    "DEFAULT_MAILBOX",
    "MAILBOX_ENV",
    "BadRendezvousMessage",
    "CodeNotWaiting",
    "MailboxUnreachable",
    "PeerWentAway",
    "RendezvousError",
    "WrongShortCode",
    "looks_like_code",
    "mailbox_url",
    "nameplate",
    "normalize_code",
]
