"""The classic magic-wormhole transfer's parts, without a mailbox: its messages, the
checks on a received zip and its unpacking through the writer, and transit on loopback."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import stat
import time
import zipfile
from pathlib import Path

import pytest

from p2p_transfer.disk import TargetFolder
from p2p_transfer.limits import MAX_TEXT_BYTES, WORMHOLE_MAX_HINTS
from p2p_transfer.protocol import ProtocolError
from p2p_transfer.wormhole_classic.messages import (
    FileOffer,
    FolderOffer,
    TcpHint,
    TextOffer,
    decode_message,
    encode_hints,
    offer_message,
    read_ack,
    read_hints,
    read_offer,
)
from p2p_transfer.wormhole_classic.transit import (
    RecordPipe,
    Transit,
    TransitUnreachable,
    _Keys,
    parse_relay,
)
from p2p_transfer.wormhole_classic.unzip import Unpacked, check_zip, open_zip, unpack

# --- messages -------------------------------------------------------------------------


def test_offers_of_each_kind_are_read() -> None:
    assert read_offer({"message": "hi"}) == TextOffer("hi")
    assert read_offer({"file": {"filename": "a.txt", "filesize": 5}}) == FileOffer("a.txt", 5)
    folder = {"mode": "zipfile/deflated", "dirname": "photos", "zipsize": 90, "numbytes": 80,
              "numfiles": 3}
    assert read_offer({"directory": folder}) == FolderOffer("photos", 90, 3, 80)


def test_what_we_offer_reads_back_as_the_same_offer() -> None:
    for offer in (TextOffer("hello"), FileOffer("a.bin", 7), FolderOffer("d", 100, 2, 60)):
        assert read_offer(offer_message(offer)["offer"]) == offer


@pytest.mark.parametrize(("name", "kept"), [
    ("../../.ssh/authorized_keys", "authorized_keys"),  # a path keeps its last name only
    ("C:\\Windows\\evil.exe", "evil.exe"),
    ("bad\x1bname.txt", "bad_name.txt"),
])
def test_an_offered_name_is_one_safe_component(name: str, kept: str) -> None:
    assert read_offer({"file": {"filename": name, "filesize": 1}}) == FileOffer(kept, 1)


def test_a_text_over_the_text_limit_is_refused() -> None:
    with pytest.raises(ProtocolError, match="send it as a file"):
        read_offer({"message": "x" * (MAX_TEXT_BYTES + 1)})


def test_a_boolean_is_not_a_size() -> None:
    with pytest.raises(ProtocolError, match="not a number of bytes"):
        read_offer({"file": {"filename": "a", "filesize": True}})


def test_hints_are_read_bounded_and_without_repeats() -> None:
    ours = encode_hints([TcpHint("192.0.2.1", 4000)], [TcpHint("relay.example", 4001, 1.0)])
    hints = read_hints(ours["transit"])
    assert hints.direct == (TcpHint("192.0.2.1", 4000),)
    assert hints.relays == (TcpHint("relay.example", 4001, 1.0),)
    twice = read_hints({"hints-v1": ours["transit"]["hints-v1"] * 2})
    assert twice == hints
    tor = read_hints({"hints-v1": [{"type": "tor-tcp-v1", "hostname": "x.onion", "port": 1}]})
    assert tor.direct == () and tor.relays == ()  # a kind we cannot use is left out
    many = [{"type": "direct-tcp-v1", "hostname": "10.0.0.1", "port": n + 1}
            for n in range(WORMHOLE_MAX_HINTS + 1)]
    with pytest.raises(ProtocolError, match="at most"):
        read_hints({"hints-v1": many})
    with pytest.raises(ProtocolError, match="port"):
        read_hints({"hints-v1": [{"type": "direct-tcp-v1", "hostname": "10.0.0.1", "port": 0}]})


def test_a_message_must_be_a_json_object() -> None:
    assert decode_message(b'{"a": 1}') == {"a": 1}
    with pytest.raises(ProtocolError, match="not JSON"):
        decode_message(b"{nope")


def test_an_ack_gives_the_hash_or_the_refusal() -> None:
    assert read_ack(b'{"ack": "ok", "sha256": "ab"}') == "ab"
    assert read_ack(b'{"ack": "ok"}') is None
    with pytest.raises(ProtocolError, match="did not confirm the data: disk full"):
        read_ack(b'{"ack": "error", "error": "disk full"}')


@pytest.mark.parametrize(("text", "hint"), [
    ("tcp:transit.magic-wormhole.io:4001", TcpHint("transit.magic-wormhole.io", 4001)),
    ("127.0.0.1:4001", TcpHint("127.0.0.1", 4001)),
    ("tcp:[::1]:4001", TcpHint("::1", 4001)),
])
def test_a_transit_relay_is_written_as_the_wormhole_cli_does(text: str, hint: TcpHint) -> None:
    assert parse_relay(text) == hint


@pytest.mark.parametrize("text", ["relay", "host:port", "host:70000", ""])
def test_a_transit_relay_without_a_port_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"relay|port"):
        parse_relay(text)


# --- zips -----------------------------------------------------------------------------


def _info(name: str, size: int, compressed: int, mode: int = 0o100644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    info.file_size, info.compress_size = size, compressed
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


OFFER = FolderOffer("folder", 10_000, 10, 10**9)


def test_a_zip_entry_that_claims_more_than_deflate_can_is_refused() -> None:
    with pytest.raises(ProtocolError, match="zip bomb"):
        check_zip([_info("bomb.bin", 10**8, 1000)], OFFER)
    with pytest.raises(ProtocolError, match="zip bomb"):
        check_zip([_info("bomb.bin", 10, 0)], OFFER)
    assert check_zip([_info("zeros.bin", 1000 * 1000, 1000)], OFFER)[0].path == "zeros.bin"


def test_more_files_than_offered_are_refused() -> None:
    entries = [_info(f"f{n}", 1, 1) for n in range(OFFER.files + 1)]
    with pytest.raises(ProtocolError, match="more than the 10 files"):
        check_zip(entries, OFFER)


@pytest.mark.parametrize(("info", "words"), [
    (_info("dev", 0, 0, stat.S_IFCHR | 0o600), "special file"),
    (_info("fifo", 0, 0, stat.S_IFIFO | 0o600), "special file"),
    (_info("link", 10, 10, stat.S_IFLNK | 0o777), "symlink"),
    (_info("C:/evil.txt", 1, 1), "absolute path"),
    (_info("..\\evil.txt", 1, 1), "'..'"),
])
def test_entries_that_are_not_plain_files_or_folders_inside_are_refused(
    info: zipfile.ZipInfo, words: str
) -> None:
    with pytest.raises(ProtocolError, match=words):
        check_zip([info], OFFER)


def test_an_encrypted_or_exotically_compressed_entry_is_refused() -> None:
    encrypted = _info("secret", 1, 1)
    encrypted.flag_bits |= 0x1
    with pytest.raises(ProtocolError, match="encrypted"):
        check_zip([encrypted], OFFER)
    bzipped = _info("b", 1, 1)
    bzipped.compress_type = zipfile.ZIP_BZIP2
    with pytest.raises(ProtocolError, match="compression"):
        check_zip([bzipped], OFFER)


def _zip(entries: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            if name.endswith("/"):
                archive.mkdir(name.rstrip("/"))
            else:
                info = zipfile.ZipInfo(name, (2020, 1, 2, 3, 4, 6))
                info.create_system, info.external_attr = 3, (0o100750 << 16)
                archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    buffer.seek(0)
    return buffer


def test_a_zip_unpacks_through_the_writer_without_replacing_anything(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    (root / "folder" / "sub").mkdir(parents=True)
    (root / "folder" / "sub" / "a.txt").write_text("mine\n")
    archive = _zip({"sub/a.txt": b"theirs\n", "sub/b.txt": b"b\n", "empty/": b""})
    offer = FolderOffer("folder", len(archive.getvalue()), 2, 9)
    target = TargetFolder(root)
    done: list[Unpacked] = []
    try:
        with open_zip(archive) as zipped:
            unpack(zipped, check_zip(zipped.infolist(), offer), target, "folder", done.append)
    finally:
        target.close()
    assert (root / "folder" / "sub" / "a.txt").read_text() == "mine\n"
    assert (root / "folder" / "sub" / "a (1).txt").read_text() == "theirs\n"
    assert (root / "folder" / "sub" / "b.txt").read_text() == "b\n"
    assert (root / "folder" / "empty").is_dir()
    assert [(d.path, d.saved_as) for d in done] == [
        ("folder/sub/a.txt", "folder/sub/a (1).txt"), ("folder/sub/b.txt", "folder/sub/b.txt"),
    ]
    b = root / "folder" / "sub" / "b.txt"
    assert stat.S_IMODE(b.stat().st_mode) == 0o750 & ~0o022
    assert b.stat().st_mtime == pytest.approx(time.mktime((2020, 1, 2, 3, 4, 6, 0, 0, -1)))


def test_a_damaged_entry_leaves_no_file_and_no_part(tmp_path: Path) -> None:
    archive = _zip({"a.bin": os.urandom(5000)})
    data = bytearray(archive.getvalue())
    data[60:70] = bytes(10)  # inside a.bin's compressed bytes
    damaged = io.BytesIO(bytes(data))
    target = TargetFolder(tmp_path / "inbox")
    try:
        with open_zip(damaged) as zipped, pytest.raises(ProtocolError, match="damaged"):
            planned = check_zip(zipped.infolist(), FolderOffer("f", len(data), 1, 5000))
            unpack(zipped, planned, target, "f", lambda _: None)
    finally:
        target.close()
    assert [p.name for p in (tmp_path / "inbox" / "f").iterdir()] == []


def test_something_that_is_not_a_zip_is_refused() -> None:
    with pytest.raises(ProtocolError, match="readable zip"):
        open_zip(io.BytesIO(b"PK but not really"))


# --- transit on loopback ---------------------------------------------------------------


async def _pair(
    key_a: bytes, key_b: bytes, timeout: float = 10.0
) -> tuple[RecordPipe, RecordPipe]:
    sender, receiver = Transit("sender", key_a, []), Transit("receiver", key_b, [])
    try:
        await sender.start()
        direct, _ = await receiver.start()
        sender.add_peer_hints(read_hints(encode_hints(direct, [])["transit"]))
        sending, receiving = await asyncio.gather(
            sender.connect(timeout), receiver.connect(timeout)
        )
        return sending, receiving
    finally:
        await sender.close()
        await receiver.close()


async def test_records_cross_transit_in_order() -> None:
    key = os.urandom(32)
    sending, receiving = await _pair(key, key)
    try:
        for size in (0, 1, 16 * 1024, 100_000):
            await sending.send(b"x" * size)
            assert await receiving.receive() == b"x" * size
        await receiving.send(b'{"ack": "ok"}')
        assert await sending.receive() == b'{"ack": "ok"}'
        assert not sending.relayed
    finally:
        await sending.close()
        await receiving.close()
    assert await receiving.receive() is None  # closed between records


async def test_a_record_longer_than_allowed_is_refused_unread() -> None:
    key = os.urandom(32)
    sending, receiving = await _pair(key, key)
    try:
        await sending.send(b"y" * 2000)
        with pytest.raises(ProtocolError, match="at most 1000 B"):
            await receiving.receive(max_size=1000)
    finally:
        await sending.close()
        await receiving.close()


async def test_a_forged_record_fails_authentication() -> None:
    key = os.urandom(32)
    sending, receiving = await _pair(key, key)
    try:
        forged = bytes(24) + os.urandom(40)  # nonce 0, as expected, but no valid MAC
        sending._writer.write(len(forged).to_bytes(4, "big") + forged)
        with pytest.raises(ProtocolError, match="authentication"):
            await receiving.receive()
    finally:
        await sending.close()
        await receiving.close()


async def test_sides_with_different_keys_never_connect() -> None:
    with pytest.raises(TransitUnreachable, match=r"no direct path: .*handshake mismatch"):
        await _pair(os.urandom(32), os.urandom(32), timeout=1.0)


async def test_an_unreachable_relay_fails_at_once_with_a_plain_sentence() -> None:
    """No side listens and the only relay refuses connections: said in one line, at once
    (not after the whole transit deadline)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    transit = Transit("sender", os.urandom(32), [TcpHint("127.0.0.1", port)], listen=False)
    try:
        await transit.start()
        async with asyncio.timeout(10):
            with pytest.raises(TransitUnreachable, match=(
                f"^can't reach the transit relay 127.0.0.1:{port} \\(connection refused\\), "
                "and no direct path: the other side offered none"
            )):
                await transit.connect(timeout=60)
    finally:
        await transit.close()


def test_the_transit_handshakes_and_record_keys_are_the_wormhole_clis() -> None:
    from nacl.secret import SecretBox
    from wormhole.transit import (
        build_receiver_handshake,
        build_sender_handshake,
        build_sided_relay_handshake,
    )
    from wormhole.util import HKDF

    key, side = os.urandom(32), "0123456789abcdef"
    sender, receiver = _Keys.derive("sender", key, side), _Keys.derive("receiver", key, side)
    assert sender.send_handshake == receiver.expect_handshake == build_sender_handshake(key)
    assert receiver.send_handshake == sender.expect_handshake == build_receiver_handshake(key)
    assert sender.relay_token == build_sided_relay_handshake(key, side)
    to_receiver = HKDF(key, SecretBox.KEY_SIZE, CTXinfo=b"transit_record_sender_key")
    assert sender.send_key == receiver.receive_key == to_receiver
    assert receiver.send_key == sender.receive_key != to_receiver
