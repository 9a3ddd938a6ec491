"""The LocalSend server against hostile and broken clients, and its sans-I/O parts.

A real Node serves LocalSend on 127.0.0.1 (no multicast); the clients are plain
aiohttp or raw sockets doing what an attacker on the LAN could do.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from p2p_transfer.discovery import AmbiguousDeviceError, ticket_for
from p2p_transfer.events import Event, OfferEvent, ProgressEvent, SessionState, StateEvent
from p2p_transfer.limits import (
    LOCALSEND_ANNOUNCE_INTERVAL,
    LOCALSEND_DEVICE_TTL,
    LOCALSEND_MAX_CONNECTIONS_PER_IP,
    LOCALSEND_MAX_JSON_BODY,
    LOCALSEND_MAX_WRONG_PINS,
    LOCALSEND_MAX_WRONG_PINS_IN_ALL,
    LOCALSEND_WRONG_PINS_WINDOW,
    MiB,
)
from p2p_transfer.localsend.discovery import DeviceTable, LocalSendDevice, others
from p2p_transfer.localsend.identity import (
    load_or_create_certificate,
    own_info,
    sender_fingerprint,
)
from p2p_transfer.localsend.messages import FileInfo, PrepareUpload, Target, decode_prepare_upload
from p2p_transfer.localsend.offer import read_offer
from p2p_transfer.localsend.pins import PinCheck, PinGate
from p2p_transfer.localsend.receiver import ReceiverSetup
from p2p_transfer.net.keys import generate_secret_key
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.transfer import Decision, IncomingOffer, ReceiveOptions, SendOptions
from p2p_transfer.trust.identity import endpoint_id_of
from waiting import wait_until

API = "/api/localsend/v2"
SENDER = {"alias": "mallory", "version": "2.1", "deviceModel": "Evil", "deviceType": "mobile",
          "fingerprint": "AB" * 32, "port": 53317, "protocol": "https"}


class Served:
    """A node serving LocalSend on 127.0.0.1, and an HTTPS client for it."""

    def __init__(self, node: Node, http: aiohttp.ClientSession, target: Path) -> None:
        self.node = node
        self.http = http
        self.target = target
        self.events: list[Event] = []
        node.events.subscribe(self.events.append)
        assert node.localsend is not None
        self.port = node.localsend.port
        self.url = f"https://127.0.0.1:{self.port}{API}"

    async def prepare(self, files: dict[str, dict[str, Any]], pin: str | None = None
                      ) -> aiohttp.ClientResponse:
        body = {"info": SENDER, "files": files}
        params = {"pin": pin} if pin else None
        response = await self.http.post(f"{self.url}/prepare-upload", json=body, params=params)
        await response.read()
        return response

    async def upload(self, session: str, file_id: str, token: str, data: object,
                     headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        params = {"sessionId": session, "fileId": file_id, "token": token}
        response = await self.http.post(f"{self.url}/upload", params=params, data=data,
                                        headers=headers)
        await response.read()
        return response

    async def accepted(self, files: dict[str, dict[str, Any]]) -> dict[str, Any]:
        response = await self.prepare(files)
        assert response.status == 200, await response.text()
        return json.loads(await response.read())


def file_entry(file_id: str, name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"id": file_id, "fileName": name, "size": len(data),
            "fileType": "application/octet-stream", **extra}


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    target = tmp_path / "root" / "inbox"

    async def accept(offer: IncomingOffer) -> Decision:
        return Decision(True)

    node = Node.without_endpoint(NodeConfig(tmp_path / "home", "us", bind_addr="127.0.0.1"))
    await node.start_localsend(
        ReceiverSetup(ReceiveOptions(target=target), accept, pin=None), 0, announce=False
    )
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False, limit=0))
    try:
        yield Served(node, http, target)
    finally:
        await http.close()
        await node.close()


# --- hostile clients ---------------------------------------------------------------


async def test_traversal_names_land_inside_the_folder(served: Served, tmp_path: Path) -> None:
    names = ["../../escape.txt", "/etc/passwd", "..\\..\\win.txt", "a/../../b.txt",
             "dir/./../../../c.txt", "CON", "\x1b[31mred.txt"]
    data = {f"f{n}": f"file {n}".encode() for n in range(len(names))}
    files = {fid: file_entry(fid, name, data[fid]) for fid, name in zip(data, names, strict=True)}
    before = tree(tmp_path / "root") if (tmp_path / "root").exists() else set()
    reply = await served.accepted(files)
    for fid, token in reply["files"].items():
        response = await served.upload(reply["sessionId"], fid, token, data[fid])
        assert response.status == 200
    received = tree(served.target)
    assert len([p for p in received if (served.target / p).is_file()]) == len(names)
    assert tree(tmp_path / "root") - before == {f"inbox/{p}" for p in received} | {"inbox"}
    assert not (tmp_path / "escape.txt").exists() and not Path("/etc/c.txt").exists()
    assert sorted((served.target / p).read_bytes() for p in received
                  if (served.target / p).is_file()) == sorted(data.values())


@pytest.mark.parametrize("actual", [999, 1001])
async def test_a_body_of_another_length_than_announced_is_refused(
    served: Served, actual: int
) -> None:
    reply = await served.accepted({"x": file_entry("x", "x.bin", b"\0" * 1000)})
    response = await served.upload(reply["sessionId"], "x", reply["files"]["x"],
                                   os.urandom(actual))
    assert response.status == 400
    assert "exactly 1000 bytes" in await response.text()
    assert tree(served.target) == set()  # no file, no .part


@pytest.mark.parametrize("actual", [999, 1001])
async def test_a_chunked_body_longer_or_shorter_than_announced_is_refused(
    served: Served, actual: int
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield os.urandom(actual)  # no Content-Length: chunked transfer encoding

    reply = await served.accepted({"x": file_entry("x", "x.bin", b"\0" * 1000)})
    response = await served.upload(reply["sessionId"], "x", reply["files"]["x"], chunks())
    assert response.status == 400
    text = await response.text()
    assert ("more data than the announced" in text) if actual > 1000 else ("ended after" in text)
    assert tree(served.target) == set()


async def test_a_ten_megabyte_json_body_is_refused_unread(served: Served) -> None:
    body = b'{"info": {"alias": "x"}, "files": {"' + b"a" * (10 * MiB) + b'": 1}}'
    response = await served.http.post(f"{served.url}/prepare-upload", data=body,
                                      headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert f"larger than {LOCALSEND_MAX_JSON_BODY // 1024} KiB" in await response.text()
    # The server keeps serving.
    info = await served.http.get(f"{served.url}/info")
    assert (await info.json())["alias"] == "us"


async def test_an_upload_with_a_wrong_token_is_refused(served: Served) -> None:
    data = os.urandom(5000)
    reply = await served.accepted({"x": file_entry("x", "x.bin", data)})
    for session, token in [(reply["sessionId"], "not-the-token"), ("other", reply["files"]["x"])]:
        response = await served.upload(session, "x", token, data)
        assert response.status == 403
    missing = await served.http.post(f"{served.url}/upload", data=b"x")
    assert missing.status == 400
    # The right token still works afterwards.
    ok = await served.upload(reply["sessionId"], "x", reply["files"]["x"], data)
    assert ok.status == 200
    assert (served.target / "x.bin").read_bytes() == data


async def test_a_second_session_gets_409_while_one_is_open(served: Served) -> None:
    reply = await served.accepted({"x": file_entry("x", "x.bin", b"abc")})
    busy = await served.prepare({"y": file_entry("y", "y.bin", b"def")})
    assert busy.status == 409
    assert (await served.upload(reply["sessionId"], "x", reply["files"]["x"], b"abc")).status == 200


async def test_a_wrong_sha256_fails_the_file(served: Served) -> None:
    data = os.urandom(4096)
    wrong = hashlib.sha256(b"something else").hexdigest()
    reply = await served.accepted({"x": file_entry("x", "x.bin", data, sha256=wrong)})
    response = await served.upload(reply["sessionId"], "x", reply["files"]["x"], data)
    assert response.status == 400 and "sha256" in await response.text()
    assert tree(served.target) == set()


async def test_idle_connections_do_not_stop_an_honest_upload(served: Served) -> None:
    data = os.urandom(3 * MiB)
    reply = await served.accepted(
        {"x": file_entry("x", "big.bin", data, sha256=hashlib.sha256(data).hexdigest())}
    )
    idle_tcp = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(50)]
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    # Handshaken and silent, from the honest client's own address: they fill its slots.
    idle_tls = [await asyncio.open_connection("127.0.0.1", served.port, ssl=tls)
                for _ in range(50)]
    assert len(idle_tls) > LOCALSEND_MAX_CONNECTIONS_PER_IP
    try:
        # A new connection (not the one the offer went on) has to find a slot.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as fresh:
            served.http, kept = fresh, served.http
            response = await served.upload(reply["sessionId"], "x", reply["files"]["x"], data)
            served.http = kept
        assert response.status == 200
    finally:
        for _, writer in idle_tcp + idle_tls:
            writer.close()
    assert (served.target / "big.bin").read_bytes() == data


async def test_three_wrong_pins_lock_the_address_out(tmp_path: Path) -> None:
    async def accept(offer: IncomingOffer) -> Decision:
        return Decision(True)

    node = Node.without_endpoint(NodeConfig(tmp_path / "home", "us", bind_addr="127.0.0.1"))
    await node.start_localsend(
        ReceiverSetup(ReceiveOptions(target=tmp_path / "in"), accept, pin="2468"), 0,
        announce=False,
    )
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
        served = Served(node, http, tmp_path / "in")
        files = {"x": file_entry("x", "x.bin", b"abc")}
        assert (await served.prepare(files)).status == 401  # asked: no penalty
        for _ in range(LOCALSEND_MAX_WRONG_PINS):
            assert (await served.prepare(files, pin="0000")).status == 401
        assert (await served.prepare(files, pin="2468")).status == 429  # even the right one
    await node.close()


async def test_a_declined_offer_is_403_and_the_sender_sees_why(tmp_path: Path) -> None:
    async def decline(offer: IncomingOffer) -> Decision:
        assert offer.via == "localsend" and offer.peer_name == "mallory"
        assert offer.device_model == "Evil" and offer.peer_id == "AB" * 32
        return Decision(False, "not now")

    node = Node.without_endpoint(NodeConfig(tmp_path / "home", "us", bind_addr="127.0.0.1"))
    await node.start_localsend(
        ReceiverSetup(ReceiveOptions(target=tmp_path / "in"), decline), 0, announce=False
    )
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
        response = await Served(node, http, tmp_path / "in").prepare(
            {"x": file_entry("x", "x.bin", b"abc")}
        )
        assert response.status == 403 and "not now" in await response.text()
    await node.close()


# --- sans-I/O ------------------------------------------------------------------------


def _request(files: dict[str, FileInfo]) -> PrepareUpload:
    return decode_prepare_upload(json.dumps({
        "info": SENDER,
        "files": {k: {"id": f.id, "fileName": f.file_name, "size": f.size,
                      "fileType": f.file_type, "preview": f.preview} for k, f in files.items()},
    }).encode())


def test_names_that_would_meet_get_numbers() -> None:
    names = ["a.txt", "A.txt", "dir/x", "dir/x", "a.txt/inner"]
    offer = read_offer(_request({
        str(n): FileInfo(id=str(n), file_name=name, size=1) for n, name in enumerate(names)
    }))
    paths = [f.path for f in offer.files.values()]
    assert paths == ["a.txt", "A (1).txt", "dir/x", "dir/x (1)", "inner"]


def test_names_one_disk_would_store_as_one_file_or_its_part_get_numbers() -> None:
    """``x`` is received as ``x.part``, and FAT stores ``a?b`` as ``a_b``: such names
    never share a file (nor a part) either."""
    names = ["x", "x.part", "X.PART", "a?b", "a_b", "dir/y.part", "dir/y"]
    offer = read_offer(_request({
        str(n): FileInfo(id=str(n), file_name=name, size=1) for n, name in enumerate(names)
    }))
    paths = [f.path for f in offer.files.values()]
    assert paths == ["x", "x (1).part", "X (2).PART", "a?b", "a_b (1)", "dir/y.part", "dir/y (1)"]


def test_more_files_of_one_name_than_numbers_for_them_is_a_protocol_error() -> None:
    many = {str(n): FileInfo(id=str(n), file_name="a.txt", size=1) for n in range(1001)}
    with pytest.raises(ProtocolError, match=r"too many files named 'a\.txt'"):
        read_offer(_request(many))
    many.popitem()  # a.txt and a (1).txt … a (999).txt: all of them fit
    assert len(read_offer(_request(many)).files) == 1000


def test_a_text_message_is_recognized() -> None:
    offer = read_offer(_request({"t": FileInfo(id="t", file_name="t.txt", size=2,
                                                file_type="text/plain", preview="hi")}))
    assert offer.text == "hi" and offer.files == {}


@pytest.mark.parametrize("body", [
    b"not json",
    b'{"info": {"alias": "x"}, "files": {"a": {"id": "b", "fileName": "f", "size": 1}}}',
    b'{"info": {"alias": "x"}, "files": {"a": {"id": "a", "fileName": "f", "size": -1}}}',
    b'{"info": {"alias": "x", "port": 70000}, "files": {}}',
])
def test_bad_prepare_upload_bodies_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_prepare_upload(body)


def test_pin_gate_counts_wrong_pins_per_address_and_forgets_them() -> None:
    now = [0.0]
    gate = PinGate("1234", clock=lambda: now[0])
    for _ in range(LOCALSEND_MAX_WRONG_PINS):
        assert gate.check("10.0.0.1", "9") is PinCheck.WRONG
    assert gate.check("10.0.0.1", "1234") is PinCheck.LOCKED
    assert gate.check("10.0.0.2", "1234") is PinCheck.OK  # another address is not affected
    now[0] = 61.0
    assert gate.check("10.0.0.1", "1234") is PinCheck.OK


def test_pin_gate_closes_after_the_wrong_pins_of_all_addresses_until_made_again() -> None:
    now = [0.0]
    closed: list[int] = []
    gate = PinGate("1234", clock=lambda: now[0], on_closed=closed.append)
    for n in range(LOCALSEND_MAX_WRONG_PINS_IN_ALL):
        assert gate.check(f"10.0.1.{n}", "9") is PinCheck.WRONG  # one try per address
    assert closed == [LOCALSEND_MAX_WRONG_PINS_IN_ALL]
    assert gate.check("10.0.0.1", "1234") is PinCheck.CLOSED  # the right PIN, elsewhere
    now[0] = 24 * 3600.0
    assert gate.check("10.0.0.1", "1234") is PinCheck.CLOSED  # until the user acts
    assert PinGate("1234").check("10.0.0.1", "1234") is PinCheck.OK


def test_pin_gate_forgets_wrong_pins_of_all_addresses_after_their_window() -> None:
    now = [0.0]
    gate = PinGate("1234", clock=lambda: now[0])
    for n in range(LOCALSEND_MAX_WRONG_PINS_IN_ALL - 1):
        assert gate.check(f"10.0.1.{n}", "9") is PinCheck.WRONG
    now[0] = LOCALSEND_WRONG_PINS_WINDOW
    assert gate.check("10.0.2.1", "9") is PinCheck.WRONG
    assert gate.check("10.0.2.2", "1234") is PinCheck.OK


# --- cancels, limits and certificates -------------------------------------------------


async def test_a_sender_that_leaves_while_asked_withdraws_the_question(tmp_path: Path) -> None:
    asked = asyncio.Event()

    async def never(offer: IncomingOffer) -> Decision:
        asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    node = Node.without_endpoint(NodeConfig(tmp_path / "home", "us", bind_addr="127.0.0.1"))
    await node.start_localsend(
        ReceiverSetup(ReceiveOptions(target=tmp_path / "in"), never), 0, announce=False
    )
    events: list[Event] = []
    node.events.subscribe(events.append)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
        served = Served(node, http, tmp_path / "in")
        request = asyncio.create_task(served.prepare({"x": file_entry("x", "x.bin", b"abc")}))
        await asyncio.wait_for(asked.wait(), 10)
        request.cancel()  # the sender gives up: its connection closes
        await asyncio.gather(request, return_exceptions=True)
        state = await _final_state(events)
        assert (state.state, state.by) == (SessionState.CANCELLED, "peer")
        assert node.localsend is not None
        receiver = node.localsend.receiver
        await wait_until(  # the session's task ends right after its final state
            lambda: not receiver.busy, 5.0, what="the receiver to be free again"
        )
        assert not receiver.busy  # the next sender is not told 409
    await node.close()


async def test_cancelling_a_send_tells_the_localsend_receiver(
    served: Served, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    with open(source, "wb") as out:
        out.truncate(512 * MiB)  # sparse: cheap to make, slow enough to catch midway
    sender = Node.without_endpoint(NodeConfig(tmp_path / "sender", "sender"))
    events: list[Event] = []
    sender.events.subscribe(events.append)
    session = sender.start_send(f"localsend:127.0.0.1:{served.port}", [source], SendOptions())
    await wait_until(
        lambda: any(isinstance(e, ProgressEvent) for e in events), every=0.01,
        what="the send's first progress",
    )
    assert sender.cancel(session.id)
    result = await session.outcome()
    assert (result.state, result.by) == (SessionState.CANCELLED, "local")
    state = await _final_state(served.events)
    assert (state.state, state.by) == (SessionState.CANCELLED, "peer")
    assert tree(served.target) == set()  # the partial file went with it
    await sender.close()


async def test_an_offer_over_max_size_is_declined_unasked(tmp_path: Path) -> None:
    async def must_not_ask(offer: IncomingOffer) -> Decision:
        raise AssertionError("asked")

    node = Node.without_endpoint(NodeConfig(tmp_path / "home", "us", bind_addr="127.0.0.1"))
    await node.start_localsend(
        ReceiverSetup(ReceiveOptions(target=tmp_path / "in", max_size=100), must_not_ask), 0,
        announce=False,
    )
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
        response = await Served(node, http, tmp_path / "in").prepare(
            {"x": file_entry("x", "x.bin", b"\0" * 101)}
        )
        assert response.status == 403 and "limit of 100 bytes" in await response.text()
    await node.close()


async def test_a_device_with_another_certificate_than_announced_gets_nothing(
    served: Served, tmp_path: Path
) -> None:
    source = tmp_path / "secret.txt"
    source.write_text("for the real device only\n")
    impostor = Target("127.0.0.1", served.port, "phone", "https", "00" * 32)
    sender = Node.without_endpoint(NodeConfig(tmp_path / "sender", "sender"))
    result = await sender.send(impostor, [source], SendOptions())
    assert result.state is SessionState.FAILED
    assert "presented another certificate than it announced" in result.message
    assert not any(isinstance(e, OfferEvent) for e in served.events)  # nothing was offered
    await sender.close()


async def test_a_node_serving_localsend_itself_sends_as_its_own_certificate(
    served: Served, tmp_path: Path
) -> None:
    """The app serves LocalSend while it sends to other devices: it introduces itself
    by the fingerprint of the certificate it serves with, so a scan never lists it."""
    source = tmp_path / "note.txt"
    source.write_text("from a node that serves LocalSend too\n")
    sender = Node.without_endpoint(NodeConfig(tmp_path / "sender", "sender", bind_addr="127.0.0.1"))
    await sender.start_localsend(
        ReceiverSetup(ReceiveOptions(target=tmp_path / "sender-in"), _refuse, pin=None), 0,
        announce=False,
    )
    try:
        assert sender.localsend is not None
        result = await sender.send(f"localsend:127.0.0.1:{served.port}", [source], SendOptions())
        assert result.state is SessionState.DONE, result.message
        offer = next(e for e in served.events if isinstance(e, OfferEvent))
        assert offer.sender_id == sender.localsend.fingerprint
        assert (served.target / "note.txt").read_bytes() == source.read_bytes()
    finally:
        await sender.close()


async def test_a_bind_address_with_a_port_serves_localsend_on_its_host(tmp_path: Path) -> None:
    """``receive --bind 127.0.0.1:0`` names the QUIC endpoint's port: LocalSend keeps its
    own and listens on that host (it once took the whole text for a host name)."""
    node = Node.without_endpoint(NodeConfig(tmp_path / "home", "us", bind_addr="127.0.0.1:0"))
    await node.start_localsend(
        ReceiverSetup(ReceiveOptions(target=tmp_path / "in"), _refuse), 0, announce=False
    )
    try:
        assert node.localsend is not None
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
            info = await http.get(f"https://127.0.0.1:{node.localsend.port}{API}/info")
            assert (await info.json())["alias"] == "us"
    finally:
        await node.close()


def test_our_certificate_is_rsa_made_once_private_and_kept(tmp_path: Path) -> None:
    """Devices pin our fingerprint: it must survive restarts. The RSA key every LocalSend
    client accepts is made in a child process, so ours never loads ``cryptography``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    made = subprocess.run(
        [sys.executable, "-c",
         "import sys; from pathlib import Path\n"
         "from p2p_transfer.localsend.identity import load_or_create_certificate\n"
         "print(load_or_create_certificate(Path(sys.argv[1])).fingerprint)\n"
         "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))",
         str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    fingerprint, loaded = made.stdout.split()
    assert loaded == "[]"
    again = load_or_create_certificate(tmp_path)
    assert again.fingerprint == fingerprint
    for path in (again.cert_path, again.key_path):
        assert os.stat(path).st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(again.cert_path.read_bytes())
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    cert.verify_directly_issued_by(cert)  # self-signed by that key
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    assert hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest().upper() == fingerprint
    again.server_context()  # raises unless the key is the certificate's


async def test_a_sender_claims_the_same_fingerprint_on_every_send(tmp_path: Path) -> None:
    """A LocalSend receiver shows who sends by the fingerprint claimed: a device that
    never made a certificate (it only sends) claims one kept from its first send, not a
    new one each time; once it has a certificate, that certificate's."""
    home = tmp_path / "home"
    node = Node.without_endpoint(NodeConfig(home, "alice"))
    try:
        first = (await node.localsend_bridge.info()).fingerprint
        again = (await node.localsend_bridge.info()).fingerprint
        assert first == again and len(first) == 64
        kept = home / "localsend" / "sender-fingerprint"
        assert os.stat(kept).st_mode & 0o777 == 0o600
        assert not (home / "localsend" / "cert.pem").exists()  # a sender makes none
        certificate = await asyncio.to_thread(load_or_create_certificate, home)
        assert sender_fingerprint(home) == certificate.fingerprint
        assert (await node.localsend_bridge.info()).fingerprint == certificate.fingerprint
    finally:
        await node.close()


async def _refuse(offer: IncomingOffer) -> Decision:
    return Decision(False)


async def _final_state(events: list[Event]) -> StateEvent:
    final = await wait_until(
        lambda: [e for e in events if isinstance(e, StateEvent) and e.state.final], 10.0,
        what=lambda: f"a final state: {events}",
    )
    return final[-1]


# --- names shared with our own devices ----------------------------------------------------


def _localsend_device(name: str, host: str) -> LocalSendDevice:
    return LocalSendDevice(name, "CD" * 32, host, 53317, "https", "Pixel", "mobile", 0.0)


def test_our_own_devices_are_not_listed_again_as_localsend_devices() -> None:
    ours = [("Laptop", ["10.0.0.5:4000", "[fe80::1]:4000"])]
    devices = [_localsend_device("laptop", "10.0.0.5"), _localsend_device("Laptop", "10.0.0.9"),
               _localsend_device("Phone", "10.0.0.5")]
    assert [(d.name, d.host) for d in others(devices, ours)] == [
        ("Laptop", "10.0.0.9"), ("Phone", "10.0.0.5"),
    ]


def test_a_localsend_device_that_went_quiet_is_dropped_after_the_stated_time() -> None:
    """A LocalSend device that exited stops answering our announcements: the app's list
    (and ``devices``) drop it LOCALSEND_DEVICE_TTL after it was last heard from; one that
    still answers stays."""
    now = [1000.0]
    table = DeviceTable("AA" * 32, clock=lambda: now[0])
    table.add(own_info("Pixel 8", "EF" * 32, 53317), "10.0.0.7")
    table.add(own_info("Laptop", "CD" * 32, 53317), "10.0.0.8")
    assert [d.name for d in table.devices()] == ["Laptop", "Pixel 8"]
    assert LOCALSEND_ANNOUNCE_INTERVAL * 3 < LOCALSEND_DEVICE_TTL <= 180  # a few missed answers
    for _ in range(int(LOCALSEND_DEVICE_TTL // LOCALSEND_ANNOUNCE_INTERVAL)):
        now[0] += LOCALSEND_ANNOUNCE_INTERVAL
        table.add(own_info("Laptop", "CD" * 32, 53317), "10.0.0.8")  # it answers; Pixel does not
    assert [d.name for d in table.devices()] == ["Laptop", "Pixel 8"]  # heard TTL ago: still in
    now[0] += 1
    assert [(d.name, d.last_seen) for d in table.devices()] == [("Laptop", now[0] - 1)]
    assert table.named("pixel 8") == []


@pytest.mark.parametrize("ours_at", ["10.0.0.5", "10.0.0.9"])
async def test_a_name_shared_with_a_localsend_device_is_an_error_listing_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ours_at: str
) -> None:
    node = Node.without_endpoint(NodeConfig(tmp_path / "home", "us"))
    ticket = ticket_for(endpoint_id_of(generate_secret_key()), [f"{ours_at}:4000"])

    async def resolve(to: str) -> str:
        return ticket

    async def scan(seconds: float) -> list[LocalSendDevice]:
        return [_localsend_device("Laptop", "10.0.0.5")]

    monkeypatch.setattr(node.presence, "resolve", resolve)
    monkeypatch.setattr(node.presence, "scan_localsend", scan)
    if ours_at == "10.0.0.5":  # the same machine, announcing both ways: ours
        assert await node.presence.send_target("laptop") == ticket
    else:
        with pytest.raises(AmbiguousDeviceError) as both:
            await node.presence.send_target("laptop")
        assert "LocalSend: Laptop at 10.0.0.5:53317" in str(both.value)
        assert "and a p2p-transfer device" in str(both.value)
