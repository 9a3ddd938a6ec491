"""The one root of the errors this program raises on purpose.

Every error a person may read derives from ``P2PTransferError``; its ``str()``
is one line that names no internal type. Subclasses live beside the code that
raises them and say who broke the rule: the peer (``ProtocolError``), the
network (``NetError``), this machine's disk (``TargetError``), the user's
input (``SettingsError``), and so on.
"""

from __future__ import annotations


class P2PTransferError(Exception):
    """Base of every expected failure; the message is one line for the user."""

    #: What went wrong in a library's own words (``ParseError::Postcard``...), for the
    #: ``detail`` of ``--json`` error events and logs; never printed for a person.
    detail: str = ""
