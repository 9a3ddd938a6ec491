"""The tools compared, one module each, in the order of the table."""

from __future__ import annotations

from bench.rows.base import Row, RunContext
from bench.rows.iroh_raw import IrohRawRow
from bench.rows.p2p import P2PRow
from bench.rows.tcp import TcpRow
from bench.rows.wormhole import WormholeRow


def all_rows() -> list[Row]:
    """Every row, in table order: the product, its rival, then the two ceilings."""
    return [P2PRow(), WormholeRow(), TcpRow(), IrohRawRow()]


__all__ = ["Row", "RunContext", "all_rows"]
