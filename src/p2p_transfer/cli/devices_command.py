"""``devices``: list the devices on the local network that can receive, by name."""

from __future__ import annotations

import sys

import click

from p2p_transfer.cli.context import EXIT_FAILURE, CliContext, run_async
from p2p_transfer.cli.options import examples
from p2p_transfer.cli.render import JsonRenderer, printable
from p2p_transfer.discovery import Device, DiscoveryError
from p2p_transfer.events import DeviceEvent, ErrorEvent
from p2p_transfer.limits import DISCOVERY_LIST_TIMEOUT, DISCOVERY_MAX_LIST_TIMEOUT
from p2p_transfer.localsend.discovery import LocalSendDevice
from p2p_transfer.node import Node, NodeConfig

#: What a person reads when no device answered: the two likely causes, what to do.
NONE_FOUND = """no devices found in {timeout:g} s. The two most likely causes:
  - the other device is not running `p2p-transfer receive` (or the app, or LocalSend)
    on this network;
  - the network drops multicast or keeps devices apart (guest Wi-Fi, client isolation).
Run `p2p-transfer doctor` to find out which, or send by ticket: p2p-transfer send --to TICKET"""
#: Hex characters of the endpoint ID shown in the human listing.
SHOWN_ID_CHARS = 12


def device_event(device: Device | LocalSendDevice) -> DeviceEvent:
    """A found device as the ``device`` event every front end knows (``protocol`` says
    which kind it is)."""
    if isinstance(device, LocalSendDevice):
        return DeviceEvent(
            device.name, "", [device.address], protocol="localsend",
            fingerprint=device.fingerprint, device_model=device.device_model,
            device_type=device.device_type,
        )
    return DeviceEvent(device.name, device.endpoint_id, list(device.addresses))


def format_table(devices: list[Device | LocalSendDevice]) -> list[str]:
    """Aligned NAME / ID / ADDRESSES lines for people; LocalSend devices say so."""
    rows = [("NAME", "ENDPOINT ID", "ADDRESSES")] + [_row(d) for d in devices]
    name_width = max(len(r[0]) for r in rows)
    id_width = max(len(r[1]) for r in rows)
    return [f"{n:<{name_width}}  {i:<{id_width}}  {a}".rstrip() for n, i, a in rows]


def _row(device: Device | LocalSendDevice) -> tuple[str, str, str]:
    if isinstance(device, LocalSendDevice):
        model = f", {device.device_model}" if device.device_model else ""
        return (printable(device.name), f"LocalSend{model}",
                f"{device.address}  (--to localsend:{device.address})")
    return (printable(device.name), device.endpoint_id[:SHOWN_ID_CHARS],
            ", ".join(device.addresses))


@click.command(
    "devices",
    short_help="List devices on this network ready to receive.",
    epilog=examples("p2p-transfer devices", "p2p-transfer devices --timeout 10 --json"),
)
@click.option("--timeout", type=click.FloatRange(0.0, DISCOVERY_MAX_LIST_TIMEOUT, min_open=True),
              default=DISCOVERY_LIST_TIMEOUT, show_default=True,
              help="Seconds to listen for devices.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per device and line.")
@click.pass_obj
def devices(ctx: CliContext, timeout: float, as_json: bool) -> None:
    """List devices on this network that are ready to receive (`p2p-transfer receive`)."""
    render = JsonRenderer() if as_json else None
    if render is not None:
        ctx.logs.to(render)

    async def run() -> int:
        node = Node.without_endpoint(NodeConfig(ctx.config_dir, ctx.device_name))
        if render is None:
            click.echo(f"looking for devices on this network ({timeout:g} s)…", err=True)
        try:
            found = await node.list_all_devices(timeout)
        except DiscoveryError as exc:
            if render is not None:
                render(ErrorEvent(str(exc)))
            else:
                click.echo(f"error: {exc}", err=True)
            return EXIT_FAILURE
        if render is not None:
            for device in found:
                render(device_event(device))
            render.close()
        elif found:
            for line in format_table(found):
                click.echo(line)
        else:
            click.echo(NONE_FOUND.format(timeout=timeout), err=True)
        return 0

    sys.exit(run_async(run()))
