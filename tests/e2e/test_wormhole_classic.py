"""The real ``wormhole`` CLI against our classic transfer, with real servers on loopback.

``wormhole send`` (a file, a folder, a text) → ``receive_classic``; ``send_classic`` (a
file, a folder) → ``wormhole receive --accept-file``; once with only the transit relay
to carry the data (no side listens, so there are no direct hints).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import assert_same_tree, make_tree
from p2p_transfer.events import (
    ConnectionEvent,
    DoneEvent,
    Event,
    EventBus,
    FileDoneEvent,
    OfferEvent,
    TextEvent,
)
from p2p_transfer.lifecycle import Lifecycle, new_session_id
from p2p_transfer.transfer import Decision, Declined, IncomingOffer, ReceiveOptions
from p2p_transfer.wormhole_classic import (
    ClassicReceive,
    ClassicSend,
    receive_classic,
    send_classic,
)
from wormhole_lab import WormholeServers, connected, finished, new_code


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WormholeServers]:
    with WormholeServers.started(tmp_path_factory.mktemp("wormhole-servers")) as running:
        yield running


class Recorder:
    """An event bus and what it carried."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)

    def of(self, kind: type[Event]) -> list[Event]:
        return [event for event in self.events if isinstance(event, kind)]


async def _accept(offer: IncomingOffer) -> Decision:
    return Decision(True)


def _receiving(servers: WormholeServers, target: Path, listen: bool = True) -> ClassicReceive:
    return ClassicReceive(
        ReceiveOptions(target=target), _accept, servers.transit_relay, listen
    )


async def _receive_from_cli(
    servers: WormholeServers, target: Path, *send_args: str, listen: bool = True,
    setup: ClassicReceive | None = None,
) -> tuple[Recorder, str]:
    """``wormhole send ARGS`` on a fresh code, received by ``receive_classic``."""
    code = new_code()
    sender = servers.run_cli("send", "--hide-progress", "--no-qr", "--code", code, *send_args)
    recorder = Recorder()
    lifecycle = Lifecycle(new_session_id(), "receive", recorder.bus.emit)
    async with connected(servers, code) as w:
        result = await receive_classic(
            w, setup or _receiving(servers, target, listen), lifecycle, recorder.bus
        )
    output = await finished(sender)
    assert result.ok, result
    assert sender.returncode == 0, output
    return recorder, output


async def test_a_file_from_wormhole_send_arrives_byte_identical(
    servers: WormholeServers, tmp_path: Path
) -> None:
    source = tmp_path / "report.bin"
    source.write_bytes(os.urandom(1024 * 1024 + 7))
    target = tmp_path / "inbox"
    recorder, output = await _receive_from_cli(servers, target, str(source))
    assert (target / "report.bin").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in target.iterdir()) == ["report.bin"]  # no part, no spool
    assert "Confirmation received. Transfer complete." in output  # its SHA-256 matched ours
    offer = recorder.of(OfferEvent)[0]
    assert (offer.via, offer.files, offer.bytes) == ("magic-wormhole", 1, source.stat().st_size)
    done = recorder.of(DoneEvent)[-1]
    assert done.ok and done.via == "magic-wormhole" and done.files == 1


async def test_a_file_whose_name_is_taken_gets_a_new_name(
    servers: WormholeServers, tmp_path: Path
) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("new notes\n")
    target = tmp_path / "inbox"
    target.mkdir()
    (target / "notes.txt").write_text("old notes\n")
    recorder, _ = await _receive_from_cli(servers, target, str(source))
    assert (target / "notes.txt").read_text() == "old notes\n"
    assert (target / "notes (1).txt").read_text() == "new notes\n"
    assert recorder.of(FileDoneEvent)[0].saved_as == "notes (1).txt"


async def test_a_text_from_wormhole_send_is_shown(servers: WormholeServers, tmp_path: Path) -> None:
    target = tmp_path / "inbox"
    recorder, _ = await _receive_from_cli(
        servers, target, "--text", "the wifi password is hunter2"
    )
    text = recorder.of(TextEvent)[0]
    assert (text.text, text.via) == ("the wifi password is hunter2", "magic-wormhole")
    assert not target.exists() or not any(target.iterdir())  # a text is never stored


async def test_a_folder_from_wormhole_send_arrives_byte_identical(
    servers: WormholeServers, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path)
    target = tmp_path / "inbox"
    recorder, _ = await _receive_from_cli(servers, target, str(tree))
    assert_same_tree(tree, target / "tree")
    assert sorted(p.name for p in target.iterdir()) == ["tree"]  # the zip left nothing
    files = [p for p in tree.rglob("*") if p.is_file()]
    assert len(recorder.of(FileDoneEvent)) == len(files)
    offer = recorder.of(OfferEvent)[0]
    assert (offer.files, offer.folders) == (len(files), 1)


