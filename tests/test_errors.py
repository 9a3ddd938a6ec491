"""One error root: every error the program raises on purpose derives from P2PTransferError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import p2p_transfer
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.net.binding import BindingChangedError

#: Not for people: the iroh binding changed shape under us (a crash, on purpose).
NOT_EXPECTED_FAILURES = {BindingChangedError}


def _error_classes() -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for module_info in pkgutil.walk_packages(p2p_transfer.__path__, "p2p_transfer."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if (issubclass(value, BaseException) and value.__module__ == module.__name__
                    and not value.__name__.startswith("_")):
                found.add(value)
    return found


def test_every_error_class_has_the_one_root() -> None:
    classes = _error_classes()
    assert len(classes) > 20  # the walk found the package's errors
    strays = {c.__qualname__ for c in classes - NOT_EXPECTED_FAILURES
              if not issubclass(c, P2PTransferError)}
    assert strays == set()


def test_typed_outcomes_carry_their_data() -> None:
    from p2p_transfer.transfer import Cancelled, Declined, LockedOut, WrongCode

    assert Declined("not now").reason == "not now" and str(Declined("x")) == "declined: x"
    assert WrongCode("wrong verification code", 3).attempts_left == 3
    assert LockedOut("too many wrong codes", 600.0).retry_after == 600.0
    assert Cancelled("laptop cancelled", "peer").by == "peer"
