"""The sans-IO protocol layer: framing, typed messages, manifest paging and path rules.

Everything a peer sends passes through these functions, so bad input must end
in a ProtocolError with a readable message, never in another exception.
"""

from __future__ import annotations

import math
import struct
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2p_transfer.limits import (
    FRAME_HEADER_SIZE,
    MANIFEST_PAGE_BUDGET,
    MAX_MANIFEST_ENTRIES,
    MAX_MANIFEST_NAME_BYTES,
    MAX_MESSAGE_SIZE,
    MAX_NAME_BYTES,
    MAX_OFFER_BYTES,
    MAX_PATH_BYTES,
    MAX_PATH_DEPTH,
    MAX_TEXT_BYTES,
    TEXT_PAGE_BYTES,
    TEXT_PREVIEW_CHARS,
)
from p2p_transfer.protocol import (
    PART_SUFFIX,
    PROTOCOL_VERSION,
    Accept,
    Cancel,
    Continue,
    DataHeader,
    DataTrailer,
    Decline,
    Entry,
    Error,
    FileResult,
    FrameDecoder,
    Hello,
    Manifest,
    ManifestAssembler,
    ManifestPage,
    ManifestSummary,
    Message,
    Offer,
    ProtocolError,
    Resume,
    ResumePage,
    Retry,
    Summary,
    TextAssembler,
    TextOffer,
    TextPage,
    Verified,
    Verify,
    Welcome,
    body_length,
    check_offer,
    check_text_offer,
    encode,
    numbered_name,
    paginate,
    paginate_text,
    portable_name,
    sanitize_component,
    sanitize_path,
    text_preview,
)
from p2p_transfer.protocol.paths import PathSanitizer, _sanitized

HASH = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"

EVERY_MESSAGE: list[Message] = [
    Hello(PROTOCOL_VERSION, "laptop ☃"),
    Hello(PROTOCOL_VERSION, "laptop", paired=True, retries=True),
    Continue(PROTOCOL_VERSION, "laptop", "0123456789ab", b"\x00" * 16),
    Welcome(PROTOCOL_VERSION, "desk", code_required=True),
    Welcome(PROTOCOL_VERSION, "desk", True, b"\x00spake2", attempt=2, max_attempts=5),
    Welcome(PROTOCOL_VERSION, "desk", code_required=False),
    Verify(b"\x00spake2", b"proof"),
    Verified(b"proof"),
    Retry(b"\x00spake2", attempt=2, max_attempts=5),
    Offer("0123456789abcdef", entries=3, files=2, total_bytes=10, pages=1),
    ManifestPage(
        [
            Entry("photos", "dir", 0, 0o755, 1.5),
            Entry("photos/été.jpg", "file", 7, 0o644, 1_700_000_000.25),
            Entry("empty", "file", 0, 0o600, 0.0),
        ]
    ),
    ManifestPage([]),
    TextOffer("0123456789abcdef", bytes=9, pages=1, preview="hello ✓"),
    TextPage("hello ✓"),
    Accept(2),
    Accept(0, session="0123456789ab", continuation=b"\x01" * 16),
    ResumePage([Resume(1, 4096, HASH), Resume(7, 1, HASH)]),
    Decline("not now"),
    DataHeader(index=3, offset=100, length=2**40),
    DataTrailer(3, HASH),
    DataTrailer(4, ""),
    FileResult(3, True, blake3=HASH),
    FileResult(4, False, error="BLAKE3 mismatch"),
    Summary(files_ok=3, files_failed=1, bytes_received=123),
    Cancel("cancelled by peer"),
    Error("protocol error: bad"),
]


def frame(body: bytes) -> bytes:
    """A frame with a correct length prefix around any body."""
    return struct.pack(">I", len(body)) + body


def decode_one(data: bytes) -> Message | None:
    decoder = FrameDecoder()
    decoder.feed(data)
    return decoder.next_message()


# --- Messages and framing ----------------------------------------------------------


def test_every_message_type_is_covered() -> None:
    """The round-trip list below names every message the protocol has."""
    assert {type(m) for m in EVERY_MESSAGE} == set(Message.__subclasses__())


def test_retries_are_added_within_version_1_both_ways() -> None:
    """A Hello or Welcome without the retry fields (an earlier sender or receiver) reads
    as "no retries"; one with them reads fine where they are unknown (extra fields are
    ignored), so PROTOCOL_VERSION stays 1."""
    earlier_hello = msgspec.msgpack.encode({"type": "hello", "version": 1, "name": "old"})
    assert decode_one(frame(earlier_hello)) == Hello(1, "old", paired=False, retries=False)
    earlier_welcome = msgspec.msgpack.encode(
        {"type": "welcome", "version": 1, "name": "old", "code_required": True, "pake": b"m"}
    )
    welcome = decode_one(frame(earlier_welcome))
    assert isinstance(welcome, Welcome) and (welcome.attempt, welcome.max_attempts) == (0, 0)

    class EarlierHello(msgspec.Struct, tag_field="type", tag="hello"):
        version: int
        name: str
        paired: bool = False

    newer = encode(Hello(PROTOCOL_VERSION, "new", retries=True))[FRAME_HEADER_SIZE:]
    assert msgspec.msgpack.decode(newer, type=EarlierHello) == EarlierHello(1, "new")


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_message_round_trip(message: Message) -> None:
    data = encode(message)
    assert struct.unpack(">I", data[:FRAME_HEADER_SIZE])[0] == len(data) - FRAME_HEADER_SIZE
    decoder = FrameDecoder()
    decoder.feed(data)
    assert decoder.next_message() == message
    assert decoder.next_message() is None
    assert decoder.buffered == 0


