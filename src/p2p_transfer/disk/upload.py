"""A file that arrives whole, in one go, into a folder: a browser upload, a file dropped
into the app (later LocalSend).

It takes the first free ``name (N)`` (or, ``exact``, its own name) with a part of its
own, and ends as that name, on disk (synced), or as nothing at all.
"""

from __future__ import annotations

from pathlib import Path

import blake3

from p2p_transfer.disk.target import TargetFolder

#: Permissions of a finished upload before the umask applies (as for other new files).
UPLOAD_MODE = 0o666


class UploadFile:
    """One upload's bytes on their way to a finished file in ``directory``."""

    def __init__(
        self, directory: Path, name: str, umask: int | None = None, exact: bool = False
    ) -> None:
        """Create the part for the first free ``name (N)`` (``name``: sanitized components,
        ``/`` before one in a subfolder, made if missing); ``exact``: for ``name`` itself,
        NameTakenError if it exists.

        ``umask`` set: the finished file gets the usual ``0o666 & ~umask``; until
        then (and with ``None``) only this user can read it.
        """
        self._target = TargetFolder(directory, umask)
        try:
            self._part = self._target.new_part(name, numbered=not exact)
        except BaseException:
            self._target.close()
            raise

    @property
    def hasher(self) -> blake3.blake3:
        """BLAKE3 of the bytes written so far."""
        return self._part.hasher

    @property
    def written(self) -> int:
        """Bytes written so far."""
        return self._part.offset

    def write(self, data: bytes) -> None:
        """Append ``data`` and feed it to the hash."""
        self._part.write(data)

    def finish(self, durable: bool = True) -> str:
        """Name the file (never replacing one) and flush it to disk; returns its path
        relative to ``directory``.

        The browser hears ``complete`` only after this: what it was told arrived is
        on disk. A file arriving alone is flushed itself (one ``fdatasync`` and its
        folder's fsync cost less than a ``syncfs``). Not ``durable`` (a scratch copy):
        only a big file's data is flushed, as in every transfer. On failure the part
        stays for ``discard``.
        """
        name = self._target.finish(self._part, UPLOAD_MODE, None, flush=durable)
        if durable:
            self._target.sync()
        self._target.close()
        return name

    def discard(self) -> None:
        """Remove the part: an upload that did not finish leaves nothing behind."""
        self._target.discard(self._part)
        self._target.close()
