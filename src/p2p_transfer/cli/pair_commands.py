"""``pair`` and ``id``: trusted devices and this device's identity."""

from __future__ import annotations

import datetime
import json
import math
import sys

import click

from p2p_transfer.cli.context import EXIT_FAILURE, CliContext, run_async
from p2p_transfer.cli.options import AliasedOption, examples
from p2p_transfer.cli.render import JsonRenderer
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.trust import AttemptLimiter, IdentityError, PairingStore
from p2p_transfer.trust.files import ensure_private_dir


@click.group(
    short_help="List or forget trusted devices; let a locked-out one try again.",
    epilog=examples("p2p-transfer pair list", "p2p-transfer pair remove 3f2a9c",
                    "p2p-transfer pair clear", "p2p-transfer pair unlock 3f2a9c"),
)
def pair() -> None:
    """List or forget trusted (paired) devices; let a device locked out after too many
    failed codes try again."""


def _store(ctx: CliContext) -> PairingStore:
    ensure_private_dir(ctx.config_dir)
    return PairingStore(ctx.config_dir)


@pair.command("list", epilog=examples("p2p-transfer pair list", "p2p-transfer pair list --json"))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def pair_list(ctx: CliContext, as_json: bool) -> None:
    """Show paired devices and when their trust expires."""
    if as_json:
        ctx.logs.to(JsonRenderer())
    pairings = _store(ctx).list()
    for p in pairings:
        if as_json:
            click.echo(json.dumps({"event": "pairing", "endpoint_id": p.endpoint_id,
                                   "name": p.name, "expires_at": p.expires_at}))
        else:
            expires = datetime.datetime.fromtimestamp(p.expires_at).strftime("%Y-%m-%d %H:%M")
            click.echo(f"{p.endpoint_id}  {p.name}  (trusted until {expires})")
    if not pairings and not as_json:
        click.echo("no paired devices")


@pair.command(
    "remove", short_help="Forget a device (its ID, or a unique prefix of it).",
    epilog=examples("p2p-transfer pair remove 3f2a9c   # a unique prefix of its ID"),
)
@click.argument("endpoint_id")
@click.pass_obj
def pair_remove(ctx: CliContext, endpoint_id: str) -> None:
    """Forget the device with this endpoint ID (a unique prefix is enough)."""
    if not endpoint_id.strip():
        raise click.BadParameter("give an endpoint ID or a prefix of one")
    store = _store(ctx)
    matches = [p for p in store.list() if p.endpoint_id.startswith(endpoint_id.lower())]
    if len(matches) > 1:
        raise click.ClickException(
            f"{endpoint_id!r} matches {len(matches)} devices; be more specific"
        )
    if not matches:
        raise click.ClickException(f"no paired device matches {endpoint_id!r}")
    store.remove(matches[0].endpoint_id)
    click.echo(f"forgot {matches[0].name} ({matches[0].endpoint_id[:10]}…)")


@pair.command("clear", epilog=examples("p2p-transfer pair clear"))
@click.pass_obj
def pair_clear(ctx: CliContext) -> None:
    """Forget every paired device."""
    count = _store(ctx).clear()
    click.echo(f"forgot {count} device(s)")


@pair.command(
    "unlock", short_help="Let a locked-out device try a code again.",
    epilog=examples("p2p-transfer pair unlock            # which devices are locked out",
                    "p2p-transfer pair unlock 3f2a9c     # a unique prefix of its ID"),
)
@click.argument("endpoint_id", required=False)
@click.pass_obj
def pair_unlock(ctx: CliContext, endpoint_id: str | None) -> None:
    """Lift the lock-out of a device that typed too many wrong codes or left too many
    unanswered: it may try a code again at once (a running receive sees it too). Without
    an ID, list the devices locked out."""
    ensure_private_dir(ctx.config_dir)
    limiter = AttemptLimiter(ctx.config_dir)
    locked = limiter.locked_keys()
    if endpoint_id is None:
        for key in locked:
            why = "wrong codes" if key.cause == "wrong" else "codes left unanswered"
            click.echo(f"{key.key}  locked out for {math.ceil(key.seconds / 60)} min "
                       f"(too many {why})")
        if not locked:
            click.echo("no device is locked out")
        return
    matches = [k for k in locked if k.key.startswith(endpoint_id.strip().lower())]
    if not endpoint_id.strip() or len(matches) > 1:
        raise click.ClickException(
            f"{endpoint_id!r} matches {len(matches)} locked-out devices; be more specific"
        )
    if not matches:
        raise click.ClickException(
            f"no locked-out device matches {endpoint_id!r} (`p2p-transfer pair unlock` "
            "lists them)"
        )
    limiter.unlock(matches[0].key)
    click.echo(f"{matches[0].key[:10]}… may try a code again")


@click.command(
    "id",
    short_help="Print this device's endpoint ID and a ticket.",
    epilog=examples("p2p-transfer id", "p2p-transfer id --bind 192.168.1.20 --json"),
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.option("--bind", "--bind-addr", "bind_addr", cls=AliasedOption, metavar="ADDR",
              default=None, help="Address to put in the ticket.")
@click.pass_obj
def id_command(ctx: CliContext, as_json: bool, bind_addr: str | None) -> None:
    """Print this device's endpoint ID and a ticket for it."""
    if as_json:
        ctx.logs.to(JsonRenderer())

    async def show() -> int:
        try:
            node = await Node.start(NodeConfig(ctx.config_dir, ctx.device_name, bind_addr))
        except IdentityError as exc:
            click.echo(f"error: {exc}", err=True)
            return EXIT_FAILURE
        try:
            ticket = node.transport.ticket
            if as_json:
                click.echo(json.dumps({"event": "id", "endpoint_id": node.endpoint_id,
                                       "name": ctx.device_name, "ticket": ticket}))
            else:
                click.echo(f"endpoint id: {node.endpoint_id}")
                click.echo(f"name:        {ctx.device_name}")
                click.echo(f"ticket:      {ticket}")
        finally:
            await node.close()
        return 0

    sys.exit(run_async(show()))