def test_message_body_is_a_map_tagged_by_type() -> None:
    """Other implementations rely on the documented shape: a msgpack map with ``type``."""
    body = msgspec.msgpack.decode(encode(Hello(1, "x"))[FRAME_HEADER_SIZE:])
    assert body == {"type": "hello", "version": 1, "name": "x"}
    page = msgspec.msgpack.decode(
        encode(ManifestPage([Entry("a", "file", 1, 0o644, 2.0)]))[FRAME_HEADER_SIZE:]
    )
    assert page == {"type": "manifest", "entries": [["a", "file", 1, 0o644, 2.0]]}


def test_decoder_fed_one_byte_at_a_time() -> None:
    stream = b"".join(encode(m) for m in EVERY_MESSAGE)
    decoder = FrameDecoder()
    received: list[Message] = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        received.extend(decoder.messages())
    assert received == EVERY_MESSAGE
    assert decoder.buffered == 0


def test_truncated_frame_waits_for_more() -> None:
    data = encode(Hello(1, "sender"))
    for cut in (0, 1, FRAME_HEADER_SIZE - 1, FRAME_HEADER_SIZE, len(data) - 1):
        decoder = FrameDecoder()
        decoder.feed(data[:cut])
        assert decoder.next_message() is None
        assert decoder.messages() == []
        decoder.feed(data[cut:])
        assert decoder.next_message() == Hello(1, "sender")


def test_two_frames_in_one_chunk() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode(Verify(b"m", b"p")) + encode(Verified()) + encode(Cancel("x"))[:3])
    assert decoder.messages() == [Verify(b"m", b"p"), Verified()]
    assert decoder.buffered == 3


def test_body_length_accepts_up_to_the_limit() -> None:
    assert body_length(struct.pack(">I", 1)) == 1
    assert body_length(struct.pack(">I", MAX_MESSAGE_SIZE)) == MAX_MESSAGE_SIZE
    assert body_length(bytearray(struct.pack(">I", 5))) == 5
    assert body_length(memoryview(struct.pack(">I", 5))) == 5


@pytest.mark.parametrize("length", [MAX_MESSAGE_SIZE + 1, 2**31, 0xFFFFFFFF])
def test_body_length_rejects_oversized(length: int) -> None:
    with pytest.raises(ProtocolError, match="exceeds") as info:
        body_length(struct.pack(">I", length))
    assert str(MAX_MESSAGE_SIZE) in str(info.value)


def test_body_length_rejects_zero_and_short_headers() -> None:
    with pytest.raises(ProtocolError, match="empty"):
        body_length(b"\x00\x00\x00\x00")
    for header in (b"", b"\x00\x00\x01", b"\x00\x00\x00\x01\x00"):
        with pytest.raises(ProtocolError, match="header"):
            body_length(header)


def test_oversized_length_is_refused_before_the_body_arrives() -> None:
    """Only the 4 header bytes are needed to refuse; nothing waits for 4 GiB."""
    for length in (MAX_MESSAGE_SIZE + 1, 0xFFFFFFFF):
        decoder = FrameDecoder()
        decoder.feed(struct.pack(">I", length))
        with pytest.raises(ProtocolError, match="exceeds"):
            decoder.next_message()


def test_zero_length_frame_is_refused() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00\x00\x00")
    with pytest.raises(ProtocolError, match="empty message"):
        decoder.next_message()


@pytest.mark.parametrize(
    "body",
    [
        b"\xc1",  # a byte msgpack never uses
        b"\xc1\xc1\xc1",
        b"\x81",  # a map that promises one pair and stops
        b"\xde\xff\xff",  # map16 with 65535 pairs and no data
        msgspec.msgpack.encode({"type": "hello", "version": 1, "name": "x"}) + b"\x00",
    ],
)
def test_garbage_body_is_malformed(body: bytes) -> None:
    with pytest.raises(ProtocolError, match="malformed message"):
        decode_one(frame(body))


@pytest.mark.parametrize(
    "value",
    [1, "hello", None, [1, 2], b"\x00"],
)
def test_body_that_is_not_a_map_is_invalid(value: object) -> None:
    with pytest.raises(ProtocolError, match="invalid message"):
        decode_one(frame(msgspec.msgpack.encode(value)))


def test_unknown_type_tag() -> None:
    body = msgspec.msgpack.encode({"type": "format_disk", "now": True})
    with pytest.raises(ProtocolError, match=r"invalid message: Invalid value 'format_disk'"):
        decode_one(frame(body))


def test_missing_type_tag() -> None:
    body = msgspec.msgpack.encode({"version": 1, "name": "x"})
    with pytest.raises(ProtocolError, match="missing required field `type`"):
        decode_one(frame(body))


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"type": "hello", "version": "1", "name": "x"}, r"\$\.version"),
        ({"type": "hello", "version": True, "name": "x"}, r"\$\.version"),
        ({"type": "hello", "version": 1.0, "name": "x"}, r"\$\.version"),
        ({"type": "hello", "version": 1, "name": 7}, r"\$\.name"),
        ({"type": "hello", "version": 1}, "name"),
        ({"type": "welcome", "version": 1, "name": "x", "code_required": 1}, "code_required"),
        ({"type": "data", "index": 0, "offset": 0, "length": float("nan")}, r"\$\.length"),
        ({"type": "manifest", "entries": [["a", "link", 1, 0, 0.0]]}, r"\$\.entries\[0\]"),
        ({"type": "manifest", "entries": [["a", "file", 1]]}, r"\$\.entries\[0\]"),
        ({"type": "manifest", "entries": {"a": 1}}, r"\$\.entries"),
        ({"type": "resume", "items": [[0, 1, 2]]}, r"\$\.items\[0\]"),
    ],
)
def test_wrong_field_types_name_the_field(fields: dict[str, object], where: str) -> None:
    with pytest.raises(ProtocolError, match="invalid message") as info:
        decode_one(frame(msgspec.msgpack.encode(fields)))
    assert info.match(where)


