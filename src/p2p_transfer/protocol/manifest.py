"""The offer's manifest: validation and paging, free of I/O."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import msgspec

from p2p_transfer.limits import (
    MANIFEST_PAGE_BUDGET,
    MAX_MANIFEST_ENTRIES,
    MAX_MANIFEST_NAME_BYTES,
    MAX_NAME_ALTERNATIVES,
    MAX_OFFER_BYTES,
)
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.protocol.messages import Entry, Offer, Resume
from p2p_transfer.protocol.paths import PART_SUFFIX, PathSanitizer, numbered_name, portable_name

_encoder = msgspec.msgpack.Encoder()
#: Bytes a page's envelope and per-item list overhead may add to its items.
_PAGE_OVERHEAD = 16
#: Largest |mtime| accepted (about 34,000 years); os.utime fails on NaN, inf and beyond time_t.
_MAX_MTIME = float(2**40)


def paginate(items: Iterable[Entry] | Iterable[Resume]) -> Iterator[list]:
    """Split items into pages whose encoding stays within the page budget."""
    page: list = []
    size = _PAGE_OVERHEAD
    for item in items:
        item_size = len(_encoder.encode(item))
        if page and size + item_size > MANIFEST_PAGE_BUDGET:
            yield page
            page, size = [], _PAGE_OVERHEAD
        page.append(item)
        size += item_size
    if page:
        yield page


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """What an offer declares, checked before any entry is accepted."""

    entries: int
    files: int
    total_bytes: int
    pages: int


def check_offer(offer: Offer) -> ManifestSummary:
    """Refuse an offer whose declared counts are impossible or over the limits."""
    if not 0 <= offer.entries <= MAX_MANIFEST_ENTRIES:
        raise ProtocolError(f"offer of {offer.entries} entries exceeds {MAX_MANIFEST_ENTRIES}")
    if not 0 <= offer.files <= offer.entries:
        raise ProtocolError("offer declares more files than entries")
    if offer.total_bytes < 0:
        raise ProtocolError("offer declares a negative size")
    if offer.total_bytes > MAX_OFFER_BYTES:
        raise ProtocolError(f"offer of {offer.total_bytes} bytes exceeds {MAX_OFFER_BYTES}")
    if not 0 <= offer.pages <= offer.entries:
        raise ProtocolError("offer declares more pages than entries")
    return ManifestSummary(offer.entries, offer.files, offer.total_bytes, offer.pages)


class Manifest(Sequence[Entry]):
    """An offer's entries, kept by column in a few large buffers: the paths' UTF-8 one
    after another, sizes, modes and times in arrays.

    About 90 bytes an entry instead of ~250 as Entry objects, and no small object per
    entry, so the memory of a large offer goes back to the system when it ends.
    ``manifest[i]`` makes the Entry when it is needed.
    """

    __slots__ = (
        "_ends", "_is_file", "_modes", "_mtimes", "_names", "_sizes", "files", "total_bytes",
    )

    def __init__(self) -> None:
        self._names = bytearray()
        self._ends = array("Q")  # where each path ends in ``_names``
        self._is_file = bytearray()
        self._sizes = array("Q")
        self._modes = array("H")
        self._mtimes = array("d")
        #: Files among the entries, and their bytes together.
        self.files = 0
        self.total_bytes = 0

    def append(self, entry: Entry) -> None:
        """Keep one entry, already checked (``mode`` within 0o777, ``size`` within 64 bits)."""
        is_file = entry.kind == "file"
        self._names += entry.path.encode()
        self._ends.append(len(self._names))
        self._is_file.append(is_file)
        self._sizes.append(entry.size)
        self._modes.append(entry.mode)
        self._mtimes.append(entry.mtime)
        if is_file:
            self.files += 1
            self.total_bytes += entry.size

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload
    def __getitem__(self, index: slice) -> list[Entry]: ...
    def __getitem__(self, index: int | slice) -> Entry | list[Entry]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return Entry(
            self.path(index), "file" if self._is_file[index] else "dir",
            self._sizes[index], self._modes[index], self._mtimes[index],
        )

    def path(self, index: int) -> str:
        if index < 0:
            index += len(self)
            if index < 0:
                raise IndexError("manifest index out of range")
        start = self._ends[index - 1] if index > 0 else 0
        return self._names[start : self._ends[index]].decode()

    def size(self, index: int) -> int:
        return self._sizes[index]

    def is_file(self, index: int) -> bool:
        return bool(self._is_file[index])

    def file_indexes(self) -> Iterator[int]:
        """The indexes of the files, in order."""
        return (i for i, is_file in enumerate(self._is_file) if is_file)


class ManifestAssembler:
    """Collects manifest pages, sanitizing each path and refusing duplicates.

    What it needs to find duplicates goes with it: keep ``entries`` (the
    ``Manifest``), let the assembler go.
    """

    def __init__(self, summary: ManifestSummary) -> None:
        self.summary = summary
        self.entries = Manifest()
        self._paths: dict[str, str] = {}  # sanitized path -> "file" | "dir"
        #: Files' paths in portable form where that differs from the path (most are
        #: portable: a set of them all took ~40 bytes a file): two files that a FAT
        #: disk would store under one name (``a?b`` and ``a_b``) must not share a name
        #: or a part there.
        self._renamed_on_fat: set[str] = set()
        self._name_bytes = 0
        self._sanitize = PathSanitizer()
        self._pages = 0
        if self.complete:  # no pages will come: the offer must declare an empty manifest
            self._check_totals()

    @property
    def complete(self) -> bool:
        """True once every declared page has arrived."""
        return self._pages == self.summary.pages

    def add_page(self, entries: list[Entry]) -> None:
        """Validate and keep one page of entries."""
        if self.complete:
            raise ProtocolError("more manifest pages than declared")
        if len(self.entries) + len(entries) > self.summary.entries:
            raise ProtocolError("more manifest entries than declared")
        self._pages += 1
        for entry in entries:
            self.entries.append(self._check(entry))
        if self.complete:
            self._check_totals()

    def _check(self, entry: Entry) -> Entry:
        if not 0 <= entry.size <= MAX_OFFER_BYTES or (entry.kind == "dir" and entry.size != 0):
            raise ProtocolError(f"invalid size for {entry.path!r}")
        self._name_bytes += len(entry.path.encode(errors="surrogatepass"))
        if self._name_bytes > MAX_MANIFEST_NAME_BYTES:
            raise ProtocolError(f"manifest names exceed {MAX_MANIFEST_NAME_BYTES} bytes")
        if not math.isfinite(entry.mtime) or abs(entry.mtime) > _MAX_MTIME:
            raise ProtocolError(f"invalid mtime for {entry.path!r}")
        path = self._unique(self._sanitize(entry.path), entry.kind)
        return Entry(path, entry.kind, entry.size, entry.mode & 0o777, entry.mtime)

    def _unique(self, path: str, kind: str) -> str:
        """Give a file whose sanitized path is taken (``x`` twice, ``x`` vs ``x.part``, or
        ``a?b`` vs ``a_b``, one name on FAT) a numbered name.

        Folders of the same name simply merge; a folder where a file already is
        cannot be placed.
        """
        if kind == "dir":
            if self._paths.get(path, "dir") != "dir":
                raise ProtocolError(f"folder {path!r} has the name of a file in the manifest")
            self._paths[path] = "dir"
            return path
        parent, _, name = path.rpartition("/")
        candidate, number = path, 0
        while self._taken(candidate, portable := portable_name(candidate)):
            number += 1
            if number > MAX_NAME_ALTERNATIVES:
                raise ProtocolError(f"too many files named {path!r} in manifest")
            renamed = numbered_name(name, number)
            candidate = f"{parent}/{renamed}" if parent else renamed
        self._paths[candidate] = "file"
        if portable != candidate:
            self._renamed_on_fat.add(portable)
        return candidate

    def _taken(self, path: str, portable: str) -> bool:
        """True when a file may not have ``path`` (``portable`` once made portable): an
        entry has it, or it is (or has) the ``.part`` name of another file, also once made
        portable. Each file is received as ``NAME.part`` first, so ``x`` and ``x.part`` in
        one offer would otherwise overwrite each other."""
        if path in self._paths or path + PART_SUFFIX in self._paths:
            return True
        stem = portable.removesuffix(PART_SUFFIX)
        return self._portable_file(portable) or self._portable_file(portable + PART_SUFFIX) or (
            stem != portable and self._portable_file(stem)
        )

    def _portable_file(self, portable: str) -> bool:
        """True when a file's path is ``portable`` once made portable (a path already
        portable is its own portable form)."""
        return portable in self._renamed_on_fat or self._paths.get(portable) == "file"

    def _check_totals(self) -> None:
        declared, entries = self.summary, self.entries
        if (len(entries), entries.files, entries.total_bytes) != (
            declared.entries,
            declared.files,
            declared.total_bytes,
        ):
            raise ProtocolError("manifest does not match the offer's declared totals")
