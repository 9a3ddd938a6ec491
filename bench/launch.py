"""Start one program and report its own rusage: ``python -I -S launch.py REPORT -- ARGV...``.

Why a launcher: on Linux a process's peak RSS (``ru_maxrss``) starts at the
high-water mark of the process that forked it, because exec records the old
address space's peak. Spawned straight from the harness (which has hashed
files and held test data), every child would report the harness's peak. This
launcher is a fresh, small interpreter (isolated, no site), so the program it
spawns starts from its few MB, below any Python program's real peak.

It writes ``{"returncode", "cpu_seconds", "max_rss_kib", "spawned", "exited"}``
(times on CLOCK_MONOTONIC, shared by all processes) to REPORT and exits with
the program's status. SIGTERM and SIGINT are ignored here but not in the
program, so stopping the process group ends the program, then the launcher
reports. Standard library only: it runs without site-packages.
"""

import json
import os
import signal
import sys
import time

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_USAGE = "usage: launch.py REPORT -- ARGV..."


def _now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def main() -> int:
    """Spawn, wait, report; return the program's exit status as a shell would."""
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(_USAGE, file=sys.stderr)
        return 2
    report, argv = sys.argv[1], sys.argv[3:]
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    spawned = _now()
    pid = os.posix_spawnp(argv[0], argv, os.environ, setsigdef=_STOP_SIGNALS)
    _, status, usage = os.wait4(pid, 0)
    exited = _now()
    code = os.waitstatus_to_exitcode(status)
    temporary = report + ".tmp"
    with open(temporary, "w") as out:
        json.dump(
            {
                "returncode": code,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "max_rss_kib": usage.ru_maxrss,
                "spawned": spawned,
                "exited": exited,
            },
            out,
        )
    os.replace(temporary, report)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