def test_unknown_extra_fields_are_ignored() -> None:
    """A newer peer may add fields; an older one still understands the message."""
    body = msgspec.msgpack.encode({"type": "hello", "version": 1, "name": "x", "emoji": "🙂"})
    assert decode_one(frame(body)) == Hello(1, "x")


@pytest.mark.parametrize("raw", [b"\xff\xfe\xfd", b"\xed\xa0\x80", b"ab\xc3"])
def test_invalid_utf8_string_is_a_protocol_error(raw: bytes) -> None:
    """A string that is not UTF-8 (or encodes a lone surrogate) is refused cleanly."""
    body = msgspec.msgpack.encode({"type": "hello", "version": 1, "name": "XYZ"})
    body = body.replace(b"\xa3XYZ", bytes([0xA0 | len(raw)]) + raw)
    with pytest.raises(ProtocolError, match="malformed message"):
        decode_one(frame(body))


def test_encode_refuses_an_oversized_message() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        encode(Decline("x" * MAX_MESSAGE_SIZE))
    entries = [Entry("d/" + "n" * 200 + str(i), "file", 1, 0o644, 0.0) for i in range(400)]
    with pytest.raises(ProtocolError, match="exceeds"):
        encode(ManifestPage(entries))


def test_encode_accepts_a_message_of_exactly_the_limit() -> None:
    overhead = len(encode(Decline(""))) - FRAME_HEADER_SIZE
    # A str of 256..65535 bytes has a 3-byte msgpack header, not the 1-byte one of "".
    reason = "r" * (MAX_MESSAGE_SIZE - overhead - 2)
    data = encode(Decline(reason))
    assert len(data) == FRAME_HEADER_SIZE + MAX_MESSAGE_SIZE
    assert decode_one(data) == Decline(reason)


# --- Fuzzing the decoder -------------------------------------------------------------


def _feed_in_pieces(data: bytes, cuts: list[int]) -> None:
    """Feed ``data`` split at ``cuts``; only ProtocolError may escape."""
    decoder = FrameDecoder()
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        decoder.feed(data[start:cut])
        start = max(start, cut)
        for message in decoder.messages():
            assert isinstance(message, Message)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=512), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_fuzz_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    try:
        _feed_in_pieces(data, cuts)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    bodies=st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_fuzz_well_framed_arbitrary_bodies(bodies: list[bytes], cuts: list[int]) -> None:
    """Correct length prefixes get the fuzzer past the header into the body decoder."""
    try:
        _feed_in_pieces(b"".join(frame(b) for b in bodies), cuts)
    except ProtocolError:
        pass


_TAGS = [
    "hello", "welcome", "verify", "verified", "offer", "manifest", "accept", "resume",
    "decline", "data", "end", "file_result", "summary", "cancel", "error", "bogus",
]  # fmt: skip
_FIELDS = [
    "version", "name", "code_required", "code", "transfer_id", "entries", "files",
    "total_bytes", "pages", "items", "reason", "index", "offset", "length", "blake3",
    "ok", "error", "files_ok", "files_failed", "bytes_received", "message",
]  # fmt: skip
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tag=st.sampled_from(_TAGS),
    fields=st.dictionaries(st.sampled_from(_FIELDS), _values, max_size=6),
)
def test_fuzz_plausible_messages(tag: str, fields: dict[str, object]) -> None:
    """Right tags, arbitrary field values: validation, not parsing, is exercised."""
    body = msgspec.msgpack.encode({"type": tag, **fields})
    try:
        message = decode_one(frame(body))
    except ProtocolError:
        return
    assert isinstance(message, Message)


@settings(max_examples=400, deadline=None)
@given(
    message=st.sampled_from(EVERY_MESSAGE),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4),
)
def test_fuzz_mutated_valid_messages(message: Message, edits: list[tuple[int, int]]) -> None:
    """Valid frames with a few bytes changed (including the length prefix)."""
    data = bytearray(encode(message))
    for position, value in edits:
        data[position % len(data)] = value
    try:
        _feed_in_pieces(bytes(data), [])
    except ProtocolError:
        pass


# --- Path sanitizing ---------------------------------------------------------------

#: Windows device names, as Microsoft documents them (CONIN$/CONOUT$ and the
#: superscript-digit ports included), compared case-insensitively.
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{port}{digit}" for port in ("COM", "LPT") for digit in "123456789¹²³"
}
WINDOWS_FORBIDDEN_CHARS = set('<>:"|?*\\/')
#: Never in a sanitized name; the other forbidden ones go only where a disk refuses them.
NEVER_KEPT_CHARS = set(':\\/')
#: Room a component keeps for the " (N)" of a name collision and the ".part" suffix.
LONGEST_DERIVED_SUFFIX = len(" (999)") + len(PART_SUFFIX)


