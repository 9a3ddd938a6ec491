"""Guessing the LocalSend PIN from many addresses, against the real HTTPS server (issue 24,
finding 9): the guesses of all addresses together stay within one allowance, then the
PIN door stays closed until the user starts receiving again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from p2p_transfer.events import LogEvent
from p2p_transfer.limits import LOCALSEND_MAX_WRONG_PINS, LOCALSEND_MAX_WRONG_PINS_IN_ALL
from security.localsend_door import SENDER, file_entry, http_client, served_localsend

#: Addresses guessing at once (the issue's attack: each of them within its own limit).
GUESSING_ADDRESSES = 146
#: Addresses guessing at the same moment: well within the connection cap, so every
#: guess is answered for its PIN (and not for the crowd).
GUESSING_AT_ONCE = 40
#: The receiver's PIN: guess number 420 when each address tries its share in turn.
PIN = "0420"
OFFER = {"info": SENDER, "files": {"a": file_entry("a", "a.txt", 1)}}


async def _guesses(url: str, address: int) -> list[int]:
    """One address's LOCALSEND_MAX_WRONG_PINS guesses, in order; their status codes
    (0: the connection was closed before an answer was read)."""
    statuses = []
    async with http_client(f"127.0.1.{address + 1}") as http:
        for k in range(LOCALSEND_MAX_WRONG_PINS):
            guess = f"{address * LOCALSEND_MAX_WRONG_PINS + k:04}"
            try:
                response = await http.post(url, params={"pin": guess}, json=OFFER)
            except aiohttp.ClientError:  # refused before its body was read: no answer
                statuses.append(0)
            else:
                statuses.append(response.status)
    return statuses


async def test_pin_guesses_from_146_addresses_stay_within_the_allowance_in_all(
    tmp_path: Path,
) -> None:
    async with served_localsend(tmp_path, pin=PIN) as served:
        url = served.url("prepare-upload")
        at_once = asyncio.Semaphore(GUESSING_AT_ONCE)

        async def guessing(address: int) -> list[int]:
            async with at_once:
                return await _guesses(url, address)

        answers = await asyncio.gather(*(guessing(a) for a in range(GUESSING_ADDRESSES)))
        statuses = [status for address in answers for status in address]
        assert set(statuses) <= {401, 429}, statuses  # no guess got an offer in
        assert statuses.count(401) <= LOCALSEND_MAX_WRONG_PINS_IN_ALL  # guesses compared
        assert not served.offers  # nobody was asked
        (warning,) = [e for e in served.emitted(LogEvent)
                      if isinstance(e, LogEvent) and "wrong LocalSend PINs" in e.message]
        assert "start receiving again" in warning.message
        async with http_client("127.0.0.1") as http:  # closed to the right PIN too
            right = await http.post(url, params={"pin": PIN}, json=OFFER)
            assert right.status == 429 and "restart" in await right.text()

    async with served_localsend(tmp_path, pin=PIN) as served, http_client() as http:
        right = await http.post(served.url("prepare-upload"), params={"pin": PIN}, json=OFFER)
        assert right.status == 200, await right.text()  # receiving again lifts the lock
