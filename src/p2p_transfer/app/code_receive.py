"""Receive with a code, in the app: each code on a node of its own, for that one transfer.

The app's node serves every sender all the time; a receive by code serves only the
device the code vouched for, for one session (node/codes.py), and one inbox cannot
do both at once. So each code gets a short-lived node with an identity of its own
(made for it, deleted after: a contact by code never becomes a pairing anyway),
whose events go to the app like the main node's: its offer is asked in the same
dialog, its card and history row are the usual ones.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from p2p_transfer.app.events import CodeReceiveEvent
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import Event, RendezvousEvent, SessionEvent
from p2p_transfer.limits import APP_CODE_WAIT
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.transfer import Decider, ReceiveOptions
from p2p_transfer.units import format_duration

#: The folder (in the config dir) of the code receivers' throwaway identities.
CODE_NODES_DIR = "code-receivers"


class CodeReceives:
    """The receives by code running now, each on its own node."""

    def __init__(
        self,
        config_dir: Path,
        emit: Callable[[Event], None],
        on_node_event: Callable[[Event], None],
        decide: Decider,
    ) -> None:
        self._root = config_dir / CODE_NODES_DIR
        self._emit = emit
        self._on_node_event = on_node_event
        self._decide = decide
        self._nodes: set[Node] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def clear_stale(self) -> None:
        """Remove identities a previous run left behind (it stopped mid-receive)."""
        shutil.rmtree(self._root, ignore_errors=True)

    def start(
        self, code: str, device_name: str, relay: str, mailbox: str, options: ReceiveOptions
    ) -> None:
        """Receive what ``code`` brings, in the background (``close`` stops it)."""
        task = asyncio.create_task(
            self._receive(code, device_name, relay, mailbox, options), name="app-code-receive"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _receive(
        self, code: str, device_name: str, relay: str, mailbox: str, options: ReceiveOptions
    ) -> None:
        """Meet the code's sender and receive what it sends; how the meeting goes is told
        as ``code_receive`` events, the transfer itself as the usual ones."""
        # The person may type the code before the other device shows it: it waits.
        self._emit(CodeReceiveEvent(code, "looking", (
            f"Waiting for the sender of {code}, for up to {format_duration(APP_CODE_WAIT)}…"
        )))
        home = await asyncio.to_thread(_fresh_dir, self._root)
        node: Node | None = None
        try:
            node = await Node.start(NodeConfig(home, device_name, relay=relay))
            self._nodes.add(node)
            unsubscribe = node.events.subscribe(self._forward(code))
            try:
                await node.receive_by_code(
                    code, options, self._decide, mailbox, wait=APP_CODE_WAIT
                )
            finally:
                unsubscribe()
        except P2PTransferError as exc:
            self._emit(CodeReceiveEvent(code, "failed", str(exc)))
        finally:
            if node is not None:
                self._nodes.discard(node)
                await node.close()
            await asyncio.to_thread(shutil.rmtree, home, True)

    def _forward(self, code: str) -> Callable[[Event], None]:
        def forward(event: Event) -> None:
            if isinstance(event, RendezvousEvent):
                self._emit(CodeReceiveEvent(code, "met"))
            elif isinstance(event, SessionEvent):  # not its ticket: it is no device to show
                self._on_node_event(event)

        return forward

    def cancel(self, session_id: str) -> bool:
        """Cancel a session of one of these nodes; False if none has it."""
        return any(node.cancel(session_id) for node in list(self._nodes))

    async def close(self) -> None:
        """Stop every receive by code (their sessions end cancelled, their nodes close)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _fresh_dir(root: Path) -> Path:
    """A private folder for one code's identity."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="code-", dir=root))
