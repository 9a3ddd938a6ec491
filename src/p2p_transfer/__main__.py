"""Allow ``python -m p2p_transfer``."""

from p2p_transfer.cli import main

main()
