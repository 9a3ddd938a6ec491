"""``python -m bench.fan_out``: what a send to two receivers pays for reading twice.

``send --to A --to B`` runs a session per receiver, and each session reads and
hashes the files itself. Reading them once for all would need the sessions to
move in step (one slow receiver would hold the others back). This measures
whether it is worth that, on one file of 1 GiB that is in the page cache:

- in this process: reading it and hashing it (BLAKE3) as a session does, once and
  twice: what a second reader adds at most;
- through the product on loopback (TLS over TCP, the default): ``send`` to one
  receiver, then to two (``receive --once --yes --code``, fresh config folders
  each run), the runs alternating; the sender's CPU seconds and wall seconds, and
  all processes' CPU seconds.

Run it inside ``scripts/isolated`` (loopback only), like the benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from bench.config import BIG_FILE_SIZE, DEFAULT_WORK_DIR, P2P_CODE, MiB
from bench.data import make_big, tree_digest

RUNS = 3
READ_SIZE = 1 * MiB
LAUNCHER = Path(__file__).resolve().parent / "launch.py"


def read_and_hash(path: Path) -> float:
    """CPU seconds to read ``path`` (from the page cache) and BLAKE3 it, as a sender does."""
    started = time.process_time()
    hasher = blake3()
    buffer = bytearray(READ_SIZE)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as source:
        while count := source.readinto(buffer):
            hasher.update(view[:count])
    hasher.digest()
    return time.process_time() - started


@dataclass
class Run:
    receivers: int
    wall: float
    sender_cpu: float
    total_cpu: float


def _launched(report: Path, *args: str) -> subprocess.Popen[str]:
    """``p2p-transfer ARGS`` under the launcher, which reports its rusage to ``report``."""
    command = [sys.executable, "-I", "-S", str(LAUNCHER), str(report), "--",
               sys.executable, "-m", "p2p_transfer", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)


def _usage(report: Path) -> dict[str, float]:
    data: dict[str, float] = json.loads(report.read_text())
    if data["returncode"] != 0:
        raise RuntimeError(f"{report.stem} exited {data['returncode']}")
    return data


def send_to(count: int, source: Path, work: Path, expected: str) -> Run:
    """One send of ``source`` to ``count`` fresh receivers; checks what each got."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    receivers, tickets = [], []
    for n in range(count):
        receiver = _launched(
            work / f"rx{n}.json", "--config-dir", str(work / f"rx{n}-home"), "receive",
            "--once", "--yes", "--code", P2P_CODE, "--bind", "127.0.0.1", "--no-announce",
            "--no-localsend", "--json", "--dir", str(work / f"in{n}"),
        )
        assert receiver.stdout is not None
        for line in receiver.stdout:
            if (event := json.loads(line))["event"] == "ticket":
                tickets.append(event["ticket"])
                break
        receivers.append(receiver)
    targets = [word for ticket in tickets for word in ("--to", ticket)]
    sender = _launched(work / "tx.json", "--config-dir", str(work / "tx-home"), "send",
                       *targets, "--code", P2P_CODE, "--json", str(source))
    for process in (sender, *receivers):
        process.communicate()
    usage = [_usage(work / "tx.json"), *(_usage(work / f"rx{n}.json") for n in range(count))]
    for n in range(count):
        if tree_digest(work / f"in{n}") != expected:
            raise RuntimeError(f"receiver {n} got something else")
    return Run(count, usage[0]["exited"] - usage[0]["spawned"], usage[0]["cpu_seconds"],
               sum(u["cpu_seconds"] for u in usage))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fan_out", description=__doc__)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR / "fan-out")
    parser.add_argument("--size", type=int, default=BIG_FILE_SIZE, help="file size, bytes")
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    try:
        workload = make_big(args.work_dir / "data", args.size)
        read_and_hash(workload.path)  # into the page cache
        once = min(read_and_hash(workload.path) for _ in range(args.runs))
        runs: dict[int, list[Run]] = {1: [], 2: []}
        for _ in range(args.runs):
            for count in (1, 2):
                os.sync()
                runs[count].append(send_to(count, workload.path, args.work_dir / "run",
                                           workload.digest))
    finally:
        shutil.rmtree(args.work_dir, ignore_errors=True)
    size = f"{args.size / MiB:,.0f} MiB"
    print(f"read + BLAKE3 of {size} from the page cache: {once:.2f} CPU-s "
          f"(a second reader adds this)")
    print("| receivers | wall s | sender CPU s | all processes CPU s |")
    print("|---:|---:|---:|---:|")
    for count, measured in runs.items():
        best = min(measured, key=lambda run: run.wall)
        print(f"| {count} | {best.wall:.2f} | {min(r.sender_cpu for r in measured):.2f} | "
              f"{min(r.total_cpu for r in measured):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
