"""Identity key file, paired-device store and verification codes."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2p_transfer.limits import (
    CODE_DIGITS,
    DEFAULT_PAIRING_LIFETIME,
    FRESH_ADDRESS_ATTEMPTS_PER_MINUTE,
    GLOBAL_ATTEMPTS_PER_MINUTE,
    LOCKOUT_SECONDS,
    MAX_ADDRESS_FAILURES,
    MAX_UNANSWERED_CODES,
    MAX_WRONG_CODES,
    PAIRING_MAX_ADDRESSES,
    SECRET_KEY_SIZE,
)
from p2p_transfer.transfer.admission import CountedSlots
from p2p_transfer.trust import (
    AttemptLimiter,
    IdentityError,
    PairingStore,
    VerificationSlots,
    address_group,
    endpoint_id_of,
    format_code,
    generate_code,
    is_valid_code_format,
    load_or_create_secret_key,
    normalize_code,
)
from p2p_transfer.trust.attempts import LOCKOUTS_FILE_NAME, RELAYED
from p2p_transfer.trust.identity import KEY_FILE_NAME
from p2p_transfer.trust.pairing import PAIRINGS_FILE_NAME
from p2p_transfer.trust.pake import CodeExchange, PakeError

ALICE = "a1" * 32
ALBERT = "a2" * 32
BOB = "b0" * 32


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Umask 0: any private mode seen must come from the code, not from the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# --- Identity ---------------------------------------------------------------------


@pytest.mark.usefixtures("permissive_umask")
def test_key_is_created_private_and_reused(home: Path) -> None:
    key = load_or_create_secret_key(home)
    path = home / KEY_FILE_NAME
    assert len(key) == SECRET_KEY_SIZE
    assert path.read_bytes() == key
    assert mode_of(path) == 0o600

    again = load_or_create_secret_key(home)
    assert again == key
    assert endpoint_id_of(again) == endpoint_id_of(key)
    assert path.read_bytes() == key


def test_endpoint_id_is_the_public_key(home: Path, tmp_path: Path) -> None:
    key = load_or_create_secret_key(home)
    other_home = tmp_path / "other"
    other_home.mkdir()
    other = load_or_create_secret_key(other_home)
    endpoint_id = endpoint_id_of(key)
    assert len(endpoint_id) == 64 and int(endpoint_id, 16) >= 0
    assert endpoint_id != endpoint_id_of(other)
    assert key.hex() not in endpoint_id  # the ID does not reveal the secret


def test_existing_key_is_used_not_replaced(home: Path) -> None:
    path = home / KEY_FILE_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, bytes(range(SECRET_KEY_SIZE)))
    os.close(fd)
    assert load_or_create_secret_key(home) == bytes(range(SECRET_KEY_SIZE))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o660])
def test_key_readable_by_others_is_refused(home: Path, mode: int) -> None:
    key = load_or_create_secret_key(home)
    path = home / KEY_FILE_NAME
    path.chmod(mode)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_or_create_secret_key(home)
    assert path.read_bytes() == key  # refused, and left alone


@pytest.mark.parametrize("mode", [0o400, 0o700])
def test_key_private_to_its_owner_is_accepted(home: Path, mode: int) -> None:
    key = load_or_create_secret_key(home)
    (home / KEY_FILE_NAME).chmod(mode)
    assert load_or_create_secret_key(home) == key


@pytest.mark.parametrize("size", [0, 16, SECRET_KEY_SIZE - 1, SECRET_KEY_SIZE + 1, 64])
def test_key_of_wrong_length_is_refused(home: Path, size: int) -> None:
    path = home / KEY_FILE_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"k" * size)
    os.close(fd)
    with pytest.raises(IdentityError, match=f"{size} bytes, expected {SECRET_KEY_SIZE}"):
        load_or_create_secret_key(home)
    assert path.read_bytes() == b"k" * size


def test_key_symlink_is_refused(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real = load_or_create_secret_key(elsewhere)
    (home / KEY_FILE_NAME).symlink_to(elsewhere / KEY_FILE_NAME)
    with pytest.raises(IdentityError, match="symlink"):
        load_or_create_secret_key(home)
    assert (elsewhere / KEY_FILE_NAME).read_bytes() == real


def test_dangling_key_symlink_is_refused_and_not_created_through(
    home: Path, tmp_path: Path
) -> None:
    target = tmp_path / "attacker-chosen.key"
    (home / KEY_FILE_NAME).symlink_to(target)
    with pytest.raises(IdentityError, match="symlink"):
        load_or_create_secret_key(home)
    assert not target.exists()


def test_key_path_that_is_a_folder_is_refused(home: Path) -> None:
    (home / KEY_FILE_NAME).mkdir(mode=0o700)
    with pytest.raises(IdentityError, match="not a regular file"):
        load_or_create_secret_key(home)


# --- Pairing store -------------------------------------------------------------------


def test_pairing_add_and_query(home: Path) -> None:
    store = PairingStore(home)
    assert not store.is_trusted(ALICE)
    pairing = store.add(ALICE, "alice's laptop", now=1000.0)
    assert pairing.expires_at == 1000.0 + DEFAULT_PAIRING_LIFETIME
    assert store.is_trusted(ALICE, now=1001.0)
    assert not store.is_trusted(BOB, now=1001.0)
    assert not store.is_trusted(ALICE[:10], now=1001.0)  # trust needs the whole ID
    assert [p.name for p in store.list(now=1001.0)] == ["alice's laptop"]
    # a new store on the same folder (another process) sees the same trust
    assert PairingStore(home).is_trusted(ALICE, now=1001.0)


def test_pairing_expires(home: Path) -> None:
    store = PairingStore(home, lifetime=100.0)
    store.add(ALICE, "alice", now=1000.0)
    assert store.is_trusted(ALICE, now=1099.9)
    assert not store.is_trusted(ALICE, now=1100.0)
    assert store.list(now=1100.0) == []


def test_pairing_lifetime_defaults_to_24_hours(home: Path) -> None:
    store = PairingStore(home)
    store.add(ALICE, "alice", now=0.0)
    assert store.is_trusted(ALICE, now=24 * 3600 - 1)
    assert not store.is_trusted(ALICE, now=24 * 3600 + 1)


def test_pairing_renewed_by_a_new_verification(home: Path) -> None:
    store = PairingStore(home, lifetime=100.0)
    store.add(ALICE, "alice", now=1000.0)
    store.add(ALICE, "alice", now=1050.0)
    assert store.is_trusted(ALICE, now=1120.0)
    assert len(store.list(now=1120.0)) == 1


def test_adding_drops_expired_pairings(home: Path) -> None:
    store = PairingStore(home, lifetime=100.0)
    store.add(ALICE, "alice", now=0.0)
    store.add(BOB, "bob", now=500.0)
    raw = json.loads((home / PAIRINGS_FILE_NAME).read_text())
    assert [p["endpoint_id"] for p in raw["pairings"]] == [BOB]


def test_pairing_remove_by_prefix(home: Path) -> None:
    store = PairingStore(home)
    for peer in (ALICE, ALBERT, BOB):
        store.add(peer, peer[:2], now=1.0)
    removed = store.remove(ALICE[:3])
    assert [p.endpoint_id for p in removed] == [ALICE]
    assert not store.is_trusted(ALICE, now=2.0)
    assert store.is_trusted(ALBERT, now=2.0) and store.is_trusted(BOB, now=2.0)
    # a prefix typed in upper case matches the lower-case hex ID
    assert {p.endpoint_id for p in store.remove("A")} == {ALBERT}
    assert store.remove("ffff") == []
    assert [p.endpoint_id for p in store.list(now=2.0)] == [BOB]


def test_pairing_clear(home: Path) -> None:
    store = PairingStore(home)
    store.add(ALICE, "a", now=1.0)
    store.add(BOB, "b", now=1.0)
    assert store.clear() == 2
    assert not store.is_trusted(ALICE, now=2.0) and not store.is_trusted(BOB, now=2.0)
    assert store.clear() == 0


@pytest.mark.usefixtures("permissive_umask")
def test_pairings_file_is_private_and_leaves_no_temp_files(home: Path) -> None:
    store = PairingStore(home)
    for i in range(5):
        store.add(f"{i:064x}", f"peer {i}")
    store.remove("0" * 63)
    store.clear()
    assert os.listdir(home) == [PAIRINGS_FILE_NAME]
    assert mode_of(home / PAIRINGS_FILE_NAME) == 0o600


def test_failed_write_keeps_the_old_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = PairingStore(home)
    store.add(ALICE, "alice", now=1.0)
    before = (home / PAIRINGS_FILE_NAME).read_bytes()

    def no_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("p2p_transfer.trust.files.os.replace", no_replace)
    with pytest.raises(OSError):
        store.add(BOB, "bob", now=2.0)
    monkeypatch.undo()
    assert (home / PAIRINGS_FILE_NAME).read_bytes() == before
    assert os.listdir(home) == [PAIRINGS_FILE_NAME]


def test_pairings_never_written_through_a_symlink(home: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (home / PAIRINGS_FILE_NAME).symlink_to(victim)
    PairingStore(home).add(ALICE, "alice")
    assert victim.read_text() == "precious"
    assert not (home / PAIRINGS_FILE_NAME).is_symlink()


def test_a_trusted_device_remembers_where_it_was_last_reached(home: Path) -> None:
    store = PairingStore(home, lifetime=100.0)
    assert not store.remember_route(ALICE, ["10.0.0.5:4000"], now=1.0)  # not trusted: nothing
    store.add(ALICE, "alice", now=1.0)
    assert store.remember_route(ALICE, ["10.0.0.5:4000"], "endpointabc", now=2.0)
    assert store.remember_route(ALICE, ["192.168.1.9:4000", "10.0.0.5:4000"], now=3.0)
    [pairing] = PairingStore(home).list(now=3.0)  # another process reads the same
    assert pairing.addresses == ("192.168.1.9:4000", "10.0.0.5:4000")  # newest first, once
    assert pairing.ticket == "endpointabc"  # a send by address keeps the last ticket
    assert pairing.reached_at == 3.0
    # A new verification renews the trust and keeps where the device was reached.
    store.add(ALICE, "alice", now=50.0)
    [renewed] = store.list(now=120.0)
    assert renewed.addresses == pairing.addresses and renewed.ticket == "endpointabc"
    # Expired: no longer noted; forgotten: gone with the pairing.
    assert not store.remember_route(ALICE, ["10.9.9.9:1"], now=500.0)
    store.add(BOB, "bob", now=500.0)
    store.remove(BOB)
    store.add(BOB, "bob", now=501.0)
    assert store.list(now=502.0)[0].addresses == ()


def test_remembered_addresses_are_bounded(home: Path) -> None:
    store = PairingStore(home)
    store.add(ALICE, "alice", now=1.0)
    many = [f"10.0.0.{i}:4000" for i in range(PAIRING_MAX_ADDRESSES + 5)]
    store.remember_route(ALICE, [*many, "x" * 100], "endpoint" + "a" * 5000, now=2.0)
    [pairing] = store.list(now=2.0)
    assert pairing.addresses == tuple(many[:PAIRING_MAX_ADDRESSES])
    assert pairing.ticket == ""  # too long to be one of ours: not kept


def test_a_pairings_file_without_routes_is_still_read(home: Path) -> None:
    """Files written before routes were remembered keep their trust."""
    entry = {"endpoint_id": ALICE, "name": "alice", "paired_at": 0.0, "expires_at": 1e12}
    (home / PAIRINGS_FILE_NAME).write_text(json.dumps({"version": 1, "pairings": [entry]}))
    [pairing] = PairingStore(home).list()
    assert (pairing.name, pairing.addresses, pairing.ticket) == ("alice", (), "")


_FOREVER = 1e12
_ENTRY = {"endpoint_id": ALICE, "name": "alice", "paired_at": 0.0, "expires_at": _FOREVER}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"\xff\xfe garbage",
        b"null",
        b"[]",
        json.dumps([_ENTRY]).encode(),
        json.dumps({"pairings": 5}).encode(),
        json.dumps({"pairings": {"a": 1}}).encode(),
        json.dumps({"pairings": [[ALICE, "alice", 0, _FOREVER]]}).encode(),
        json.dumps({"pairings": [{"endpoint_id": ALICE}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "extra": 1}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "expires_at": str(_FOREVER)}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "expires_at": None}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "expires_at": True}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "endpoint_id": [ALICE]}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "endpoint_id": 7}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "name": None}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "addresses": "10.0.0.1:1"}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "addresses": [7]}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "addresses": ["1.2.3.4:5"] * 99}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "ticket": None}]}).encode(),
        json.dumps({"pairings": [{**_ENTRY, "reached_at": "now"}]}).encode(),
    ],
)
def test_damaged_pairings_file_grants_no_trust(home: Path, content: bytes) -> None:
    (home / PAIRINGS_FILE_NAME).write_bytes(content)
    store = PairingStore(home)
    assert not store.is_trusted(ALICE)
    assert store.list() == []
    assert store.remove("a") == []
    # the store recovers: a new verification is recorded normally
    store.add(BOB, "bob")
    assert store.is_trusted(BOB)
    assert not store.is_trusted(ALICE)


# --- Verification codes ------------------------------------------------------------------


def test_generated_codes_are_six_random_digits() -> None:
    codes = [generate_code() for _ in range(2000)]
    assert all(len(c) == CODE_DIGITS == 6 and c.isascii() and c.isdigit() for c in codes)
    assert all(is_valid_code_format(c) for c in codes)
    assert len(set(codes)) > 1950  # ~2 collisions expected among 10**6 values
    assert any(c.startswith("0") for c in codes)  # zero-padded, not 5-digit numbers


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("123456", True),
        ("000000", True),
        ("12345", False),
        ("1234567", False),
        ("12a456", False),
        ("", False),
        (" 12345", False),
        ("١٢٣٤٥٦", False),  # Arabic-Indic digits are digits, but not ASCII
        ("¹²³⁴⁵⁶", False),
    ],
)
def test_code_format(code: str, valid: bool) -> None:
    assert is_valid_code_format(code) is valid


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ("482913", True),
        (" 482913\n", True),  # what a prompt returns, surrounding blanks and all
        ("482914", False),
        ("48291", False),
        ("4829130", False),
        ("", False),
        ("482 913", False),
        ("४८२९१३", False),  # Devanagari digits
    ],
)
def test_code_exchange_proves_the_same_code_both_ways(given: str, match: bool) -> None:
    receiver = CodeExchange("482913", receiver_id="r" * 64, sender_id="s" * 64)
    sender = CodeExchange(given, receiver_id="r" * 64, sender_id="s" * 64)
    sender.finish(receiver.message)
    receiver.finish(sender.message)
    assert receiver.check_sender(sender.sender_proof()) is match
    assert sender.check_receiver(receiver.receiver_proof()) is match


@pytest.mark.parametrize("code", ["482913", "000000"])
def test_the_exchange_is_python_spake2s_symmetric_spake2(code: str) -> None:
    """Peers running the pure-Python ``spake2`` package (as earlier versions did) and
    this libsodium one derive the same key: same scalar, blinding point, transcript."""
    from spake2 import SPAKE2_Symmetric

    from p2p_transfer.trust.pake import _binding

    for ours_first in (True, False):
        ours = CodeExchange(code, receiver_id="r" * 64, sender_id="s" * 64)
        theirs = SPAKE2_Symmetric(code.encode(), idSymmetric=_binding("r" * 64, "s" * 64))
        theirs_message = theirs.start()
        if ours_first:
            key = theirs.finish(ours.message)
            ours.finish(theirs_message)
        else:
            ours.finish(theirs_message)
            key = theirs.finish(ours.message)
        assert ours.sender_proof() == hmac.new(key, b"sender", hashlib.sha256).digest()
    stranger = SPAKE2_Symmetric(b"482914", idSymmetric=_binding("r" * 64, "s" * 64))
    ours = CodeExchange("482913", receiver_id="r" * 64, sender_id="s" * 64)
    ours.finish(stranger.start())
    key = stranger.finish(ours.message)
    assert ours.sender_proof() != hmac.new(key, b"sender", hashlib.sha256).digest()


@pytest.mark.parametrize(
    ("salt", "info", "length"),
    [
        (b"", b"SPAKE2 pw", 48),  # what the exchange derives
        (b"", b"", 32),
        (b"salt", b"", 1),
        (b"\x00" * 32, b"info", 33),
        # Arbitrary bytes, seeded: every xdist worker must collect the same test ids.
        (random.Random(1).randbytes(100), random.Random(2).randbytes(50), 64),
        (b"s", b"i" * 300, 255 * 32),
    ],
)
def test_the_exchange_s_hkdf_is_cryptography_s(salt: bytes, info: bytes, length: int) -> None:
    """The standard-library HKDF the exchange uses (so a sender loads no ``cryptography``)
    derives what ``cryptography``'s does: else no peer could verify with an older one."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from p2p_transfer.trust.pake import hkdf_sha256

    for key in (b"482913", b"", os.urandom(80)):
        expected = HKDF(hashes.SHA256(), length=length, salt=salt, info=info).derive(key)
        assert hkdf_sha256(key, salt=salt, info=info, length=length) == expected


