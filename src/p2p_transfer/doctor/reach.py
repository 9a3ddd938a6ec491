"""Devices seen on the LAN, and whether this machine can actually reach them.

Seen but unreachable is what Wi-Fi client isolation looks like (multicast
gets through, or is relayed by the access point; unicast between devices does
not), and also a firewall on the other device.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2p_transfer.discovery import Device
from p2p_transfer.discovery.records import port_of
from p2p_transfer.events import CheckEvent
from p2p_transfer.net import fetch_ticket

if TYPE_CHECKING:
    from p2p_transfer.discovery import DeviceBrowser


@dataclass(frozen=True, slots=True)
class Reach:
    """One device and how reaching it went."""

    device: Device
    #: The address that answered, or None.
    reached: str | None
    #: Why not, for each address tried.
    failures: tuple[str, ...] = ()


async def reach(device: Device, timeout: float) -> Reach:
    """Ask the device's TCP port (the QUIC port's number, where it hands out its ticket)
    at every address it announced at once, within ``timeout`` in all: the first that
    answers wins. One after another, a device announcing 16 addresses that never answer
    would hold doctor 16 times the timeout."""
    attempts: dict[asyncio.Task[str], str] = {}
    for address in device.addresses:
        host, _, port_text = address.rpartition(":")
        port = int(port_text) if port_text.isdigit() else port_of((address,))
        if port:
            attempts[asyncio.create_task(fetch_ticket(host.strip("[]"), port, timeout))] = address
    failures: list[str] = []
    pending = set(attempts)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    return Reach(device, attempts[task])
                failures.append(str(task.exception()))
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return Reach(device, None, tuple(failures))


def check_devices(found: list[Device], multicast_blocked: bool) -> CheckEvent:
    """What discovery saw, and the likely causes when it saw nothing."""
    if found:
        names = ", ".join(f"{d.name} ({', '.join(d.addresses)})" for d in found)
        return CheckEvent("devices", "ok", f"{len(found)} p2p-transfer device(s) seen: {names}")
    if multicast_blocked:
        causes = "this device drops multicast (see the multicast check)"
    else:
        causes = ("no other device runs `p2p-transfer receive` (or the app) on this network, "
                  "or the network keeps devices apart (Wi-Fi client/AP isolation, a guest "
                  "network, a switch with port isolation), or they are on another subnet")
    return CheckEvent(
        "devices", "warn", f"no p2p-transfer device seen; likely causes: {causes}",
        "start `p2p-transfer receive` on the other device; if it still isn't seen, send by "
        "its ticket or `send --to HOST:PORT`",
    )


def check_reach(result: Reach) -> CheckEvent:
    """One device's verdict: reachable, or seen but unreachable (and why that happens)."""
    device = result.device
    name = f"device {device.name}"
    if result.reached is not None:
        return CheckEvent(name, "ok", f"seen and reachable at {result.reached}")
    tried = ", ".join(device.addresses)
    why = "; ".join(dict.fromkeys(result.failures)) or "no address to try"
    return CheckEvent(
        name, "fail",
        f"seen on the network but unreachable at {tried} ({why})",
        "this is what Wi-Fi client isolation or a firewall on that device looks like: "
        "turn off AP/client isolation (or use another network), or allow p2p-transfer in "
        "its firewall",
    )


async def browse_and_reach(
    browser: DeviceBrowser, browse_time: float, timeout: float, most: int
) -> tuple[list[Device], list[Reach]]:
    """The devices ``browser`` sees within ``browse_time`` seconds, and how reaching them
    went: each is tried (``reach``, within ``timeout``) as soon as it is seen, at most
    ``most`` of them, so every check ends by one deadline, ``browse_time + timeout``
    after the start, and usually with the browsing."""
    loop = asyncio.get_running_loop()
    end = loop.time() + browse_time
    reaching: dict[str, asyncio.Task[Reach]] = {}
    try:
        while True:
            for device in browser.devices():
                if device.endpoint_id not in reaching and len(reaching) < most:
                    reaching[device.endpoint_id] = asyncio.create_task(reach(device, timeout))
            if (left := end - loop.time()) <= 0:
                break
            await browser.wait_for_change(left)
        reached = await asyncio.gather(*reaching.values())
        order = sorted(reached, key=lambda r: (r.device.name.casefold(), r.device.endpoint_id))
        return browser.devices(), order
    finally:
        for task in reaching.values():
            task.cancel()
