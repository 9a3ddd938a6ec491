"""The command line: parses arguments, builds a Node, renders its events."""

from p2p_transfer.cli.main import cli, main

__all__ = ["cli", "main"]
