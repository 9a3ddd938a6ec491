"""The help a person gets from the real command: suggestions for what was mistyped (never
an old spelling kept as a hidden alias), short descriptions that are not cut, and the
``--bind`` form doctor's advice names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "p2p_transfer", "--config-dir", str(tmp_path / "home"), *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )


def test_a_mistyped_command_gets_a_did_you_mean(tmp_path: Path) -> None:
    done = _run(tmp_path, "recieve")
    assert done.returncode == 2
    assert "No such command 'recieve'. Did you mean 'receive'?" in done.stderr
    unknown = _run(tmp_path, "frobnicate")
    assert unknown.returncode == 2 and "Did you mean" not in unknown.stderr


def test_a_mistyped_option_never_suggests_a_hidden_alias(tmp_path: Path) -> None:
    done = _run(tmp_path, "receive", "--directory", "x")
    assert done.returncode == 2
    assert "No such option '--directory'. Did you mean '--dir'?" in done.stderr
    assert "--no-discovery" not in done.stderr
    # The alias itself still works: it is only never offered.
    assert "--no-discovery" not in _run(tmp_path, "receive", "--help").stdout


def test_pair_remove_is_described_whole(tmp_path: Path) -> None:
    listing = _run(tmp_path, "pair", "--help").stdout
    line = next(x for x in listing.splitlines() if x.strip().startswith("remove"))
    assert line.split(None, 1)[1] == "Forget a device (its ID, or a unique prefix of it)."
    commands = listing.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    assert "..." not in commands  # no description cut short


def test_receive_help_shows_a_fixed_port_as_doctor_advises(tmp_path: Path) -> None:
    shown = " ".join(_run(tmp_path, "receive", "--help").stdout.split())
    assert "--bind 0.0.0.0:41641" in shown