@pytest.mark.parametrize(
    ("salt", "info", "okm"),
    [
        (  # RFC 5869, A.1 (test case 1)
            bytes(range(13)), bytes(range(0xF0, 0xFA)),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (  # RFC 5869, A.3 (test case 3): no salt, no info
            b"", b"",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ],
)  # fmt: skip
def test_the_exchange_s_hkdf_gives_rfc_5869_s_vectors(salt: bytes, info: bytes, okm: str) -> None:
    from p2p_transfer.trust.pake import hkdf_sha256

    assert hkdf_sha256(b"\x0b" * 22, salt=salt, info=info, length=42).hex() == okm
    with pytest.raises(ValueError):
        hkdf_sha256(b"\x0b" * 22, salt=salt, info=info, length=255 * 32 + 1)


def test_code_exchange_is_bound_to_both_endpoint_ids() -> None:
    receiver = CodeExchange("482913", receiver_id="r" * 64, sender_id="s" * 64)
    relayed = CodeExchange("482913", receiver_id="m" * 64, sender_id="s" * 64)
    relayed.finish(receiver.message)
    receiver.finish(relayed.message)
    assert not receiver.check_sender(relayed.sender_proof())


def test_the_code_never_appears_in_what_is_sent() -> None:
    exchange = CodeExchange("482913", receiver_id="r" * 64, sender_id="s" * 64)
    other = CodeExchange("482913", receiver_id="r" * 64, sender_id="s" * 64)
    exchange.finish(other.message)
    for sent in (exchange.message, exchange.sender_proof()):
        assert b"482913" not in sent


@pytest.mark.parametrize(
    "message",
    [
        b"\x00not a point",
        b"S" + bytes(32),  # not a point of the group
        b"S" + (1).to_bytes(32, "little"),  # the identity: it would cancel the secret
        b"S" + bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        b"A" + bytes(32),  # another variant's side byte
    ],
    ids=["short", "zero", "identity", "small-order", "wrong-side"],
)
def test_a_malformed_exchange_message_is_a_pake_error(message: bytes) -> None:
    exchange = CodeExchange("482913", receiver_id="r" * 64, sender_id="s" * 64)
    with pytest.raises(PakeError):
        exchange.finish(message)


def test_our_own_message_reflected_is_refused() -> None:
    exchange = CodeExchange("482913", receiver_id="r" * 64, sender_id="s" * 64)
    with pytest.raises(PakeError, match="reflected"):
        exchange.finish(exchange.message)


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("026767", "026767"),
        ("026 767", "026767"),  # as the receiver shows it
        ("026-767", "026767"),
        ("026.767", "026767"),
        ("  026 767\n", "026767"),
        ("0 2 6 7 6 7", "026767"),
        ("０２６７６７", "026767"),  # full-width digits (a CJK keyboard)
        ("０２６　７６７", "026767"),  # and a full-width space
        ("٠٢٦٧٦٧", "026767"),  # Arabic-Indic digits
        ("026–767", "026767"),  # an en dash, as word processors type it
        ("02676", None),
        ("0267670", None),
        ("026a767", None),
        ("026_767", None),
        ("", None),
        ("½23456", None),  # a fraction is not two digits
    ],
)
def test_codes_are_read_as_people_type_them(typed: str, code: str | None) -> None:
    assert normalize_code(typed) == code


