"""What goes wrong when placing received files, in one line for the user."""

from __future__ import annotations

import errno

from p2p_transfer.errors import LocalFault


class TargetError(LocalFault):
    """A received file cannot be placed; the message says why in one line."""


class NameTakenError(TargetError):
    """Every ``name (N)`` up to ``MAX_NAME_ALTERNATIVES`` exists already (or, for a file
    that must take its own name, that name does)."""


def name_taken(name: str, several: bool = True) -> NameTakenError:
    """The error for a name with no free alternative left (or, not ``several``, taken)."""
    if several:
        return NameTakenError(f"{name!r}: too many files with that name")
    return NameTakenError(f"{name!r} exists already")


def describe_os_error(exc: OSError) -> str:
    """Short user-facing text for a disk error."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "receiver out of disk space"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "receiver cannot write to the target folder"
    return exc.strerror or str(exc)
