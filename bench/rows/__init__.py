"""The tools compared, one module each, in the order of the table."""

from __future__ import annotations

from bench.rows.base import Row, RunContext
from bench.rows.code import P2PCodeRow, WormholeToP2PRow
from bench.rows.iroh_raw import IrohRawRow
from bench.rows.localsend import localsend_rows
from bench.rows.p2p import P2PQuicRow, P2PRow
from bench.rows.share import ShareRow
from bench.rows.tar import TarRow
from bench.rows.tcp import TcpRow
from bench.rows.tls import TlsRow
from bench.rows.wormhole import WormholeRow


def all_rows() -> list[Row]:
    """Every row, in table (and run) order.

    Each ratio's two rows run back to back, so a change in the load of this
    shared machine touches them alike: p2p-transfer and its rival, then the
    two by code beside it (ours, and magic-wormhole's CLI sending to us), its QUIC
    path and that transport's ceiling, then the TCP ceilings and tar over TCP
    (a folder with no protocol at all); the share server
    (uploads from browsers, compared with nothing); localsendd sending to us
    beside localsendd sending to itself last.
    """
    return [
        P2PRow(), WormholeRow(), P2PCodeRow(), WormholeToP2PRow(),
        P2PQuicRow(), IrohRawRow(), TlsRow(), TcpRow(), TarRow(),
        ShareRow(), *localsend_rows(),
    ]


__all__ = ["Row", "RunContext", "all_rows"]