def test_codes_are_shown_in_two_groups() -> None:
    assert format_code("026767") == "026 767"


class _Waiting:
    """A verification as the slots see it."""

    def __init__(self, name: str, checking: bool = False) -> None:
        self.name = name
        self.checking = checking

    def __repr__(self) -> str:
        return self.name


def test_one_verification_per_key_the_newer_replaces_the_older() -> None:
    slots: VerificationSlots[_Waiting] = VerificationSlots(limit=8, per_address=2)
    old, new = _Waiting("old"), _Waiting("new")
    assert slots.take(old, "key", "10.0.0.1") == []
    assert slots.take(new, "key", "10.0.0.2") == [old]
    assert len(slots) == 1


def test_a_full_address_makes_room_with_its_oldest_idle_verification() -> None:
    slots: VerificationSlots[_Waiting] = VerificationSlots(limit=8, per_address=2)
    first, second = _Waiting("first", checking=True), _Waiting("second")
    slots.take(first, "k1", "10.0.0.1")
    slots.take(second, "k2", "10.0.0.1")
    third = _Waiting("third")
    assert slots.take(third, "k3", "10.0.0.1") == [second]  # the first is being checked
    fourth = _Waiting("fourth", checking=True)
    third.checking = True
    assert slots.take(fourth, "k4", "10.0.0.1") is None  # nothing idle: no room
    assert slots.take(_Waiting("elsewhere"), "k5", "10.0.0.2") == []


