"""Two real ``p2p-transfer app`` processes, driven through their HTTP API only.

What a person sees on the **sending** app's card while a big file moves: the
bytes grow and a rate shows, on the default (TCP) and the QUIC data path; a
transfer's state never goes back; a cancel on either side ends both cards as
cancelled, saying who cancelled.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from e2e.apps import AppProcess
from p2p_transfer.events import SessionState
from p2p_transfer.limits import MiB
from waiting import wait_until

#: Big enough that the sending card shows several partial byte counts at 10 updates/s.
BIG_FILE_SIZE = 384 * MiB
#: Seconds a step of a transfer may take.
STEP_TIMEOUT = 60.0
ORDER = list(SessionState)


class ApiClient:
    """One app's UI API and event WebSocket, logged in with the key its link carries."""

    def __init__(self, app: AppProcess, url: str) -> None:
        self.app = app
        self.url = url
        self.origin = self.url.split("/?", 1)[0]
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.events: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self.http.get(self.url, allow_redirects=False) as response:
            assert response.status == 303
        ws = await self.http.ws_connect(self.origin + "/ws", headers={"Origin": self.origin})
        self._reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            self.events.append(message.json())

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method, self.origin + path, json=body, headers={"Origin": self.origin}
        ) as response:
            return response.status, await response.json()

    async def wait_for(
        self, name: str, where: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = STEP_TIMEOUT,
    ) -> dict[str, Any]:
        found = await wait_until(
            lambda: [e for e in self.events if e["event"] == name and where(e)], timeout,
            what=lambda: f"{name!r}; got {[e['event'] for e in self.events]}",
        )
        return found[0]

    def snapshots(self, transfer_id: str | None = None) -> list[dict[str, Any]]:
        """Every ``transfer`` snapshot this tab received (of one transfer, if given)."""
        return [
            e["transfer"] for e in self.events
            if e["event"] == "transfer" and transfer_id in (None, e["transfer"]["id"])
        ]

    async def final(self, transfer_id: str | None = None) -> dict[str, Any]:
        event = await self.wait_for(
            "transfer",
            lambda e: transfer_id in (None, e["transfer"]["id"])
            and SessionState(e["transfer"]["state"]).final,
        )
        return dict(event["transfer"])

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.http.close()


@pytest.fixture
async def two_apps(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[ApiClient, ApiClient]]:
    extra = getattr(request, "param", ())
    apps = [AppProcess(tmp_path, name, *extra) for name in ("Alice", "Bob")]
    clients: list[ApiClient] = []
    try:
        for app in apps:
            url = (await asyncio.to_thread(app.wait_for, "ui_url"))["url"]
            client = ApiClient(app, url)
            clients.append(client)
            await client.start()
        yield clients[0], clients[1]
    finally:
        for client in clients:
            await client.close()
        for app in apps:
            await asyncio.to_thread(app.stop)


async def start_send(sender: ApiClient, receiver: ApiClient, path: Path) -> str:
    """Send ``path`` by ticket, type the code the receiver shows, accept the offer."""
    _, state = await receiver.call("GET", "/api/state")
    status, answer = await sender.call(
        "POST", "/api/send", {"to": state["node"]["ticket"], "paths": [str(path)]}
    )
    assert status == 202, answer
    transfer_id = str(answer["transfer"]["id"])
    shown = await receiver.wait_for("code_shown")
    asked = await sender.wait_for("code_prompt", lambda e: e["transfer"] == transfer_id)
    status, _ = await sender.call("POST", f"/api/prompts/{asked['prompt_id']}",
                                  {"code": shown["code"]})
    assert status == 200
    offer = await receiver.wait_for("offer_prompt")
    status, _ = await receiver.call("POST", f"/api/prompts/{offer['prompt_id']}",
                                    {"accept": True})
    assert status == 200
    return transfer_id


def assert_states_only_move_forward(snapshots: list[dict[str, Any]]) -> None:
    ranks = [ORDER.index(SessionState(s["state"])) for s in snapshots]
    states = [s["state"] for s in snapshots]
    assert ranks == sorted(ranks), f"a state went back: {states}"
    assert sum(SessionState(s).final for s in dict.fromkeys(states)) == 1, states


def big_file(app: AppProcess) -> Path:
    path = app.home / "big.bin"
    with path.open("wb") as out:
        for _ in range(BIG_FILE_SIZE // (16 * MiB)):
            out.write(os.urandom(16 * MiB))
    return path


@pytest.mark.parametrize(
    ("two_apps", "data_path"), [((), "tcp"), (("--transport", "quic"), "quic")],
    indirect=["two_apps"], ids=["default-path", "quic"],
)
async def test_the_sending_card_shows_progress_and_states_only_move_forward(
    two_apps: tuple[ApiClient, ApiClient], data_path: str
) -> None:
    alice, bob = two_apps
    source = await asyncio.to_thread(big_file, alice.app)
    transfer_id = await start_send(alice, bob, source)
    sent = await alice.final(transfer_id)
    received = await bob.final()
    assert sent["state"] == received["state"] == "done", (sent, received)

    cards = alice.snapshots(transfer_id)
    moving = [c for c in cards if c["state"] == "transferring"]
    partial = {c["bytes_done"] for c in moving if 0 < c["bytes_done"] < BIG_FILE_SIZE}
    assert len(partial) >= 3, [c["bytes_done"] for c in moving]
    assert any(c["rate"] > 0 for c in moving)
    assert_states_only_move_forward(cards)
    assert_states_only_move_forward(bob.snapshots(received["id"]))
    assert cards[0]["state"] == "connecting"
    assert "transferring" in [s["state"] for s in bob.snapshots(received["id"])]
    paths = [e["data_path"] for e in alice.events
             if e["event"] == "connection" and e.get("data_path")]
    assert paths == [data_path]
    assert (bob.app.downloads / "big.bin").stat().st_size == BIG_FILE_SIZE


@pytest.mark.parametrize("side", ["sender", "receiver"])
@pytest.mark.parametrize("two_apps", [("--transport", "quic")], indirect=True, ids=["quic"])
async def test_a_cancel_on_either_side_ends_both_cards_cancelled_saying_who(
    two_apps: tuple[ApiClient, ApiClient], side: str
) -> None:
    alice, bob = two_apps
    source = await asyncio.to_thread(big_file, alice.app)
    transfer_id = await start_send(alice, bob, source)
    moving = await bob.wait_for(
        "transfer", lambda e: e["transfer"]["state"] == "transferring"
        and e["transfer"]["bytes_done"] > 0,
    )
    received_id = moving["transfer"]["id"]
    canceller, cancelled_id = (alice, transfer_id) if side == "sender" else (bob, received_id)
    status, answer = await canceller.call("POST", f"/api/transfers/{cancelled_id}/cancel")
    assert status == 200, answer

    sent = await alice.final(transfer_id)
    received = await bob.final(received_id)
    assert sent["state"] == received["state"] == "cancelled", (sent, received)
    if side == "sender":
        assert (sent["cancelled_by"], received["cancelled_by"]) == ("local", "peer")
    else:
        assert (sent["cancelled_by"], received["cancelled_by"]) == ("peer", "local")
    assert_states_only_move_forward(alice.snapshots(transfer_id))
    assert_states_only_move_forward(bob.snapshots(received_id))
    assert not (bob.app.downloads / "big.bin").exists()  # only a resumable .part
    errors = [e for c in (alice, bob) for e in c.events if e["event"] == "error"]
    assert errors == []  # a cancel is no failure
