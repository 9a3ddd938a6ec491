"""What an incoming LocalSend offer means here, sans I/O: safe, distinct paths and totals.

A LocalSend ``fileName`` may carry folders (``album/img.jpg``, as the official
app sends a folder); it passes through our path sanitizer like every received
name, so ``../x`` or ``/etc/x`` land inside the target folder. Two entries that
would meet on one name (also differing only in case) get ``name (N)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from p2p_transfer.localsend.messages import FileInfo, PrepareUpload, text_message
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.protocol.paths import numbered_name, sanitize_component, sanitize_path

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
#: Example names shown with an offer.
SAMPLE_SIZE = 5


@dataclass(frozen=True, slots=True)
class IncomingFile:
    """One announced file as it will be received."""

    file_id: str
    #: Sanitized relative path, distinct from every other file's in the offer.
    path: str
    size: int
    #: Lowercase hex SHA-256 the sender gave, checked on arrival (None: not given).
    sha256: str | None
    mtime: float | None


@dataclass(frozen=True, slots=True)
class LocalSendOffer:
    """A checked ``prepare-upload``: the files by ID, or a text message."""

    files: dict[str, IncomingFile]
    total_bytes: int
    #: The text, when the offer is a text message (then ``files`` is empty).
    text: str | None = None

    @property
    def sample(self) -> list[str]:
        """A few of the paths, for the prompt."""
        return [f.path for f in list(self.files.values())[:SAMPLE_SIZE]]

    @property
    def folders(self) -> int:
        """Top-level folders the files arrive in."""
        return len({f.path.split("/", 1)[0] for f in self.files.values() if "/" in f.path})


def read_offer(request: PrepareUpload) -> LocalSendOffer:
    """Plan an offer's files (raises ProtocolError for a bad ``sha256``)."""
    text = text_message(request.files)
    if text is not None:
        return LocalSendOffer({}, len(text.encode()), text)
    taken = _TakenNames()
    files: dict[str, IncomingFile] = {}
    for file_id, info in request.files.items():
        files[file_id] = IncomingFile(
            file_id, taken.claim(_safe_path(info)), info.size, _checksum(info),
            _timestamp(info.metadata.modified if info.metadata else None),
        )
    return LocalSendOffer(files, sum(f.size for f in files.values()))


def _safe_path(info: FileInfo) -> str:
    try:
        return sanitize_path(info.file_name)
    except ProtocolError:
        return sanitize_component(info.id) or "file"


def _checksum(info: FileInfo) -> str | None:
    if info.sha256 is None:
        return None
    if not _SHA256.fullmatch(info.sha256):
        raise ProtocolError(f"sha256 of {info.file_name!r} is not 64 hex digits")
    return info.sha256.lower()


def _timestamp(value: str | None) -> float | None:
    """An ISO 8601 time as seconds since the epoch (None when missing or unreadable)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, OSError):
        return None


class _TakenNames:
    """Paths given out so far (compared without case), files and the folders they need."""

    def __init__(self) -> None:
        self._files: set[str] = set()
        self._folders: set[str] = set()

    def claim(self, path: str) -> str:
        folder, _, name = path.rpartition("/")
        if self._blocked_folder(folder):
            folder = ""  # a folder of this path is already a file: keep the file at the top
        for number in range(0, len(self._files) + 2):
            candidate_name = name if number == 0 else numbered_name(name, number)
            candidate = f"{folder}/{candidate_name}" if folder else candidate_name
            key = candidate.casefold()
            if key not in self._files and key not in self._folders:
                self._files.add(key)
                parts = candidate.split("/")[:-1]
                for depth in range(1, len(parts) + 1):
                    self._folders.add("/".join(parts[:depth]).casefold())
                return candidate
        raise AssertionError("unreachable: one more number than files is always free")

    def _blocked_folder(self, folder: str) -> bool:
        parts = folder.split("/") if folder else []
        return any(
            "/".join(parts[:depth]).casefold() in self._files for depth in range(1, len(parts) + 1)
        )
