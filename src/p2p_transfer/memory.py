"""Handing memory back to the system once a large offer is over.

A large offer's last references often sit in reference cycles (an error's traceback
and the frames it holds), which only the cyclic collector frees; and what Python
frees goes back to the C allocator, which keeps it for later (glibc: in one heap
per thread that allocated). ``return_free_memory`` collects, then asks glibc
(``malloc_trim``) to return what is free, so a receiver's size comes back down after
the largest offers. Where there is no glibc only the collection happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable


def _find_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _find_malloc_trim()


def return_free_memory() -> None:
    """Free what only cycles still hold, and give the allocator's free memory back to the
    system (tens of ms: for the end of a large offer, not for every session)."""
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)
