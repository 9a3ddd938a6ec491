"""The benchmark's own minimal peers (plain TCP and raw iroh), run as processes.

They speak no protocol beyond a per-file header (see ``stream``), so they show
what the machine and the transport can do with no product logic on top.
"""