def assert_safe_relative_path(result: str) -> None:
    """Everything the receiver relies on before it joins ``result`` to its folder."""
    assert result
    assert not PurePosixPath(result).is_absolute()
    windows = PureWindowsPath(result)
    assert not windows.is_absolute() and not windows.drive and not windows.root
    assert "\\" not in result
    components = result.split("/")
    assert len(components) <= MAX_PATH_DEPTH
    for component in components:
        assert component not in ("", ".", "..")
        assert not any(unicodedata.category(c) == "Cc" for c in component), component
        # No format character (bidi controls, zero-width ones), but a joiner inside a word.
        assert all(
            unicodedata.category(c) != "Cf" or c in "\u200c\u200d" for c in component
        ), component
        assert not NEVER_KEPT_CHARS & set(component), component
        portable = portable_name(component)  # what a FAT disk gets: same length, all safe
        assert not WINDOWS_FORBIDDEN_CHARS & set(portable), portable
        assert len(portable.encode()) == len(component.encode())
        # Windows drops trailing dots and spaces: "..  " would become "..".
        assert not component.endswith((".", " ")), component
        assert component.split(".", 1)[0].rstrip(" ").upper() not in WINDOWS_RESERVED
        assert len(component.encode()) + LONGEST_DERIVED_SUFFIX <= MAX_NAME_BYTES
        assert component == unicodedata.normalize("NFC", component)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../x", "x"),
        ("../../../../etc/passwd", "etc/passwd"),
        ("/etc/passwd", "etc/passwd"),
        ("a/./b/../c", "a/b/c"),
        ("C:\\x", "C_/x"),
        ("C:x", "C_x"),
        ("\\\\server\\share\\f", "server/share/f"),
        ("..\\..\\windows\\system32", "windows/system32"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("dir/Nul.tar.gz", "dir/_Nul.tar.gz"),
        ("lpt9", "_lpt9"),
        ("CONIN$", "_CONIN$"),
        ("COM¹.txt", "_COM¹.txt"),
        ("CONSOLE.txt", "CONSOLE.txt"),
        ("a\x00b", "a_b"),
        ("\x1b[31m", "_[31m"),
        ("bell\x07\x7f", "bell__"),
        ("csi\x9b31m", "csi_31m"),
        ("line\nbreak", "line_break"),
        ('q"<>|?*', 'q"<>|?*'),  # a FAT disk gets them as _ (disk/names.py)
        ("a:b", "a_b"),
        ("name. . .", "name"),
        ("trailing.", "trailing"),
        # Names of nothing but dots, spaces or invisible characters keep their place.
        ("..  ", "_"),
        ("..  .", "_"),
        (". .", "_"),
        ("names/...", "names/_"),
        ("names/.../x", "names/_/x"),
        (" / . / .. ", "_/_/_"),
        ("\u200b", "_"),
        (".\u200b.", "_"),
        # Format characters never survive: the name reads as it is.
        ("\u202egnp.exe", "gnp.exe"),
        ("photo\u200b.jpg", "photo.jpg"),
        ("a\u200db\u2060c\ufeff", "abc"),
        ("\u2066x\u2069/\u200ey\u200f", "x/y"),
        ("line\u2028sep", "line_sep"),
        # ...except joiners inside words and emoji that need them.
        ("\u0645\u06cc\u200c\u0631\u0648\u0645", "\u0645\u06cc\u200c\u0631\u0648\u0645"),
        ("\U0001f468\u200d\U0001f4bb.png", "\U0001f468\u200d\U0001f4bb.png"),
        ("\u200cword\u200d", "word"),
        ("e\u200b\u0301t\u00e9", "\u00e9t\u00e9"),  # normalized once the space is gone
        ("\u212a\u200d\u6587", "K\u6587"),  # the Kelvin sign is a K: no joiner by it
        ("a .", "a"),
        ("  spaced  /x", "spaced/x"),
        (".hidden", ".hidden"),
        ("...", "_"),
        ("e\u0301t\u00e9", "\u00e9t\u00e9"),
        ("ok/ünïcødé 文件.txt", "ok/ünïcødé 文件.txt"),
    ],
)
def test_sanitize_named_cases(raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ProtocolError, match="no usable name"):
            sanitize_path(raw)
        return
    result = sanitize_path(raw)
    assert result == expected
    assert_safe_relative_path(result)


@pytest.mark.parametrize("raw", ["", "/", "//", ".", "..", "../..", "./.", "\\", "/./../"])
def test_sanitize_nothing_usable(raw: str) -> None:
    with pytest.raises(ProtocolError, match="no usable name"):
        sanitize_path(raw)


def test_long_name_is_cut_and_keeps_its_extension() -> None:
    raw = "a" * 296 + ".txt"
    assert len(raw.encode()) == 300
    result = sanitize_path(raw)
    assert result.endswith(".txt") and result.startswith("aaaa")
    assert len((numbered_name(result, 999) + PART_SUFFIX).encode()) <= MAX_NAME_BYTES
    assert_safe_relative_path(result)


def test_long_multibyte_name_is_cut_on_a_character_boundary() -> None:
    raw = "文" * 100 + ".jpeg"  # 305 bytes
    result = sanitize_component(raw)
    assert result.endswith(".jpeg")
    assert set(result.removesuffix(".jpeg")) == {"文"}
    assert len(result.encode()) + LONGEST_DERIVED_SUFFIX <= MAX_NAME_BYTES


def test_long_name_with_a_long_extension_is_cut_as_a_whole() -> None:
    result = sanitize_component("x." + "y" * 300)
    assert result.startswith("x.yyy")
    assert len(result.encode()) + LONGEST_DERIVED_SUFFIX <= MAX_NAME_BYTES


