"""A hostile peer that knows the code (it completes the PAKE) and then sends what ours
never send: a version message too big or malformed, a bad ticket message, a flood of
messages; and a code server that is not one, or refuses. Our side refuses in one
sentence, connects to nothing and writes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from e2e.cli import CliProcess
from e2e.mailbox import MailboxServer
from p2p_transfer.limits import MAILBOX_MAX_PENDING, MAX_RENDEZVOUS_MESSAGE
from p2p_transfer.rendezvous.abilities import APP_ID, OUR_ABILITIES
from p2p_transfer.rendezvous.errors import BadRendezvousMessage, CodeServerError
from p2p_transfer.rendezvous.mailbox import CodeChannel
from p2p_transfer.rendezvous.wormhole_key import finish_pake, start_pake
from wormhole_lab import asyncio_reactor, library_wormhole
from wormhole_lab import deferred as wait

#: Seconds the real side may take to refuse (two Python start-ups included).
REFUSAL_TIMEOUT = 30.0


@pytest.fixture
async def reactor() -> AsyncIterator[Any]:
    """Twisted for the hostile side: the magic-wormhole library, which knows the code."""
    async with asyncio_reactor() as running:
        yield running


async def _hostile_sender(
    mailbox: MailboxServer, reactor: Any, versions: dict[str, object]
) -> Any:
    hostile = library_wormhole(mailbox.url, reactor, versions)
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
    hostile = await _hostile_sender(mailbox, reactor, versions)
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
    hostile = await _hostile_sender(mailbox, reactor, OUR_ABILITIES)
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
    note = tmp_path / "note.txt"
    note.write_text("not for the hostile")
    sender = CliProcess(["send", "--mailbox", mailbox.url, "--relay", "off", "--json",
                         str(note)], tmp_path / "tx")
    invite = await asyncio.to_thread(sender.wait_for, "invite")
    hostile = library_wormhole(mailbox.url, reactor, OUR_ABILITIES)
    hostile.set_code(invite["code"])
    await wait(hostile.get_versions(), REFUSAL_TIMEOUT)
    hostile.send_message(b'{"p2p-transfer": {"ticket": "t", "name": "x", "more": 1}}')
    message = await _refused(sender)
    assert message.startswith("the other side sent a bad message: its ticket message is "
                              "malformed"), message
    assert not sender.named("dialing")
    hostile.close()


class ScriptedMailbox:
    """A code server on loopback that says what a test scripts: the server itself, or a
    peer behind it that knows the code (it answers our key exchange, then ``after_key``)."""

    def __init__(self, welcome: str, after_key: int = 0) -> None:
        self.welcome, self.after_key = welcome, after_key
        self.client_gone = asyncio.Event()
        self.url = ""

    async def __aenter__(self) -> ScriptedMailbox:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/v1", self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    async def _serve(self, request: Any) -> Any:
        from aiohttp import web

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(self.welcome)
        async for frame in ws:
            command = json.loads(frame.data)
            if command["type"] == "claim":
                await ws.send_json({"type": "claimed", "mailbox": "m1"})
            elif command["type"] == "add" and command["phase"] == "pake":
                await self._answer_key_exchange(ws, bytes.fromhex(command["body"]))
        self.client_gone.set()
        return ws

    async def _answer_key_exchange(self, ws: Any, their_pake: bytes) -> None:
        spake, body = start_pake("5-guitarist-revenge", APP_ID)
        key = finish_pake(spake, their_pake)
        side = "5ca1ab1e00"
        versions = json.dumps({"app_versions": OUR_ABILITIES}).encode()
        # Its messages come before its version, so they are all in when ours is heard.
        messages = [("pake", body)]
        messages += [(str(n), key.seal(side, str(n), b"{}")) for n in range(self.after_key)]
        messages += [("version", key.seal(side, "version", versions))]
        for phase, data in messages:
            await ws.send_json({"type": "message", "side": side, "phase": phase,
                                "body": data.hex(), "id": "0000"})


WELCOME = json.dumps({"type": "welcome", "welcome": {}})


@pytest.mark.parametrize(("welcome", "said"), [
    ("hello, this is not the mailbox protocol",
     "127.0.0.1 does not speak magic-wormhole's mailbox protocol"),
    (json.dumps({"type": "welcome", "welcome": {"error": "closed for maintenance"}}),
     "the code server 127.0.0.1 says: closed for maintenance"),
])
async def test_a_server_that_is_not_a_mailbox_or_refuses_is_said_in_one_line(
    welcome: str, said: str
) -> None:
    async with ScriptedMailbox(welcome) as server:
        channel = CodeChannel.open(server.url, "receive")
        try:
            with pytest.raises(CodeServerError) as refused:
                await channel.claim("5-guitarist-revenge")
        finally:
            await channel.close()
    assert str(refused.value) == said


async def test_a_peer_that_floods_the_mailbox_is_cut_off_at_the_limit() -> None:
    """Messages nobody reads yet are held up to MAILBOX_MAX_PENDING; one more, and the
    channel refuses the peer (its memory stays bounded) and leaves the server."""
    async with ScriptedMailbox(WELCOME, after_key=MAILBOX_MAX_PENDING + 1) as server:
        channel = CodeChannel.open(server.url, "receive")
        try:
            await channel.claim("5-guitarist-revenge")
            with pytest.raises(BadRendezvousMessage, match=(
                f"it sent over {MAILBOX_MAX_PENDING} messages without an answer"
            )):
                await channel.wait_for_peer(REFUSAL_TIMEOUT)
            await asyncio.wait_for(server.client_gone.wait(), REFUSAL_TIMEOUT)
        finally:
            await channel.close()


async def test_a_peer_that_sends_what_we_read_at_once_is_heard() -> None:
    """The same peer, at the limit: every message is read, in order."""
    async with ScriptedMailbox(WELCOME, after_key=MAILBOX_MAX_PENDING) as server:
        channel = CodeChannel.open(server.url, "receive")
        try:
            await channel.claim("5-guitarist-revenge")
            assert await channel.wait_for_peer(REFUSAL_TIMEOUT) == "p2p-transfer"
            heard = [await channel.receive(REFUSAL_TIMEOUT) for _ in range(MAILBOX_MAX_PENDING)]
        finally:
            await channel.close()
    assert heard == [b"{}"] * MAILBOX_MAX_PENDING
