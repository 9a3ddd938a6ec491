"""A hostile peer that knows the code (it completes the PAKE) and then sends what ours
never send: a version message too big or malformed, a bad ticket message. Our side
refuses in one sentence, connects to nothing and writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from e2e.cli import CliProcess
from e2e.mailbox import MailboxServer
from p2p_transfer.limits import MAX_RENDEZVOUS_MESSAGE
from p2p_transfer.rendezvous.abilities import APP_ID, OUR_ABILITIES
from p2p_transfer.rendezvous.twisted_loop import reactor_for_loop, stop_reactor, wait

#: Seconds the real side may take to refuse (two Python start-ups included).
REFUSAL_TIMEOUT = 30.0


@pytest.fixture
async def reactor() -> AsyncIterator[Any]:
    yield reactor_for_loop()
    stop_reactor()


async def _hostile_sender(mailbox: MailboxServer, versions: dict[str, object]) -> Any:
    import wormhole

    hostile = wormhole.create(APP_ID, mailbox.url, reactor_for_loop(), versions=versions)
    hostile.allocate_code(2)
    await wait(hostile.get_code(), 10)
    return hostile


async def _refused(process: CliProcess) -> str:
    """The one error our side printed, once it exited 1."""
    status = await asyncio.to_thread(process.wait, REFUSAL_TIMEOUT)
    assert status == 1, process.stderr_lines
    (error,) = process.named("error")
    assert not process.named("connection") and not process.named("offer")
    return str(error["message"])


def _receiving(tmp_path: Path, mailbox: MailboxServer, code: str) -> CliProcess:
    return CliProcess(["receive", code, "--mailbox", mailbox.url, "--dir",
                       str(tmp_path / "inbox"), "--yes", "--relay", "off", "--json"],
                      tmp_path / "rx")


@pytest.mark.parametrize(("versions", "said"), [
    ({"p2p-transfer": {"v": 1}, "pad": "x" * (MAX_RENDEZVOUS_MESSAGE * 4)},
     "its version message is"),
    ({"p2p-transfer": ["not", "an", "object"]}, "its abilities are malformed"),
])
async def test_a_bad_version_message_is_refused(
    tmp_path: Path, mailbox: MailboxServer, reactor: Any, versions: dict[str, object],
    said: str,
) -> None:
    hostile = await _hostile_sender(mailbox, versions)
    code = await wait(hostile.get_code())
    message = await _refused(_receiving(tmp_path, mailbox, code))
    assert message.startswith("the other side sent a bad message: " + said), message
    assert not (tmp_path / "inbox").exists() or not any((tmp_path / "inbox").iterdir())
    hostile.close()


@pytest.mark.parametrize(("ticket_message", "said"), [
    (b"x" * (MAX_RENDEZVOUS_MESSAGE + 1), "its ticket message is"),
    (b'{"p2p-transfer": {"ticket": ["no"]}}', "its ticket message is malformed"),
    (b'{"p2p-transfer": {"ticket": "endpointnotaticket"}}', "its ticket is damaged"),
])
async def test_a_bad_ticket_message_is_refused_by_the_receiver(
    tmp_path: Path, mailbox: MailboxServer, reactor: Any, ticket_message: bytes, said: str,
) -> None:
    hostile = await _hostile_sender(mailbox, OUR_ABILITIES)
    code = await wait(hostile.get_code())
    receiver = _receiving(tmp_path, mailbox, code)
    await wait(hostile.get_versions(), REFUSAL_TIMEOUT)  # the PAKE went through
    hostile.send_message(ticket_message)
    message = await _refused(receiver)
    assert message.startswith(f"the other side sent a bad message: {said}"), message
    assert message.endswith("; not going on"), message
    hostile.close()


async def test_a_bad_ticket_message_is_refused_by_the_sender(
    tmp_path: Path, mailbox: MailboxServer, reactor: Any,
) -> None:
    import wormhole

    note = tmp_path / "note.txt"
    note.write_text("not for the hostile")
    sender = CliProcess(["send", "--mailbox", mailbox.url, "--relay", "off", "--json",
                         str(note)], tmp_path / "tx")
    invite = await asyncio.to_thread(sender.wait_for, "invite")
    hostile = wormhole.create(APP_ID, mailbox.url, reactor, versions=OUR_ABILITIES)
    hostile.set_code(invite["code"])
    await wait(hostile.get_versions(), REFUSAL_TIMEOUT)
    hostile.send_message(b'{"p2p-transfer": {"ticket": "t", "name": "x", "more": 1}}')
    message = await _refused(sender)
    assert message.startswith("the other side sent a bad message: its ticket message is "
                              "malformed"), message
    assert not sender.named("dialing")
    hostile.close()
