"""Turning a peer's path into one that is safe to create under the target folder.

Every received name passes here: separators, ``..``, control and format
characters (``protocol.names``), ``:`` (drive letters, NTFS streams) and Windows
reserved names cannot survive, and each component is cut to the byte limit while
keeping its extension. The other
characters that only FAT and Windows forbid (``< > " | ? *``) stay: the writer
maps them (``portable_name``) only on a file system that refuses them.
"""

from __future__ import annotations

import re

from p2p_transfer.limits import MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_PATH_DEPTH
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.protocol.names import normalized

#: Suffix of a file still being received.
PART_SUFFIX = ".part"

_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "123456789¹²³"}
)
_RESERVED_STARTS = frozenset(name[:3] for name in _WINDOWS_RESERVED)
#: C0 and C1 control characters (C1's U+009B is a terminal CSI), the line and paragraph
#: separators, and ``:``, which would make ``C:`` a drive and ``x:y`` a stream of ``x``
#: on Windows.
_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029:]")
#: Characters FAT, exFAT and Windows cannot hold in a name (control characters aside).
_NOT_PORTABLE = re.compile(r'[\x00-\x1f"*:<>?\\|]')
#: Both separators count in a name a browser sends: one on Windows may send ``C:\fakepath\x``.
_SEPARATORS = re.compile(r"[/\\]")
#: Windows drops these from the end of a name (so "..  ." would mean "..").
_TRAILING = ". "
_REPLACEMENT = "_"
#: What a name made only of dots, spaces or invisible characters (``...``, ``. .``,
#: ``\u200b``) becomes: visible, and still inside its own folder.
PLACEHOLDER_NAME = "_"
#: Components that are path syntax, not names: dropped from a received path.
_PATH_SYNTAX = frozenset({"", ".", ".."})
#: A name's UTF-8 bytes at most: room is left for the " (N)" a name collision may add
#: and the ".part" suffix.
_NAME_LIMIT = MAX_NAME_BYTES - len(PART_SUFFIX) - len(" (999)")
#: Names ``sanitize_component`` keeps as they are, reserved ones and length aside (most
#: names: ASCII letters, digits and common punctuation, neither starting with a space
#: nor ending with a dot or a space); checked first, as a manifest may hold a million.
_PLAIN_CHARS = r"[\w\-+=,;@#$%&'()\[\]{}~!^`]+"
_PLAIN_NAME = re.compile(rf"{_PLAIN_CHARS}(?:[. ]+{_PLAIN_CHARS})*", re.ASCII)


def _truncate_utf8(name: str, limit: int) -> str:
    """Cut ``name`` to at most ``limit`` UTF-8 bytes, keeping a short extension."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = f"{dot}{ext}" if stem and len(ext.encode()) <= 16 else ""
    base = name[: len(name) - len(suffix)]
    budget = limit - len(suffix.encode())
    encoded = base.encode()[:budget]
    return encoded.decode(errors="ignore") + suffix


def sanitize_component(name: str) -> str:
    """Make one path component safe on every common file system.

    ``''`` for path syntax (empty, ``.``, ``..``); a name that cleans to nothing
    (``...``, `` . ``, only format characters) becomes ``PLACEHOLDER_NAME``.
    """
    if _PLAIN_NAME.fullmatch(name) and len(name) <= _NAME_LIMIT and not _reserved(name):
        return name  # the usual name, which every step below leaves as it is
    return _sanitized(name)


def _reserved(name: str) -> bool:
    """Whether Windows reserves ``name`` (``CON``, ``com1.txt``, ``LPT² .log``)."""
    return name[:3].upper() in _RESERVED_STARTS and (
        name.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_RESERVED
    )


def _sanitized(name: str) -> str:
    if name in _PATH_SYNTAX:
        return ""
    name = normalized(name)
    name = _UNSAFE_CHARS.sub(_REPLACEMENT, name)
    name = name.lstrip(" ").rstrip(_TRAILING)
    if name in _PATH_SYNTAX:
        return PLACEHOLDER_NAME
    if _reserved(name):
        name = _REPLACEMENT + name
    return _truncate_utf8(name, _NAME_LIMIT).rstrip(_TRAILING)


def portable_name(name: str) -> str:
    """``name`` (or a path) with each character FAT forbids replaced by ``_``: ``what?.txt``
    → ``what_.txt``. Same length, so the byte limits above still hold."""
    return _NOT_PORTABLE.sub(_REPLACEMENT, name)


def upload_name(raw: str) -> str:
    """The safe name for a file name a browser sends: its last component, sanitized
    ('' if nothing is left)."""
    return sanitize_component(_SEPARATORS.split(raw)[-1])


def sanitize_path(path: str) -> str:
    """Return a safe relative POSIX path for a received path, or raise ProtocolError.

    Both ``/`` and ``\\`` separate components; empty, ``.`` and ``..`` components
    are dropped, so absolute paths and traversal land inside the target folder. Any
    other component keeps its place, as a placeholder if nothing of it is usable.
    """
    _check_length(path)
    return _joined(path, _usable_parts(path))


class PathSanitizer:
    """``sanitize_path`` for the many paths of one offer: a path in the same folder as the
    one before (the usual order) has only its name sanitized, not its folders again."""

    def __init__(self) -> None:
        self._folder: str | None = None  # the last path's folder, as received
        #: ...its usable parts, sanitized and joined, ending in "/"; "" when a name in
        #: it would not take the shortcut (no usable parts, or already as deep as allowed).
        self._folder_prefix = ""

    def __call__(self, path: str) -> str:
        folder, slash, name = path.rpartition("/")
        if slash and folder == self._folder and self._folder_prefix and "\\" not in name:
            _check_length(path)
            if clean := sanitize_component(name):
                return self._folder_prefix + clean
        result = sanitize_path(path)
        if slash:
            parts = _usable_parts(folder)
            self._folder = folder
            self._folder_prefix = "/".join(parts) + "/" if 0 < len(parts) < MAX_PATH_DEPTH else ""
        return result


def _check_length(path: str) -> None:
    # A character takes at most 4 bytes: most paths need no encoding to be counted.
    if len(path) * 4 > MAX_PATH_BYTES and len(path.encode(errors="surrogatepass")) > MAX_PATH_BYTES:
        raise ProtocolError(f"path longer than {MAX_PATH_BYTES} bytes")


def _usable_parts(path: str) -> list[str]:
    """The components of ``path`` (``/`` or ``\\`` separated), sanitized, those that
    clean to path syntax dropped."""
    return [part for part in map(sanitize_component, _SEPARATORS.split(path)) if part]


def _joined(path: str, parts: list[str]) -> str:
    if not parts:
        raise ProtocolError(f"path {path!r} has no usable name")
    if len(parts) > MAX_PATH_DEPTH:
        raise ProtocolError(f"path deeper than {MAX_PATH_DEPTH} folders")
    return "/".join(parts)


def numbered_name(name: str, number: int) -> str:
    """``report.pdf`` -> ``report (2).pdf``: the name of the n-th copy."""
    stem, dot, ext = name.rpartition(".")
    if not stem:
        return f"{name} ({number})"
    return f"{stem} ({number}){dot}{ext}"
