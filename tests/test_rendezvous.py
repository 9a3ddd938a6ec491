"""The rendezvous package's pure parts: codes as typed and made, abilities, the ticket
message, the code's key (checked against the wormhole CLI's own derivations)."""

from __future__ import annotations

import json

import pytest

from p2p_transfer.limits import MAX_RENDEZVOUS_MESSAGE
from p2p_transfer.rendezvous import BadRendezvousMessage, RendezvousError, mailbox_url
from p2p_transfer.rendezvous.abilities import (
    APP_ID,
    OUR_ABILITIES,
    decode_ticket,
    encode_ticket,
    peer_kind,
)
from p2p_transfer.rendezvous.classic import TRANSIT_RELAY_ENV, transit_relay
from p2p_transfer.rendezvous.codes import (
    choose_words,
    complete,
    known_words,
    nameplate,
    normalize_code,
    unknown_words,
)
from p2p_transfer.rendezvous.mailbox import DEFAULT_MAILBOX, MAILBOX_ENV, server_name
from p2p_transfer.rendezvous.wormhole_key import CodeKey, KeyMismatch, finish_pake, start_pake


@pytest.mark.parametrize("typed", [
    "7-guitarist-revenge", "7 guitarist revenge", "  7-Guitarist-Revenge\n",
    "7_guitarist_revenge", "7 -  guitarist--revenge", "07-guitarist-revenge",
])
def test_codes_are_typed_forgivingly(typed: str) -> None:
    assert normalize_code(typed) == "7-guitarist-revenge"


@pytest.mark.parametrize("typed", ["", "7", "guitarist-revenge", "7-", "7-gu1tar", "endpointabc"])
def test_what_cannot_be_a_code_is_none(typed: str) -> None:
    assert normalize_code(typed) is None


def test_nameplate_and_unknown_words() -> None:
    assert nameplate("42-absurd-adviser") == "42"
    assert unknown_words("42-absurd-adviser") == []
    assert unknown_words("42-absurd-advisre") == ["advisre"]


def test_completion_follows_the_word_lists_even_and_odd_words() -> None:
    assert "7-guitarist" in complete("7-guit")  # even word first
    assert complete("7-guitarist-reve") == ["7-guitarist-revenge"]  # then an odd one
    assert complete("7 guitarist rev") == ["7-guitarist-revenge"]
    assert complete("guit") == []


def test_our_abilities_and_a_wormhole_clients() -> None:
    assert peer_kind(OUR_ABILITIES) == "p2p-transfer"
    assert peer_kind({}) == "magic-wormhole"  # the wormhole CLI's app_versions
    assert peer_kind({"other-app": {"x": 1}}) == "magic-wormhole"


@pytest.mark.parametrize(("versions", "said"), [
    ({"p2p-transfer": "yes"}, "its abilities are malformed"),
    ({"p2p-transfer": {"v": "1"}}, "its abilities are malformed"),
    ({"p2p-transfer": {"v": 2}}, "version 2 of the code exchange"),
    ({"p2p-transfer": {"v": 1}, "pad": "x" * MAX_RENDEZVOUS_MESSAGE}, "its version message is"),
    (["p2p-transfer"], "not an object"),
])
def test_bad_abilities_are_refused_in_words(versions: object, said: str) -> None:
    with pytest.raises(BadRendezvousMessage, match=said) as caught:
        peer_kind(versions)
    assert str(caught.value).startswith("the other side sent a bad message: ")


def test_the_ticket_message_round_trips_and_is_bounded() -> None:
    data = encode_ticket("endpointabc", "laptop")
    assert json.loads(data) == {"p2p-transfer": {"ticket": "endpointabc", "name": "laptop"}}
    assert decode_ticket(data) == ("endpointabc", "laptop")
    for bad in (b"{", b'{"p2p-transfer": {"ticket": 5}}', b'{"other": {}}',
                b'{"p2p-transfer": {"ticket": "t", "extra": 1}}'):
        with pytest.raises(BadRendezvousMessage, match="its ticket message is malformed"):
            decode_ticket(bad)
    with pytest.raises(BadRendezvousMessage, match="its ticket message is"):
        decode_ticket(encode_ticket("t" * MAX_RENDEZVOUS_MESSAGE, ""))


