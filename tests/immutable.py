"""A folder that even root cannot write into: ``chattr +i`` (permission bits stop no root)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def immutable_folder(path: Path) -> Iterator[Path]:
    """``path`` made and set immutable for the block; skips where chattr cannot do it."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("chattr") is None:
        pytest.skip("no chattr here")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
