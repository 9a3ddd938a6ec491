"""p2p-transfer: send files between devices, peer to peer, verified and resumable."""

__version__ = "0.1.0"