def test_when_all_are_taken_only_a_crowded_address_gives_way() -> None:
    slots: VerificationSlots[_Waiting] = VerificationSlots(limit=4, per_address=2)
    crowd = [_Waiting("a1"), _Waiting("a2")]
    for i, waiting in enumerate(crowd):
        slots.take(waiting, f"a{i}", "10.0.0.1")
    slots.take(_Waiting("b"), "b", "10.0.0.2")
    slots.take(_Waiting("c"), "c", "10.0.0.3")
    # A newcomer from a fourth address takes the oldest place of the address holding two.
    assert slots.take(_Waiting("honest"), "h", "10.0.0.4") == [crowd[0]]
    # Now every address holds one: nobody is pushed out by a newcomer of one more.
    assert slots.take(_Waiting("late"), "l", "10.0.0.5") is None
    # Nor by a second from an address that holds one already.
    assert slots.take(_Waiting("b2"), "b2", "10.0.0.2") is None
    assert len(slots) == 4


def test_released_places_are_free_again() -> None:
    slots: VerificationSlots[_Waiting] = VerificationSlots(limit=1, per_address=1)
    first = _Waiting("first", checking=True)
    slots.take(first, "k1", "10.0.0.1")
    assert slots.take(_Waiting("second"), "k2", "10.0.0.2") is None
    slots.release(first)
    slots.release(first)  # twice is harmless
    assert slots.take(_Waiting("second"), "k2", "10.0.0.2") == []


