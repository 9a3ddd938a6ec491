"""What an incoming LocalSend offer means here, sans I/O: safe, distinct paths and totals.

A LocalSend ``fileName`` may carry folders (``album/img.jpg``, as the official
app sends a folder); it passes through our path sanitizer like every received
name, so ``../x`` or ``/etc/x`` land inside the target folder. Two entries that
would meet on one name get ``name (N)``: also when they differ only in case, only in
characters FAT refuses (``a?b``, ``a_b``), or one is the other's ``.part`` (``x`` is
received as ``x.part``). The numbering is linear in the entries: an offer of 20,000
files of one name is planned (or refused, past MAX_NAME_ALTERNATIVES) in one pass.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from p2p_transfer.limits import MAX_NAME_ALTERNATIVES, MAX_OFFER_BYTES
from p2p_transfer.localsend.messages import FileInfo, PrepareUpload, decode_file, text_message
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.protocol.paths import (
    PART_SUFFIX,
    numbered_name,
    portable_name,
    sanitize_component,
    sanitize_path,
)

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
#: Example names shown with an offer.
SAMPLE_SIZE = 5


class IncomingFile(msgspec.Struct, frozen=True, gc=False):
    """One announced file as it will be received (not tracked by the garbage collector:
    an offer makes 20,000 of these, and nothing in one refers back)."""

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
    """Plan an offer's files at once (see ``OfferPlanner``)."""
    offer = OfferPlanner(request.files).plan(len(request.files))
    assert offer is not None
    return offer


class OfferPlanner:
    """Plans an offer's files a few at a time: its cost grows with the offer (20,000
    files: ~0.2 s), and a server plans between the other things it does, each step
    short, rather than in a thread that would take the interpreter from them. Files
    still as JSON (``OfferHead``) are decoded as they are planned.

    ``plan`` raises ProtocolError for a file that is not one, a bad ``sha256``, more
    files of one name than MAX_NAME_ALTERNATIVES, or a total over MAX_OFFER_BYTES.
    """

    def __init__(self, files: Mapping[str, FileInfo | msgspec.Raw]) -> None:
        self._text: str | None = None
        if len(files) == 1:
            ((key, only),) = files.items()
            self._text = text_message({key: decode_file(key, only)})
        self._left = iter(files.items())
        self._remaining = 0 if self._text is not None else len(files)
        self._taken = _TakenNames()
        self._files: dict[str, IncomingFile] = {}
        self._bytes = 0

    def plan(self, count: int) -> LocalSendOffer | None:
        """Plan up to ``count`` more files; the offer once every file is planned."""
        if self._text is not None:
            return LocalSendOffer({}, len(self._text.encode()), self._text)
        taken, files = self._taken, self._files
        for file_id, raw in itertools.islice(self._left, min(count, self._remaining)):
            info = decode_file(file_id, raw)
            self._bytes += info.size
            if self._bytes > MAX_OFFER_BYTES:
                raise ProtocolError("the files' total size is too large")
            files[file_id] = IncomingFile(
                file_id, taken.claim(_safe_path(info)), info.size, _checksum(info),
                _timestamp(info.metadata.modified if info.metadata else None),
            )
            self._remaining -= 1
        if self._remaining:
            return None
        return LocalSendOffer(files, self._bytes)


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
    """Paths given out so far, files and the folders they need, by ``_key``."""

    def __init__(self) -> None:
        self._files: set[str] = set()
        self._folders: set[str] = set()
        #: The number to try first for a wanted path: those below it are taken.
        self._next: dict[str, int] = {}
        self._folder_keys: dict[str, str] = {}

    def claim(self, path: str) -> str:
        folder, _, name = path.rpartition("/")
        folder_key = self._folder_keys.get(folder)
        if folder_key is None:
            folder_key = self._folder_keys[folder] = _key(folder)
        if folder and folder_key not in self._folders and self._blocked(folder_key):
            folder = folder_key = ""  # a folder of this path is a file: keep it at the top
        prefix, key_prefix = (f"{folder}/", f"{folder_key}/") if folder else ("", "")
        wanted = key_prefix + _key(name)
        number = self._next.get(wanted, 0)
        while True:
            if number > MAX_NAME_ALTERNATIVES:
                raise ProtocolError(f"too many files named {path!r} in one offer")
            if number == 0:
                candidate, key = name, wanted
            else:
                candidate = numbered_name(name, number)
                key = key_prefix + _key(candidate)
            if self._free(key):
                break
            number += 1
        self._next[wanted] = number + 1
        self._files.add(key)
        if folder_key and folder_key not in self._folders:
            parts = folder_key.split("/")
            self._folders.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
        return prefix + candidate

    def _free(self, key: str) -> bool:
        """Whether a file may have ``key``: no file or folder has it, and it is neither
        another file's part nor the file of which it would be the part."""
        if key in self._files or key in self._folders or key + PART_SUFFIX in self._files:
            return False
        return not (key.endswith(PART_SUFFIX) and key[: -len(PART_SUFFIX)] in self._files)

    def _blocked(self, folder_key: str) -> bool:
        """Whether the folder, or one above it, is a file (a folder never becomes one)."""
        parts = folder_key.split("/")
        return any("/".join(parts[:depth]) in self._files for depth in range(1, len(parts) + 1))


def _key(path: str) -> str:
    """What two paths share when one file system may store them under one name: case
    aside (macOS, Windows, FAT) and FAT's refused characters aside."""
    return portable_name(path).casefold()
