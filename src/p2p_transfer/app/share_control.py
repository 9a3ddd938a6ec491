"""The app's browser share: start, stop and choose what it offers; its uploads asked in the UI.

The share server itself is built by the Node (its uploads are node sessions);
this keeps the app's side: which files are offered, the fallback to 127.0.0.1
when the machine has no LAN address, and the upload prompts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_transfer.app.events import ShareStateEvent, UploadPromptEvent
from p2p_transfer.app.files import FileBrowser
from p2p_transfer.app.prompts import PromptBook, PromptGone
from p2p_transfer.errors import LocalFault
from p2p_transfer.events import Event
from p2p_transfer.limits import APP_MAX_SHARED_ITEMS, SHARE_ANSWER_TIMEOUT
from p2p_transfer.share import ShareConfig, UploadRequest
from p2p_transfer.share.address import NoLanAddressError
from p2p_transfer.share.config import Decision

if TYPE_CHECKING:
    from p2p_transfer.node import Node
    from p2p_transfer.share import ShareServer

#: Where the share listens when the machine has no LAN address (offline, or a test namespace).
SHARE_FALLBACK_BIND = "127.0.0.1"


class ShareRefused(LocalFault):
    """The share cannot do what was asked (too many items, a path not allowed, no port)."""


class ShareControl:
    """Runs (at most) one share server for the app."""

    def __init__(
        self,
        emit: Callable[[Event], None],
        prompts: PromptBook,
        files: FileBrowser,
        bind: str | None,
        umask: int,
    ) -> None:
        self._emit = emit
        self._prompts = prompts
        self._files = files
        self._bind = bind
        self._umask = umask
        self._server: ShareServer | None = None
        self._offered: list[Path] = []
        self._notice = ""
        self._lock = asyncio.Lock()
        #: Where uploads go and the name shown, as the settings say now.
        self.folder = Path()
        self.device_name = ""

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str | None:
        """The share link while the share runs."""
        return self._server.url if self._server is not None else None

    def state(self) -> ShareStateEvent:
        """Whether the share runs, its link, and what it offers."""
        return ShareStateEvent(
            running=self._server is not None,
            url=self.url,
            upload_dir=str(self.folder),
            files=[str(p) for p in self._offered],
            notice=self._notice,
        )

    def _checked(self, paths: list[str] | list[Path]) -> list[Path]:
        """The paths, each inside the browsable folders (else PathRefused: 403, or
        PathMissing: 404, as for browsing)."""
        if len(paths) > APP_MAX_SHARED_ITEMS:
            raise ShareRefused(f"at most {APP_MAX_SHARED_ITEMS} shared items")
        return list(dict.fromkeys(self._files.check(str(p)) for p in paths))

    async def set_files(self, node: Node, paths: list[str]) -> ShareStateEvent:
        """Choose what the share offers; a running share restarts (its link changes)."""
        offered = self._checked(paths)
        if self._server is not None:
            return await self.start(node, offered)
        self._offered = offered
        return self._announce()

    async def start(
        self, node: Node, paths: list[str] | list[Path] | None = None
    ) -> ShareStateEvent:
        """(Re)start the share: uploads go to the download folder, ``paths`` are offered.

        Without ``paths``, the files chosen before (``set_files``) are offered.
        """
        async with self._lock:
            offered = self._checked(paths) if paths is not None else list(self._offered)
            await self._stop_server()
            try:
                await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
                server = await self._listen(node, offered)
            except (OSError, ValueError) as exc:
                self._notice = f"cannot share: {exc}"
                self._announce()
                raise ShareRefused(self._notice) from None
            self._server, self._offered = server, offered
            return self._announce()

    async def restart(self, node: Node) -> None:
        """Start again on a new node (after a restart), if it was running."""
        if self._server is not None:
            self._server = None  # the old node stopped it
            await self.start(node)

    async def _listen(self, node: Node, offered: list[Path]) -> ShareServer:
        self._notice = ""
        for attempt in (self._bind, SHARE_FALLBACK_BIND):
            config = ShareConfig(
                upload_dir=self.folder,
                decide=self._decide_upload,
                bind=attempt,
                shared=offered,
                device_name=self.device_name,
                umask=self._umask,
            )
            try:
                return await node.open_share(config)
            except NoLanAddressError:
                self._notice = "No LAN address found: the link works on this computer only."
        raise OSError("no address to listen on")

    async def stop(self) -> ShareStateEvent:
        """Stop the share (open uploads are told the share went away)."""
        async with self._lock:
            await self._stop_server()
            self._notice = ""
            return self._announce()

    async def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
            for prompt in self._prompts.pending():
                if prompt.kind == "upload":
                    self._prompts.close(prompt.id, "share stopped")

    def _announce(self) -> ShareStateEvent:
        state = self.state()
        self._emit(state)
        return state

    async def _decide_upload(self, request: UploadRequest) -> Decision:
        """The share's question about one browser upload, asked in the UI."""
        prompt = self._prompts.open(
            "upload",
            lambda pid, deadline: UploadPromptEvent(
                pid, request.request_id, request.file_name, request.file_size, request.client,
                deadline, request.browser,
            ),
            SHARE_ANSWER_TIMEOUT,
        )
        try:
            return bool(await self._prompts.wait(prompt))
        except PromptGone:
            return "The owner is not answering right now."