def test_counted_slots_allow_their_limit_then_refuse() -> None:
    slots = CountedSlots(2)
    for _ in range(5):
        slots.release()  # extra releases add no places
    assert [slots.try_acquire() for _ in range(3)] == [True, True, False]
    slots.release()
    assert slots.try_acquire()
    assert not slots.try_acquire()


# --- Verification attempts ----------------------------------------------------------------


def test_a_code_shown_counts_as_a_failed_attempt_until_the_right_code(tmp_path: Path) -> None:
    limiter = AttemptLimiter(tmp_path)
    for i in range(MAX_UNANSWERED_CODES):  # hello, and gone without a guess
        assert limiter.refusal("key", "10.0.0.1", now=100.0 + i) is None
        # No code was typed: each is still attempt 1 for the sender's user (issue 23).
        assert limiter.begin("key", "10.0.0.1", now=100.0 + i) == 1
        limiter.unanswered("key", started=100.0 + i, now=100.5 + i)
    refused = limiter.refusal("key", "10.0.0.1", now=110.0)
    assert refused is not None and refused.kind == "locked_out"
    assert refused.message == "too many codes shown and left unanswered; try again in 10 min"
    assert refused.retry_after == pytest.approx(104.0 + LOCKOUT_SECONDS - 110.0)
    assert AttemptLimiter(tmp_path).attempts_left("key", now=110.0) == 0  # as stored


