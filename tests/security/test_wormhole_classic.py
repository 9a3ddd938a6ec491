"""Hostile magic-wormhole senders against ``receive_classic``, through the real mailbox.

Each peer knows the code (it completes the PAKE), then breaks the rules: an
oversized or malformed offer, more bytes over transit than it offered, a zip whose
entries climb out with ``..``. Each gets a clear refusal, and nothing is written
outside the target (nor, for these, inside it).
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from p2p_transfer.events import EventBus
from p2p_transfer.lifecycle import Lifecycle, new_session_id
from p2p_transfer.protocol import ProtocolError
from p2p_transfer.rendezvous.mailbox import CodeChannel
from p2p_transfer.transfer import Decision, IncomingOffer, ReceiveOptions
from p2p_transfer.wormhole_classic import ClassicReceive, receive_classic
from p2p_transfer.wormhole_classic.mailbox import Mailbox
from p2p_transfer.wormhole_classic.messages import encode_hints
from p2p_transfer.wormhole_classic.transit import Transit
from wormhole_lab import WormholeServers, connected, new_code

#: Seconds a hostile exchange may take end to end.
EXCHANGE_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WormholeServers]:
    with WormholeServers.started(tmp_path_factory.mktemp("wormhole-servers")) as running:
        yield running


async def _accept(offer: IncomingOffer) -> Decision:
    return Decision(True)


class Hostile:
    """A sender that knows the code and speaks the protocol as it likes."""

    def __init__(self, channel: CodeChannel) -> None:
        self.channel = channel
        self.mailbox = Mailbox(channel)
        #: The last message the receiver sent through the mailbox.
        self.heard: dict[str, Any] = {}

    def send_raw(self, data: bytes) -> None:
        self.channel.send(data)

    async def hear(self) -> dict[str, Any]:
        data = await self.channel.receive(None)
        self.heard = json.loads(data)
        return self.heard

    async def send_data(self, offer: dict[str, Any], records: list[bytes]) -> dict[str, Any]:
        """Offer, wait for the yes, connect over transit, send ``records``; the ack."""
        transit = Transit("sender", self.mailbox.transit_key(), [])
        try:
            direct, relays = await transit.start()
            self.mailbox.send(encode_hints(direct, relays))
            self.mailbox.send({"offer": offer})
            while "answer" not in await self.hear():
                pass
            pipe = await transit.connect()
            for record in records:
                await pipe.send(record)
            ack = await pipe.receive()
            await pipe.close()
            return json.loads(ack or b"{}")
        finally:
            await transit.close()


@pytest.fixture
async def pair(
    servers: WormholeServers,
) -> AsyncIterator[tuple[Any, Hostile]]:
    """Our wormhole and a hostile one, on one code, key agreed."""
    code = new_code()
    ours_ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def ours() -> None:
        async with connected(servers, code) as w:
            ours_ready.set_result(w)
            await release.wait()

    task = asyncio.create_task(ours())
    try:
        async with connected(servers, code) as theirs:
            yield await ours_ready, Hostile(theirs)
    finally:
        release.set()
        await task


def _receive(w: Any, target: Path) -> Any:
    setup = ClassicReceive(ReceiveOptions(target=target), _accept, None)
    return receive_classic(w, setup, Lifecycle(new_session_id(), "receive", EventBus().emit),
                           EventBus())


def _written(root: Path) -> list[str]:
    """Every file under ``root`` (the test's whole temporary folder)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_an_oversized_offer_is_refused_unread(
    pair: tuple[Any, Hostile], tmp_path: Path
) -> None:
    ours, hostile = pair
    hostile.send_raw(json.dumps({"offer": {"message": "x" * (600 * 1024)}}).encode())
    async with asyncio.timeout(EXCHANGE_TIMEOUT):
        with pytest.raises(ProtocolError, match=r"message of 600 KiB; at most 512 KiB"):
            await _receive(ours, tmp_path / "inbox")
        heard = await hostile.hear()
    assert "at most 512 KiB" in heard["error"]  # the sender is told why
    assert _written(tmp_path) == []


