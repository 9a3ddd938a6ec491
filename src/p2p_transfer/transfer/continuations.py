"""What a receiver keeps so that a sender whose path broke can continue an accepted
transfer without a new code or a new question, even after this receiver restarted.

One record per accepted file offer, in ``continuations.json`` under the config dir
(0600): the receiver's session ID, the sender's endpoint ID, a hash of the secret the
Accept gave, the accepted manifest's digest, the folder it was accepted into, and when
it expires. A record goes when its transfer ends (a summary or a cancel) or expires;
nothing is kept for an offer that was declined. Only what the receiver agreed to is
continued: the same sender (its endpoint ID, proven by TLS), the same secret, the same
files, into the same folder.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from hashlib import sha256
from pathlib import Path

import blake3

from p2p_transfer.limits import (
    CONTINUATION_LIFETIME,
    CONTINUATION_SECRET_BYTES,
    MAX_CONTINUATIONS,
)
from p2p_transfer.protocol import Manifest
from p2p_transfer.trust.files import write_private_atomically

CONTINUATIONS_FILE_NAME = "continuations.json"
#: What a sender is told when a continuation is refused (the same words whatever the
#: reason, so a guesser learns nothing about which sessions exist).
REFUSAL = "this transfer cannot be continued here; send again"


def manifest_digest(manifest: Manifest) -> str:
    """A digest of every entry of an offer (path, kind, size, mode, mtime), in order."""
    hasher = blake3.blake3()
    for data in manifest.column_bytes():
        hasher.update(data)
    return hasher.hexdigest()


@dataclass(frozen=True, slots=True)
class Continuation:
    """One accepted transfer that its sender may continue."""

    session: str
    peer_id: str
    #: SHA-256 of the secret (the file never holds a secret a reader could present).
    secret_hash: str
    manifest_digest: str
    folder: str
    expires: float


class ContinuationStore:
    """The continuations a receiver grants, kept in memory and, with a config dir, on disk
    (so a restarted receiver still knows them)."""

    def __init__(self, config_dir: Path | None = None) -> None:
        self._path = config_dir / CONTINUATIONS_FILE_NAME if config_dir else None
        self._records: dict[str, Continuation] = {}
        self._load()

    def grant(self, session: str, peer_id: str, manifest: Manifest, folder: Path) -> bytes:
        """Record an accepted offer; the secret its Accept gives the sender."""
        secret = secrets.token_bytes(CONTINUATION_SECRET_BYTES)
        self._records[session] = Continuation(
            session, peer_id, _hash(secret), manifest_digest(manifest), folder_key(folder),
            time.time() + CONTINUATION_LIFETIME,
        )
        while len(self._records) > MAX_CONTINUATIONS:
            oldest = min(self._records.values(), key=lambda record: record.expires)
            del self._records[oldest.session]
        self._save()
        return secret

    def find(self, session: str, peer_id: str, secret: bytes) -> Continuation | None:
        """The continuation a peer presents, if it is this peer's, its secret matches and
        it has not expired; None otherwise (a refusal)."""
        self._drop_expired()
        record = self._records.get(session)
        if record is None or record.peer_id != peer_id:
            return None
        if not hmac.compare_digest(record.secret_hash, _hash(secret)):
            return None
        return record

    def end(self, session: str) -> None:
        """The transfer ended (done, failed or cancelled): it can no longer be continued."""
        if self._records.pop(session, None) is not None:
            self._save()

    def _drop_expired(self) -> None:
        now = time.time()
        expired = [key for key, record in self._records.items() if record.expires <= now]
        for key in expired:
            del self._records[key]
        if expired:
            self._save()

    def _load(self) -> None:
        if self._path is None:
            return
        try:
            data = json.loads(self._path.read_text())
            records = [Continuation(**item) for item in data["continuations"]]
        except (OSError, ValueError, KeyError, TypeError):
            return  # none kept, or unreadable: nothing can be continued
        self._records = {record.session: record for record in records}
        self._drop_expired()

    def _save(self) -> None:
        if self._path is None:
            return
        data = {"continuations": [asdict(record) for record in self._records.values()]}
        write_private_atomically(self._path, json.dumps(data).encode())


def folder_key(folder: Path) -> str:
    """A folder as a continuation names it (absolute, so a relative --dir matches itself)."""
    return str(folder.absolute())


def _hash(secret: bytes) -> str:
    return sha256(secret).hexdigest()