async def test_a_declined_offer_tells_wormhole_send_why(
    servers: WormholeServers, tmp_path: Path
) -> None:
    source = tmp_path / "unwanted.txt"
    source.write_text("no\n")

    async def decline(offer: IncomingOffer) -> Decision:
        return Decision(False, "not today")

    code = new_code()
    sender = servers.run_cli("send", "--hide-progress", "--no-qr", "--code", code, str(source))
    recorder = Recorder()
    lifecycle = Lifecycle(new_session_id(), "receive", recorder.bus.emit)
    setup = ClassicReceive(ReceiveOptions(target=tmp_path / "inbox"), decline,
                           servers.transit_relay)
    async with connected(servers, code) as w:
        result = await receive_classic(w, setup, lifecycle, recorder.bus)
    output = await finished(sender)
    assert result.state == "declined" and result.message == "not today"
    assert sender.returncode != 0 and "not today" in output
    assert not (tmp_path / "inbox").exists() or not any((tmp_path / "inbox").iterdir())


async def _send_to_cli(
    servers: WormholeServers, setup: ClassicSend, cwd: Path, *receive_args: str,
    text: bool = False,
) -> tuple[Recorder, str]:
    """``send_classic`` on a fresh code, received by ``wormhole receive --accept-file``."""
    code = new_code()
    cwd.mkdir(exist_ok=True)
    receiver = servers.run_cli(
        "receive", "--hide-progress", "--accept-file", *receive_args, code, cwd=cwd
    )
    recorder = Recorder()
    lifecycle = Lifecycle(new_session_id(), "send", recorder.bus.emit)
    async with connected(servers, code) as w:
        result = await send_classic(w, setup, lifecycle, recorder.bus)
    output = await finished(receiver)
    assert result.ok, result
    assert receiver.returncode == 0, output
    assert text or "SHA-256 matched" in result.message
    return recorder, output


async def test_a_file_to_wormhole_receive_arrives_byte_identical(
    servers: WormholeServers, tmp_path: Path
) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(os.urandom(2 * 1024 * 1024 + 3))
    setup = ClassicSend([source], transit_relay=servers.transit_relay)
    recorder, _ = await _send_to_cli(servers, setup, tmp_path / "out")
    assert (tmp_path / "out" / "photo.jpg").read_bytes() == source.read_bytes()
    done = recorder.of(DoneEvent)[-1]
    assert done.ok and done.via == "magic-wormhole" and done.bytes_total == source.stat().st_size


async def test_a_folder_to_wormhole_receive_arrives_byte_identical(
    servers: WormholeServers, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path)
    setup = ClassicSend([tree], transit_relay=servers.transit_relay)
    await _send_to_cli(servers, setup, tmp_path / "out")
    assert_same_tree(tree, tmp_path / "out" / "tree")


async def test_a_text_to_wormhole_receive_is_printed(
    servers: WormholeServers, tmp_path: Path
) -> None:
    setup = ClassicSend(text="meet at 6, door code 4711", transit_relay=servers.transit_relay)
    recorder, output = await _send_to_cli(servers, setup, tmp_path / "out", text=True)
    assert "meet at 6, door code 4711" in output
    done = recorder.of(DoneEvent)[-1]
    assert done.ok and done.text and done.via == "magic-wormhole"


async def test_wormhole_receive_declining_is_a_declined_send(
    servers: WormholeServers, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 100)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "big.bin").write_bytes(b"already here")  # the CLI refuses to overwrite
    code = new_code()
    receiver = servers.run_cli("receive", "--hide-progress", "--accept-file", code,
                               cwd=tmp_path / "out")
    lifecycle = Lifecycle(new_session_id(), "send", EventBus().emit)
    setup = ClassicSend([source], transit_relay=servers.transit_relay)
    async with connected(servers, code) as w:
        with pytest.raises(Declined, match="transfer rejected"):
            await send_classic(w, setup, lifecycle, EventBus())
    await finished(receiver)
    assert (tmp_path / "out" / "big.bin").read_bytes() == b"already here"


async def test_only_the_transit_relay_carries_the_data_when_no_side_listens(
    servers: WormholeServers, tmp_path: Path
) -> None:
    """Both ways, with no direct hints at all: the bytes can only go through the relay."""
    source = tmp_path / "relayed.bin"
    source.write_bytes(os.urandom(512 * 1024))
    target = tmp_path / "inbox"
    recorder, _ = await _receive_from_cli(
        servers, target, "--no-listen", str(source), listen=False
    )
    assert (target / "relayed.bin").read_bytes() == source.read_bytes()
    connection = recorder.of(ConnectionEvent)[0]
    assert connection.path == "relay"
    assert connection.remote_addr == f"127.0.0.1:{servers.relay_port}"

    setup = ClassicSend([source], transit_relay=servers.transit_relay, listen=False)
    recorder, _ = await _send_to_cli(servers, setup, tmp_path / "out", "--no-listen")
    assert (tmp_path / "out" / "relayed.bin").read_bytes() == source.read_bytes()
    assert recorder.of(ConnectionEvent)[0].path == "relay"
