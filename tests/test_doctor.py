"""The doctor's parts: reading this machine, wording the findings (its network verdicts on a
lab network are in tests/e2e/test_doctor.py)."""

from __future__ import annotations

import asyncio
import re
import struct
from pathlib import Path

from p2p_transfer.discovery import Device
from p2p_transfer.doctor import check_relay
from p2p_transfer.doctor.interfaces import check_interfaces
from p2p_transfer.doctor.multicast import ProbeResult, check_multicast, probe_query
from p2p_transfer.doctor.reach import Reach, check_devices, check_reach, reach
from p2p_transfer.doctor.storage import check_config_dir, check_download_folder
from p2p_transfer.limits import DOCTOR_RELAY_TIMEOUT
from p2p_transfer.net import IdentityResponder
from p2p_transfer.net.interfaces import Interface, default_route_interface

ETH0 = Interface("eth0", ("10.0.0.2",), 2)


def test_the_default_route_is_read_from_the_kernel_table(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\n"
        "wlan0\t0001A8C0\t00000000\t0001\n"
        "wlan0\t00000000\t0101A8C0\t0003\n"
    )
    assert default_route_interface(table) == "wlan0"
    table.write_text("Iface\tDestination\n")
    assert default_route_interface(table) is None


def test_a_vpn_like_interface_is_named() -> None:
    check = check_interfaces([ETH0, Interface("wg0", ("10.8.0.2",), 5)], "wg0")
    assert check.status == "warn" and "wg0" in check.detail and "VPN" in check.advice
    assert check_interfaces([ETH0], "eth0").status == "ok"
    assert check_interfaces([], None).status == "fail"


def test_the_probe_is_a_well_formed_mdns_query() -> None:
    packet = probe_query("p2pt-probe-abc")
    _, flags, questions, *_ = struct.unpack("!6H", packet[:12])
    assert flags == 0 and questions == 3
    assert b"\x0ep2pt-probe-abc\x05local\x00" in packet
    assert b"\x0d_p2p-transfer\x04_udp\x05local\x00" in packet


def test_multicast_verdicts() -> None:
    lost = check_multicast([ETH0], ProbeResult())
    assert lost.status == "fail" and "UDP 5353" in lost.detail
    alone = check_multicast([ETH0], ProbeResult({"eth0"}))
    assert alone.status == "warn" and "isolation" in alone.advice
    heard = check_multicast([ETH0], ProbeResult({"eth0"}, {"10.0.0.3"}))
    assert heard.status == "ok" and "10.0.0.3" in heard.detail


def test_device_verdicts() -> None:
    bob = Device("bob", "ab" * 32, ("10.0.0.3:4000",), 1, "bob._p2p-transfer._udp.local.")
    assert check_devices([bob], False).status == "ok"
    none = check_devices([], False)
    assert none.status == "warn" and "isolation" in none.detail and "ticket" in none.advice
    assert check_reach(Reach(bob, "10.0.0.3:4000")).status == "ok"
    unreachable = check_reach(Reach(bob, None, ("no answer from 10.0.0.3:4000 within 1 s",)))
    assert unreachable.status == "fail" and "client isolation" in unreachable.advice


async def test_a_device_is_tried_at_all_its_addresses_at_once() -> None:
    """Addresses that accept and never answer do not hold up the one that does, and a
    device none of whose addresses answers is given up within the timeout, once."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    tarpits = [await asyncio.start_server(silent, f"127.0.0.{n}", 0) for n in (2, 3)]
    ports = [t.sockets[0].getsockname()[1] for t in tarpits]
    responder = await IdentityResponder.start("127.0.0.4", ports[0], "endpointticket")
    try:
        silent_addresses = tuple(f"127.0.0.{n}:{p}" for n, p in zip((2, 3), ports, strict=True))
        both = Device("bob", "ab" * 32, (*silent_addresses, f"127.0.0.4:{ports[0]}"), 1, "b.")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await reach(both, 5.0)).reached == f"127.0.0.4:{ports[0]}"
        assert loop.time() - started < 2.0
        nobody = Device("eve", "cd" * 32, silent_addresses * 8, 1, "e.")
        started = loop.time()
        result = await reach(nobody, 0.5)
        assert result.reached is None and len(result.failures) == 16
        assert loop.time() - started < 0.5 * 3  # not 16 times the timeout
    finally:
        await responder.close()
        for tarpit in tarpits:
            tarpit.close()
        for writer in held:
            writer.close()


def test_an_exfat_download_folder_is_noted(exfat: Path) -> None:
    check = check_download_folder(exfat / "inbox")
    assert check.status == "ok" and "exfat" in check.detail and "rename" in check.detail


def test_an_unwritable_download_folder_fails(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    check = check_download_folder(blocked / "inbox")
    assert check.status == "fail" and "cannot write" in check.detail


def test_a_config_dir_readable_by_others_is_a_warning(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    check = check_config_dir(home)
    assert check.status == "warn" and "chmod 700" in check.advice
    home.chmod(0o700)
    assert check_config_dir(home).status == "ok"


async def test_an_unreachable_relay_fails_clearly_within_its_deadline() -> None:
    started = asyncio.get_running_loop().time()
    check = await check_relay("default")  # the tests' network has no internet
    assert check.status == "fail" and "not reached" in check.detail
    assert "directly" in check.advice
    assert asyncio.get_running_loop().time() - started < DOCTOR_RELAY_TIMEOUT + 3


def test_free_space_is_said_in_the_unit_that_fits(tmp_path: Path) -> None:
    check = check_download_folder(tmp_path / "inbox")
    free = re.search(r"writable, ([^,]+) free", check.detail)
    assert free is not None, check.detail
    assert re.fullmatch(r"\d+(\.\d)? (B|KiB|MiB|GiB|TiB)", free[1]), free[1]
    assert "," not in free[1]  # 62.0 GiB, not 63,503 MiB
