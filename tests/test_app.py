"""The desktop app's API, against real app instances (node, UI server) on 127.0.0.1.

Access control (key, cookie, Origin, Host), settings, history, the file
browser's roots, and whole transfers between two apps driven only through the
API, as the page drives them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from conftest import assert_same_tree
from e2e.mailbox import MailboxServer
from p2p_transfer.app import AppOptions, AppServer, AppService, code_receive
from p2p_transfer.app.board import TransferRecord
from p2p_transfer.app.code_receive import CODE_NODES_DIR
from p2p_transfer.app.events import (
    CodePromptEvent,
    CodeReceiveEvent,
    CodeShownEvent,
    NodeStateEvent,
    OfferPromptEvent,
    PromptClosedEvent,
    SettingsEvent,
    TransferUpdateEvent,
    UploadPromptEvent,
)
from p2p_transfer.app.files import Staging, StagingError
from p2p_transfer.app.history import HISTORY_FILE_NAME, History, HistoryEntry
from p2p_transfer.app.service import AppError
from p2p_transfer.app.settings import SETTINGS_FILE_NAME, Settings, SettingsStore, defaults
from p2p_transfer.app.targets import pasted, remembered_ticket
from p2p_transfer.events import Event, SessionState, TicketEvent
from p2p_transfer.limits import (
    MAX_TEXT_BYTES,
    MAX_UNANSWERED_CODES,
    MAX_WRONG_CODES,
    RELAY_ONLINE_TIMEOUT,
    KiB,
    MiB,
)
from p2p_transfer.net import parse_ticket
from p2p_transfer.net.keys import generate_secret_key, public_id, ticket_for
from p2p_transfer.rendezvous import DEFAULT_MAILBOX, MAILBOX_ENV
from p2p_transfer.trust import AttemptLimiter, Pairing
from waiting import wait_until

#: Seconds a test waits for an event.
WAIT = 20.0


class Ui:
    """One app (service + UI server) and an HTTP client holding its key cookie."""

    def __init__(self, service: AppService, root: Path) -> None:
        self.service = service
        self.server = AppServer(service, 0, opener=self.open_folder)
        self.root = root
        self.events: list[Event] = []
        self.opened: list[Path] = []
        self.file_manager = True
        service.events.subscribe(self.events.append)
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def open_folder(self, folder: Path) -> bool:
        """Stands in for the system's file manager."""
        if self.file_manager:
            self.opened.append(folder)
        return self.file_manager

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def origin(self) -> str:
        return self.server.base_url

    async def login(self) -> None:
        async with self.http.get(self.server.url, allow_redirects=False) as response:
            assert response.status == 303

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        sent = {"Origin": self.origin, **(headers or {})}
        kwargs: dict[str, Any] = {"headers": sent}
        if body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.origin + path, **kwargs) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(
        self, kind: type[Event], where: Callable[[Any], bool] = lambda e: True,
        timeout: float = WAIT,
    ) -> Any:
        found = await wait_until(
            lambda: [e for e in self.of(kind) if where(e)], timeout,
            what=lambda: f"a matching {kind.__name__}; got {[e.name for e in self.events]}",
        )
        return found[-1]

    async def transfer_done(self, record_id: str | None = None, state: str = "done") -> Any:
        event = await self.wait_for(
            TransferUpdateEvent,
            lambda e: (record_id is None or e.transfer.id == record_id)
            and e.transfer.state in ("done", "failed", "declined", "cancelled"),
        )
        assert event.transfer.state == state, event.transfer
        return event.transfer

    async def close(self) -> None:
        await self.http.close()
        await self.server.stop()
        await self.service.close()


StartUi = Callable[..., Awaitable[Ui]]


@pytest.fixture
async def start_ui(tmp_path: Path) -> AsyncIterator[StartUi]:
    started: list[Ui] = []

    async def start(name: str = "alpha", login: bool = True, **settings: Any) -> Ui:
        root = tmp_path / name
        (root / "home").mkdir(parents=True)
        config = root / "config"
        config.mkdir(mode=0o700)
        settings.setdefault("relay", "off")  # no internet here: tests say when they want one
        SettingsStore(config).save(
            Settings(device_name=name, download_dir=str(root / "downloads"), **settings)
        )
        service = AppService(AppOptions(
            config_dir=config, device_name=name, bind_addr="127.0.0.1",
            share_bind="127.0.0.1", browse_roots=(root / "home",), discovery=False,
        ))
        ui = Ui(service, root)
        await service.start()
        await ui.server.start()
        started.append(ui)
        if login:
            await ui.login()
        return ui

    try:
        yield start
    finally:
        for ui in started:
            await ui.close()


# --- access control -----------------------------------------------------------------------


async def test_the_key_link_sets_a_strict_http_only_cookie_and_drops_the_key(
    start_ui: StartUi,
) -> None:
    ui = await start_ui(login=False)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?key=[\w-]{43}", ui.server.url)
    async with ui.http.get(ui.server.url, allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/"
        cookie = response.headers["Set-Cookie"]
    assert f"{ui.server.cookie_name}={ui.server.key}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    status, state = await ui.call("GET", "/api/state")
    assert status == 200
    assert state["node"]["device_name"] == "alpha"
    assert state["node"]["state"] == "running"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/"),
    ("GET", "/static/app.js"),
    ("GET", "/api/meta"),
    ("GET", "/api/state"),
    ("GET", "/api/files"),
    ("PUT", "/api/settings"),
    ("POST", "/api/share/start"),
    ("GET", "/ws"),
])
async def test_requests_without_the_key_get_403(
    start_ui: StartUi, method: str, path: str
) -> None:
    ui = await start_ui(login=False)
    status, _ = await ui.call(method, path, {} if method != "GET" else None)
    assert status == 403
    assert ui.service.share_url is None


