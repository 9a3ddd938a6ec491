"""Finished transfers, kept in SQLite in the config dir so the Transfers view survives restarts.

Each call opens its own short-lived connection inside a worker thread: the
database is tiny, writes are one row, and no connection is shared across
threads. The file is created 0600 (it names peers and folders).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from p2p_transfer.app.events import TransferSnapshot
from p2p_transfer.limits import (
    APP_HISTORY_LOCK_TIMEOUT,
    APP_HISTORY_MAX_ROWS,
    APP_HISTORY_PAGE,
)
from p2p_transfer.trust.files import PRIVATE_FILE_MODE

HISTORY_FILE_NAME = "app-history.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY,
    direction TEXT NOT NULL,
    state TEXT NOT NULL,
    peer_name TEXT NOT NULL,
    peer_id TEXT NOT NULL,
    files INTEGER NOT NULL,
    files_failed INTEGER NOT NULL,
    bytes_total INTEGER NOT NULL,
    bytes_done INTEGER NOT NULL,
    verified TEXT NOT NULL,
    message TEXT NOT NULL,
    folder TEXT NOT NULL,
    names TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    text INTEGER NOT NULL DEFAULT 0,
    via TEXT NOT NULL DEFAULT 'p2p-transfer'
);
CREATE INDEX IF NOT EXISTS transfers_finished ON transfers (finished_at);
"""
#: Columns added since the table was first made, with their definitions: a database of an
#: earlier version gets them (old rows take the default) the first time it is opened.
_ADDED_COLUMNS = {
    "text": "INTEGER NOT NULL DEFAULT 0",
    "via": "TEXT NOT NULL DEFAULT 'p2p-transfer'",
}
#: Separator of the ``names`` column (a character no file name holds).
_NAMES_SEPARATOR = "\n"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One finished transfer."""

    id: str
    direction: str
    state: str
    peer_name: str
    peer_id: str
    files: int
    files_failed: int
    bytes_total: int
    bytes_done: int
    verified: str
    message: str
    folder: str
    names: list[str]
    started_at: float
    finished_at: float
    #: A text message, not files (the page says "text · 140 B", not "0 files · 140 B").
    text: bool = False
    #: ``p2p-transfer`` (files verified end to end) or ``localsend`` (not).
    via: str = "p2p-transfer"

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON form."""
        return asdict(self)

    @classmethod
    def of(cls, snapshot: TransferSnapshot) -> HistoryEntry:
        """The history row of a finished transfer."""
        return cls(
            id=snapshot.id,
            direction=snapshot.direction,
            state=snapshot.state,
            peer_name=snapshot.peer_name,
            peer_id=snapshot.peer_id,
            files=snapshot.files_done,
            files_failed=snapshot.files_failed,
            bytes_total=snapshot.bytes_total,
            bytes_done=snapshot.bytes_done,
            verified=snapshot.verified,
            message=snapshot.message,
            folder=snapshot.folder,
            names=list(snapshot.names),
            started_at=snapshot.started_at,
            finished_at=snapshot.finished_at or snapshot.started_at,
            text=snapshot.text,
            via=snapshot.via,
        )


class History:
    """The history database: add rows, list the newest, find one, clear."""

    def __init__(self, config_dir: Path, max_rows: int = APP_HISTORY_MAX_ROWS) -> None:
        self.path = config_dir / HISTORY_FILE_NAME
        self.max_rows = max_rows

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():
            # Create it private before SQLite opens it with the umask's mode.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
            os.close(fd)
        connection = sqlite3.connect(self.path, timeout=APP_HISTORY_LOCK_TIMEOUT)
        try:
            connection.executescript(_SCHEMA)
            _add_missing_columns(connection)
            with connection:
                yield connection
        finally:
            connection.close()

    def _add(self, entry: HistoryEntry) -> None:
        row = asdict(entry)
        row["names"] = _NAMES_SEPARATOR.join(entry.names)
        columns = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        with self._connect() as db:
            db.execute(f"INSERT OR REPLACE INTO transfers ({columns}) VALUES ({marks})", row)
            db.execute(
                "DELETE FROM transfers WHERE id NOT IN "
                "(SELECT id FROM transfers ORDER BY finished_at DESC LIMIT ?)",
                (self.max_rows,),
            )

    def _list(self, limit: int) -> list[HistoryEntry]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM transfers ORDER BY finished_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_entry(row) for row in rows]

    def _get(self, entry_id: str) -> HistoryEntry | None:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM transfers WHERE id = ?", (entry_id,)
            ).fetchone()
        return _entry(row) if row is not None else None

    def _clear(self) -> int:
        with self._connect() as db:
            return db.execute("DELETE FROM transfers").rowcount

    async def add(self, entry: HistoryEntry) -> None:
        """Record a finished transfer (replacing an earlier row with its ID)."""
        await asyncio.to_thread(self._add, entry)

    async def list(self, limit: int = APP_HISTORY_PAGE) -> list[HistoryEntry]:
        """The newest ``limit`` rows, newest first."""
        return await asyncio.to_thread(self._list, max(1, min(limit, APP_HISTORY_PAGE)))

    async def get(self, entry_id: str) -> HistoryEntry | None:
        """One row by transfer ID."""
        return await asyncio.to_thread(self._get, entry_id)

    async def clear(self) -> int:
        """Forget every row; returns how many there were."""
        return await asyncio.to_thread(self._clear)


#: The columns read, by name and in the entry's order (an added column is last in the table).
_COLUMNS = ", ".join(field.name for field in fields(HistoryEntry))


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Bring a database of an earlier version up to this table (see _ADDED_COLUMNS)."""
    have = {row[1] for row in connection.execute("PRAGMA table_info(transfers)")}
    for name, definition in _ADDED_COLUMNS.items():
        if name not in have:
            try:
                connection.execute(f"ALTER TABLE transfers ADD COLUMN {name} {definition}")
            except sqlite3.OperationalError:  # added meanwhile by another connection
                have = {row[1] for row in connection.execute("PRAGMA table_info(transfers)")}
                if name not in have:
                    raise


def _entry(row: tuple[Any, ...]) -> HistoryEntry:
    values = dict(zip((field.name for field in fields(HistoryEntry)), row, strict=True))
    values["names"] = [n for n in str(values["names"]).split(_NAMES_SEPARATOR) if n]
    values["text"] = bool(values["text"])
    return HistoryEntry(**values)
