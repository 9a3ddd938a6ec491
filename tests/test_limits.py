"""Every limit in one place: src/p2p_transfer/limits.py names each bound, deadline and
size, with its why; other modules import them, and messages are built from them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import p2p_transfer
from p2p_transfer import limits

SOURCES = Path(p2p_transfer.__file__).parent
LIMITS_FILE = Path(limits.__file__)

#: A constant's name that says it is a bound, a deadline or a size.
_LIMIT_NAME = re.compile(
    r"(^|_)(TIMEOUT|DELAY|INTERVAL|WAIT|POLL|GRACE|TTL|LIMIT|MAX|MIN|BYTES|CHARS|SIZE|DEPTH"
    r"|BUFFERS|TRIES|RETRY|LIFETIME|SKEW|TRACKED|BURST|SECONDS|PERCENT)(_|$)"
)
#: A number typed into a message with its unit: "within 5 s", "6 digits", "64 KiB".
_TYPED_NUMBER = re.compile(
    r"\b\d+(\.\d+)? ?(s|ms|min|minutes?|seconds?|hours?|KiB|MiB|GiB|bytes|digits?|characters)\b"
    r"|\b\d+-digit\b"
)

#: Constants named like limits that are not ones, each with the reason (file, name).
NOT_LIMITS = {
    ("app/settings.py", "_SECONDS_PER_HOUR"),  # a unit
    ("cli/devices_command.py", "SHOWN_ID_CHARS"),  # the width of a table column
    ("cli/share_command.py", "_LABEL_CHARS"),  # the width of a progress label
    ("cli/terminal_text.py", "LABEL_CHARS"),  # the width of a progress label
    ("share/zipstream.py", "ZIP64_LIMIT"),  # the ZIP format's, not ours
    ("share/zipstream.py", "ZIP64_COUNT_LIMIT"),  # the ZIP format's, not ours
    ("trust/pake.py", "_POINT_BYTES"),  # Ed25519's sizes, not ours
    ("trust/pake.py", "_SHA256_BYTES"),
}
#: Limits still defined where they are used, in modules that were being rewritten when
#: the others moved (the sessions' split, LocalSend's and doctor's security fixes): each
#: belongs in limits.py. Keyed by name, as their modules may change.
NOT_MOVED_YET = {
    "OFFER_TIMEOUT", "SUMMARY_CLOSE_WAIT", "RESULT_FLUSH_DELAY", "OFFER_SAMPLE_SIZE",
    "VERIFICATIONS_BUSY_RETRY",  # transfer/receiver.py
    "_READ_SIZE", "ANNOUNCE_BURST", "_CERT_LIFETIME", "_CLOCK_SKEW", "SAMPLE_SIZE",
    "_MAX_TRACKED", "WIRE_SECRET_BYTES", "MAX_PIN_TRIES",  # localsend/
    "_LIST_TIMEOUT",  # doctor/firewall.py
}
#: Typed numbers that are no limit: examples of what a person may type.
NOT_LIMIT_TEXTS = {
    "Refuse uploads larger than this (e.g. 500M, 2G, 1.5GiB).",
    " is not a size (e.g. 1048576, 500M, 2G, 1.5GiB)",
    " is not a duration: give seconds, or e.g. 90s, 10m, 2h",
    "When the connection breaks during a transfer, keep trying to reach the receiver for "
    "this long (seconds, or 90s, 10m, 2h), then continue where it stopped; 0 gives up at "
    "once.",
}
NOT_LIMIT_TEXT_STARTS = ("Decline offers that need more than this (e.g. 500M, 2G, 1.5GiB;",)
#: Messages with a limit typed in, in modules being rewritten (see NOT_MOVED_YET).
TEXTS_NOT_MOVED_YET = {"no hello within 5 s", "a verification code is 6 digits, not "}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(SOURCES).as_posix(), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(SOURCES.rglob("*.py")) if path != LIMITS_FILE
    ]


def _is_number(node: ast.expr) -> bool:
    """A number, arithmetic of numbers, a tuple of them, or a ``timedelta`` of them."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float) and not isinstance(node.value, bool)
    if isinstance(node, ast.BinOp):
        return _is_number(node.left) and _is_number(node.right)
    if isinstance(node, ast.UnaryOp):
        return _is_number(node.operand)
    if isinstance(node, ast.Tuple):
        return all(_is_number(e) for e in node.elts)
    if isinstance(node, ast.Call):
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        return name == "timedelta" and all(_is_number(k.value) for k in node.keywords)
    return False


def _module_constants(tree: ast.Module) -> list[tuple[str, ast.expr]]:
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            found += [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and node.value and isinstance(node.target, ast.Name):
            found.append((node.target.id, node.value))
    return found


def test_limits_live_in_limits_py() -> None:
    strays = {
        (module, name)
        for module, tree in _modules()
        for name, value in _module_constants(tree)
        if _LIMIT_NAME.search(name.lstrip("_")) and _is_number(value)
    }
    assert strays, "the scan found nothing: it no longer sees the constants"
    left = {(m, n) for m, n in strays - NOT_LIMITS if n not in NOT_MOVED_YET}
    assert left == set(), "move these to limits.py, named, with a line saying why"


def _strings(tree: ast.Module) -> list[str]:
    """Every string literal but docstrings (the parts of f-strings included)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_messages_take_their_numbers_from_the_limits() -> None:
    """A message that types a limit's value goes stale the day the limit changes."""
    typed = {
        (module, text)
        for module, tree in _modules()
        for text in _strings(tree)
        if _TYPED_NUMBER.search(text)
    }
    assert typed, "the scan found nothing: it no longer sees the strings"
    left = {
        (module, text) for module, text in typed
        if text not in NOT_LIMIT_TEXTS | TEXTS_NOT_MOVED_YET
        and not text.startswith(NOT_LIMIT_TEXT_STARTS)
    }
    assert left == set(), "build these from the constants in limits.py"


def test_each_limit_says_why() -> None:
    """Each constant in limits.py has a ``#:`` line above it, or above the group of
    constants it belongs to (``SHARE_MAX_CONNECTIONS`` and ``..._PER_IP``)."""
    lines = LIMITS_FILE.read_text(encoding="utf-8").splitlines()
    constant = re.compile(r"[A-Z][A-Za-z0-9_]* = ")
    unexplained = []
    for number, line in enumerate(lines):
        if not constant.match(line):
            continue
        above = number - 1
        while above >= 0 and constant.match(lines[above]):
            above -= 1
        if above < 0 or not lines[above].startswith("#:"):
            unexplained.append(line.split(" = ")[0])
    assert unexplained == ["KiB", "MiB", "GiB"]  # units, not limits

