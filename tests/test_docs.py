"""docs/ARCHITECTURE.md and README's Layout name only things that exist: every class,
function, constant and file the map cites in backticks is found in the code, where the
doc says it is, so the map fails the suite when code moves instead of going stale."""

from __future__ import annotations

import ast
import builtins
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import p2p_transfer

SOURCES = Path(p2p_transfer.__file__).parent
ROOT = SOURCES.parents[1]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
README = ROOT / "README.md"

_SPAN = re.compile(r"`([^`\n]+)`")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_FILE_ENDINGS = (".py", ".md", ".js", ".html", ".css", ".svg", ".json", ".toml")
#: After a name: more names joined by "/", then "(" or "," and the file it is in.
_PAIRED_FILE = re.compile(r"(?:/`[^`]+`)*\s*[(,]\s*`([^`]+)`")


# --- what the code defines --------------------------------------------------------


@dataclass(slots=True)
class Definitions:
    """What one module defines: its top-level names and each class's members."""

    names: set[str]
    members: dict[str, set[str]]


def _assigned(targets: list[ast.expr]) -> Iterator[str]:
    for target in targets:
        if isinstance(target, ast.Name):
            yield target.id
        elif isinstance(target, ast.Tuple):
            yield from _assigned(list(target.elts))


def _members(cls: ast.ClassDef) -> set[str]:
    """A class's methods, class attributes and the ``self.x`` its methods assign."""
    found: set[str] = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.Assign):
            found |= set(_assigned(node.targets))
        elif isinstance(node, ast.AnnAssign):
            found |= set(_assigned([node.target]))
    for node in ast.walk(cls):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            if (
                isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                found.add(target.attr)
    return found


@functools.cache
def definitions(path: Path) -> Definitions:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    members: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            members[node.name] = _members(node)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= set(_assigned(node.targets))
        elif isinstance(node, ast.AnnAssign):
            names |= set(_assigned([node.target]))
    return Definitions(names, members)


def _modules(where: Path) -> list[Path]:
    return sorted(where.rglob("*.py")) if where.is_dir() else [where]


def _defines(files: list[Path], name: str) -> bool:
    """Whether one of ``files`` defines ``name``: ``Name`` at module level, or
    ``Class.member``."""
    head, _, member = name.partition(".")
    for path in files:
        found = definitions(path)
        if not member and head in found.names:
            return True
        if member and member in found.members.get(head, ()):
            return True
    return False


def _is_member_anywhere(name: str) -> bool:
    """A field or method of some class (``saved_as``): said of the class it belongs to."""
    return any(
        name in members
        for path in _modules(SOURCES)
        for members in definitions(path).members.values()
    )


def _our_module(name: str) -> bool:
    """``protocol``, ``events.EventBus``, ``protocol.conversation``: a module of ours,
    or a name defined in one."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        where = SOURCES.joinpath(*parts[:cut])
        module = where / "__init__.py" if where.is_dir() else where.with_suffix(".py")
        if module.is_file():
            rest = ".".join(parts[cut:])
            return not rest or _defines([module], rest)
    return False


# --- what the doc cites -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Citation:
    text: str  # what is in the backticks
    paired: str | None  # the file or package right after it: "`Name` (`path`)"
    bases: tuple[str, ...]  # packages a table row is about (short file names are theirs)
    line: int


def _blocks(markdown: str) -> Iterator[tuple[int, str]]:
    """Table rows, list items and paragraphs, with the line each starts on; fenced code
    is left out."""
    block: list[str] = []
    start = 0
    fenced = False
    for number, line in enumerate(markdown.splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        new_item = line.startswith("|") or re.match(r"(\d+\.|-) ", line) is not None
        if fenced or not line.strip() or new_item:
            if block:
                yield start, " ".join(block)
            block = []
        if fenced or not line.strip():
            continue
        if not block:
            start = number
        block.append(line)
    if block:
        yield start, " ".join(block)


def _row_bases(block: str) -> tuple[str, ...]:
    """The packages a table row is about (its first cell), in which its short file
    names (``sender.py``) live."""
    if not block.startswith("|"):
        return ()
    first_cell = block.split("|")[1]
    return tuple(span for span in _SPAN.findall(first_cell) if span.endswith("/"))


def citations(path: Path) -> list[Citation]:
    found = []
    for line, block in _blocks(path.read_text(encoding="utf-8")):
        bases = _row_bases(block)
        for match in _SPAN.finditer(block):
            after = _PAIRED_FILE.match(block, match.end())
            paired = after.group(1) if after is not None and _is_path(after.group(1)) else None
            found.append(Citation(match.group(1), paired, bases, line))
    return found


def _is_path(text: str) -> bool:
    return "/" in text.strip("/") or text.endswith("/") or text.endswith(_FILE_ENDINGS)


def _is_route(text: str) -> bool:
    return re.fullmatch(r"/[\w/{}.-]*", text) is not None


def _kind(text: str) -> str:
    """What a code span is: a route, a path, a name, or words (commands, options,
    values) that the doc does not claim are in the code."""
    if _is_route(text):
        return "route"
    if re.fullmatch(r"[\w./-]+", text) and not text.startswith((".", "-")) and _is_path(text):
        return "path"
    if _IDENTIFIER.fullmatch(text):
        return "name"
    return "words"


def resolve_path(text: str, bases: tuple[str, ...] = ()) -> Path | None:
    """Where a cited path is: under a row's package, the sources, or the repository."""
    for base in (*(SOURCES / b for b in bases), SOURCES, ROOT):
        candidate = base / text
        if candidate.is_dir() if text.endswith("/") else candidate.exists():
            return candidate
    return None


def problem(citation: Citation) -> str | None:
    """Why a citation names nothing that exists ('' or None when it does)."""
    text = citation.text
    kind = _kind(text)
    if kind == "route":
        quoted = re.compile(r"[\"']" + re.escape(text) + r"[\"']")
        if not any(quoted.search(p.read_text(encoding="utf-8")) for p in _modules(SOURCES)):
            return f"no module serves the route {text}"
    elif kind == "path":
        if resolve_path(text, citation.bases) is None:
            return f"no file or folder {text}"
    elif kind == "name":
        if citation.paired is not None:
            where = resolve_path(citation.paired, citation.bases)
            if where is None:
                return f"no file or folder {citation.paired}"
            if not _defines(_modules(where), text):
                return f"{text} is not defined in {citation.paired}"
        elif not (
            _defines(_modules(SOURCES), text)
            or _our_module(text)
            or _is_member_anywhere(text)
            or hasattr(builtins, text)
        ):
            return f"{text} is defined nowhere in src/p2p_transfer"
    return None


def test_every_citation_of_the_architecture_doc_exists() -> None:
    cited = citations(ARCHITECTURE)
    assert sum(_kind(c.text) == "name" for c in cited) > 50  # the doc's names were read
    assert sum(c.paired is not None for c in cited) > 40  # ... with their files
    broken = [
        f"docs/ARCHITECTURE.md:{c.line}: {why}" for c in cited if (why := problem(c))
    ]
    assert not broken, "the map names what is not there (code moved?):\n" + "\n".join(broken)


def test_the_architecture_doc_links_to_existing_docs() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links
    assert [link for link in links if not (ARCHITECTURE.parent / link).exists()] == []


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("`SendSession` (`transfer/sender.py`)", []),
        ("`SendSession` (`transfer/receiver.py`)",
         ["SendSession is not defined in transfer/receiver.py"]),
        ("`MessageReader`/`MessageWriter` (`net/tcp.py`)",
         ["MessageReader is not defined in net/tcp.py",
          "MessageWriter is not defined in net/tcp.py"]),
        ("(`TargetFolder.finish`, `disk/target.py`)", []),
        ("(`TargetFolder.vanished`, `disk/target.py`)",
         ["TargetFolder.vanished is not defined in disk/target.py"]),
        ("`NoSuchThing` and `transfer/gone.py`",
         ["NoSuchThing is defined nowhere in src/p2p_transfer",
          "no file or folder transfer/gone.py"]),
        ("| `transfer/` | `SendSession` (`sender.py`) |", []),
        ("`p2p-transfer send --to X`, `--json`, `.part`, `/ws`", []),
        ("`/no-such-route`", ["no module serves the route /no-such-route"]),
    ],
)
def test_a_moved_name_or_file_is_caught(
    tmp_path: Path, block: str, expected: list[str]
) -> None:
    """The check fails for what it should: a name in the wrong file, a method that went,
    a file that moved; commands and options are not taken for code."""
    doc = tmp_path / "doc.md"
    doc.write_text(block + "\n", encoding="utf-8")
    assert [why for c in citations(doc) if (why := problem(c))] == expected


