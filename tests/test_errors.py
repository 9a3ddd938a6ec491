"""One error root: every error the program raises on purpose derives from P2PTransferError,
and the branch below it says whose fault it was (the peer's, or this side's)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import p2p_transfer
from p2p_transfer.errors import LocalFault, P2PTransferError, PeerFault

#: Exception classes of the package that stay outside the root, each with the reason.
OUTSIDE_THE_ROOT = {
    # Control flow inside share/upload.py, never raised out of it; under the root, an
    # ``except P2PTransferError`` on the way could swallow one.
    "p2p_transfer.share.upload._Signal",
    "p2p_transfer.share.upload._Closed",
    "p2p_transfer.share.upload._Timeout",
    "p2p_transfer.share.upload._Violation",
    # The sender's signal, inside transfer/sender.py, that the path under an accepted
    # transfer broke and is worth continuing; caught there, never raised out of it.
    "p2p_transfer.transfer.sender._PathBroke",
}


def _import_everything() -> None:
    for module_info in pkgutil.walk_packages(p2p_transfer.__path__, "p2p_transfer."):
        if not module_info.name.endswith("__main__"):
            importlib.import_module(module_info.name)


def _subclasses(base: type[BaseException]) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    pending = [base]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found


def _error_classes() -> set[type[BaseException]]:
    """Every exception class defined in the package: module level, nested or local
    (any that was ever created), private ones included."""
    _import_everything()
    return {c for c in _subclasses(BaseException)
            if c.__module__ == "p2p_transfer" or c.__module__.startswith("p2p_transfer.")}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_every_error_class_has_the_one_root() -> None:
    classes = _error_classes()
    assert len(classes) > 20  # the walk found the package's errors
    assert {_name(c) for c in classes} >= OUTSIDE_THE_ROOT  # the list names real classes
    strays = {_name(c) for c in classes
              if not issubclass(c, P2PTransferError) and _name(c) not in OUTSIDE_THE_ROOT}
    assert strays == set()


def test_no_error_is_both_the_peers_fault_and_ours() -> None:
    both = {_name(c) for c in _error_classes()
            if issubclass(c, PeerFault) and issubclass(c, LocalFault)}
    assert both == set()


def test_one_name_per_error() -> None:
    """Two classes of one name are two concepts a reader (and an import) confuses."""
    names: dict[str, list[str]] = {}
    for cls in _error_classes():
        names.setdefault(cls.__name__, []).append(_name(cls))
    assert {name: where for name, where in names.items() if len(where) > 1} == {}


@pytest.mark.parametrize(("path", "fault"), [
    ("p2p_transfer.protocol.ProtocolError", PeerFault),
    ("p2p_transfer.trust.pake.PakeError", PeerFault),
    ("p2p_transfer.net.StreamEnded", PeerFault),
    ("p2p_transfer.transfer.Declined", PeerFault),
    ("p2p_transfer.transfer.WrongCode", PeerFault),
    ("p2p_transfer.transfer.LockedOut", PeerFault),
    ("p2p_transfer.disk.TargetError", LocalFault),
    ("p2p_transfer.disk.NameTakenError", LocalFault),
    ("p2p_transfer.transfer.local.SourceError", LocalFault),
    ("p2p_transfer.net.transport.DamagedTicket", LocalFault),
    ("p2p_transfer.units.SizeError", LocalFault),
    ("p2p_transfer.app.settings.SettingsError", LocalFault),
    ("p2p_transfer.trust.identity.IdentityError", LocalFault),
    ("p2p_transfer.net.binding.BindingChangedError", LocalFault),
    ("p2p_transfer.app.targets.UnresolvedTarget", LocalFault),
])
def test_an_error_says_whose_fault_it_was(path: str, fault: type[P2PTransferError]) -> None:
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, fault)
    other = LocalFault if fault is PeerFault else PeerFault
    assert not issubclass(cls, other)


def test_the_network_between_is_no_ones_fault() -> None:
    from p2p_transfer.net import NetError
    from p2p_transfer.net.transport import Unreachable
    from p2p_transfer.transfer import Cancelled

    for cls in (NetError, Unreachable, Cancelled):
        assert not issubclass(cls, PeerFault) and not issubclass(cls, LocalFault)


def test_typed_outcomes_carry_their_data() -> None:
    from p2p_transfer.transfer import Cancelled, Declined, LockedOut, WrongCode

    assert Declined("not now").reason == "not now" and str(Declined("x")) == "declined: x"
    assert WrongCode("wrong verification code", 3).attempts_left == 3
    assert LockedOut("too many wrong codes", 600.0).retry_after == 600.0
    assert Cancelled("laptop cancelled", "peer").by == "peer"


def test_a_peer_fault_keeps_its_message_and_detail() -> None:
    """The branches add no words: what a person reads is the message it was raised with."""
    from p2p_transfer.net import StreamEnded
    from p2p_transfer.net.transport import DamagedTicket
    from p2p_transfer.protocol import ProtocolError

    assert str(ProtocolError("empty message")) == "empty message"
    ended = StreamEnded("stream ended early", "Closed(0)")
    assert (str(ended), ended.detail) == ("stream ended early", "Closed(0)")
    assert str(DamagedTicket("bad")).startswith("this ticket is damaged")
