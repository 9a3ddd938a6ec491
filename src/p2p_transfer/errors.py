"""The one root of the errors this program raises on purpose, and who broke the rule.

Every error a person may read derives from ``P2PTransferError``; its ``str()`` is one
line that names no internal type. Subclasses live beside the code that raises them.
Two branches say whose fault it was, as h11's ``RemoteProtocolError`` and
``LocalProtocolError`` do, so a caller branches on the type ("the other side
misbehaved" vs "something here must change") and never on the words:

P2PTransferError
├── PeerFault: the other side broke a rule, lied, or refused
│   ├── ProtocolError             a message the wire protocol forbids (size, path, order,
│   │                             totals that do not add up)
│   ├── PakeError                 it did not prove it knows the verification code
│   ├── StreamEnded (NetError)    it stopped where more data was due
│   ├── PeerError (TransferError) it reported an error: WrongCode, LockedOut; and
│   │                             LocalSend's PinRequired, Busy
│   └── Declined (TransferError)  it declined the offer
├── LocalFault: this side — the user's input, the config, this machine's disk and files
│   ├── TargetError               a received file cannot be placed: NameTakenError
│   ├── LocalFileError            a file to send cannot be read: SourceError
│   ├── FilesBusyError            another transfer writes these files now
│   ├── SourceChangedError        a shared file changed while it was zipped
│   ├── DamagedTicket (NetError)  the ticket given does not decode
│   ├── DeviceNotFoundError, AmbiguousDeviceError (DiscoveryError): the name typed
│   │                             matches no device, or several
│   ├── SizeError, SettingsError  a size typed, a setting given, that cannot be
│   ├── IdentityError             the key file cannot be trusted
│   ├── BindingChangedError       the installed iroh binding is not the one we patch
│   ├── SentOutOfTurn             this side's session tried a message out of turn (a bug)
│   ├── NoLanAddressError, PublicShareError, AlreadyRunning, NodeStartError
│   ├── CertificateError          our stored LocalSend certificate cannot be used
│   └── the app's: AppError (NotFoundError, BusyError, GoneError), UnresolvedTarget,
│       PromptError (PromptGone), PathRefused (PathMissing), StagingError
│       (NoSuchBatch), ShareRefused
└── directly under the root, no one's rule broken: NetError (the network between:
    Unreachable), TransferError itself and Cancelled (whose ``by`` says who),
    DiscoveryError itself; Refused, this receiver's answer turning a peer away (its
    ``kind`` says why: a lock-out, a full disk, a busy receiver — either side's doing);
    LocalSendError (a LocalSend device unreachable, or answering wrongly: the network's
    or the device's doing), and the short codes' RendezvousError (a code unused,
    mistyped, or its sender gone).

Outside the root, on purpose: share/upload.py's private ``_Signal`` classes
(``_Closed``, ``_Timeout``, ``_Violation``), control flow inside one module that never
leaves it; under the root, a handler's ``except P2PTransferError`` could swallow them.
tests/test_errors.py holds this list and fails on any other class.
"""

from __future__ import annotations


class P2PTransferError(Exception):
    """Base of every expected failure; the message is one line for the user."""

    #: What went wrong in a library's own words (``ParseError::Postcard``...), for the
    #: ``detail`` of ``--json`` error events and logs; never printed for a person.
    detail: str = ""


class PeerFault(P2PTransferError):
    """The other side (a peer, a browser, a LocalSend device) broke a rule, lied about
    sizes or hashes, or refused: nothing on this machine needs to change."""


class LocalFault(P2PTransferError):
    """This side failed: what the user typed or set, the config, this machine's disk or
    files; the message says what to change here."""
