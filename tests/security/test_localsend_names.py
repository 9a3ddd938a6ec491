"""Names a LocalSend sender chooses, against the real HTTPS server: file names that would
meet on disk (``x`` and ``x.part``) and aliases with bidi controls (issue 24, findings
5 and 6)."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

import pytest

from e2e.localsend_lab import LocalSendLab
from netns import Lab
from p2p_transfer.cli.transfer_commands import offer_question
from p2p_transfer.events import FileDoneEvent, OfferEvent, TextEvent
from p2p_transfer.localsend.messages import MULTICAST_GROUP
from p2p_transfer.transfer import Decision, IncomingOffer
from security.conftest import wait_until
from security.localsend_door import (
    SENDER,
    file_entry,
    http_client,
    served_localsend,
)

#: A name that shows as ``evil.txt`` read backwards: U+202E turns what follows around.
RLO = "\u202e"
BIDI_ALIAS = f"{RLO}txt.evil{RLO}\u200b"
BIDI_MODEL = f"Pixel{RLO}8"


def _visible(text: str) -> bool:
    """True when ``text`` has no Unicode format character (bidi controls, zero-width)."""
    return not any(unicodedata.category(char) == "Cf" for char in text)


# --- Finding 5: x.part and x in one offer ---------------------------------------------


@pytest.mark.parametrize("order", [("p", "x"), ("x", "p")], ids=["part-first", "file-first"])
async def test_x_part_and_x_in_one_offer_both_arrive_under_distinct_names(
    tmp_path: Path, order: tuple[str, str]
) -> None:
    """Both files are reported received, and both are there afterwards with their own
    bytes: the second never takes the first as its stale part."""
    data = {"p": b"I am ok.txt.part, a file of my own\n", "x": b"I am ok.txt\n"}
    names = {"p": "ok.txt.part", "x": "ok.txt"}
    async with served_localsend(tmp_path) as served, http_client() as http:
        files = {fid: file_entry(fid, names[fid], len(data[fid])) for fid in order}
        reply = await http.post(served.url("prepare-upload"),
                                json={"info": SENDER, "files": files})
        assert reply.status == 200, await reply.text()
        accepted = await reply.json()
        for fid in order:
            response = await http.post(served.url("upload"), data=data[fid], params={
                "sessionId": accepted["sessionId"], "fileId": fid,
                "token": accepted["files"][fid],
            })
            assert response.status == 200, await response.text()
        done = [e for e in served.emitted(FileDoneEvent) if isinstance(e, FileDoneEvent)]
        assert len(done) == 2
        saved = {e.path for e in done}
        assert len(saved) == 2, saved  # distinct names
        on_disk = {p.name: p.read_bytes() for p in served.target.iterdir()}
        assert sorted(on_disk.values()) == sorted(data.values()), on_disk
        assert {Path(path).name for path in saved} == set(on_disk)


async def test_a_localsend_upload_never_replaces_a_part_already_in_the_folder(
    tmp_path: Path,
) -> None:
    """A ``.part`` in the target may be another transfer's resumable data: a LocalSend file
    of that name takes another name instead of deleting it."""
    async with served_localsend(tmp_path) as served, http_client() as http:
        served.target.mkdir(parents=True)
        held = served.target / "movie.mkv.part"
        held.write_bytes(b"436 MiB of someone's interrupted transfer")
        reply = await http.post(served.url("prepare-upload"), json={
            "info": SENDER, "files": {"m": file_entry("m", "movie.mkv", 5)},
        })
        accepted = await reply.json()
        response = await http.post(served.url("upload"), data=b"hello", params={
            "sessionId": accepted["sessionId"], "fileId": "m", "token": accepted["files"]["m"],
        })
        assert response.status == 200, await response.text()
        assert held.read_bytes() == b"436 MiB of someone's interrupted transfer"
        (done,) = served.emitted(FileDoneEvent)
        assert isinstance(done, FileDoneEvent)
        assert (served.target / done.path).read_bytes() == b"hello"


# --- Finding 6: aliases with bidi controls ------------------------------------------------


async def test_a_bidi_alias_never_reaches_the_question_the_offer_or_the_text_box(
    tmp_path: Path,
) -> None:
    """U+202E in a LocalSend alias (and device model) is gone from everything a person
    reads: the offer event, the y/N question, the text box's title, the device list."""
    info = {**SENDER, "alias": BIDI_ALIAS, "deviceModel": BIDI_MODEL}

    async def texts_only(offer: IncomingOffer) -> Decision:
        return Decision(offer.text, "files are not wanted")

    async with served_localsend(tmp_path, texts_only) as served, http_client() as http:
        offer = await http.post(served.url("prepare-upload"), json={
            "info": info, "files": {"f": file_entry("f", "a.txt", 1)},
        })
        assert offer.status == 403, await offer.text()
        receiver = served.node.localsend.receiver if served.node.localsend else None
        assert receiver is not None
        await wait_until(lambda: not receiver.busy, what="the declined session to end")
        text = await http.post(served.url("prepare-upload"), json={"info": info, "files": {
            "t": {**file_entry("t", "t.txt", 2), "fileType": "text/plain", "preview": "hi"},
        }})
        assert text.status == 204, await text.text()
        register = await http.post(served.url("register"), json=info)
        assert register.status == 200

        asked = served.offers
        assert len(asked) == 2
        shown = [offer_question(o) for o in asked]
        shown += [o.peer_name for o in asked] + [o.device_model for o in asked]
        events = served.emitted(OfferEvent) + served.emitted(TextEvent)
        shown += [json.dumps(e.to_dict(), ensure_ascii=False) for e in events]
        assert served.node.localsend is not None
        devices = served.node.localsend.table.devices()
        shown += [d.name for d in devices] + [d.device_model for d in devices]
        assert all(_visible(line) for line in shown), [s for s in shown if not _visible(s)]
        assert all("txt.evil" in o.peer_name for o in asked)  # the rest of the name stays
        assert [d.name for d in devices] == ["txt.evil"]


FORGER = """
import json, socket, struct, sys
group, port, info = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("", port))
sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("0.0.0.0")))
print("ready", flush=True)
while True:  # answer every announcement, as a LocalSend device does
    heard = json.loads(sock.recv(65536))
    if heard.get("announce") and heard.get("fingerprint") != info["fingerprint"]:
        sock.sendto(json.dumps({**info, "announce": False}).encode(), (group, port))
"""


def test_a_bidi_alias_announced_by_multicast_is_listed_clean(
    netns_lab: Lab, tmp_path: Path
) -> None:
    """``devices`` (what a person reads, and ``--json``) lists a forged LocalSend device
    whose alias carries U+202E without it."""
    lab = LocalSendLab(netns_lab, tmp_path)
    info = {**SENDER, "alias": BIDI_ALIAS, "deviceModel": BIDI_MODEL}
    forger = lab.host.popen(sys.executable, "-c", FORGER, MULTICAST_GROUP, "53317",
                            json.dumps(info))
    assert forger.stdout is not None and forger.stdout.readline().strip() == "ready"
    for extra in ([], ["--json"]):
        listed = lab.host.run(sys.executable, "-m", "p2p_transfer", "--config-dir",
                              str(tmp_path / "home"), "devices", "--timeout", "2", *extra,
                              timeout=30)
        assert "txt.evil" in listed.stdout, listed.stdout + listed.stderr
        shown = listed.stdout
        if extra:  # what a script reads: the values, not their JSON escapes
            shown = " ".join(str(v) for line in shown.splitlines()
                             for v in json.loads(line).values())
        assert _visible(shown), ascii(shown)
