"""The node: one running p2p-transfer instance, and the parts it is built from.

``root.Node`` is the composition root; each other module is one part with one job:

- ``sessions``: session IDs, running a session's work, its final state, cancel by ID
- ``inbox``: the accept loop, the connection table, every receive session (any door)
- ``sending``: the route to a receiver (our protocol, LocalSend) and its sender
- ``presence``: announcing on and browsing the LAN, LocalSend scans, what a name means
- ``localsend_bridge``: this node as a LocalSend device (its service, sends to one)
- ``reachability``: the relay, the ticket, answering HOST:PORT queries
- ``config``: what a node starts with

New work finds its place among them: a send by code is a route in ``sending`` (and
its receive a door into ``inbox``); a send that waits for an absent device sits
between ``sending`` and ``presence``; a session that survives a network change is
a session whose work reconnects, run by ``sessions`` as any other.
"""

from p2p_transfer.node.config import NodeConfig
from p2p_transfer.node.root import Node
from p2p_transfer.node.sessions import RunningSession

__all__ = ["Node", "NodeConfig", "RunningSession"]