def test_an_address_is_locked_out_whatever_keys_it_uses(tmp_path: Path) -> None:
    limiter = AttemptLimiter(tmp_path)
    for i in range(MAX_ADDRESS_FAILURES - 1):
        limiter.begin(f"throwaway{i}", "10.0.0.1", now=100.0 + i)
        limiter.fail(f"throwaway{i}", "10.0.0.1", now=100.0 + i)
    # A key that gets the code right takes its attempts off its address's count...
    limiter.begin("honest", "10.0.0.1", now=120.0)
    limiter.succeed("honest", "10.0.0.1", now=121.0)
    assert limiter.refusal("another", "10.0.0.1", now=122.0) is None
    limiter.begin("another", "10.0.0.1", now=122.0)
    limiter.fail("another", "10.0.0.1", now=124.0)
    refused = limiter.refusal("fresh-key", "10.0.0.1", now=125.0)
    assert refused is not None and refused.kind == "locked_out"
    assert refused.message == "too many failed verifications from this network; try again in 10 min"
    assert limiter.refusal("fresh-key", "10.0.0.2", now=125.0) is None  # another address
    assert limiter.refusal("fresh-key", "10.0.0.1", now=124.0 + LOCKOUT_SECONDS) is None


def test_addresses_that_did_not_try_lately_have_a_reserve(tmp_path: Path) -> None:
    limiter = AttemptLimiter(tmp_path)
    busy = [f"10.0.0.{i}" for i in range(GLOBAL_ATTEMPTS_PER_MINUTE // MAX_WRONG_CODES)]
    for i in range(GLOBAL_ATTEMPTS_PER_MINUTE):
        limiter.begin(f"key{i}", busy[i % len(busy)], now=100.0)
    refused = limiter.refusal("new", busy[0], now=101.0)
    assert refused is not None and refused.kind == "busy"
    for i in range(FRESH_ADDRESS_ATTEMPTS_PER_MINUTE):
        address = f"10.1.0.{i}"
        assert limiter.refusal(f"new{i}", address, now=101.0) is None
        limiter.begin(f"new{i}", address, now=101.0)
    assert limiter.refusal("last", "10.2.0.1", now=102.0) is not None  # the reserve is spent
    assert limiter.refusal("last", "10.2.0.1", now=160.5) is None  # a minute later


def test_the_allowance_is_kept_across_restarts_and_the_first_format_still_read(
    tmp_path: Path,
) -> None:
    old = {"ab" * 32: {"failures": [], "locked_until": 1000.0 + LOCKOUT_SECONDS}}
    (tmp_path / LOCKOUTS_FILE_NAME).write_text(json.dumps(old))
    assert AttemptLimiter(tmp_path).locked_for("ab" * 32, now=1000.0) == LOCKOUT_SECONDS
    limiter = AttemptLimiter(tmp_path)
    for i in range(GLOBAL_ATTEMPTS_PER_MINUTE):
        limiter.begin(f"key{i}", f"10.0.{i}.1", now=2000.0)
    restarted = AttemptLimiter(tmp_path)
    refused = restarted.refusal("key0", "10.0.0.1", now=2001.0)
    assert refused is not None and refused.kind == "busy"
    assert restarted.unanswered_left("key0", now=2001.0) == MAX_UNANSWERED_CODES - 1
    assert restarted.attempts_left("key0", now=2001.0) == MAX_WRONG_CODES  # none typed
    assert stat.S_IMODE((tmp_path / LOCKOUTS_FILE_NAME).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("ip", "address"),
    [
        ("192.168.1.20", "192.168.1.20"),
        ("2001:db8:1:2:a:b:c:d", "2001:db8:1:2::/64"),  # one host gets a whole /64
        ("2001:db8:1:2::99", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:10.0.0.7", "10.0.0.7"),
        (None, RELAYED),  # reached through a relay: no address to go by
    ],
)
def test_what_counts_as_one_address(ip: str | None, address: str) -> None:
    assert address_group(ip) == address


def test_only_typed_codes_are_wrong_codes(tmp_path: Path) -> None:
    """Issue 23: codes left unanswered do not make the next one "attempt 3 of 5"; each
    kind has its own allowance, and an address counts both."""
    limiter = AttemptLimiter(tmp_path)
    for i in range(2):
        assert limiter.begin("key", "10.0.0.1", now=100.0 + i) == 1
        limiter.unanswered("key", started=100.0 + i, now=100.5 + i)
    assert limiter.begin("key", "10.0.0.1", now=102.0) == 1
    limiter.fail("key", "10.0.0.1", now=103.0)  # typed, and wrong
    assert limiter.attempts_left("key", now=103.0) == MAX_WRONG_CODES - 1
    assert limiter.unanswered_left("key", now=103.0) == MAX_UNANSWERED_CODES - 2
    assert limiter.begin("key", "10.0.0.1", now=104.0) == 2
    for i in range(MAX_WRONG_CODES - 2):
        limiter.fail("key", "10.0.0.1", now=105.0 + i)
        assert limiter.begin("key", "10.0.0.1", now=105.5 + i) == 3 + i
    limiter.fail("key", "10.0.0.1", now=110.0)
    refused = limiter.refusal("key", "10.0.0.1", now=111.0)
    assert refused is not None and refused.message == "too many wrong codes; try again in 10 min"


def test_the_receiver_can_lift_a_lock_out(tmp_path: Path) -> None:
    limiter = AttemptLimiter(tmp_path)
    for i in range(MAX_UNANSWERED_CODES):
        limiter.begin("key", "10.0.0.1", now=100.0 + i)
        limiter.unanswered("key", started=100.0 + i, now=100.5 + i)
    for i in range(MAX_ADDRESS_FAILURES - MAX_UNANSWERED_CODES):
        limiter.begin(f"other{i}", "10.0.0.1", now=110.0 + i)
    assert [(k.key, k.cause) for k in limiter.locked_keys(now=120.0)] == [("key", "unanswered")]
    assert limiter.refusal("fresh", "10.0.0.1", now=120.0) is not None  # the address too
    # Lifted in another process (``pair unlock``): this one reads it at its next question.
    assert AttemptLimiter(tmp_path).unlock("key", now=120.0)
    assert limiter.refusal("key", "10.0.0.1", now=121.0) is None
    assert limiter.locked_keys(now=121.0) == []
    assert limiter.unanswered_left("key", now=121.0) == MAX_UNANSWERED_CODES
    assert not AttemptLimiter(tmp_path).unlock("never-tried", now=122.0)


def test_an_address_locked_by_others_stays_locked_when_one_key_is_lifted(
    tmp_path: Path,
) -> None:
    limiter = AttemptLimiter(tmp_path)
    for i in range(MAX_ADDRESS_FAILURES):
        limiter.begin(f"k{i}", "10.0.0.1", now=100.0 + i)
        limiter.fail(f"k{i}", "10.0.0.1", now=100.5 + i)
    limiter.begin("mine", "10.0.0.2", now=120.0)
    assert limiter.unlock("k0", now=121.0)
    # Nine others' failures remain there: still under the limit, so it opens.
    assert limiter.refusal("k0", "10.0.0.1", now=122.0) is None
    for i in range(2):
        limiter.begin(f"late{i}", "10.0.0.1", now=123.0 + i)
        limiter.fail(f"late{i}", "10.0.0.1", now=123.5 + i)
    limiter.unlock("mine", now=130.0)  # a key of another address changes nothing here
    assert limiter.refusal("k0", "10.0.0.1", now=131.0) is not None


def test_the_second_format_reads_every_failure_as_a_wrong_code(tmp_path: Path) -> None:
    second = {"version": 2, "keys": {"key": {"failures": [100.0, 101.0], "locked_until": 0}},
              "addresses": {}, "recent": []}
    (tmp_path / LOCKOUTS_FILE_NAME).write_text(json.dumps(second))
    limiter = AttemptLimiter(tmp_path)
    assert limiter.attempts_left("key", now=102.0) == MAX_WRONG_CODES - 2
    assert limiter.begin("key", "10.0.0.1", now=102.0) == 3


def test_a_pending_attempt_counts_as_wrong_and_as_unanswered(tmp_path: Path) -> None:
    """While a code is shown, a second connection of the key cannot start another guess
    past the limit; once it ended without a guess, it is no wrong code."""
    limiter = AttemptLimiter(tmp_path)
    for i in range(MAX_WRONG_CODES - 1):
        limiter.begin("key", "10.0.0.1", now=100.0 + i)
        limiter.fail("key", "10.0.0.1", now=100.5 + i)
    assert limiter.begin("key", "10.0.0.1", now=110.0) == MAX_WRONG_CODES
    refused = limiter.refusal("key", "10.0.0.1", now=111.0)  # a parallel connection
    assert refused is not None and refused.message.startswith("too many wrong codes")
    limiter.unanswered("key", started=110.0, now=112.0)
    assert limiter.refusal("key", "10.0.0.1", now=113.0) is None
    assert limiter.attempts_left("key", now=113.0) == 1
    # A receiver stopped while a code was shown: that attempt was left unanswered.
    limiter.begin("key", "10.0.0.1", now=114.0)
    assert AttemptLimiter(tmp_path).attempts_left("key", now=115.0) == 1