def test_path_over_the_byte_limit_is_refused() -> None:
    raw = "/".join(["d" * 200] * 21)
    assert len(raw.encode()) > MAX_PATH_BYTES
    with pytest.raises(ProtocolError, match=f"longer than {MAX_PATH_BYTES}"):
        sanitize_path(raw)
    # multi-byte characters count as bytes, not characters
    with pytest.raises(ProtocolError, match="longer than"):
        sanitize_path("文" * (MAX_PATH_BYTES // 3 + 1))


def test_path_depth_limit() -> None:
    deepest = "/".join(["d"] * MAX_PATH_DEPTH)
    assert sanitize_path(deepest) == deepest
    with pytest.raises(ProtocolError, match=f"deeper than {MAX_PATH_DEPTH}"):
        sanitize_path("/".join(["d"] * (MAX_PATH_DEPTH + 1)))


def test_dropped_components_do_not_count_towards_depth() -> None:
    assert sanitize_path("./" * 100 + "f") == "f"


_path_alphabet = st.one_of(
    st.sampled_from(
        ["/", "\\", ".", "..", " ", ":", "CON", "nul", "Com1", "CONIN$", "LPT³", "\x00",
         "\x1b", "\x85", "\x9b", "\u202e", "\u200b", "\u200d", "\u2066", "\ufeff", "e\u0301",
         "文", "a", "txt", "$"]
    ),
    # What a peer can deliver: msgspec refuses lone surrogates in msgpack and JSON.
    st.characters(codec="utf-8"),
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(raw=st.lists(_path_alphabet, max_size=40).map("".join))
def test_fuzz_sanitize_path(raw: str) -> None:
    try:
        result = sanitize_path(raw)
    except ProtocolError:
        return
    assert_safe_relative_path(result)
    assert sanitize_path(result) == result  # a sanitized path is a fixed point


@settings(max_examples=300, deadline=None)
@given(
    folders=st.lists(st.lists(_path_alphabet, max_size=12).map("".join), min_size=1, max_size=3),
    names=st.lists(st.lists(_path_alphabet, max_size=8).map("".join), max_size=12),
    picks=st.lists(st.integers(min_value=0, max_value=2), max_size=12),
)
def test_fuzz_an_offers_paths_sanitize_as_each_alone(
    folders: list[str], names: list[str], picks: list[int]
) -> None:
    """The offer's sanitizer skips the folder of a path in the folder before: the same
    result, or the same refusal, as sanitize_path on each path alone."""
    sanitize = PathSanitizer()
    for name, pick in zip(names, picks + [0] * len(names), strict=False):
        raw = f"{folders[pick % len(folders)]}/{name}"
        try:
            expected: str | None = sanitize_path(raw)
        except ProtocolError as exc:
            expected = None
            refusal = str(exc)
        if expected is None:
            with pytest.raises(ProtocolError) as caught:
                sanitize(raw)
            assert str(caught.value) == refusal
        else:
            assert sanitize(raw) == expected


def test_an_offers_sanitizer_refuses_a_path_in_a_known_folder_as_sanitize_path_does() -> None:
    sanitize = PathSanitizer()
    deepest = "/".join(["d"] * MAX_PATH_DEPTH)
    assert sanitize(f"{deepest}/..") == deepest  # its folder is now known
    with pytest.raises(ProtocolError, match="deeper"):
        sanitize(f"{deepest}/x")
    assert sanitize("a/x") == "a/x"
    with pytest.raises(ProtocolError, match="longer"):
        sanitize("a/" + "文" * (MAX_PATH_BYTES // 3 + 1))


_plain_alphabet = st.sampled_from(
    ["a", "Z", "0", "_", "-", ".", " ", "(", "'", "$", "~", "CON", "com1", "LpT9", "AUX",
     "conout$", "nul", "COM¹", ":", "?", "\x1f", "é", "\u200b"]
)


@settings(max_examples=1000, deadline=None)
@given(raw=st.lists(_plain_alphabet, min_size=1, max_size=12).map("".join) | st.text(max_size=250))
def test_the_quick_path_for_plain_names_gives_what_the_full_cleaning_does(raw: str) -> None:
    """Most names skip the cleaning steps (a manifest may hold a million): that must
    change nothing, for reserved names, dots and spaces at either end, long names."""
    assert sanitize_component(raw) == _sanitized(raw)


@settings(max_examples=100, deadline=None)
@given(raw=st.lists(st.text(min_size=250, max_size=300), min_size=1, max_size=3).map("/".join))
def test_fuzz_sanitize_long_components(raw: str) -> None:
    try:
        result = sanitize_path(raw)
    except ProtocolError:
        return
    assert_safe_relative_path(result)


@pytest.mark.parametrize(
    ("name", "number", "expected"),
    [
        ("report.pdf", 2, "report (2).pdf"),
        ("archive.tar.gz", 1, "archive.tar (1).gz"),
        ("README", 3, "README (3)"),
        (".bashrc", 1, ".bashrc (1)"),
    ],
)
def test_numbered_name(name: str, number: int, expected: str) -> None:
    assert numbered_name(name, number) == expected


# --- Manifest: paging ------------------------------------------------------------------


def _through_the_wire(message: Message) -> Message:
    decoded = decode_one(encode(message))
    assert decoded is not None
    return decoded


def test_paginate_100k_entries_fit_the_message_limit() -> None:
    entries = [
        Entry(f"photos/2024/album-{i // 1000:03d}/IMG_{i:06d}.jpeg", "file", i, 0o644, 1.7e9 + i)
        for i in range(100_000)
    ]
    pages = list(paginate(entries))
    assert len(pages) > 1
    received: list[Entry] = []
    for page in pages:
        assert page
        message = _through_the_wire(ManifestPage(page))  # encode refuses > MAX_MESSAGE_SIZE
        assert isinstance(message, ManifestPage)
        received.extend(message.entries)
    assert received == entries

    total = sum(e.size for e in entries)
    assembler = ManifestAssembler(
        check_offer(Offer("t", len(entries), len(entries), total, len(pages)))
    )
    for page in pages:
        assembler.add_page(page)
    assert assembler.complete
    assert [e.path for e in assembler.entries] == [e.path for e in entries]


def test_paginate_longest_paths_fit_the_message_limit() -> None:
    """Worst case per entry: a 4096-byte path of multi-byte characters."""
    long_path = "/".join(["文" * 80] * 17)[: MAX_PATH_BYTES // 3]
    assert len(long_path.encode()) <= MAX_PATH_BYTES
    entries = [Entry(f"{long_path}{i}", "file", 2**62, 0o777, -1e300) for i in range(60)]
    pages = list(paginate(entries))
    assert len(pages) > 1
    for page in pages:
        encode(ManifestPage(page))
    assert [e for page in pages for e in page] == entries


def test_paginate_resume_items_fit_the_message_limit() -> None:
    items = [Resume(i, 2**50 + i, HASH) for i in range(20_000)]
    pages = list(paginate(items))
    assert len(pages) > 1
    for page in pages:
        encode(ResumePage(page))
    assert [r for page in pages for r in page] == items


def _manifest_of(entries: list[Entry]) -> Manifest:
    manifest = Manifest()
    for entry in entries:
        manifest.append(entry)
    return manifest


def test_a_manifest_is_indexed_as_a_list_is() -> None:
    entries = [Entry("a", "dir", 0, 0o755, 1.0), Entry("a/b.txt", "file", 3, 0o644, 2.0)]
    manifest = _manifest_of(entries)
    assert [manifest[i] for i in (-2, -1, 0, 1)] == entries * 2
    assert manifest[::-1] == entries[::-1]
    for beyond in (2, -3):
        with pytest.raises(IndexError):
            manifest[beyond]
        with pytest.raises(IndexError):
            manifest.path(beyond)


def _column_bytes(entries: list[Entry]) -> list[bytes]:
    return [bytes(data) for data in _manifest_of(entries).column_bytes()]


def test_two_manifests_columns_are_the_same_exactly_when_their_entries_are() -> None:
    """What a continuation's digest reads: any field of any entry changed, or a path's
    bytes moved to its neighbour, changes them."""
    entries = [Entry("ab", "file", 0, 0o644, 1.5), Entry("c", "dir", 0, 0o755, 2.0)]
    assert _column_bytes(entries) == _column_bytes(list(entries))
    changed = [
        [Entry("a", "file", 0, 0o644, 1.5), Entry("bc", "dir", 0, 0o755, 2.0)],
        [Entry("ab", "dir", 0, 0o644, 1.5), entries[1]],
        [Entry("ab", "file", 4, 0o644, 1.5), entries[1]],
        [Entry("ab", "file", 0, 0o600, 1.5), entries[1]],
        [Entry("ab", "file", 0, 0o644, 1.25), entries[1]],
        entries[:1],
    ]
    for other in changed:
        assert _column_bytes(other) != _column_bytes(entries), other


def test_paginate_nothing() -> None:
    assert list(paginate([])) == []


def _largest_entries(path_bytes: int, count: int) -> list[Entry]:
    """Entries whose every field takes its most bytes: 64-bit sizes, mode 0o777, a float
    time, paths of ``path_bytes`` bytes of 3-byte characters."""
    path = "文" * (path_bytes // 3 - 3)
    return [Entry(f"{path}{i:03d}", "file", 2**62, 0o777, -1e300) for i in range(count)]


@pytest.mark.parametrize("kind", ["typical", "longest paths", "largest fields"])
def test_a_manifests_own_pages_hold_its_entries_in_order_each_within_the_budget(
    kind: str,
) -> None:
    """The sender pages its manifest from the columns, with a bound for each entry in
    place of paginate's trial encoding: entries whose fields take their most bytes fill
    a page to within one entry of the budget, never over it."""
    if kind == "typical":
        entries = [
            Entry(f"photos/album-{i // 1000:03d}/IMG_{i:06d}.jpeg", "file", i, 0o644, 1.7e9)
            if i % 500 else Entry(f"photos/album-{i // 1000:03d}", "dir", 0, 0o755, 1.7e9)
            for i in range(20_000)
        ]
    else:
        entries = _largest_entries(MAX_PATH_BYTES if kind == "longest paths" else 300, 600)
    pages = list(_manifest_of(entries).pages())
    assert len(pages) > 1
    received: list[Entry] = []
    for page in pages:
        assert len(msgspec.msgpack.encode(page)) <= MANIFEST_PAGE_BUDGET
        message = _through_the_wire(ManifestPage(page))  # encode refuses > MAX_MESSAGE_SIZE
        assert isinstance(message, ManifestPage)
        received.extend(message.entries)
    assert received == entries
    if kind != "typical":
        entry_size = len(msgspec.msgpack.encode(entries[0]))
        for page in pages[:-1]:
            assert len(msgspec.msgpack.encode(page)) + entry_size > MANIFEST_PAGE_BUDGET - 16


def test_an_empty_manifest_has_no_pages() -> None:
    assert list(Manifest().pages()) == []


# --- Manifest: validation ------------------------------------------------------------------


def assembler_for(entries: list[Entry], pages: int = 1) -> ManifestAssembler:
    files = [e for e in entries if e.kind == "file"]
    return ManifestAssembler(
        ManifestSummary(len(entries), len(files), sum(e.size for e in files), pages)
    )


def f(path: str, size: int = 1, mode: int = 0o644, mtime: float = 0.0) -> Entry:
    return Entry(path, "file", size, mode, mtime)


def d(path: str, size: int = 0) -> Entry:
    return Entry(path, "dir", size, 0o755, 0.0)


def test_assembler_accepts_and_sanitizes() -> None:
    entries = [d("a"), f("a/../../b.txt", 3), f("/abs/CON", 4), f("a/x", 0, mode=0o104755)]
    assembler = assembler_for(entries, pages=2)
    assembler.add_page(entries[:2])
    assert not assembler.complete
    assembler.add_page(entries[2:])
    assert assembler.complete
    assert [e.path for e in assembler.entries] == ["a", "a/b.txt", "abs/_CON", "a/x"]
    # setuid, setgid, sticky and file-type bits never survive
    assert assembler.entries[3].mode == 0o755


@pytest.mark.parametrize(
    ("paths", "landed"),
    [
        (["a/b", "a/b"], ["a/b", "a/b (1)"]),
        (["Readme.md", "README.MD"], ["Readme.md", "README.MD"]),  # case matters on Linux
        (["\u00e9", "e\u0301"], ["\u00e9", "\u00e9 (1)"]),  # same name once normalized
        (["x", "./x"], ["x", "x (1)"]),
        (["../x", "x"], ["x", "x (1)"]),
        (["a:b", "a_b", "a?b"], ["a_b", "a_b (1)", "a?b (2)"]),  # one name on FAT
        (["a?b", "a_b.part"], ["a?b", "a_b (1).part"]),  # the part of one is the other
        (["a_b", "a?b.part"], ["a_b", "a?b (1).part"]),
        (["a?b.part", "a_b"], ["a?b.part", "a_b (1)"]),
        (["d/r.txt", "d/r.txt"], ["d/r.txt", "d/r (1).txt"]),
    ],
)
def test_files_that_sanitize_alike_get_numbered_names(paths: list[str], landed: list[str]) -> None:
    entries = [f(p) for p in paths]
    assembler = assembler_for(entries)
    assembler.add_page(entries)
    assert [e.path for e in assembler.entries] == landed


def test_folders_of_one_name_merge_but_a_folder_cannot_take_a_files_name() -> None:
    merging = [d("a"), d("a"), f("a/x")]
    assembler = assembler_for(merging)
    assembler.add_page(merging)
    assert [e.path for e in assembler.entries] == ["a", "a", "a/x"]
    clashing = [f("a"), d("a")]
    assembler = assembler_for(clashing)
    with pytest.raises(ProtocolError, match="has the name of a file"):
        assembler.add_page(clashing)


def test_assembler_refuses_more_entries_than_declared() -> None:
    assembler = ManifestAssembler(ManifestSummary(entries=2, files=2, total_bytes=2, pages=2))
    assembler.add_page([f("a")])
    with pytest.raises(ProtocolError, match="more manifest entries than declared"):
        assembler.add_page([f("b"), f("c")])


def test_assembler_refuses_more_pages_than_declared() -> None:
    assembler = ManifestAssembler(ManifestSummary(entries=2, files=2, total_bytes=2, pages=1))
    assembler.add_page([f("a"), f("b")])
    with pytest.raises(ProtocolError, match="more manifest pages than declared"):
        assembler.add_page([])


@pytest.mark.parametrize(
    "summary",
    [
        ManifestSummary(entries=3, files=2, total_bytes=5, pages=1),  # fewer entries
        ManifestSummary(entries=2, files=1, total_bytes=5, pages=1),  # file count differs
        ManifestSummary(entries=2, files=2, total_bytes=6, pages=1),  # byte total differs
    ],
)
def test_assembler_refuses_totals_mismatch(summary: ManifestSummary) -> None:
    assembler = ManifestAssembler(summary)
    with pytest.raises(ProtocolError, match="declared totals"):
        assembler.add_page([f("a", 2), f("b", 3)])


def test_offer_without_pages_must_be_empty() -> None:
    """Declaring entries but no pages must not complete a manifest that contradicts it."""
    assert ManifestAssembler(check_offer(Offer("t", 0, 0, 0, 0))).complete
    with pytest.raises(ProtocolError, match="declared totals"):
        ManifestAssembler(check_offer(Offer("t", 5, 5, 10**12, 0)))
    with pytest.raises(ProtocolError, match="declared totals"):
        ManifestAssembler(check_offer(Offer("t", 0, 0, 10**12, 0)))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (f("neg", -1), "invalid size"),
        (d("dir-with-size", 10), "invalid size"),
        (d("dir-negative", -1), "invalid size"),
        (f("nan", mtime=math.nan), "invalid mtime"),
        (f("inf", mtime=math.inf), "invalid mtime"),
        (f("huge", mtime=1e300), "invalid mtime"),
        (f("", 1), "no usable name"),
        (f("../..", 1), "no usable name"),
    ],
)
def test_assembler_refuses_bad_entries(entry: Entry, message: str) -> None:
    assembler = ManifestAssembler(ManifestSummary(1, 1, max(entry.size, 0), 1))
    with pytest.raises(ProtocolError, match=message):
        assembler.add_page([entry])


def test_assembler_keeps_ordinary_mtimes() -> None:
    entries = [f("old", mtime=-86400.5), f("new", mtime=4_102_444_800.0)]
    assembler = assembler_for(entries)
    assembler.add_page(entries)
    assert [e.mtime for e in assembler.entries] == [-86400.5, 4_102_444_800.0]


@pytest.mark.parametrize(
    ("offer", "message"),
    [
        (Offer("t", MAX_MANIFEST_ENTRIES + 1, 0, 0, 1), "exceeds"),
        (Offer("t", -1, 0, 0, 0), "exceeds"),
        (Offer("t", 2, 3, 0, 1), "more files than entries"),
        (Offer("t", 2, -1, 0, 1), "more files than entries"),
        (Offer("t", 2, 2, -5, 1), "negative size"),
        (Offer("t", 2, 2, MAX_OFFER_BYTES + 1, 1), "exceeds"),
        (Offer("t", 2, 2, 5, 3), "more pages than entries"),
        (Offer("t", 2, 2, 5, -1), "more pages than entries"),
    ],
)
def test_check_offer_limits(offer: Offer, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        check_offer(offer)


def test_check_offer_accepts_the_largest_offer() -> None:
    largest = Offer("t", MAX_MANIFEST_ENTRIES, MAX_MANIFEST_ENTRIES, MAX_OFFER_BYTES, 500)
    assert check_offer(largest) == ManifestSummary(
        MAX_MANIFEST_ENTRIES, MAX_MANIFEST_ENTRIES, MAX_OFFER_BYTES, 500
    )


def test_manifest_names_are_bounded_in_total() -> None:
    """Many long paths within the entry limit still cannot make the receiver hoard memory."""
    path_bytes = 4000
    count = MAX_MANIFEST_NAME_BYTES // path_bytes + 1
    entries = [f("/".join([f"{i:08d}"] + ["n" * 199] * 20)[:path_bytes]) for i in range(count)]
    assert all(len(e.path.encode()) == path_bytes for e in entries)
    assembler = assembler_for(entries)
    with pytest.raises(ProtocolError, match=f"names exceed {MAX_MANIFEST_NAME_BYTES}"):
        assembler.add_page(entries)


# --- Text messages ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "preview"),
    [
        ("hello ✓", "hello ✓"),
        ("\n\n  first line  \nsecond", "first line…"),
        ("x" * TEXT_PREVIEW_CHARS, "x" * TEXT_PREVIEW_CHARS),
        ("x" * (TEXT_PREVIEW_CHARS + 1), "x" * (TEXT_PREVIEW_CHARS - 1) + "…"),
        ("\u202egnp.exe is safe", "gnp.exe is safe"),  # nothing reorders the question
        ("wait…\nmore", "wait…"),
    ],
)
def test_text_preview_is_the_first_line_clipped(text: str, preview: str) -> None:
    assert text_preview(text) == preview
    assert text_preview(preview) == preview  # a receiver cleaning it again keeps it


@given(text=st.text(max_size=MAX_TEXT_BYTES // 4))
@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
def test_text_pages_fit_a_message_and_join_into_the_text(text: str) -> None:
    pages = paginate_text(text)
    assert "".join(pages) == text
    assert all(0 < len(page.encode()) <= TEXT_PAGE_BYTES for page in pages)


def test_the_largest_text_in_multibyte_characters_fits_two_messages() -> None:
    text = "x" + "✓" * (MAX_TEXT_BYTES // 3)  # a 3-byte character across the page cut
    assert len(text.encode()) == MAX_TEXT_BYTES and TEXT_PAGE_BYTES % 3 != 1
    pages = paginate_text(text)
    assert len(pages) == 2 and "".join(pages) == text
    for page in pages:
        assert len(encode(TextPage(page))) <= FRAME_HEADER_SIZE + MAX_MESSAGE_SIZE
    offer = TextOffer("t", len(text.encode()), len(pages), text_preview(text))
    assembler = TextAssembler(offer)
    for page in pages:
        assembler.add(page)
    assert assembler.complete and assembler.text == text


@pytest.mark.parametrize(
    ("size", "pages", "why"),
    [
        (0, 1, "a text of 0 bytes"),
        (MAX_TEXT_BYTES + 1, 2, f"1 to {MAX_TEXT_BYTES} allowed"),
        (10, 0, "in 0 pages"),
        (10, 11, "in 11 pages"),
        (-1, 1, "a text of -1 bytes"),
    ],
)
def test_impossible_text_offers_are_refused(size: int, pages: int, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        check_text_offer(TextOffer("t", size, pages, "x"))


@pytest.mark.parametrize(
    ("declared", "pages", "why"),
    [
        (5, ["hello", "!"], "more than the 5 bytes"),
        (6, ["hello"], "5 bytes of text, not the 6 offered"),
        (5, [""], "an empty text page"),
        (3, ["ab", "c", "d"], "more than the 3 bytes"),
    ],
)
def test_text_pages_that_differ_from_the_offer_are_refused(
    declared: int, pages: list[str], why: str
) -> None:
    offer = TextOffer("t", declared, min(len(pages), declared), "x")
    assembler = TextAssembler(offer)
    with pytest.raises(ProtocolError, match=why):
        for page in pages:
            assembler.add(page)
