"""Taking an accepted offer's files off data streams and into the target folder.

Bytes go to ``NAME.part`` while being hashed; only a file whose BLAKE3 matches
the sender's gets its final name. Each file ends settled: stored and reported
to the sender (``FileResult``) and to the user (``file_done``/``file_failed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import blake3

from p2p_transfer.disk import (
    PartFile,
    ResumePoint,
    TargetError,
    TargetFolder,
    WholeFile,
    describe_os_error,
    free_inodes,
    free_space,
)
from p2p_transfer.events import EventBus, FileDoneEvent, FileFailedEvent, ResumeEvent
from p2p_transfer.limits import ENTRY_DISK_COST, SMALL_FILE_SIZE, SMALL_STORE_BACKLOG
from p2p_transfer.net import MessageReader
from p2p_transfer.protocol import (
    DataHeader,
    DataTrailer,
    Entry,
    FileResult,
    Manifest,
    ProtocolError,
    Resume,
)
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.transfer.store_behind import StoreBehind


class _FileState(IntEnum):
    PENDING = 0
    ACTIVE = 1
    SETTLED = 2


@dataclass(slots=True)
class IncomingFile:
    """One offered file whose data is arriving, and what was held of it."""

    index: int
    entry: Entry
    resume: ResumePoint | None = None


@dataclass(slots=True)
class _SmallFile:
    """A small file read off a stream, waiting to be stored."""

    incoming: IncomingFile
    resume: ResumePoint | None
    data: bytes
    claimed: str  # the sender's BLAKE3
    start: int  # where the sender started: above 0 when resumed


#: How a stored file ended: its final path, its BLAKE3 and an error ('' when fine).
_Stored = tuple[str, str, str]


@dataclass(slots=True)
class Tally:
    """Files settled so far; ``settled`` is set when every expected file is."""

    expected: int
    ok: int = 0
    failed: int = 0
    #: Of the ``ok`` ones: already here, identical (nothing was sent).
    identical: int = 0
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    #: The first failure of any data stream handler.
    failure: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def __post_init__(self) -> None:
        if self.expected == 0:
            self.settled.set()

    def count(self, ok: bool) -> None:
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        if self.ok + self.failed >= self.expected:
            self.settled.set()

    def fail(self, task: asyncio.Task[None]) -> None:
        """Done-callback of stream handlers: remember the first error."""
        if not task.cancelled() and task.exception() and not self.failure.done():
            self.failure.set_exception(task.exception())  # type: ignore[arg-type]

    def close(self) -> None:
        """The transfer ended (for another reason, say the peer's cancel): a stream's
        failure after that is no news, not an error asyncio reports at exit."""
        if self.failure.done():
            if not self.failure.cancelled():
                self.failure.exception()  # seen
        else:
            self.failure.cancel()


@dataclass(slots=True)
class PreparedOffer:
    """An offer's place in the target: what is already there (found before the offer is
    decided on, writing nothing), then its folders (made once it is accepted)."""

    target: TargetFolder
    manifest: Manifest
    #: What the target already holds of each file, by entry index.
    resume: dict[int, ResumePoint]
    #: Files and folders the offer would add to the target (those not held already).
    new_entries: int
    #: Each entry's ``_FileState``, by entry index.
    states: bytearray

    @classmethod
    def survey(cls, target: TargetFolder, manifest: Manifest) -> PreparedOffer:
        """Find what is already here: parts to resume, identical files, folders (runs in
        a thread; creates nothing). Only files in folders that exist are looked for, so
        a new tree (the usual case) costs a look at each of its folders."""
        folders: dict[str, bool] = {"": True}  # folder -> it is here already

        def exists(folder: str) -> bool:
            """Whether ``folder`` is here; a missing one is noted with its missing parents
            (also those the manifest does not list: writing a file makes them)."""
            if (found := folders.get(folder)) is None:
                found = exists(folder.rpartition("/")[0]) and target.is_folder(folder)
                folders[folder] = found
            return found

        points = target.find_resume_points(
            (path, manifest.size(i))
            for i in manifest.file_indexes()
            if exists((path := manifest.path(i)).rpartition("/")[0])
        )
        resume: dict[int, ResumePoint] = {}
        new_files = 0
        for index in range(len(manifest)):
            if not manifest.is_file(index):
                exists(manifest.path(index))
            elif points and (point := points.get(manifest.path(index))) is not None:
                resume[index] = point
            else:
                new_files += 1
        new_folders = sum(not found for found in folders.values())
        return cls(target, manifest, resume, new_files + new_folders, bytearray(len(manifest)))

    @property
    def held_bytes(self) -> int:
        """Bytes of the offer the target holds already (if the sender's data matches)."""
        return sum(point.offset for point in self.resume.values())

    def held_counts(self) -> tuple[int, int]:
        """Offered files already here: whole (an identical file, if its hash matches) and
        in part (a ``.part`` to resume)."""
        whole = sum(point.complete_file for point in self.resume.values())
        return whole, len(self.resume) - whole

    def resume_event(self, session: str) -> ResumeEvent | None:
        """What is already here, to be said before data moves (the sender says it too)."""
        if not self.resume:
            return None
        whole = [point.offset for point in self.resume.values() if point.complete_file]
        return ResumeEvent(
            session, "receive", len(self.resume), self.held_bytes, len(whole), sum(whole)
        )

    @property
    def needed_bytes(self) -> int:
        """Bytes still to come: the offer less what is held."""
        return self.manifest.total_bytes - self.held_bytes

    @property
    def resume_items(self) -> list[Resume]:
        """What the sender is told is here already."""
        return [Resume(index, point.offset, point.digest) for index, point in self.resume.items()]

    def shortage(self, max_size: int | None) -> str:
        """Why the target cannot take what the offer still needs ('' when it can; runs in
        a thread)."""
        return room_shortage(self.target.root, self.needed_bytes, self.new_entries, max_size)

    def make_folders(self) -> None:
        """Create the offer's folders (runs in a thread, once the offer is accepted)."""
        manifest = self.manifest
        for index in range(len(manifest)):
            if not manifest.is_file(index):
                self.target.ensure_folder(manifest.path(index))


class FileIntake:
    """Stores the files of one accepted offer, from any number of data streams."""

    def __init__(
        self,
        transfer_id: str,
        prepared: PreparedOffer,
        tracker: ProgressTracker,
        events: EventBus,
        report: Callable[[FileResult], None],
    ) -> None:
        self._transfer_id = transfer_id
        self._target = prepared.target
        self._manifest = prepared.manifest
        self._resume = prepared.resume
        self._states = prepared.states
        self._tracker = tracker
        self._events = events
        self._report = report
        self.tally = Tally(expected=prepared.manifest.files)

    async def receive_stream(self, reader: MessageReader) -> None:
        """Take files one after another from one data stream."""

        def settle_small(small: _SmallFile, stored: _Stored) -> None:
            self._settle(small.incoming, *stored, small.start)

        small_files: StoreBehind[_SmallFile, _Stored] = StoreBehind(
            lambda batch: _store_small_files(self._target, batch),
            settle_small,
            lambda small: len(small.data),
            SMALL_STORE_BACKLOG,
        )
        try:
            while (message := await reader.read_message()) is not None:
                if not isinstance(message, DataHeader):
                    raise ProtocolError(f"expected file data, got {type(message).__name__}")
                await self._receive_file(reader, message, self._take(message.index), small_files)
        except asyncio.CancelledError:
            small_files.cancel()
            raise
        except Exception:
            with contextlib.suppress(Exception):
                await small_files.drain()  # files that arrived whole before the failure stay
            raise
        await small_files.drain()

    def _take(self, index: int) -> IncomingFile:
        """The offered file whose data begins; a ProtocolError for any other index."""
        manifest, states = self._manifest, self._states
        if not (
            0 <= index < len(manifest) and manifest.is_file(index)
            and states[index] == _FileState.PENDING
        ):
            raise ProtocolError(f"data for unknown or repeated file {index}")
        states[index] = _FileState.ACTIVE
        return IncomingFile(index, manifest[index], self._resume.pop(index, None))

    async def _receive_file(
        self,
        reader: MessageReader,
        header: DataHeader,
        incoming: IncomingFile,
        small_files: StoreBehind[_SmallFile, _Stored],
    ) -> None:
        entry, resume, tracker = incoming.entry, incoming.resume, self._tracker
        start = resume.offset if resume is not None and header.offset == resume.offset else 0
        if header.offset != start or header.offset + header.length != entry.size:
            raise ProtocolError(f"file {header.index}: data does not match the offer")
        identical = resume is not None and resume.complete_file and start == entry.size
        if start == 0 and not identical:
            resume = None  # the sender starts over: what we held did not match
        if header.length <= SMALL_FILE_SIZE and not identical:
            data = await reader.read_exact(header.length)
            claimed = await _read_trailer(reader, header)
            tracker.moved_whole(header.index, entry.path, entry.size, start)
            await small_files.put(_SmallFile(incoming, resume, data, claimed, start))
            return
        tracker.skip(start)
        tracker.start_file(header.index, entry.path, entry.size, start)
        part: PartFile | None = None
        disk_error = ""  # the part stays, resumable
        if resume is None or not resume.complete_file:  # else: identical file already here
            try:
                part = await asyncio.to_thread(self._target.open_part, entry.path, resume)
            except TargetError as exc:
                disk_error = str(exc)
        try:
            failure = await reader.pump(
                header.length,
                part.write if part is not None else None,
                lambda count: tracker.advance(header.index, count),
            )
            if failure is not None:
                disk_error = _describe_failure(failure)
            claimed = await _read_trailer(reader, header)
        except BaseException:
            if part is not None:
                part.close()  # the pump has let go of it: it waits for its last write
            raise
        digest = part.digest if part is not None else (resume.digest if resume else "")
        held = resume.disk_path if identical and resume is not None else ""
        final_path, error = await asyncio.to_thread(
            _conclude, self._target, part, entry, digest, claimed, disk_error, held
        )
        self._settle(incoming, final_path, digest, error, start, identical)

    def _settle(
        self, incoming: IncomingFile, final_path: str, digest: str, error: str,
        resumed_from: int, identical: bool = False,
    ) -> None:
        """Report a stored (or failed) file to the user and the sender, with the name it
        got when that is not the offered one."""
        entry = incoming.entry
        self._states[incoming.index] = _FileState.SETTLED
        self._tracker.finish_file(incoming.index)
        self.tally.count(not error)
        if error:
            self._events.emit(FileFailedEvent(self._transfer_id, "receive", entry.path, error))
            self._report(FileResult(incoming.index, False, error=error))
            return
        saved_as = final_path if final_path != entry.path else ""
        self.tally.identical += identical
        self._events.emit(
            FileDoneEvent(
                self._transfer_id, "receive", entry.path, entry.size, digest, resumed_from,
                saved_as=saved_as,
            )
        )
        self._report(
            FileResult(incoming.index, True, blake3=digest, saved_as=saved_as, identical=identical)
        )


def _store_small_files(target: TargetFolder, batch: list[_SmallFile]) -> list[_Stored]:
    """Verify small files in memory, then write those new here under their names in one
    go; one that was partly here goes through its part (blocking: run by StoreBehind)."""
    stored: list[_Stored | None] = []
    whole: list[WholeFile] = []
    whole_at: list[int] = []  # where each of ``whole`` is in ``stored``
    for small in batch:
        entry = small.incoming.entry
        if small.incoming.resume is not None:
            stored.append(None)
            continue
        digest = blake3.blake3(small.data).hexdigest()
        if refusal := _refusal(digest, small.claimed):
            stored.append((entry.path, digest, refusal))  # nothing was written
            continue
        whole_at.append(len(stored))
        stored.append((entry.path, digest, ""))
        whole.append(WholeFile(entry.path, small.data, entry.mode, entry.mtime))
    for at, placed in zip(whole_at, target.store_wholes(whole), strict=True):
        path, digest, _ = stored[at]  # type: ignore[misc]
        if placed is None:
            stored[at] = None  # no unnamed files on this disk: through a part
        elif isinstance(placed, TargetError):
            stored[at] = (path, digest, str(placed))
        else:
            stored[at] = (placed, digest, "")
    return [
        done if done is not None else _store_through_part(target, small)
        for done, small in zip(stored, batch, strict=True)
    ]


def _store_through_part(target: TargetFolder, small: _SmallFile) -> _Stored:
    """A small file stored through its part: one partly here already, or any where the
    disk has no unnamed files."""
    entry = small.incoming.entry
    try:
        part = target.open_part(entry.path, small.resume)
    except TargetError as exc:
        return entry.path, "", str(exc)
    try:
        part.write(small.data)
    except OSError as exc:
        part.close()
        return entry.path, part.digest, describe_os_error(exc)
    final_path, error = _conclude(target, part, entry, part.digest, small.claimed, "")
    return final_path, part.digest, error


async def _read_trailer(reader: MessageReader, header: DataHeader) -> str:
    """The sender's BLAKE3 for the file just received ('' if it could not read it)."""
    trailer = await reader.read_message()
    if not isinstance(trailer, DataTrailer) or trailer.index != header.index:
        raise ProtocolError(f"file {header.index}: missing end of data")
    return trailer.blake3


def _conclude(
    target: TargetFolder,
    part: PartFile | None,
    entry: Entry,
    digest: str,
    claimed: str,
    disk_error: str,
    held: str = "",
) -> tuple[str, str]:
    """Finish a verified part, keep one that hit a disk error, delete a corrupt one.

    ``held``: where the identical file already here is (no part then).
    """
    if disk_error:
        if part is not None:
            part.close()
        return entry.path, disk_error
    if refusal := _refusal(digest, claimed):
        if part is not None:
            target.discard(part)
        return entry.path, refusal
    if part is None:
        return held or entry.path, ""  # the identical file was already here
    try:
        return target.finish(part, entry.mode, entry.mtime), ""
    except TargetError as exc:
        part.close()
        return entry.path, str(exc)
    except OSError as exc:
        part.close()
        return entry.path, describe_os_error(exc)


def _describe_failure(failure: Exception) -> str:
    """One line for a file that could not be stored."""
    return describe_os_error(failure) if isinstance(failure, OSError) else str(failure)


def _refusal(digest: str, claimed: str) -> str:
    """Why data hashing to ``digest`` is not the file the sender hashed as ``claimed``
    ('' when it is)."""
    if not claimed:
        return "sender could not read the file"
    if not hmac.compare_digest(digest.encode(), claimed.encode()):
        return "BLAKE3 mismatch: data corrupted or sender lied about the hash"
    return ""


def room_shortage(folder: Path, data: int, entries: int, max_size: int | None) -> str:
    """Why ``folder`` cannot take ``data`` bytes in ``entries`` new files and folders
    ('' when it can): each new entry counts ENTRY_DISK_COST besides its bytes, against
    ``max_size`` and the free space; the entries count against the free inodes."""
    needed = data + entries * ENTRY_DISK_COST
    need = f"{needed} bytes" if not entries else (
        f"{needed} bytes: {data} of data and {entries} new files and folders "
        f"at {ENTRY_DISK_COST} bytes each"
    )
    if max_size is not None and needed > max_size:
        return f"offer of {need} exceeds the receiver's limit of {max_size} bytes"
    free = free_space(folder)
    if free is not None and needed > free:  # None: the disk does not say
        return f"not enough disk space on the receiver ({need}; {free} bytes free)"
    inodes = free_inodes(folder)
    if inodes is not None and entries > inodes:
        return (
            f"not enough room on the receiver's disk for {entries} new files and "
            f"folders (room for {inodes})"
        )
    return ""
