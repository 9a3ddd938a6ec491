"""The benchmark behind ``make bench``: p2p-transfer beside its peers, on loopback.

One run measures, side by side, p2p-transfer (two CLI processes), magic-wormhole
(with a local mailbox server and transit relay), a plain TCP ``sendfile`` copy
(the practical limit of this machine), ``tar`` piped over TCP, and a raw iroh
stream copy (the transport's ceiling); and the time to the first byte of a send
to a paired device. Absolute figures drift between runs and machines, so only
figures from one run are compared, and the ratios the project's acceptance
needs are computed from them.
"""
