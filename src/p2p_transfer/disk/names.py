"""Names as the file system takes them: the wanted name, or its portable form if refused.

FAT and exFAT (USB sticks, SD cards) refuse ``< > : " | ? * \\`` in names that
Linux file systems store as they are. A name is changed only when its file system
refuses it: then each such character becomes ``_`` (``what?.txt`` →
``what_.txt``). exfat-fuse refuses with ENOENT, the kernel's vfat with EINVAL,
others with EILSEQ; a refusal is told from a missing folder by trying the
portable name in the same folder.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeVar

from p2p_transfer.protocol.paths import portable_name

Result = TypeVar("Result")

#: How file systems say "I cannot store this name".
_REFUSED = frozenset({errno.ENOENT, errno.EINVAL, errno.EILSEQ})


class DiskNames:
    """Which name a wanted one gets on one target's file system; learns from its refusals.

    Until the file system refuses a name, names are tried as they are; after the
    first refusal, names that need it go straight to their portable form.
    """

    def __init__(self) -> None:
        self.refuses = False

    def first_choice(self, name: str) -> str:
        """The name to try first for ``name``."""
        return portable_name(name) if self.refuses else name

    def attempt(self, name: str, operation: Callable[[str], Result]) -> tuple[Result, str]:
        """Run ``operation`` on ``name`` as the file system takes it; returns its result
        and the name used. A refused name is tried again in its portable form; any
        other error (and a second failure) is raised."""
        tried = self.first_choice(name)
        try:
            return operation(tried), tried
        except OSError as exc:
            portable = portable_name(tried)
            if exc.errno not in _REFUSED or portable == tried:
                raise
        result = operation(portable)
        self.refuses = True  # the same folder took the portable name: it was a refusal
        return result, portable
