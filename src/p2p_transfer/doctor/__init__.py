"""``p2p-transfer doctor``: in plain words, why devices can't see or reach each other.

Each check ends in one ``CheckEvent``: ok, warn or fail, one line of what was
found and one of what to do. They run at once, so a run takes as long as the
slowest (the relay's 5 s when one is asked for; under 3 s otherwise, ~4 s at most
when devices seen late do not answer: each device is tried as soon as it is seen,
at all its addresses at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from p2p_transfer.discovery import Device, DiscoveryError
from p2p_transfer.doctor.firewall import check_firewall, check_own_ports, firewall_findings
from p2p_transfer.doctor.interfaces import check_interfaces
from p2p_transfer.doctor.multicast import check_multicast, probe
from p2p_transfer.doctor.reach import Reach, browse_and_reach, check_devices, check_reach
from p2p_transfer.doctor.storage import check_config_dir, check_download_folder
from p2p_transfer.events import CheckEvent
from p2p_transfer.limits import (
    DOCTOR_BROWSE_TIME,
    DOCTOR_MAX_DEVICES,
    DOCTOR_MULTICAST_WAIT,
    DOCTOR_REACH_TIMEOUT,
    DOCTOR_RELAY_TIMEOUT,
)
from p2p_transfer.net import RELAY_OFF, NetError, Transport
from p2p_transfer.net.interfaces import default_route_interface, lan_interfaces
from p2p_transfer.net.keys import generate_secret_key
from p2p_transfer.node import Node


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    """What to check besides the network: where files go, the config dir, a relay."""

    download_dir: Path
    config_dir: Path
    relay: str = RELAY_OFF


async def diagnose(options: DoctorOptions, node: Node) -> AsyncIterator[CheckEvent]:
    """Every check's verdict, in a fixed order (the slow ones run meanwhile); ``node``
    looks for devices (one made ``without_endpoint`` will do)."""
    interfaces = await asyncio.to_thread(lan_interfaces)
    default = await asyncio.to_thread(default_route_interface)
    probing = asyncio.create_task(asyncio.to_thread(probe, interfaces, DOCTOR_MULTICAST_WAIT))
    browsing = asyncio.create_task(_browse_and_reach(node))
    relay = asyncio.create_task(check_relay(options.relay)) if options.relay != RELAY_OFF \
        else None
    try:
        yield check_interfaces(interfaces, default)
        multicast = check_multicast(interfaces, await probing)
        yield multicast
        found, reaches, trouble = await browsing
        if trouble:
            yield CheckEvent("devices", "warn", f"cannot look for devices: {trouble}",
                             "see the multicast check")
        else:
            yield check_devices(found, bool(interfaces) and multicast.status == "fail")
            for reached in reaches:
                yield check_reach(reached)
        yield check_own_ports(interfaces)
        yield check_firewall(*await asyncio.to_thread(firewall_findings))
        if relay is not None:
            yield await relay
        yield await asyncio.to_thread(check_download_folder, options.download_dir)
        yield await asyncio.to_thread(check_config_dir, options.config_dir)
    finally:
        for task in (probing, browsing, relay):
            if task is not None:
                task.cancel()


async def _browse_and_reach(node: Node) -> tuple[list[Device], list[Reach], str]:
    """Devices announcing themselves on the LAN (never this one) and how reaching each
    went (``browse_and_reach``), or why none could be looked for."""
    from p2p_transfer.discovery import Discovery  # zeroconf is loaded only when used

    try:
        discovery = await Discovery.start(own_endpoint_id=node.own_endpoint_id())
    except DiscoveryError as exc:
        return [], [], str(exc)
    try:
        found, reaches = await browse_and_reach(
            await discovery.browse(), DOCTOR_BROWSE_TIME, DOCTOR_REACH_TIMEOUT,
            DOCTOR_MAX_DEVICES,
        )
    finally:
        await discovery.close()
    return found, reaches, ""


async def check_relay(relay: str) -> CheckEvent:
    """Reach the relay with a throwaway key, within DOCTOR_RELAY_TIMEOUT."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        transport = await Transport.bind(generate_secret_key(), "0.0.0.0", relay)
    except NetError as exc:
        return CheckEvent("relay", "fail", str(exc), "check the relay URL (`--relay`)")
    try:
        connected = await transport.wait_for_relay(DOCTOR_RELAY_TIMEOUT)
        took = loop.time() - started
        if connected:
            return CheckEvent("relay", "ok",
                              f"{transport.relay_url} reached in {took * 1000:.0f} ms")
        return CheckEvent(
            "relay", "fail", f"{relay}: not reached within {DOCTOR_RELAY_TIMEOUT:.0f} s",
            "no internet, or a firewall blocks HTTPS to the relay: devices on the same "
            "network still reach each other directly",
        )
    finally:
        await transport.close()
