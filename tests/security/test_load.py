"""Load: many senders at once into one receiver, every file verified."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from conftest import Peers, assert_same_tree
from p2p_transfer.events import DoneEvent, FileDoneEvent
from p2p_transfer.limits import SMALL_FILE_SIZE
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.transfer import SendOptions

SENDERS = 20
FILES_EACH = 10


def _folder(root: Path, sender: int) -> Path:
    """Ten files per sender: small ones (one-step path) and larger ones (``.part`` path)."""
    folder = root / f"from-{sender:02}"
    folder.mkdir(parents=True)
    for i in range(FILES_EACH):
        size = (SMALL_FILE_SIZE // 3) if i % 2 else (SMALL_FILE_SIZE + 4099 * i)
        (folder / f"file-{i}.bin").write_bytes(os.urandom(size))
    return folder


async def test_twenty_senders_at_once_all_verified(peers: Peers, tmp_path: Path) -> None:
    sources = [_folder(tmp_path / "sources", i) for i in range(SENDERS)]
    senders = []
    try:
        for i in range(SENDERS):
            # Each sender is its own device: its own key and address, paired beforehand
            # (at most three code verifications may wait at once, by design).
            node = await Node.start(
                NodeConfig(tmp_path / f"sender-{i}", f"sender-{i}", f"127.0.2.{i + 1}")
            )
            peers.receiver.pairings.add(node.endpoint_id, f"sender-{i}")
            node.pairings.add(peers.receiver.endpoint_id, "rx")
            senders.append(node)
        results = await asyncio.gather(
            *(
                node.send(peers.ticket, [source], SendOptions(code=None))
                for node, source in zip(senders, sources, strict=True)
            )
        )
    finally:
        await asyncio.gather(*(node.close() for node in senders), return_exceptions=True)
    assert all(r.ok for r in results), [r.message for r in results if not r.ok]
    assert all(r.files == FILES_EACH for r in results)
    for source in sources:
        assert_same_tree(source, peers.target / source.name)
    file_done = peers.receiver_events(FileDoneEvent)
    assert len(file_done) == SENDERS * FILES_EACH
    done = [e for e in peers.receiver_events(DoneEvent) if isinstance(e, DoneEvent)]
    assert len(done) == SENDERS and all(e.ok for e in done)
    assert not list(peers.target.rglob("*.part"))
