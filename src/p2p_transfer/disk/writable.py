"""Whether received files can be saved in a folder at all, found out by trying.

Permission bits do not answer it: root ignores them, while an immutable folder
(``chattr +i``) or a read-only mount stops root too. So a file is created and
removed, where the folder is or, when it is yet to be made, in its nearest
existing parent.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

#: The probe's name: hidden, and unlike any file a peer could send (``.part`` names).
PROBE_PREFIX = ".p2p-transfer-probe-"


def write_problem(folder: Path) -> str:
    """Why nothing can be saved into ``folder`` (the system's words: "Operation not
    permitted", "Read-only file system"), or "" when a file can be made there."""
    probe_in = folder
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        return f"{probe_in.name or probe_in} is not a folder"
    probe = probe_in / f"{PROBE_PREFIX}{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(probe)
    return ""