async def test_a_wrong_key_gets_403_and_no_cookie(start_ui: StartUi) -> None:
    ui = await start_ui(login=False)
    async with ui.http.get(
        f"{ui.origin}/?key={'A' * 43}", allow_redirects=False
    ) as response:
        assert response.status == 403
        assert "Set-Cookie" not in response.headers
    async with aiohttp.ClientSession(
        cookies={ui.server.cookie_name: "guess"}, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as stranger, stranger.get(ui.origin + "/api/state") as response:
        assert response.status == 403


@pytest.mark.parametrize("origin", [
    "http://evil.example",
    "null",
    "http://127.0.0.1:1",
    "https://127.0.0.1:{port}",
    "http://127.0.0.1.evil.example:{port}",
])
async def test_a_foreign_origin_gets_403_even_with_the_key(start_ui: StartUi, origin: str) -> None:
    ui = await start_ui()
    foreign = {"Origin": origin.format(port=ui.server.port)}
    for method, path, body in [
        ("GET", "/api/state", None),
        ("POST", "/api/share/start", {}),
        ("PUT", "/api/settings", {"parallel_files": 2}),
        ("DELETE", "/api/history", None),
    ]:
        status, answer = await ui.call(method, path, body, headers=foreign)
        assert status == 403, (method, path)
        assert "Origin" in answer["error"]
    assert ui.service.share_url is None
    assert ui.service.settings.parallel_files == 4
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await ui.http.ws_connect(ui.origin + "/ws", headers=foreign)
    assert refused.value.status == 403


async def test_changes_without_an_origin_get_403(start_ui: StartUi) -> None:
    ui = await start_ui()
    async with ui.http.put(ui.origin + "/api/settings", json={"parallel_files": 2}) as response:
        assert response.status == 403
    async with ui.http.get(ui.origin + "/api/settings") as response:
        assert response.status == 200  # a same-origin GET carries no Origin
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await ui.http.ws_connect(ui.origin + "/ws")
    assert ui.service.settings.parallel_files == 4


async def test_cross_site_fetch_metadata_gets_403(start_ui: StartUi) -> None:
    ui = await start_ui()
    status, _ = await ui.call("GET", "/api/state", headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _ = await ui.call("GET", "/api/state", headers={"Sec-Fetch-Site": "same-origin"})
    assert status == 200


async def test_a_foreign_host_header_gets_403_against_dns_rebinding(start_ui: StartUi) -> None:
    ui = await start_ui()
    host = {"Host": f"rebind.evil.example:{ui.server.port}"}
    status, _ = await ui.call("GET", "/api/state", headers=host)
    assert status == 403
    local = f"localhost:{ui.server.port}"
    status, _ = await ui.call(
        "GET", "/api/state", headers={"Host": local, "Origin": f"http://{local}"}
    )
    assert status == 200  # "localhost" is this machine too


async def test_the_ui_listens_on_loopback_only(start_ui: StartUi) -> None:
    ui = await start_ui()
    assert ui.server.bound_addresses == ["127.0.0.1"]


async def test_pages_have_a_strict_csp_and_no_inline_code(start_ui: StartUi) -> None:
    ui = await start_ui()
    async with ui.http.get(ui.origin + "/") as response:
        assert response.status == 200
        csp = response.headers["Content-Security-Policy"]
        page = await response.text()
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert "<style" not in page and " style=" not in page
    assert re.search(r"\son[a-z]+=", page) is None  # no inline event handlers
    assert re.search(r"""(src|href)=["']?(https?:)?//""", page) is None  # nothing from a CDN
    script = resources.files("p2p_transfer.app").joinpath("static/app.js").read_text()
    assert "innerHTML" not in script and "eval(" not in script
    assert "http" not in script.replace("https:", "").replace("http:", "")


# --- one source for the session states ------------------------------------------------------

#: A session state's name as a string literal in app.js ('done', "done" or `done`).
_STATE_NAMES = "|".join(re.escape(str(state)) for state in SessionState)
_STATE_LITERAL = re.compile(rf"""(["'`])({_STATE_NAMES})\1""")
#: app.js tells states apart only by ``isState(value, "name")``.
_STATE_CHECK = re.compile(r"""isState\([^,()]+,\s*(["'`])([^"'`]*)\1\s*\)""")


def _app_js() -> str:
    return resources.files("p2p_transfer.app").joinpath("static/app.js").read_text()


async def test_the_page_learns_every_session_state_from_the_server(start_ui: StartUi) -> None:
    ui = await start_ui()
    status, meta = await ui.call("GET", "/api/meta")
    assert status == 200
    states = meta["states"]
    assert [s["name"] for s in states] == [str(state) for state in SessionState]  # in order
    assert [s["name"] for s in states if s["final"]] == ["done", "failed", "declined", "cancelled"]
    assert all(s["label"] for s in states)
    assert {s["name"]: s["tone"] for s in states if s["tone"]} == {
        "transferring": "accent", "reconnecting": "warn", "done": "ok", "failed": "bad",
        "declined": "warn", "cancelled": "warn",
    }


def test_app_js_names_no_state_the_server_does_not_have() -> None:
    named = {name for _, name in _STATE_CHECK.findall(_app_js())}
    assert named, "app.js tells no state apart: the pattern no longer matches it"
    assert named <= {str(state) for state in SessionState}, named - set(SessionState)


def test_app_js_keeps_no_list_of_states_of_its_own() -> None:
    script = _app_js()
    outside_checks = _STATE_CHECK.sub("isState()", script)
    assert _STATE_LITERAL.findall(outside_checks) == []
    # Nor an object keyed by states (a table of labels or colours) ...
    for block in re.findall(r"\{[^{}]*\}", outside_checks):
        keys = set(re.findall(rf"(?:^|[{{,\s])({_STATE_NAMES})\s*:", block))
        assert len(keys) < 2, block
    # ... nor a transfer's state compared by hand (the node's own state is another thing).
    assert re.findall(r"(?<!node)\.state\s*[!=]==", script) == []


# --- settings -----------------------------------------------------------------------------


async def test_settings_are_validated_applied_and_saved_private(
    start_ui: StartUi, tmp_path: Path
) -> None:
    ui = await start_ui()
    status, settings = await ui.call("GET", "/api/settings")
    assert status == 200
    assert settings == {
        "device_name": "alpha", "download_dir": str(ui.downloads), "auto_accept_trusted": False,
        "pairing_lifetime_hours": 24.0, "parallel_files": 4, "relay": "off",
        "localsend": True, "localsend_port": 53317, "localsend_pin": "", "mailbox": "",
    }
    elsewhere = tmp_path / "elsewhere" / "inbox"
    status, settings = await ui.call("PUT", "/api/settings", {
        "auto_accept_trusted": True, "pairing_lifetime_hours": 2, "parallel_files": 8,
        "download_dir": str(elsewhere),
    })
    assert status == 200, settings
    assert settings["parallel_files"] == 8 and settings["download_dir"] == str(elsewhere)
    assert elsewhere.is_dir()
    node = ui.service.node
    assert node is not None and node.pairings.lifetime == 2 * 3600
    assert ui.service.nodes.receive_options is not None
    assert ui.service.nodes.receive_options.target == elsewhere
    assert (await ui.wait_for(SettingsEvent)).parallel_files == 8
    path = ui.root / "config" / SETTINGS_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["settings"]["parallel_files"] == 8

    for bad in [
        {"parallel_files": 0}, {"parallel_files": 17}, {"parallel_files": "4"},
        {"parallel_files": True}, {"pairing_lifetime_hours": 0},
        {"pairing_lifetime_hours": 1e9}, {"download_dir": "relative/path"},
        {"download_dir": str(path)}, {"device_name": ""}, {"device_name": "x" * 65},
        {"device_name": "bad\x1bname"}, {"auto_accept_trusted": "yes"},
        {"relay": "ftp://relay"}, {"relay": "https://bad host"}, {"colour": "blue"},
    ]:
        status, answer = await ui.call("PUT", "/api/settings", bad)
        assert status == 400, bad
        assert next(iter(bad)) in answer["error"]
    status, after = await ui.call("GET", "/api/settings")
    assert after == settings
    status, answer = await ui.call("PUT", "/api/settings", [1, 2])
    assert status == 400


async def test_saved_settings_come_back_and_a_damaged_value_falls_back(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    store = SettingsStore(config)
    fallback = Settings(device_name="fresh", download_dir=str(tmp_path / "dl"))
    assert store.load(fallback) == fallback
    (config / SETTINGS_FILE_NAME).write_text("{not json")
    assert store.load(fallback) == fallback
    (config / SETTINGS_FILE_NAME).write_text(json.dumps({"settings": {
        "device_name": "kept", "parallel_files": 99, "auto_accept_trusted": True,
    }}))
    loaded = store.load(fallback)
    assert loaded.device_name == "kept" and loaded.auto_accept_trusted is True
    assert loaded.parallel_files == fallback.parallel_files


async def test_a_new_device_name_restarts_the_node_under_that_name(start_ui: StartUi) -> None:
    ui = await start_ui()
    old_id = ui.service.running_node.endpoint_id
    status, settings = await ui.call("PUT", "/api/settings", {"device_name": "  Renamed  "})
    assert status == 200 and settings["device_name"] == "Renamed"
    await ui.wait_for(NodeStateEvent, lambda e: e.state == "running" and e.device_name == "Renamed")
    ticket = await ui.wait_for(TicketEvent, lambda e: e.device_name == "Renamed")
    assert ticket.endpoint_id == old_id  # the same identity
    _, state = await ui.call("GET", "/api/state")
    assert state["node"]["device_name"] == "Renamed" and state["node"]["state"] == "running"

    # The relay setting restarts the node too (the WAN view's on/off).
    relay = "https://relay.example.invalid"
    status, settings = await ui.call("PUT", "/api/settings", {"relay": relay})
    assert status == 200 and settings["relay"] == relay
    assert ui.service.running_node.config.relay == relay
    _, wan = await ui.call("GET", "/api/wan")
    assert wan["relay"]["setting"] == relay and wan["endpoint_id"] == old_id
    status, _ = await ui.call("PUT", "/api/settings", {"relay": "off"})
    assert status == 200 and ui.service.running_node.config.relay == "off"


# --- history ------------------------------------------------------------------------------


def finished_record(service: AppService, folder: Path, state: str = "done") -> TransferRecord:
    record = TransferRecord(
        id=f"r-test-{state}", direction="receive", state=SessionState.TRANSFERRING,
        peer_name="Peer", peer_id="ab" * 32, verified="code", files_total=2, bytes_total=10,
        folder=str(folder), names=["a.txt", "b.txt"],
    )
    service.board.add(record)
    service.board.finish(record, SessionState(state), "" if state == "done" else "broke")
    return record


async def test_history_is_kept_in_sqlite_private_and_opens_folders(
    start_ui: StartUi, tmp_path: Path
) -> None:
    ui = await start_ui()
    folder = tmp_path / "received"
    folder.mkdir()
    finished_record(ui.service, folder)
    finished_record(ui.service, folder / "gone", "failed")
    await asyncio.gather(*ui.service._background)
    status, answer = await ui.call("GET", "/api/history")
    assert status == 200
    rows = answer["history"]
    assert {r["id"] for r in rows} == {"r-test-done", "r-test-failed"}
    done = next(r for r in rows if r["id"] == "r-test-done")
    assert done["names"] == ["a.txt", "b.txt"] and done["peer_name"] == "Peer"
    assert done["verified"] == "code" and done["folder"] == str(folder)
    database = ui.root / "config" / HISTORY_FILE_NAME
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM transfers").fetchone() == (2,)

    status, answer = await ui.call("POST", "/api/history/r-test-done/open")
    assert status == 200 and ui.opened == [folder]
    status, _ = await ui.call("POST", "/api/history/r-test-failed/open")
    assert status == 404  # its folder is gone
    status, _ = await ui.call("POST", "/api/history/nope/open")
    assert status == 404

    ui.file_manager = False
    status, answer = await ui.call("POST", "/api/open-downloads")
    assert status == 501 and "file manager" in answer["error"]

    status, answer = await ui.call("DELETE", "/api/history")
    assert status == 200 and answer["removed"] == 2
    assert (await ui.call("GET", "/api/history"))[1]["history"] == []


_OLD_HISTORY_SCHEMA = """
CREATE TABLE transfers (
    id TEXT PRIMARY KEY, direction TEXT NOT NULL, state TEXT NOT NULL, peer_name TEXT NOT NULL,
    peer_id TEXT NOT NULL, files INTEGER NOT NULL, files_failed INTEGER NOT NULL,
    bytes_total INTEGER NOT NULL, bytes_done INTEGER NOT NULL, verified TEXT NOT NULL,
    message TEXT NOT NULL, folder TEXT NOT NULL, names TEXT NOT NULL, started_at REAL NOT NULL,
    finished_at REAL NOT NULL
);
INSERT INTO transfers VALUES ('old', 'receive', 'done', 'Peer', 'ab', 2, 0, 10, 10, 'code', '',
    '/x', 'a.txt', 1.0, 2.0);
"""


async def test_history_says_which_rows_are_texts_also_in_a_database_of_an_earlier_version(
    tmp_path: Path,
) -> None:
    """The page says "text · 140 B" for a text, not "0 files · 140 B": the row says it is one.
    A history kept by an earlier version (no such column) opens with its rows as they were."""
    with sqlite3.connect(tmp_path / HISTORY_FILE_NAME) as db:
        db.executescript(_OLD_HISTORY_SCHEMA)
    history = History(tmp_path)
    text = HistoryEntry(
        id="t", direction="send", state="done", peer_name="Bob", peer_id="cd", files=0,
        files_failed=0, bytes_total=140, bytes_done=140, verified="pairing", message="",
        folder="", names=["the wifi password…"], started_at=3.0, finished_at=4.0, text=True,
    )
    await history.add(text)
    rows = await history.list()
    assert [(r.id, r.text, r.files, r.names) for r in rows] == [
        ("t", True, 0, ["the wifi password…"]), ("old", False, 2, ["a.txt"])
    ]
    assert await history.get("t") == text
    assert rows[0].to_dict()["text"] is True


# --- file browser -------------------------------------------------------------------------


async def test_the_file_browser_starts_at_home_and_hides_dotfiles_unless_asked(
    start_ui: StartUi,
) -> None:
    ui = await start_ui()
    (ui.home / "Photos" / "2024").mkdir(parents=True)
    (ui.home / "notes.txt").write_text("hello")
    (ui.home / ".secret").write_text("x")
    status, listing = await ui.call("GET", "/api/files")
    assert status == 200
    assert listing["path"] == str(ui.home.resolve())
    assert listing["parent"] is None  # home is a root: nothing above it
    assert [(e["name"], e["kind"]) for e in listing["entries"]] == [
        ("Photos", "dir"), ("notes.txt", "file"),
    ]
    assert listing["entries"][1]["size"] == 5
    _, listing = await ui.call("GET", "/api/files?hidden=1")
    assert [e["name"] for e in listing["entries"]] == ["Photos", ".secret", "notes.txt"]
    _, listing = await ui.call("GET", f"/api/files?path={ui.home / 'Photos'}")
    assert listing["parent"] == str(ui.home.resolve())
    assert [e["name"] for e in listing["entries"]] == ["2024"]


async def test_the_file_browser_refuses_paths_outside_home_and_the_download_folder(
    start_ui: StartUi, tmp_path: Path
) -> None:
    ui = await start_ui()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("no")
    (ui.home / "escape").symlink_to(outside)
    (ui.home / "inside-link").symlink_to(ui.home)
    ui.downloads.mkdir()
    _, listing = await ui.call("GET", "/api/files")
    kinds = {e["name"]: e["kind"] for e in listing["entries"]}
    assert kinds == {"escape": "link", "inside-link": "dir"}
    for path in [
        "/etc", str(outside), str(ui.home / "escape"), str(ui.home / "escape" / "private.txt"),
        f"{ui.home}/../../outside", f"{ui.home}/../../no-such-thing", "/no/such/path",
        "relative/path", "",
    ]:
        status, answer = await ui.call("GET", f"/api/files?path={path}")
        if path == "":
            assert status == 200  # no path: home
            continue
        assert status == 403, path
        assert "error" in answer
    status, _ = await ui.call("GET", f"/api/files?path={ui.home / 'missing'}")
    assert status == 404
    status, listing = await ui.call("GET", f"/api/files?path={ui.downloads}")
    assert status == 200 and listing["path"] == str(ui.downloads.resolve())
    assert str(ui.downloads.resolve()) in listing["roots"]
    # Sending and sharing follow the browser's rule: 403 outside, 404 missing.
    ticket = ui.service.running_node.transport.ticket
    for path in [str(outside / "private.txt"), str(ui.home / "escape"), "relative/path"]:
        status, answer = await ui.call("POST", "/api/send", {"to": ticket, "paths": [path]})
        assert status == 403 and answer["error"], path
        status, answer = await ui.call("PUT", "/api/share/files", {"paths": [path]})
        assert status == 403 and answer["error"], path
    status, answer = await ui.call("POST", "/api/send", {"to": ticket, "paths": [str(outside)]})
    assert "outside the folders the app may use" in answer["error"]
    missing = str(ui.home / "missing")
    status, _ = await ui.call("POST", "/api/send", {"to": ticket, "paths": [missing]})
    assert status == 404
    status, _ = await ui.call("PUT", "/api/share/files", {"paths": [missing]})
    assert status == 404
    assert ui.service.board.snapshots() == []


# --- transfers between two apps, through the API only -------------------------------------


async def answer_code_flow(sender: Ui, receiver: Ui, record_id: str) -> None:
    """Read the code off the receiver's prompt and type it into the sender's."""
    shown = await receiver.wait_for(CodeShownEvent)
    asked = await sender.wait_for(CodePromptEvent, lambda e: e.transfer == record_id)
    assert asked.peer_name == receiver.service.settings.device_name
    status, answer = await sender.call("POST", f"/api/prompts/{asked.prompt_id}", {"code": "12"})
    assert status == 400 and "6 digits" in answer["error"]
    status, _ = await sender.call("POST", f"/api/prompts/{asked.prompt_id}", {"code": shown.code})
    assert status == 200
    await receiver.wait_for(PromptClosedEvent, lambda e: e.prompt_id == shown.prompt_id)


async def test_two_apps_send_a_folder_and_a_dropped_file_with_code_and_accept(
    start_ui: StartUi,
) -> None:
    alice, bob = await start_ui("alice"), await start_ui("bob")
    folder = alice.home / "Album"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha\n")
    (folder / "sub" / "b.bin").write_bytes(os.urandom(1 * MiB + 3))

    # A file dropped into the page: staged, with a hostile name that must stay inside.
    status, answer = await alice.call("POST", "/api/staging")
    assert status == 201
    batch = answer["batch"]
    dropped = os.urandom(40 * KiB)
    async with alice.http.put(
        f"{alice.origin}/api/staging/{batch}/files", params={"path": "../../Dropped/x.bin"},
        data=dropped, headers={"Origin": alice.origin},
    ) as response:
        assert response.status == 201
        assert (await response.json())["path"] == "Dropped/x.bin"
    staging = alice.root / "config" / "staging" / batch
    assert (staging / "Dropped" / "x.bin").read_bytes() == dropped
    async with alice.http.put(
        f"{alice.origin}/api/staging/{batch}/files", params={"path": "Dropped/x.bin"},
        data=b"again", headers={"Origin": alice.origin},
    ) as response:
        assert response.status == 400  # dropped twice
    async with alice.http.put(
        f"{alice.origin}/api/staging/{'0' * 16}/files", params={"path": "y.bin"},
        data=b"y", headers={"Origin": alice.origin},
    ) as response:
        assert response.status == 404
    status, answer = await alice.call("GET", f"/api/staging/{batch}")
    assert answer["items"] == [{"name": "Dropped", "kind": "dir"}]
    assert (staging / "Dropped" / "x.bin").read_bytes() == dropped

    ticket = bob.service.running_node.transport.ticket
    status, answer = await alice.call(
        "POST", "/api/send", {"to": ticket, "paths": [str(folder)], "staging": batch}
    )
    assert status == 202, answer
    record_id = answer["transfer"]["id"]
    assert answer["transfer"]["state"] == "connecting"
    await answer_code_flow(alice, bob, record_id)

    offer = await bob.wait_for(OfferPromptEvent)
    assert offer.sender == "alice" and offer.files == 3 and offer.verified == "code"
    status, _ = await bob.call("POST", f"/api/prompts/{offer.prompt_id}", {"accept": "yes"})
    assert status == 400
    status, _ = await bob.call("POST", f"/api/prompts/{offer.prompt_id}", {"accept": True})
    assert status == 200
    status, _ = await bob.call("POST", f"/api/prompts/{offer.prompt_id}", {"accept": True})
    assert status == 410  # answered already

    sent = await alice.transfer_done(record_id)
    received = await bob.transfer_done()
    for snapshot in (sent, received):
        assert snapshot.verified == "code"
        assert snapshot.files_done == 3 and snapshot.bytes_done == snapshot.bytes_total
    assert sent.peer_name == "bob" and received.peer_name == "alice"
    assert received.folder == str(bob.downloads.resolve())
    assert_same_tree(folder, bob.downloads / "Album")
    assert (bob.downloads / "Dropped" / "x.bin").read_bytes() == dropped
    assert not staging.exists()  # the staged copy is gone once sent
    await asyncio.gather(*alice.service._background, *bob.service._background)
    assert [r["state"] for r in (await alice.call("GET", "/api/history"))[1]["history"]] == ["done"]
    assert [r["state"] for r in (await bob.call("GET", "/api/history"))[1]["history"]] == ["done"]

    # Now trusted both ways: with auto-accept on, the next send needs neither code nor answer.
    _, devices = await bob.call("GET", "/api/devices")
    assert [p["name"] for p in devices["trusted"]] == ["alice"]
    await bob.call("PUT", "/api/settings", {"auto_accept_trusted": True})
    prompts_before = len(bob.of(OfferPromptEvent))
    status, answer = await alice.call(
        "POST", "/api/send", {"to": ticket, "paths": [str(folder / "a.txt")]}
    )
    again = await alice.transfer_done(answer["transfer"]["id"])
    assert again.verified == "pairing"
    assert len(bob.of(OfferPromptEvent)) == prompts_before
    assert (bob.downloads / "a.txt").read_text() == "alpha\n"

    # Forgetting the device brings the code back.
    alice_id = alice.service.running_node.endpoint_id
    status, answer = await bob.call("DELETE", f"/api/pairings/{alice_id}")
    assert status == 200 and answer["removed"] == 1
    assert (await bob.call("GET", "/api/devices"))[1]["trusted"] == []


async def test_a_declined_offer_ends_both_transfers_as_declined(start_ui: StartUi) -> None:
    alice, bob = await start_ui("alice"), await start_ui("bob")
    (alice.home / "f.txt").write_text("x")
    _, answer = await alice.call("POST", "/api/send", {
        "to": bob.service.running_node.transport.ticket, "paths": [str(alice.home / "f.txt")],
    })
    record_id = answer["transfer"]["id"]
    await answer_code_flow(alice, bob, record_id)
    offer = await bob.wait_for(OfferPromptEvent)
    no = {"accept": False, "reason": "not now"}
    await bob.call("POST", f"/api/prompts/{offer.prompt_id}", no)
    sent = await alice.transfer_done(record_id, "declined")
    assert "not now" in sent.message
    await bob.transfer_done(state="declined")
    assert not (bob.downloads / "f.txt").exists()


async def test_cancelling_while_the_code_is_awaited_closes_both_sides(start_ui: StartUi) -> None:
    alice, bob = await start_ui("alice"), await start_ui("bob")
    (alice.home / "f.txt").write_text("x")
    _, answer = await alice.call("POST", "/api/send", {
        "to": bob.service.running_node.transport.ticket, "paths": [str(alice.home / "f.txt")],
    })
    record_id = answer["transfer"]["id"]
    asked = await alice.wait_for(CodePromptEvent)
    shown = await bob.wait_for(CodeShownEvent)
    status, answer = await alice.call("PUT", "/api/settings", {"device_name": "later"})
    assert status == 409 and "transfers" in answer["error"]
    assert alice.service.settings.device_name == "alice"
    status, answer = await alice.call("POST", f"/api/transfers/{record_id}/cancel")
    assert status == 200
    await alice.transfer_done(record_id, "cancelled")
    await alice.wait_for(PromptClosedEvent, lambda e: e.prompt_id == asked.prompt_id)
    closed = await bob.wait_for(PromptClosedEvent, lambda e: e.prompt_id == shown.prompt_id)
    assert closed.outcome == "cancelled"  # the receiving session ended: cancelled by alice
    assert bob.service.prompts.pending() == []
    status, _ = await alice.call("POST", "/api/transfers/nope/cancel")
    assert status == 404
    status, _ = await alice.call("POST", f"/api/prompts/{asked.prompt_id}", {"code": "123456"})
    assert status == 410


async def test_a_wrong_code_keeps_the_dialog_open_and_asks_for_attempt_2(
    start_ui: StartUi,
) -> None:
    """The sender's code prompt stays one prompt: answered, it waits while the code is
    checked; wrong, it comes back (same ID) saying attempt 2 of 5; the receiver's code
    stays on screen the whole time, the same code; the right code then goes through."""
    alice, bob = await start_ui("alice"), await start_ui("bob")
    (alice.home / "f.txt").write_text("x")
    _, answer = await alice.call("POST", "/api/send", {
        "to": bob.service.running_node.transport.ticket, "paths": [str(alice.home / "f.txt")],
    })
    record_id = answer["transfer"]["id"]
    asked = await alice.wait_for(CodePromptEvent, lambda e: e.transfer == record_id)
    shown = await bob.wait_for(CodeShownEvent)
    assert (asked.attempt, asked.max_attempts, asked.retry) == (1, MAX_WRONG_CODES, False)
    wrong = "000 000" if shown.code != "000000" else "111 111"
    status, _ = await alice.call("POST", f"/api/prompts/{asked.prompt_id}", {"code": wrong})
    assert status == 200
    # While it is checked the prompt stays open, and a second answer must wait.
    status, again = await alice.call("POST", f"/api/prompts/{asked.prompt_id}", {"code": wrong})
    assert status == 400 and "being checked" in again["error"]

    retry = await alice.wait_for(CodePromptEvent, lambda e: e.retry)
    assert retry.prompt_id == asked.prompt_id
    assert (retry.attempt, retry.max_attempts) == (2, MAX_WRONG_CODES)
    _, pending = await alice.call("GET", "/api/prompts")
    assert [(p["prompt_id"], p["attempt"], p["retry"]) for p in pending["prompts"]] == [
        (asked.prompt_id, 2, True)
    ]
    still = await bob.wait_for(CodeShownEvent, lambda e: e.attempt == 2)
    assert (still.prompt_id, still.code) == (shown.prompt_id, shown.code)
    assert not [e for e in alice.of(PromptClosedEvent) if e.prompt_id == asked.prompt_id]
    assert not [e for e in bob.of(PromptClosedEvent) if e.prompt_id == shown.prompt_id]

    typed = f"{shown.code[:3]}-{shown.code[3:]}"  # typed as people do
    status, _ = await alice.call("POST", f"/api/prompts/{asked.prompt_id}", {"code": typed})
    assert status == 200
    closed = await alice.wait_for(PromptClosedEvent, lambda e: e.prompt_id == asked.prompt_id)
    assert closed.outcome == "verified"
    offer = await bob.wait_for(OfferPromptEvent)
    await bob.call("POST", f"/api/prompts/{offer.prompt_id}", {"accept": True})
    sent = await alice.transfer_done(record_id)
    assert sent.verified == "code"
    await bob.transfer_done()
    assert (bob.downloads / "f.txt").read_text() == "x"
    assert len({e.prompt_id for e in alice.of(CodePromptEvent)}) == 1


async def test_sending_needs_a_valid_target(start_ui: StartUi) -> None:
    ui = await start_ui()
    (ui.home / "f.txt").write_text("x")
    path = str(ui.home / "f.txt")
    ticket = ui.service.running_node.transport.ticket
    for body in [
        {"paths": [path]},
        {"to": "endpoint" + "a" * 30, "paths": [path]},
        {"device": "ab" * 32, "paths": [path]},
        {"to": ticket, "paths": []},
        {"to": ticket, "paths": "f.txt"},
        {"to": ["list"], "paths": [path]},
    ]:
        status, answer = await ui.call("POST", "/api/send", body)
        assert status in (400, 404), body
        assert answer["error"]
    assert ui.service.board.snapshots() == []
    # HOST:PORT is looked up when the send starts: a dead address fails the transfer.
    status, answer = await ui.call("POST", "/api/send", {"to": "127.0.0.1:9", "paths": [path]})
    assert status == 202
    failed = await ui.transfer_done(answer["transfer"]["id"], "failed")
    assert failed.message
    status, answer = await ui.call("POST", "/api/tickets/inspect", {"ticket": "garbage"})
    assert status == 400 and answer["error"].startswith("this ticket is damaged")
    status, info = await ui.call(
        "POST", "/api/tickets/inspect", {"ticket": ui.service.running_node.transport.ticket}
    )
    assert status == 200 and info["is_self"] is True
    assert info["endpoint_id"] == ui.service.running_node.endpoint_id
    assert any(a.startswith("127.0.0.1:") for a in info["addresses"])


# --- sending again, to several devices, to devices off the LAN ----------------------------


def is_open(ui: Ui, prompt_id: str) -> bool:
    return any(p.id == prompt_id for p in ui.service.prompts.pending())


async def type_the_code(sender: Ui, receiver: Ui, record_id: str) -> None:
    """Type the code the receiver shows this sender into the send's code prompt."""
    asked = await sender.wait_for(CodePromptEvent, lambda e: e.transfer == record_id)
    sender_id = sender.service.running_node.endpoint_id
    shown = await receiver.wait_for(
        CodeShownEvent, lambda e: e.peer_id == sender_id and is_open(receiver, e.prompt_id)
    )
    status, _ = await sender.call("POST", f"/api/prompts/{asked.prompt_id}", {"code": shown.code})
    assert status == 200


async def accept_the_offer(receiver: Ui) -> OfferPromptEvent:
    offer = await receiver.wait_for(OfferPromptEvent, lambda e: is_open(receiver, e.prompt_id))
    status, _ = await receiver.call("POST", f"/api/prompts/{offer.prompt_id}", {"accept": True})
    assert status == 200
    return offer


async def pair(sender: Ui, receiver: Ui, to: str, path: Path) -> None:
    """Send ``path`` to ``to`` (the receiver's ticket, as typed), code and accept."""
    status, answer = await sender.call("POST", "/api/send", {"to": to, "paths": [str(path)]})
    assert status == 202, answer
    record_id = answer["transfer"]["id"]
    await type_the_code(sender, receiver, record_id)
    await accept_the_offer(receiver)
    await sender.transfer_done(record_id)


def wrapped(ticket: str, width: int = 30) -> str:
    """A ticket as copied from a terminal that wrapped it (and some space around)."""
    return "  " + "\n".join(ticket[i:i + width] for i in range(0, len(ticket), width)) + " \n"


def test_what_is_typed_in_the_target_box() -> None:
    ticket = ticket_for(public_id(generate_secret_key()), ["127.0.0.1:4000"])
    assert pasted(wrapped(ticket)) == ticket  # line breaks of a wrapped terminal
    assert pasted(f"  {ticket[:40]} {ticket[40:]}  ") == ticket
    assert pasted("  Bob's laptop \n") == "Bob's laptop"  # names keep their spaces
    assert pasted(" endpoint laptop ") == "endpoint laptop"  # short: a name, not a ticket
    assert pasted(" 192.168.1.5:4000 ") == "192.168.1.5:4000"


def test_a_remembered_ticket_adds_the_addresses_last_reached() -> None:
    peer = public_id(generate_secret_key())
    other = public_id(generate_secret_key())
    ticket = ticket_for(peer, ["10.0.0.5:4000"])

    def pairing(addresses: tuple[str, ...], ticket: str = "") -> Pairing:
        return Pairing(peer, "bob", 0.0, 1e12, addresses, ticket, 1.0)

    dial = remembered_ticket(pairing(("192.168.1.9:4000", "[fd00::9]:4000"), ticket))
    assert dial is not None
    assert set(parse_ticket(dial).direct_addresses()) == {
        "192.168.1.9:4000", "[fd00::9]:4000", "10.0.0.5:4000"
    }
    assert remembered_ticket(pairing((), ticket)) == ticket
    # A ticket that is damaged, or names another device, is not dialed: the addresses are.
    for bad in ("endpointdamaged", ticket_for(other, ["10.0.0.7:1"])):
        dial = remembered_ticket(pairing(("192.168.1.9:4000",), bad))
        assert dial is not None and str(parse_ticket(dial).id()) == peer
        assert list(parse_ticket(dial).direct_addresses()) == ["192.168.1.9:4000"]
    assert remembered_ticket(pairing(())) is None  # never reached
    assert remembered_ticket(pairing(("not an address",))) is None


async def test_a_trusted_device_off_the_lan_is_sent_to_where_it_was_last_reached(
    start_ui: StartUi,
) -> None:
    """These apps do not announce on the LAN: once paired by a ticket (pasted as a wrapped
    terminal shows it), a device is sent to by its ID from the Devices list."""
    alice, bob = await start_ui("alice"), await start_ui("bob")
    note = alice.home / "note.txt"
    note.write_text("hello\n")
    bob_node = bob.service.running_node
    status, answer = await alice.call(
        "POST", "/api/send", {"device": bob_node.endpoint_id, "paths": [str(note)]}
    )
    assert status == 404 and "ticket" in answer["error"]  # never reached: no way there

    pasted = wrapped(bob_node.transport.ticket)
    status, info = await alice.call("POST", "/api/tickets/inspect", {"ticket": pasted})
    assert status == 200 and info["endpoint_id"] == bob_node.endpoint_id
    await pair(alice, bob, pasted, note)
    _, devices = await alice.call("GET", "/api/devices")
    [trusted] = devices["trusted"]
    assert trusted["endpoint_id"] == bob_node.endpoint_id
    assert (trusted["online"], trusted["reachable"]) == (False, True)
    assert trusted["addresses"][0] in bob_node.transport.addresses
    assert trusted["reached_at"] > 0
    [stored] = alice.service.running_node.pairings.list()
    assert stored.ticket == bob_node.transport.ticket  # the ticket that reached it

    (bob.downloads / "note.txt").unlink()
    status, answer = await alice.call(
        "POST", "/api/send", {"device": bob_node.endpoint_id, "paths": [str(note)]}
    )
    assert status == 202, answer
    assert answer["transfer"]["peer_name"] == "bob"
    offer = await accept_the_offer(bob)
    assert offer.verified == "pairing"  # no code: the same device, trusted
    sent = await alice.transfer_done(answer["transfer"]["id"])
    assert sent.verified == "pairing"
    assert (bob.downloads / "note.txt").read_text() == "hello\n"


async def test_a_send_to_a_trusted_device_that_is_away_waits_in_the_outbox_until_cancelled(
    start_ui: StartUi,
) -> None:
    """Bob is off: the send waits on a queued card (saved in the outbox file), a restart of
    Alice's node neither waits for it nor ends it, and Cancel takes it out for good."""
    alice, bob = await start_ui("alice"), await start_ui("bob")
    note = alice.home / "note.txt"
    note.write_text("hello\n")
    await pair(alice, bob, bob.service.running_node.transport.ticket, note)
    bob_id = bob.service.running_node.endpoint_id
    await bob.close()
    saved = alice.service.outbox.file.path

    status, answer = await alice.call("POST", "/api/send", {"device": bob_id, "paths": [str(note)]})
    assert status == 202, answer
    card = answer["transfer"]
    assert (card["state"], card["peer_name"], card["names"]) == ("queued", "bob", ["note.txt"])
    await wait_until(saved.exists, what="the outbox file")
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    record = alice.service.board.get(card["id"])
    assert record is not None
    _, wan = await alice.call("GET", "/api/wan")
    assert wan["connections"] == []  # waiting: no connection to show
    status, _ = await alice.call("PUT", "/api/settings", {"device_name": "alice 2"})
    assert status == 200  # a queued send is no running transfer: the node restarts
    assert record.state is SessionState.QUEUED and alice.service.outbox.holds(record.id)

    # More sends than the outbox holds are refused before any starts.
    alice.service.outbox.room = lambda: 0  # type: ignore[method-assign]
    status, answer = await alice.call("POST", "/api/send", {"device": bob_id, "paths": [str(note)]})
    assert status == 409 and "wait for devices that are away" in answer["error"]

    status, answer = await alice.call("POST", f"/api/transfers/{record.id}/cancel")
    assert status == 200
    cancelled = answer["transfer"]
    assert (cancelled["state"], cancelled["cancelled_by"]) == ("cancelled", "local")
    assert cancelled["can_retry"] is True
    assert not alice.service.outbox.holds(record.id)
    await wait_until(lambda: not saved.exists(), what="the emptied outbox file to go")


async def test_one_send_to_two_devices_is_a_session_and_a_card_each(start_ui: StartUi) -> None:
    alice, bob, carol = await start_ui("alice"), await start_ui("bob"), await start_ui("carol")
    folder = alice.home / "Album"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha\n")
    (folder / "sub" / "b.bin").write_bytes(os.urandom(300 * KiB + 5))
    first = alice.home / "first.txt"
    first.write_text("hi")
    for receiver in (bob, carol):
        await pair(alice, receiver, receiver.service.running_node.transport.ticket, first)
        await receiver.call("PUT", "/api/settings", {"auto_accept_trusted": True})
    bob_id = bob.service.running_node.endpoint_id
    carol_id = carol.service.running_node.endpoint_id

    # One bad target among good ones: nothing starts.
    before = len(alice.service.board.snapshots())
    status, answer = await alice.call("POST", "/api/send", {
        "devices": [bob_id, carol_id], "to": "endpoint" + "a" * 30, "paths": [str(folder)],
    })
    assert status == 400 and answer["error"]
    assert len(alice.service.board.snapshots()) == before

    status, answer = await alice.call("POST", "/api/send", {
        "devices": [bob_id, carol_id, bob_id], "paths": [str(folder)],  # bob once
    })
    assert status == 202, answer
    cards = answer["transfers"]
    assert [c["peer_name"] for c in cards] == ["bob", "carol"]
    assert answer["transfer"] == cards[0] and cards[0]["id"] != cards[1]["id"]
    for card in cards:
        await alice.transfer_done(card["id"])
    assert_same_tree(folder, bob.downloads / "Album")
    assert_same_tree(folder, carol.downloads / "Album")


async def test_a_text_goes_to_a_device_asked_by_its_first_line_and_stays_for_new_tabs(
    start_ui: StartUi,
) -> None:
    alice, bob = await start_ui("alice"), await start_ui("bob")
    (alice.home / "f.txt").write_text("x")
    ticket = bob.service.running_node.transport.ticket
    for body, why in [
        ({"to": ticket, "text": "hi", "paths": [str(alice.home / "f.txt")]}, "either a text"),
        ({"to": ticket, "text": "x" * (MAX_TEXT_BYTES + 1)}, "a text message holds"),
        ({"to": ticket, "text": "  "}, "the text is empty"),
        ({"to": ticket, "text": ["hi"]}, "text: text"),
    ]:
        status, answer = await alice.call("POST", "/api/send", body)
        assert status == 400 and why in answer["error"], (body, answer)
    assert alice.service.board.snapshots() == []

    message = "door code 4711\nsee you at 8"
    status, answer = await alice.call("POST", "/api/send", {"to": ticket, "text": message})
    assert status == 202, answer
    card = answer["transfer"]
    assert (card["text"], card["names"], card["folder"]) == (True, ["door code 4711…"], "")
    await type_the_code(alice, bob, card["id"])
    offer = await accept_the_offer(bob)
    assert (offer.text, offer.preview, offer.files, offer.sender) == (
        True, "door code 4711…", 0, "alice"
    )
    sent = await alice.transfer_done(card["id"])
    assert sent.text and sent.bytes_total == len(message.encode())
    received = await bob.transfer_done()
    assert (received.text, received.names, received.folder) == (True, ["door code 4711…"], "")
    texts = bob.service.state()["texts"]
    assert [(t["from"], t["text"], t["via"]) for t in texts] == [
        ("alice", message, "p2p-transfer")
    ]
    assert not bob.downloads.exists() or not any(bob.downloads.iterdir())


async def test_retry_sends_a_cancelled_send_again_with_its_staged_files(
    start_ui: StartUi,
) -> None:
    alice, bob = await start_ui("alice"), await start_ui("bob")
    picked = alice.home / "picked.txt"
    picked.write_text("picked\n")
    _, answer = await alice.call("POST", "/api/staging")
    batch = answer["batch"]
    async with alice.http.put(
        f"{alice.origin}/api/staging/{batch}/files", params={"path": "dropped.bin"},
        data=b"dropped", headers={"Origin": alice.origin},
    ) as response:
        assert response.status == 201
    staging = alice.root / "config" / "staging" / batch
    ticket = bob.service.running_node.transport.ticket
    status, answer = await alice.call(
        "POST", "/api/send", {"to": ticket, "paths": [str(picked)], "staging": batch}
    )
    first_id = answer["transfer"]["id"]
    assert answer["transfer"]["can_retry"] is False  # running
    await alice.wait_for(CodePromptEvent, lambda e: e.transfer == first_id)
    await alice.call("POST", f"/api/transfers/{first_id}/cancel")
    cancelled = await alice.transfer_done(first_id, "cancelled")
    assert cancelled.can_retry is True
    await asyncio.gather(*alice.service._background)
    assert (staging / "dropped.bin").read_bytes() == b"dropped"  # kept for the retry
    status, answer = await alice.call("DELETE", f"/api/staging/{batch}")
    assert status == 409

    status, answer = await alice.call("POST", f"/api/transfers/{first_id}/retry")
    assert status == 202, answer
    retry_id = answer["transfer"]["id"]
    assert retry_id != first_id and answer["transfer"]["retry_of"] == first_id
    assert answer["transfer"]["peer_id"] == bob.service.running_node.endpoint_id
    old = alice.service.board.get(first_id)
    assert old is not None and old.retried_as == retry_id and not old.can_retry
    status, answer = await alice.call("POST", f"/api/transfers/{first_id}/retry")
    assert status == 409  # once

    await type_the_code(alice, bob, retry_id)
    await accept_the_offer(bob)
    done = await alice.transfer_done(retry_id)
    assert done.can_retry is False
    assert (bob.downloads / "picked.txt").read_text() == "picked\n"
    assert (bob.downloads / "dropped.bin").read_bytes() == b"dropped"
    await asyncio.gather(*alice.service._background)
    assert not staging.exists()  # sent: the staged copy is gone
    status, _ = await alice.call("POST", f"/api/transfers/{retry_id}/retry")
    assert status == 409  # done: nothing to retry
    received = bob.service.board.snapshots()[-1]
    status, _ = await bob.call("POST", f"/api/transfers/{received.id}/retry")
    assert status == 409  # a receive is retried by its sender
    status, _ = await alice.call("POST", "/api/transfers/nope/retry")
    assert status == 404


async def test_a_staged_batch_goes_when_its_failed_card_leaves_the_board(
    start_ui: StartUi,
) -> None:
    ui = await start_ui()
    ui.service.board._keep_finished = 0  # every finished card leaves at once
    _, answer = await ui.call("POST", "/api/staging")
    batch = answer["batch"]
    async with ui.http.put(
        f"{ui.origin}/api/staging/{batch}/files", params={"path": "x.bin"}, data=b"x",
        headers={"Origin": ui.origin},
    ) as response:
        assert response.status == 201
    status, answer = await ui.call("POST", "/api/send", {"to": "127.0.0.1:9", "staging": batch})
    assert status == 202
    await ui.transfer_done(answer["transfer"]["id"], "failed")
    await wait_until(
        lambda: not (ui.root / "config" / "staging" / batch).exists(), WAIT, every=0.05,
        what="the staged batch to go",
    )
    status, _ = await ui.call("POST", f"/api/transfers/{answer['transfer']['id']}/retry")
    assert status == 404  # the card is gone


async def _body(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_staging_writes_drops_through_the_file_writer(tmp_path: Path) -> None:
    """Each drop takes its own path in the batch or fails leaving nothing: a second of one
    path, a short or long body, a symlinked folder on the way; ``x.part`` (a browser's
    unfinished download) keeps ``x`` from nothing."""
    staging = Staging(tmp_path)
    batch = staging.create()
    folder = staging.folder(batch)
    assert await staging.write(batch, "Downloads/x.part", 7, _body(b"partial")) == (
        "Downloads/x.part"
    )
    assert await staging.write(batch, "Downloads/x", 5, _body(b"who", b"le")) == "Downloads/x"
    with pytest.raises(StagingError, match="dropped twice"):
        await staging.write(batch, "Downloads/x", 1, _body(b"y"))
    with pytest.raises(StagingError, match="ended early"):
        await staging.write(batch, "short.bin", 10, _body(b"abc"))
    with pytest.raises(StagingError, match="more bytes than announced"):
        await staging.write(batch, "long.bin", 2, _body(b"abc"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "link").symlink_to(outside)
    with pytest.raises(StagingError, match="not a folder"):
        await staging.write(batch, "link/y.bin", 1, _body(b"y"))
    assert list(outside.iterdir()) == []
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "Downloads", "Downloads/x", "Downloads/x.part", "link",
    ]
    assert (folder / "Downloads" / "x").read_bytes() == b"whole"
    assert stat.S_IMODE((folder / "Downloads" / "x").stat().st_mode) == 0o600


async def test_check_network_runs_the_doctor_with_the_apps_node(start_ui: StartUi) -> None:
    ui = await start_ui()
    status, answer = await ui.call("POST", "/api/doctor")
    assert status == 200, answer
    checks = answer["checks"]
    names = [c["name"] for c in checks]
    assert {"network", "multicast", "devices", "ports", "firewall", "download folder",
            "config"} <= set(names)
    assert "relay" not in names  # the app's relay is off
    for check in checks:
        assert set(check) == {"name", "status", "detail", "advice"}
        assert check["status"] in ("ok", "warn", "fail") and check["detail"]
    [folder] = [c for c in checks if c["name"] == "download folder"]
    assert folder["status"] == "ok" and str(ui.downloads) in folder["detail"]
    status, _ = await ui.call("POST", "/api/doctor", headers={"Origin": "http://evil.example"})
    assert status == 403


# --- live events --------------------------------------------------------------------------


async def test_the_websocket_starts_with_a_snapshot_then_streams_events(start_ui: StartUi) -> None:
    ui = await start_ui()
    async with ui.http.ws_connect(ui.origin + "/ws", headers={"Origin": ui.origin}) as ws:
        first = json.loads((await ws.receive(timeout=5)).data)
        assert first["event"] == "snapshot"
        assert first["node"]["endpoint_id"] == ui.service.running_node.endpoint_id
        assert set(first) >= {"settings", "transfers", "prompts", "share", "node"}
        await ui.call("PUT", "/api/settings", {"parallel_files": 3})
        second = json.loads((await ws.receive(timeout=5)).data)
        assert second == {"event": "settings", **ui.service.settings.to_dict()}
        assert second["parallel_files"] == 3


# --- share --------------------------------------------------------------------------------


async def test_a_browser_upload_through_the_share_is_asked_in_the_ui(start_ui: StartUi) -> None:
    ui = await start_ui()
    (ui.home / "offer.pdf").write_bytes(b"%PDF" + os.urandom(1000))
    offered = {"paths": [str(ui.home / "offer.pdf")]}
    status, state = await ui.call("PUT", "/api/share/files", offered)
    assert status == 200 and state["running"] is False
    status, state = await ui.call("POST", "/api/share/start")
    assert status == 200 and state["running"] is True
    assert state["files"] == [str((ui.home / "offer.pdf").resolve())]
    url = state["url"]
    async with ui.http.get(ui.origin + "/api/share/qr.svg") as response:
        assert response.status == 200 and response.content_type == "image/svg+xml"
    async with ui.http.get(url + "/api/info") as response:
        info = await response.json()
    assert [f["name"] for f in info["files"]] == ["offer.pdf"]

    share_origin = url.rsplit("/", 1)[0]
    data = os.urandom(20 * KiB)
    async with aiohttp.ClientSession() as browser, browser.ws_connect(
        url + "/ws", headers={"Origin": share_origin}
    ) as ws:
        await ws.send_str(json.dumps(
            {"type": "file_info", "file_name": "phone photo.jpg", "file_size": len(data)}
        ))
        prompt = await ui.wait_for(UploadPromptEvent)
        assert prompt.file_name == "phone photo.jpg" and prompt.file_size == len(data)
        _, pending = await ui.call("GET", "/api/prompts")
        assert [p["prompt_id"] for p in pending["prompts"]] == [prompt.prompt_id]
        status, _ = await ui.call("POST", f"/api/prompts/{prompt.prompt_id}", {"accept": True})
        assert status == 200
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "accepted"
        await ws.send_bytes(data)
        while (message := json.loads((await ws.receive(timeout=5)).data))["type"] == "progress":
            pass
        assert message["type"] == "complete"
    assert (ui.downloads / "phone photo.jpg").read_bytes() == data

    status, state = await ui.call("POST", "/api/share/stop")
    assert status == 200 and state["running"] is False and state["url"] is None
    status, _ = await ui.call("GET", "/api/share/qr.svg")
    assert status == 404


async def test_answers_to_unknown_prompts_get_410(start_ui: StartUi) -> None:
    ui = await start_ui()
    unknown = "/api/prompts/0123456789abcdef01234567"
    status, answer = await ui.call("POST", unknown, {"accept": True})
    assert status == 410 and "no longer open" in answer["error"]
    status, answer = await ui.call("POST", "/api/prompts/x", "not an object")
    assert status in (400, 410)


# --- lock-outs (issue 23): the user lets a locked-out device try a code again --------------

#: A key that is locked out in these tests.
LOCKED = "ab" * 32


async def test_a_locked_out_device_is_listed_and_can_be_let_in_again(start_ui: StartUi) -> None:
    bob = await start_ui("bob")
    limiter = AttemptLimiter(bob.root / "config")
    now = time.time()  # the lock-out is read at the real time
    for i in range(MAX_UNANSWERED_CODES):  # hellos that left their codes unanswered
        limiter.begin(LOCKED, "10.0.0.9", now=now + i * 0.01)
        limiter.unanswered(LOCKED, started=now + i * 0.01, now=now + i * 0.01)
    _, devices = await bob.call("GET", "/api/devices")
    [locked] = devices["locked_out"]
    assert (locked["endpoint_id"], locked["short_id"], locked["cause"]) == (
        LOCKED, LOCKED[:12], "unanswered"
    )
    assert 0 < locked["seconds"] <= 600
    attempts = bob.service.running_node.inbox._services.attempts  # the node's own
    assert attempts.refusal(LOCKED, "10.0.0.9") is not None
    status, answer = await bob.call("POST", f"/api/lockouts/{LOCKED}/unlock")
    assert (status, answer) == (200, {"unlocked": True})
    assert (await bob.call("GET", "/api/devices"))[1]["locked_out"] == []
    assert attempts.refusal(LOCKED, "10.0.0.9") is None  # read from the file
    status, _ = await bob.call("POST", f"/api/lockouts/{'cd' * 32}/unlock")
    assert status == 404


# --- send and receive with a code ------------------------------------------------------------


async def test_a_code_sent_from_one_app_is_received_by_another(
    start_ui: StartUi, mailbox: MailboxServer
) -> None:
    alice = await start_ui("alice", mailbox=mailbox.url)
    bob = await start_ui("bob", mailbox=mailbox.url)
    photo = alice.home / "photo.jpg"
    photo.write_bytes(os.urandom(300 * KiB))

    status, answer = await alice.call("POST", "/api/send-by-code", {"paths": [str(photo)]})
    assert status == 202, answer
    record_id = answer["transfer"]["id"]
    assert answer["transfer"]["peer_name"] == "" and answer["transfer"]["code"] == ""
    status, _ = await alice.call("GET", f"/api/transfers/{record_id}/qr.svg")
    assert status == 404  # no code yet
    coded = await alice.wait_for(
        TransferUpdateEvent, lambda e: e.transfer.id == record_id and bool(e.transfer.code)
    )
    code = coded.transfer.code
    assert re.fullmatch(r"\d+-[a-z]+-[a-z]+", code)
    status, svg = await alice.call("GET", f"/api/transfers/{record_id}/qr.svg")
    assert status == 200 and svg.startswith("<svg")

    # Typed as people type it: capitals, spaces for dashes.
    typed = " " + code.replace("-", " ").upper() + " "
    status, answer = await bob.call("POST", "/api/receive-by-code", {"code": typed})
    assert status == 202 and answer == {"code": code}
    offer = await bob.wait_for(OfferPromptEvent)
    assert offer.sender == "alice" and offer.files == 1
    assert [e.step for e in bob.of(CodeReceiveEvent)] == ["looking", "met"]
    status, _ = await bob.call("POST", f"/api/prompts/{offer.prompt_id}", {"accept": True})
    assert status == 200

    sent = await alice.transfer_done(record_id)
    received = await bob.transfer_done()
    assert sent.peer_name == "bob" and sent.code == code
    assert received.peer_name == "alice" and received.folder == str(bob.downloads.resolve())
    assert (bob.downloads / "photo.jpg").read_bytes() == photo.read_bytes()
    # The contact by code made no pairing, and its throwaway identity is gone.
    assert alice.service.running_node.pairings.list() == []
    assert bob.service.running_node.pairings.list() == []
    code_nodes = bob.root / "config" / CODE_NODES_DIR
    await wait_until(
        lambda: not any(code_nodes.iterdir()), 10,
        what=lambda: f"the code's throwaway identity removed: {list(code_nodes.iterdir())}",
    )


async def test_a_code_send_cancelled_while_it_waits_ends_cancelled_and_retries_with_a_new_code(
    start_ui: StartUi, mailbox: MailboxServer
) -> None:
    alice = await start_ui("alice", mailbox=mailbox.url)
    status, answer = await alice.call("POST", "/api/send-by-code", {"text": "hello"})
    assert status == 202, answer
    record_id = answer["transfer"]["id"]
    first = await alice.wait_for(
        TransferUpdateEvent, lambda e: e.transfer.id == record_id and bool(e.transfer.code)
    )
    status, _ = await alice.call("POST", f"/api/transfers/{record_id}/cancel")
    assert status == 200
    cancelled = await alice.transfer_done(record_id, "cancelled")
    assert cancelled.can_retry
    status, answer = await alice.call("POST", f"/api/transfers/{record_id}/retry")
    assert status == 202, answer
    retry_id = answer["transfer"]["id"]
    second = await alice.wait_for(
        TransferUpdateEvent, lambda e: e.transfer.id == retry_id and bool(e.transfer.code)
    )
    assert second.transfer.code != first.transfer.code
    assert second.transfer.names == ["hello"] and second.transfer.text


async def test_receive_by_code_refuses_what_cannot_be_a_code_and_says_a_wrong_one(
    start_ui: StartUi, mailbox: MailboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A code's sender may come later: the app waits for it APP_CODE_WAIT (here shorter).
    monkeypatch.setattr(code_receive, "APP_CODE_WAIT", 2.0)
    bob = await start_ui("bob", mailbox=mailbox.url)
    for body in ({"code": "guitarist-revenge"}, {"code": ""}, {"code": 7}, {}):
        status, answer = await bob.call("POST", "/api/receive-by-code", body)
        assert status == 400, (body, answer)
        assert "code" in answer["error"]
    status, answer = await bob.call("POST", "/api/receive-by-code", {"code": "99-nobody-sends"})
    assert status == 202
    failed = await bob.wait_for(CodeReceiveEvent, lambda e: e.step == "failed")
    assert failed.code == "99-nobody-sends" and failed.message
    assert failed.message.startswith("no one sent with the code 99-nobody-sends within 2 s")
    assert bob.service.board.snapshots() == []  # no card: nothing was offered


async def test_send_by_code_checks_what_it_sends(start_ui: StartUi) -> None:
    alice = await start_ui("alice")
    for body, status_wanted in [
        ({}, 400), ({"paths": "x"}, 400), ({"text": ""}, 400),
        ({"paths": ["/etc/passwd"]}, 403), ({"text": "a", "paths": [str(alice.home)]}, 400),
    ]:
        status, answer = await alice.call("POST", "/api/send-by-code", body)
        assert status == status_wanted, (body, answer)
    assert alice.service.board.snapshots() == []


async def test_relays_are_on_by_default_and_the_mailbox_is_a_checked_setting(
    start_ui: StartUi, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert defaults("x").relay == "default" and defaults("x").mailbox == ""
    monkeypatch.setenv(MAILBOX_ENV, "ws://127.0.0.1:1/v1")
    assert defaults("x").mailbox_url == "ws://127.0.0.1:1/v1"
    monkeypatch.delenv(MAILBOX_ENV)
    assert defaults("x").mailbox_url == DEFAULT_MAILBOX
    alice = await start_ui("alice")
    for wrong in ("http://mailbox", 4, "relay.magic-wormhole.io"):
        status, answer = await alice.call("PUT", "/api/settings", {"mailbox": wrong})
        assert status == 400 and "mailbox" in answer["error"]
    status, settings = await alice.call("PUT", "/api/settings", {"mailbox": " wss://m.example/v1 "})
    assert status == 200 and settings["mailbox"] == "wss://m.example/v1"
    assert alice.service.settings.mailbox_url == "wss://m.example/v1"


async def test_a_fresh_app_with_relays_on_receives_at_once_without_internet(
    tmp_path: Path,
) -> None:
    """No settings saved: the relay is on, and out of reach here (loopback only); the
    node receives from the start, the relay is tried in the background."""
    config = tmp_path / "config"
    service = AppService(AppOptions(
        config_dir=config, device_name="fresh", bind_addr="127.0.0.1",
        share_bind="127.0.0.1", browse_roots=(tmp_path,), discovery=False,
    ))
    started = asyncio.get_running_loop().time()
    try:
        await service.start()
        assert service.settings.relay == "default"
        assert service.nodes.state == "running"
        assert asyncio.get_running_loop().time() - started < RELAY_ONLINE_TIMEOUT
    finally:
        await service.close()


async def test_app_options_given_on_the_command_line_replace_the_saved_settings(
    tmp_path: Path,
) -> None:
    service = AppService(AppOptions(
        config_dir=tmp_path / "config", device_name="x", bind_addr="127.0.0.1",
        share_bind="127.0.0.1", discovery=False,
        forced_settings={"relay": "off", "mailbox": "ws://127.0.0.1:9/v1"},
    ))
    try:
        await service.start()
        assert service.settings.relay == "off"
        assert service.running_node.config.relay == "off"
        saved = SettingsStore(tmp_path / "config").load(defaults("x"))
        assert saved.mailbox == "ws://127.0.0.1:9/v1"
    finally:
        await service.close()
    refused = AppService(AppOptions(
        config_dir=tmp_path / "other", device_name="x", discovery=False,
        forced_settings={"mailbox": "http://no"},
    ))
    with pytest.raises(AppError, match="mailbox"):
        await refused.start()
    await refused.close()
