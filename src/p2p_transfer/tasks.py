"""Awaiting work that must not be cut short by a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def run_to_the_end(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even when cancelled meanwhile, then raise the
    cancellation (``work``'s own failure first): a clean-up whose caller must find it
    done, such as a part removed or the bytes a resume starts from written out."""
    job = asyncio.ensure_future(work)
    cancelled = False
    while not job.done():
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            cancelled = True
    result = job.result()
    if cancelled:
        raise asyncio.CancelledError
    return result