@pytest.mark.parametrize(("message", "words"), [
    (b"\xff not json", "not JSON"),
    (b"[1, 2, 3]", "not a JSON object"),
    (b'{"offer": {"file": {"filename": 5, "filesize": 10}}}', "has no name"),
    (b'{"offer": {"file": {"filename": "a.txt", "filesize": -1}}}', "not a number of bytes"),
    (b'{"offer": {"file": {"filename": "..", "filesize": 1}}}', "not usable"),
    (b'{"offer": {"directory": {"mode": "tarball", "dirname": "d", "zipsize": 1, '
     b'"numbytes": 1, "numfiles": 1}}}', "only zip is understood"),
    (b'{"offer": {"message": 7}}', "not a string"),
    (b'{"offer": {"sticker": "smile"}}', "neither a text, a file nor a folder"),
    (b'{"transit": {"hints-v1": "everywhere"}, "offer": {"message": "hi"}}', "at most 32 hints"),
])
async def test_a_malformed_offer_is_refused(
    pair: tuple[Any, Hostile], tmp_path: Path, message: bytes, words: str
) -> None:
    ours, hostile = pair
    hostile.send_raw(message)
    async with asyncio.timeout(EXCHANGE_TIMEOUT):
        with pytest.raises(ProtocolError, match=words):
            await _receive(ours, tmp_path / "inbox")
        heard = await hostile.hear()
    assert words in heard["error"]
    assert _written(tmp_path) == []


@pytest.mark.parametrize("records", [
    [b"a" * 1500],  # one record over the offered 1000 bytes
    [b"a" * 800, b"b" * 800],  # the second one crosses it
], ids=["one-record", "two-records"])
async def test_more_bytes_than_offered_are_refused(
    pair: tuple[Any, Hostile], tmp_path: Path, records: list[bytes]
) -> None:
    ours, hostile = pair
    offer = {"file": {"filename": "small.bin", "filesize": 1000}}
    async with asyncio.timeout(EXCHANGE_TIMEOUT):
        receiving, sending = await asyncio.gather(
            _receive(ours, tmp_path / "inbox"), hostile.send_data(offer, records),
            return_exceptions=True,
        )
    assert isinstance(receiving, ProtocolError), receiving
    assert "sent more than the 1000 B it offered" in str(receiving)
    assert sending == {"ack": "error", "error": str(receiving)}
    assert _written(tmp_path) == []  # no file, no part


def _zip(entries: dict[str, bytes], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink is not None:
            link = zipfile.ZipInfo(symlink)
            link.create_system = 3
            link.external_attr = (0o120777 << 16)
            archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize(("archive", "words"), [
    (_zip({"ok.txt": b"fine", "../evil.txt": b"pwned"}), "path with '..' ('../evil.txt')"),
    (_zip({"ok.txt": b"fine", "sub/../../evil.txt": b"pwned"}), "path with '..'"),
    (_zip({"/tmp/evil.txt": b"pwned"}), "absolute path"),
    (_zip({"ok.txt": b"fine"}, symlink="link"), "symlink ('link')"),
    (_zip({"zeros.bin": bytes(1024 * 1024)}), "more than the 1 files and 10 B that were offered"),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink", "bigger-than-offered"])
async def test_a_hostile_zip_is_refused_and_nothing_is_written(
    pair: tuple[Any, Hostile], tmp_path: Path, archive: bytes, words: str
) -> None:
    ours, hostile = pair
    offer = {"directory": {"mode": "zipfile/deflated", "dirname": "folder",
                           "zipsize": len(archive), "numbytes": 10, "numfiles": 1}}
    async with asyncio.timeout(EXCHANGE_TIMEOUT):
        receiving, sending = await asyncio.gather(
            _receive(ours, tmp_path / "inbox"), hostile.send_data(offer, [archive]),
            return_exceptions=True,
        )
    assert isinstance(receiving, ProtocolError), receiving
    assert words in str(receiving)
    assert sending == {"ack": "error", "error": str(receiving)}
    assert _written(tmp_path) == []  # nothing outside the target, nor in it
