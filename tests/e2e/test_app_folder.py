"""The app says at start when its download folder cannot take files (issue 23 item 5): to
the terminal and every open tab, as a warning; offers of files are then declined with
that reason (the same check as ``receive``, tested in test_terminal_folder.py)."""

from __future__ import annotations

from pathlib import Path

from e2e.apps import AppProcess
from immutable import immutable_folder
from p2p_transfer.app.settings import Settings, SettingsStore


def test_the_app_warns_at_start_of_an_unwritable_download_folder(tmp_path: Path) -> None:
    config = tmp_path / "bob-config"
    config.mkdir(mode=0o700)
    with immutable_folder(tmp_path / "inbox") as inbox:
        SettingsStore(config).save(Settings(device_name="bob", download_dir=str(inbox)))
        app = AppProcess(tmp_path, "bob", "--port", "0")
        try:
            warning = app.wait_for("log", where=lambda e: e["source"] == "app")
        finally:
            app.stop()
    assert warning == {
        "event": "log", "level": "warning", "source": "app",
        "message": f"cannot save received files into {inbox} (Operation not permitted): "
                   "offers of files are declined until it is writable; choose another "
                   "folder in Settings or fix this one",
    }
