"""``pair unlock``: the receiving user lists the devices locked out after too many failed
codes and lets one try again, from the real command."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from p2p_transfer.limits import MAX_WRONG_CODES
from p2p_transfer.trust import AttemptLimiter

LOCKED = "3f2a9c" + "ab" * 29


def _pair(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2p_transfer", "--config-dir", str(home), "pair", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_pair_unlock_lists_and_lifts_a_lock_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    limiter = AttemptLimiter(home)
    now = time.time()
    for i in range(MAX_WRONG_CODES):
        limiter.begin(LOCKED, "10.0.0.9", now=now)
        limiter.fail(LOCKED, "10.0.0.9", now=now + i * 0.01)
    listed = _pair(home, "unlock")
    assert listed.returncode == 0
    assert listed.stdout == f"{LOCKED}  locked out for 10 min (too many wrong codes)\n"
    missing = _pair(home, "unlock", "ffff")
    assert missing.returncode == 1 and "no locked-out device matches 'ffff'" in missing.stderr
    lifted = _pair(home, "unlock", "3F2A9C")
    assert lifted.returncode == 0 and lifted.stdout == f"{LOCKED[:10]}… may try a code again\n"
    assert AttemptLimiter(home).refusal(LOCKED, "10.0.0.9") is None
    assert _pair(home, "unlock").stdout == "no device is locked out\n"
