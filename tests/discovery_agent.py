"""A discovery peer for namespace tests: run inside a namespace, speak JSON lines.

    python tests/discovery_agent.py announce --name N --id HEX --addr IP:PORT [--ttl S] [--browse]
    python tests/discovery_agent.py browse [--own-id HEX]
    python tests/discovery_agent.py find --to NAME [--timeout S]

``announce`` prints ``{"event": "announced", ...}`` once registered; ``announce``
and ``browse`` run until a ``stop`` line (or EOF) on stdin, then withdraw and
print ``{"event": "stopped"}``. ``browse`` prints every device event as it
happens. Tests start it with ``ip netns exec``; it never runs in the host's
network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from p2p_transfer.discovery import (
    Announcement,
    Discovery,
    DiscoveryError,
    device_ticket,
    port_of,
)
from p2p_transfer.events import Event, EventBus


def say(obj: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed (the test reads it live)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def print_event(event: Event) -> None:
    say(event.to_dict())


async def wait_for_stop() -> None:
    """Until the test writes ``stop`` or closes our stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line or line.strip() == b"stop":
            return


async def announce(args: argparse.Namespace) -> int:
    events = EventBus()
    events.subscribe(print_event)
    discovery = await Discovery.start(events, own_endpoint_id=args.id)
    try:
        port = port_of(args.addr) or 0
        announcer = await discovery.announce(
            Announcement(args.name, args.id, tuple(args.addr), port), ttl=args.ttl
        )
        say({"event": "announced", "service_name": announcer.service_name})
        if args.browse:
            await discovery.browse()
        await wait_for_stop()
    finally:
        await discovery.close()
    say({"event": "stopped"})
    return 0


async def browse(args: argparse.Namespace) -> int:
    events = EventBus()
    events.subscribe(print_event)
    discovery = await Discovery.start(events, own_endpoint_id=args.own_id)
    try:
        await discovery.browse()
        say({"event": "browsing"})
        await wait_for_stop()
    finally:
        await discovery.close()
    say({"event": "stopped"})
    return 0


async def find(args: argparse.Namespace) -> int:
    discovery = await Discovery.start()
    try:
        device = await discovery.find(args.to, timeout=args.timeout)
        say({"event": "found", "name": device.name, "endpoint_id": device.endpoint_id,
             "addresses": list(device.addresses), "ticket": device_ticket(device)})
        return 0
    except DiscoveryError as exc:
        say({"event": "error", "kind": type(exc).__name__, "message": str(exc)})
        return 1
    finally:
        await discovery.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("announce")
    p.add_argument("--name", required=True)
    p.add_argument("--id", required=True)
    p.add_argument("--addr", action="append", required=True)
    p.add_argument("--ttl", type=int, default=120)
    p.add_argument("--browse", action="store_true", help="also keep a device table")
    p = sub.add_parser("browse")
    p.add_argument("--own-id", default=None)
    p = sub.add_parser("find")
    p.add_argument("--to", required=True)
    p.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    command = {"announce": announce, "browse": browse, "find": find}[args.command]
    return asyncio.run(command(args))


if __name__ == "__main__":
    sys.exit(main())
