"""A real Chromium on the share page: upload through the file input, download, check every byte."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from conftest import requires_chromium
from e2e.share_cli import ShareProcess, share_argv
from p2p_transfer.events import ShareUploadProgressEvent
from p2p_transfer.limits import SHARE_MAX_CONNECTIONS, KiB, MiB
from p2p_transfer.share import ShareConfig, ShareServer, UploadRequest, accept_all
from share_floods import SlowFlood
from waiting import hold_for

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
#: Milliseconds the page may take to show an outcome.
UI_TIMEOUT = 30_000
#: Seconds to wait for the CLI's first JSON line.
START_TIMEOUT = 30.0
#: The big upload of issue 5's "Done when": a real Chromium sends 200 MiB through the page.
BIG_UPLOAD_SIZE = 200 * MiB
#: Milliseconds the page may take to upload it (a few seconds on loopback).
BIG_UPLOAD_TIMEOUT = 120_000
#: Block in which the big file is generated (never whole in memory).
WRITE_BLOCK = 4 * MiB

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_random(path: Path, size: int) -> str:
    """Fill ``path`` with ``size`` random bytes, block by block; return their BLAKE3."""
    digest = blake3()
    with path.open("wb") as out:
        for offset in range(0, size, WRITE_BLOCK):
            block = os.urandom(min(WRITE_BLOCK, size - offset))
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def blake3_of(path: Path) -> str:
    """BLAKE3 of a file, memory-mapped (a 200 MiB upload is not read into memory)."""
    digest = blake3()
    digest.update_mmap(path)
    return digest.hexdigest()


@pytest.fixture
def chromium() -> Iterator[Any]:
    executable = requires_chromium()
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser: Any, url: str, viewport: dict[str, int], **options: Any) -> tuple[Any, list]:
    """A fresh page on ``url``, collecting console errors (CSP violations show up there)."""
    context = browser.new_context(viewport=viewport, accept_downloads=True, **options)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page, errors


def test_browser_uploads_two_files_and_downloads_a_file_and_a_folder(
    chromium: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    expect = playwright_sync.expect
    home, uploads, shared = tmp_path / "home", tmp_path / "uploads", tmp_path / "shared"
    home.mkdir()
    album = shared / "Album"
    (album / "2024").mkdir(parents=True)
    (album / "2024" / "img_001.jpg").write_bytes(os.urandom(1 * MiB + 5))
    (album / "readme.txt").write_text("holiday pictures\n")
    manual = shared / "Manual.pdf"
    manual.write_bytes(os.urandom(600 * KiB + 1))
    to_send = tmp_path / "to-send"
    to_send.mkdir()
    big, small = to_send / "video clip.mp4", to_send / "notes.txt"
    big_blake3 = write_random(big, BIG_UPLOAD_SIZE)
    small.write_bytes(os.urandom(200 * KiB))

    share = ShareProcess(share_argv(
        home, "--json", "--yes", "--bind", "127.0.0.1", "--dir", str(uploads),
        str(manual), str(album),
    ))
    try:
        url = share.wait_for("share_url")[0]["url"]
        page, errors = open_page(chromium, url, PHONE)
        expect(page.locator("#title")).to_have_text("Send files to Test laptop")
        expect(page.locator("#download-list li")).to_have_count(2)
        page.screenshot(path=str(artifacts_dir / "share-phone-empty.png"), full_page=True)

        page.set_input_files("#file-input", [str(big), str(small)])
        expect(page.locator("#send-button")).to_have_text("Send 2 files")
        page.click("#send-button")
        expect(page.locator('#upload-list .file[data-state="done"]')).to_have_count(
            2, timeout=BIG_UPLOAD_TIMEOUT
        )
        expect(page.locator("#upload-list .file-status").first).to_contain_text("Sent")
        completed = share.wait_for("share_upload_complete", 2)
        received = uploads / "video clip.mp4"
        assert received.stat().st_size == BIG_UPLOAD_SIZE
        assert blake3_of(received) == big_blake3
        assert {e["file_name"]: e["blake3"] for e in completed}["video clip.mp4"] == big_blake3
        assert (uploads / "notes.txt").read_bytes() == small.read_bytes()
        assert sorted(p.name for p in uploads.iterdir()) == ["notes.txt", "video clip.mp4"]
        page.screenshot(path=str(artifacts_dir / "share-phone.png"), full_page=True)

        with page.expect_download() as file_download:
            page.get_by_role("link", name="Download Manual.pdf").click()
        saved = tmp_path / "got-manual.pdf"
        file_download.value.save_as(saved)
        assert file_download.value.suggested_filename == "Manual.pdf"
        assert sha256(saved.read_bytes()) == sha256(manual.read_bytes())

        with page.expect_download() as zip_download:
            page.get_by_role("link", name="Download zip of Album").click()
        saved_zip = tmp_path / "got-album.zip"
        zip_download.value.save_as(saved_zip)
        assert zip_download.value.suggested_filename == "Album.zip"
        archive = zipfile.ZipFile(io.BytesIO(saved_zip.read_bytes()))
        assert archive.testzip() is None
        image = album / "2024" / "img_001.jpg"
        assert archive.read("Album/2024/img_001.jpg") == image.read_bytes()
        assert archive.read("Album/readme.txt") == b"holiday pictures\n"
        assert errors == []

        desktop, desktop_errors = open_page(chromium, url, DESKTOP)
        expect(desktop.locator("#download-list li")).to_have_count(2)
        desktop.set_input_files("#file-input", [str(small)])
        desktop.click("#send-button")
        expect(desktop.locator('.file[data-state="done"]')).to_have_count(1, timeout=UI_TIMEOUT)
        assert (uploads / "notes (1).txt").read_bytes() == small.read_bytes()
        desktop.screenshot(path=str(artifacts_dir / "share-desktop.png"), full_page=True)
        assert desktop_errors == []

        dark, _ = open_page(chromium, url, PHONE, color_scheme="dark")
        expect(dark.locator("#download-list li")).to_have_count(2)
        dark.set_input_files("#file-input", [str(big), str(small)])
        dark.screenshot(path=str(artifacts_dir / "share-phone-dark.png"), full_page=True)
    finally:
        share.stop()


class ThreadedShare:
    """A ShareServer on its own event loop in a thread, for pages that need odd deadlines."""

    def __init__(self, config: ShareConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = ShareServer(config)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def test_page_says_clearly_when_a_file_is_declined_timed_out_or_failed(
    chromium: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    expect = playwright_sync.expect
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    files = {}
    for name in ["declined.txt", "slow.txt", "too-big.bin", "fine.txt"]:
        files[name] = tmp_path / name
        files[name].write_bytes(os.urandom(2 * KiB if name == "too-big.bin" else 100))

    async def decide(request: UploadRequest) -> bool | str:
        if request.file_name == "declined.txt":
            return "not from strangers"
        if request.file_name == "slow.txt":
            await hold_for(60)  # the host does not answer in time
        return True

    share = ThreadedShare(ShareConfig(
        upload_dir=uploads, decide=decide, bind="127.0.0.1", max_size=1536,
        answer_timeout=0.5, device_name="Test laptop",
    ))
    try:
        page, errors = open_page(chromium, share.server.url, DESKTOP)
        expect(page.locator("#limit-hint")).to_have_text("Up to 1.5 KiB per file")
        page.set_input_files("#file-input", [str(p) for p in files.values()])
        page.click("#send-button")
        rows = page.locator("#upload-list .file")
        expect(rows.nth(3)).to_have_attribute("data-state", "done", timeout=UI_TIMEOUT)
        expect(rows.nth(0)).to_have_attribute("data-state", "rejected")
        expect(rows.nth(0).locator(".file-status")).to_have_text(
            "Declined by the owner: not from strangers"
        )
        expect(rows.nth(1)).to_have_attribute("data-state", "timeout")
        expect(rows.nth(1).locator(".file-status")).to_contain_text("Timed out")
        expect(rows.nth(2)).to_have_attribute("data-state", "rejected")
        expect(rows.nth(2).locator(".file-status")).to_have_text(
            "The file is larger than this share's limit of 1.5 KiB."
        )
        assert sorted(p.name for p in uploads.iterdir()) == ["fine.txt"]
        page.screenshot(path=str(artifacts_dir / "share-desktop-outcomes.png"), full_page=True)
        assert errors == []
    finally:
        share.close()


def test_page_reports_a_connection_lost_midway(
    chromium: Any, tmp_path: Path
) -> None:
    expect = playwright_sync.expect
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(256 * MiB)  # sparse: big enough to still be sending when the host stops
    receiving = threading.Event()
    share = ThreadedShare(ShareConfig(upload_dir=uploads, decide=accept_all, bind="127.0.0.1"))
    share.server.bus.subscribe(
        lambda e: receiving.set() if isinstance(e, ShareUploadProgressEvent) else None
    )
    stopped = False
    try:
        page, _ = open_page(chromium, share.server.url, DESKTOP)
        page.set_input_files("#file-input", [str(big)])
        page.click("#send-button")
        assert receiving.wait(10)
        share.close()
        stopped = True
        row = page.locator("#upload-list .file")
        expect(row).to_have_attribute("data-state", "failed", timeout=UI_TIMEOUT)
        expect(row.locator(".file-status")).to_contain_text("Failed")
        assert list(uploads.iterdir()) == []
    finally:
        if not stopped:
            share.close()


def test_browser_uploads_onto_exfat_never_overwrite(
    chromium: Any, exfat: Path, tmp_path: Path
) -> None:
    """The share's upload folder on an exFAT stick (no hard links, ``?`` refused): a
    file and one whose name exFAT refuses arrive; a different file of a taken name
    arrives beside it as ``name (1).ext``; every byte as sent."""
    expect = playwright_sync.expect
    home = tmp_path / "home"
    home.mkdir()
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
    (first / "report.txt").write_bytes(os.urandom(300 * KiB))
    (first / "what?.txt").write_bytes(b"a question\n")
    (second / "report.txt").write_bytes(os.urandom(5 * KiB))
    share = ShareProcess(share_argv(
        home, "--json", "--yes", "--bind", "127.0.0.1", "--dir", str(exfat),
    ))
    try:
        url = share.wait_for("share_url")[0]["url"]
        page, errors = open_page(chromium, url, DESKTOP)
        page.set_input_files("#file-input", [str(first / "report.txt"), str(first / "what?.txt")])
        page.click("#send-button")
        expect(page.locator('#upload-list .file[data-state="done"]')).to_have_count(
            2, timeout=UI_TIMEOUT
        )
        page.set_input_files("#file-input", [str(second / "report.txt")])
        page.click("#send-button")
        expect(page.locator('#upload-list .file[data-state="done"]')).to_have_count(
            3, timeout=UI_TIMEOUT
        )
        completed = share.wait_for("share_upload_complete", 3)
        assert errors == []
    finally:
        share.stop()
    assert sorted(e["path"] for e in completed) == ["report (1).txt", "report.txt", "what_.txt"]
    assert sorted(p.name for p in exfat.iterdir()) == ["report (1).txt", "report.txt", "what_.txt"]
    assert (exfat / "report.txt").read_bytes() == (first / "report.txt").read_bytes()
    assert (exfat / "report (1).txt").read_bytes() == (second / "report.txt").read_bytes()
    assert (exfat / "what_.txt").read_bytes() == b"a question\n"


def test_page_loads_and_uploads_through_a_flood_of_slow_connections(
    chromium: Any, tmp_path: Path
) -> None:
    """100 connections from 5 addresses hold every slot of the share, each trickling a
    byte every 5 s and reopened when dropped: Chromium with the link loads the page and
    uploads a file all the same."""
    expect = playwright_sync.expect
    home, uploads = tmp_path / "home", tmp_path / "uploads"
    home.mkdir()
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(os.urandom(700 * KiB))
    share = ShareProcess(share_argv(
        home, "--json", "--yes", "--bind", "127.0.0.1", "--dir", str(uploads),
    ))
    try:
        url = share.wait_for("share_url")[0]["url"]
        port = int(url.split(":")[2].split("/")[0])
        addresses = [f"127.0.0.{n}" for n in range(2, 7)]
        with SlowFlood.in_thread(
            "127.0.0.1", port, addresses, SHARE_MAX_CONNECTIONS // len(addresses), 5.0
        ) as flood:
            page, errors = open_page(chromium, url, DESKTOP)
            expect(page.locator("#title")).to_have_text("Send files to Test laptop")
            page.set_input_files("#file-input", [str(photo)])
            page.click("#send-button")
            expect(page.locator('#upload-list .file[data-state="done"]')).to_have_count(
                1, timeout=UI_TIMEOUT
            )
            assert errors == []
            assert flood.dropped > 0  # the flood held the slots, and some were taken back
        assert (uploads / "photo.jpg").read_bytes() == photo.read_bytes()
    finally:
        share.stop()