# --- README's Layout ----------------------------------------------------------------


def _layout() -> list[str]:
    """The lines of the tree in README's "Layout" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    tree = section.split("```", 2)[1]
    return [line for line in tree.splitlines() if line.strip()]


def _entries(lines: list[str]) -> dict[str, list[str]]:
    """Each top-level folder of the tree and the first words of its indented entries
    (continuation lines, indented further, are skipped)."""
    tree: dict[str, list[str]] = {}
    current = ""
    for line in lines:
        if not line.startswith(" "):
            current = line.split()[0]
            tree[current] = []
        elif line.startswith("  ") and not line.startswith("   "):
            tree[current].append(line.split()[0])
    return tree


def test_readme_layout_lists_every_package_and_module() -> None:
    listed = set(_entries(_layout())["src/p2p_transfer/"])
    packages = {f"{p.parent.name}/" for p in SOURCES.glob("*/__init__.py")}
    modules = {p.name for p in SOURCES.glob("*.py")} - {"__init__.py"}
    assert listed == packages | modules, (
        "README's Layout and src/p2p_transfer/ differ: list new packages and modules there"
    )


def test_readme_layout_names_only_what_exists() -> None:
    tree = _entries(_layout())
    missing = [top for top in tree if not (ROOT / top).exists()]
    missing += [
        f"{top}{entry}" for top, entries in tree.items() for entry in entries
        if not (ROOT / top / entry).exists()
    ]
    assert len(tree) >= 5 and tree["tests/"]
    assert missing == []
    assert "docs/ARCHITECTURE.md" in README.read_text(encoding="utf-8").split("## Layout", 1)[1]