def test_the_mailbox_is_the_option_then_the_environment_then_the_public_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MAILBOX_ENV, raising=False)
    assert mailbox_url(None) == DEFAULT_MAILBOX
    assert server_name(DEFAULT_MAILBOX) == "relay.magic-wormhole.io"
    monkeypatch.setenv(MAILBOX_ENV, "ws://mailbox.example:4000/v1")
    assert mailbox_url(None) == "ws://mailbox.example:4000/v1"
    assert mailbox_url("wss://other/v1") == "wss://other/v1"
    with pytest.raises(BadRendezvousMessage.__mro__[1], match="ws:// or wss://"):
        mailbox_url("http://nope")


def test_the_transit_relay_is_the_option_else_the_environment_else_magic_wormholes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TRANSIT_RELAY_ENV, raising=False)
    assert transit_relay(None) == "tcp:transit.magic-wormhole.io:4001"
    monkeypatch.setenv(TRANSIT_RELAY_ENV, "relay.example:4001")
    assert transit_relay(None) == "relay.example:4001"
    assert transit_relay("tcp:10.0.0.2:4001") == "tcp:10.0.0.2:4001"
    with pytest.raises(RendezvousError, match=r"--transit-relay takes HOST:PORT .*'nowhere'"):
        transit_relay("nowhere")


def test_new_codes_take_odd_and_even_words_in_turn_from_wormholes_list() -> None:
    from wormhole._wordlist import raw_words  # the reference client's own list

    odd = {pair[1].lower() for pair in raw_words.values()}
    even = {pair[0].lower() for pair in raw_words.values()}
    for _ in range(64):
        first, second, third = choose_words(3).split("-")
        assert (first in odd, second in even, third in odd) == (True, True, True)
    assert set(known_words()) == odd | even


def _their_pake(code: str) -> tuple[object, bytes]:
    """The other side's half, by the pure-Python ``spake2`` package the wormhole CLI uses."""
    from spake2 import SPAKE2_Symmetric

    theirs = SPAKE2_Symmetric(code.encode(), idSymmetric=APP_ID.encode())
    return theirs, json.dumps({"pake_v1": theirs.start().hex()}).encode()


def test_the_code_key_and_its_boxes_are_the_wormhole_clis() -> None:
    from wormhole._key import decrypt_data, derive_key, derive_phase_key, encrypt_data

    ours, our_body = start_pake("7-guitarist-revenge", APP_ID)
    theirs, their_body = _their_pake("7-guitarist-revenge")
    key = finish_pake(ours, their_body)
    shared = theirs.finish(bytes.fromhex(json.loads(our_body)["pake_v1"]))  # type: ignore[attr-defined]
    sealed = key.seal("0123456789", "version", b'{"app_versions": {}}')
    assert decrypt_data(derive_phase_key(shared, "0123456789", "version"), sealed) == (
        b'{"app_versions": {}}'
    )
    boxed = encrypt_data(derive_phase_key(shared, "abcdef0123", "0"), b"hello")
    assert key.open("abcdef0123", "0", boxed) == b"hello"
    with pytest.raises(KeyMismatch):  # a message replayed as another phase does not open
        key.open("abcdef0123", "1", boxed)
    assert key.derive("transit_key", 32) == derive_key(shared, b"transit_key", 32)
    assert key.verifier == derive_key(shared, b"wormhole:verifier", 32)


def test_a_wrong_code_gives_a_key_that_opens_nothing() -> None:
    ours, _ = start_pake("7-guitarist-revenge", APP_ID)
    _, their_body = _their_pake("7-guitarist-revenue")
    key = finish_pake(ours, their_body)
    their_box = CodeKey(b"\x00" * 32).seal("abcdef0123", "version", b"{}")
    with pytest.raises(KeyMismatch):
        key.open("abcdef0123", "version", their_box)


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"pake_v1": "zz"}', b'{"pake_v1": "00"}'])
def test_a_malformed_key_exchange_message_is_refused_in_words(body: bytes) -> None:
    ours, _ = start_pake("7-guitarist-revenge", APP_ID)
    with pytest.raises(BadRendezvousMessage, match="its half of the key exchange is malformed"):
        finish_pake(ours, body)
