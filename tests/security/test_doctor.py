"""``doctor`` against forged devices on a lab network (issue 24, finding 8): devices that
announce many addresses at a port that accepts and never answers cannot stall it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from netns import Lab
from p2p_transfer.limits import DOCTOR_MAX_DEVICES, MAX_DEVICE_ADDRESSES

#: Forged devices, each announcing MAX_DEVICE_ADDRESSES addresses (the issue's attack).
FORGED_DEVICES = 18
#: A doctor run with them may take this long, start to exit (without them: ~3 s here).
DOCTOR_DEADLINE = 5.0
#: Port every forged address points at: accepted, never answered.
TARPIT_PORT = 4000
#: Seconds the forger has to register its devices (mDNS probing takes ~1.7 s).
FORGER_READY = 30.0

FORGER = """
import asyncio, json, sys
from p2p_transfer.discovery import Announcement, Discovery

async def main() -> None:
    port, count, addresses = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    held = []

    async def tarpit(reader, writer) -> None:  # accepts, and never says a word
        held.append(writer)

    server = await asyncio.start_server(tarpit, "0.0.0.0", port)
    discovery = await Discovery.start()
    where = tuple(f"{address}:{port}" for address in addresses)
    await asyncio.gather(*(
        discovery.announce(Announcement(f"forged-{i:02}", f"{i + 1:064x}", where, port))
        for i in range(count)
    ))
    print("announced", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await discovery.close()
    server.close()

asyncio.run(main())
"""


def test_doctor_is_quick_with_18_forged_devices_that_never_answer(
    netns_lab: Lab, tmp_path: Path
) -> None:
    victim, forger = netns_lab.lan(2)
    addresses = [f"10.77.0.{100 + k}" for k in range(MAX_DEVICE_ADDRESSES)]
    for address in addresses:
        forger.run("ip", "addr", "add", f"{address}/24", "dev", "eth0")
    announcing = forger.spawn(sys.executable, "-c", FORGER, str(TARPIT_PORT),
                              str(FORGED_DEVICES), json.dumps(addresses))
    announcing.expect(lambda line: line.get("raw") == "announced", FORGER_READY,
                      "the forged devices announced")

    started = time.monotonic()
    done = victim.run(sys.executable, "-m", "p2p_transfer", "--config-dir",
                      str(tmp_path / "doctor-home"), "doctor", "--json", "--dir",
                      str(tmp_path / "inbox"), timeout=60, check=False)
    took = time.monotonic() - started
    checks = {c["name"]: c for c in map(json.loads, done.stdout.splitlines())}
    forged = {name: c for name, c in checks.items() if name.startswith("device forged-")}
    assert len(forged) == DOCTOR_MAX_DEVICES, checks  # they were seen, and tried
    assert all(c["status"] == "fail" and "unreachable" in c["detail"] for c in forged.values())
    assert took < DOCTOR_DEADLINE, f"doctor took {took:.1f} s"
