"""The benchmark harness measures real processes and verifies what they received.

Runs the reference rows (plain TCP, raw TLS, raw iroh) on a few MiB, so a broken
harness is noticed by ``make test`` and not on the day of a full ``make bench``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from bench import data as bench_data
from bench import fan_out, sync_cost
from bench.cli import main, parse_args
from bench.config import FIRST_BYTE_TARGET, SET_ASIDE_DIR, KiB, MiB
from bench.data import (
    Workload,
    file_hash,
    make_big,
    make_first_byte,
    make_small,
    make_uploads,
    tree_digest,
)
from bench.isolation import is_isolated
from bench.peers.share_upload import ws_url
from bench.peers.stream import Decoder, FileSink, StreamError, encode_header
from bench.report import RunInfo, first_byte_lines, render, share_rss_lines
from bench.results import RowResult, best
from bench.rows import all_rows, code, p2p
from bench.rows.base import Row, RunContext, verify_output
from bench.rows.code import P2PCodeRow, WormholeToP2PRow
from bench.rows.iroh_raw import IrohRawRow
from bench.rows.p2p import P2PRow
from bench.rows.share import ShareRow, check_uploads, upload_names
from bench.rows.tar import TarRow
from bench.rows.tcp import TcpRow
from bench.rows.tls import TlsRow
from bench.runner import Child, ChildError, Children, monotonic, wait_all

from conftest import skip_unless

BIG_SIZE = 3 * MiB
SMALL_COUNT = 40
SMALL_SIZE = 4096
#: Each run is given this long; a healthy one takes well under a second.
RUN_TIMEOUT = 30.0
#: Memory the test process touches before spawning, to show it is not inherited.
BALLAST_SIZE = 200 * MiB


@pytest.fixture(scope="module")
def workloads(tmp_path_factory: pytest.TempPathFactory) -> list[Workload]:
    """One file of a few MiB and a few dozen small files, shared by the tests here."""
    source = tmp_path_factory.mktemp("bench-source")
    return [make_big(source, BIG_SIZE), make_small(source, SMALL_COUNT, SMALL_SIZE)]


def assert_measured(result: RowResult, workload: Workload) -> None:
    """The row verified its output and every figure is a positive number."""
    assert result.ok, result.status
    assert result.workload is workload
    assert result.wall_seconds > 0
    assert result.cpu_seconds > 0
    assert result.megabytes_per_second > 0
    assert result.files_per_second > 0
    # The launcher keeps the harness's own peak out of the children's figures.
    assert 0 < result.sender_rss_bytes < 400 * MiB
    assert 0 < result.receiver_rss_bytes < 400 * MiB


def run_row(row: Row, workload: Workload, work_dir: Path) -> RowResult:
    ctx = RunContext(work_dir=work_dir, timeout=RUN_TIMEOUT)
    try:
        return row.run(workload, ctx)
    finally:
        ctx.clean()


@pytest.mark.parametrize("index", [0, 1], ids=["one-file", "many-files"])
def test_tcp_row_is_verified_and_measured(
    workloads: list[Workload], index: int, tmp_path: Path
) -> None:
    workload = workloads[index]
    assert_measured(run_row(TcpRow(), workload, tmp_path), workload)


@pytest.mark.parametrize("index", [0, 1], ids=["one-file", "many-files"])
def test_tar_row_is_verified_and_measured(
    workloads: list[Workload], index: int, tmp_path: Path
) -> None:
    """``tar c`` → loopback TCP → ``tar x``: the received tree is checked like every row's,
    and each side's figures include its tar (the peer waits for it)."""
    workload = workloads[index]
    result = run_row(TarRow(), workload, tmp_path)
    assert_measured(result, workload)
    assert "no encryption" in result.note


def test_tar_row_fails_when_the_tree_differs(workloads: list[Workload], tmp_path: Path) -> None:
    workload = workloads[1]
    wrong = Workload(**{**workload.__dict__, "digest": "0" * 64})
    result = run_row(TarRow(), wrong, tmp_path)
    assert result.failed
    assert "received tree differs" in result.status


def test_many_file_workloads_are_distinct_trees(tmp_path: Path) -> None:
    medium = make_small(tmp_path, 12, 64 * KiB, "medium")
    tiny = make_small(tmp_path, 250, 1 * KiB, "tiny")
    assert (medium.title, tiny.title) == ("12 files of 64 KiB", "250 files of 1 KiB")
    assert medium.many_files and tiny.many_files
    assert medium.path == tmp_path / "medium" / "medium"
    folders = sorted(p.name for p in tiny.path.iterdir())
    assert folders == ["d0000", "d0001", "d0002"]  # SMALL_FILES_PER_FOLDER each
    assert (tiny.path / "d0002" / "f000249.bin").stat().st_size == 1 * KiB


def test_raw_tls_row_is_verified_and_measured(workloads: list[Workload], tmp_path: Path) -> None:
    for workload in workloads:
        assert_measured(run_row(TlsRow(), workload, tmp_path), workload)


@pytest.mark.parametrize("index", [0, 1], ids=["one-file", "many-files"])
def test_raw_iroh_row_is_verified_and_measured(
    workloads: list[Workload], index: int, tmp_path: Path
) -> None:
    # iroh probes the LAN for port mappings: only ever run it with loopback alone.
    skip_unless(is_isolated(), "needs a loopback-only namespace: run under scripts/isolated")
    workload = workloads[index]
    assert_measured(run_row(IrohRawRow(), workload, tmp_path), workload)


def test_a_corrupted_output_is_not_verified(workloads: list[Workload], tmp_path: Path) -> None:
    workload = workloads[1]
    out = tmp_path / "out"
    for relpath, path in (
        (p.relative_to(workload.source_dir), p) for p in workload.source_dir.rglob("*")
    ):
        if path.is_file():
            (out / relpath).parent.mkdir(parents=True, exist_ok=True)
            (out / relpath).write_bytes(path.read_bytes())
    assert verify_output(out, workload) is None
    victim = sorted(out.rglob("*.bin"))[-1]
    data = bytearray(victim.read_bytes())
    data[0] ^= 1
    victim.write_bytes(bytes(data))
    assert verify_output(out, workload) is not None


def test_a_failed_child_fails_the_row(workloads: list[Workload], tmp_path: Path) -> None:
    workload = workloads[0]
    missing = Workload(**{**workload.__dict__, "source_dir": tmp_path / "nothing"})
    result = run_row(TcpRow(), missing, tmp_path / "work")
    assert result.failed
    assert "sender" in result.status


def test_trees_of_many_files_are_set_aside_not_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Freed inodes slow the next run's creates on ext4: many-file trees wait for the end."""
    monkeypatch.setattr(bench_data, "SET_ASIDE_FILES", 2)
    ctx = RunContext(work_dir=tmp_path)
    many, few = ctx.out_dir("row"), ctx.scratch("row")
    for name in "abc":
        (many / name).write_bytes(b"1")
    (few / "one").write_bytes(b"1")
    assert not any(ctx.out_dir("row").iterdir()) and not any(ctx.scratch("row").iterdir())
    (aside,) = (tmp_path / SET_ASIDE_DIR).iterdir()
    assert sorted(p.name for p in aside.iterdir()) == ["a", "b", "c"]  # "one" was deleted


def test_decoder_rebuilds_files_from_any_chunking(tmp_path: Path) -> None:
    files = {"a/b.bin": os.urandom(1000), "a/empty": b"", "c.bin": os.urandom(70_000)}
    stream = b"".join(encode_header(name, len(data)) + data for name, data in files.items())
    for piece in (1, 7, 4096, len(stream)):
        out = tmp_path / f"out-{piece}"
        sink = FileSink(out, hash_files=True)
        decoder = Decoder(sink)
        for start in range(0, len(stream), piece):
            decoder.feed(stream[start : start + piece])
        decoder.close()
        assert {e[0] for e in sink.entries} == set(files)
        for name, data in files.items():
            assert (out / name).read_bytes() == data
        assert sink.digest() == tree_digest(out)


@pytest.mark.parametrize("name", ["../escape", "/abs", "a//b", "a/./b"])
def test_decoder_refuses_unsafe_paths(tmp_path: Path, name: str) -> None:
    decoder = Decoder(FileSink(tmp_path / "out", hash_files=False))
    with pytest.raises(StreamError):
        decoder.feed(encode_header(name, 1) + b"x")
    assert not (tmp_path / "escape").exists()


def test_decoder_refuses_a_truncated_stream(tmp_path: Path) -> None:
    decoder = Decoder(FileSink(tmp_path, hash_files=False))
    decoder.feed(encode_header("f", 10) + b"12345")
    with pytest.raises(StreamError):
        decoder.close()


def test_report_shows_failures_without_figures_and_computes_ratios(
    workloads: list[Workload],
) -> None:
    big = workloads[0]

    def row(tool: str, wall: float) -> RowResult:
        return RowResult(tool=tool, workload=big, status="ok", wall_seconds=wall, cpu_seconds=1.0)

    results = [
        row("p2p-transfer", 2.0),
        row("magic-wormhole", 3.0),
        RowResult(tool="raw iroh stream", workload=big, status="FAILED: boom | bang"),
        RowResult(tool="raw TLS over TCP", workload=big, status="ok", wall_seconds=1.0,
                  cpu_seconds=0.5),
    ]
    text = render(
        RunInfo(mode="quick", repeat=1, isolated=True, load_before=0.5, load_after=1.0),
        [big],
        results,
    )
    assert "| p2p-transfer / magic-wormhole, throughput | 1.50× |" in text
    assert "| p2p-transfer / magic-wormhole, CPU seconds | 1.00× |" in text
    assert "| p2p-transfer / raw TLS over TCP, CPU seconds | 2.00× |" in text
    assert "| p2p-transfer (QUIC) / raw iroh stream, throughput | n/a |" in text
    assert "FAILED: boom \\| bang" in text
    assert str(Path.home()) not in text


def test_a_failed_peer_stops_the_other_at_once(tmp_path: Path) -> None:
    with Children(tmp_path) as children:
        # A peer that waits for the other until it is stopped.
        waiting = children.start("waiting", [sys.executable, "-c", "import signal; signal.pause()"])
        failing = children.start("failing", [sys.executable, "-c", "raise SystemExit(3)"])
        started = monotonic()
        with pytest.raises(ChildError, match="failing: exit 3"):
            wait_all([waiting, failing], started + RUN_TIMEOUT)
        assert monotonic() - started < RUN_TIMEOUT / 2
        assert not waiting.running


def test_peak_rss_is_the_childs_own_not_the_harness(tmp_path: Path) -> None:
    # A fork inherits its parent's peak RSS; the launcher keeps it out of the figures.
    ballast = b"\x01" * BALLAST_SIZE  # written, so resident
    try:
        child = Child("small", [sys.executable, "-c", "pass"], log_dir=tmp_path)
        usage = child.wait(RUN_TIMEOUT)
    finally:
        del ballast
    assert usage.returncode == 0
    assert 0 < usage.max_rss_bytes < BALLAST_SIZE / 2


def test_a_child_printing_a_line_per_file_is_read_whole_and_in_order(tmp_path: Path) -> None:
    """Our rows print a JSON line per file (100,000 in one workload): the harness takes
    them a pipeful at a time, and finds an event in them as it comes."""
    script = (
        "import json, sys\n"
        "for i in range(100_000):\n"
        "    print(json.dumps({'event': 'file_done', 'n': i}))\n"
        "sys.stdout.flush()\n"
        "print(json.dumps({'event': 'done'}))\n"
        "sys.stdout.write('no newline at the end')\n"
    )
    child = Child("printer", [sys.executable, "-c", script], log_dir=tmp_path)
    assert child.wait_for_event("done", RUN_TIMEOUT) == {"event": "done"}
    assert child.wait(RUN_TIMEOUT).returncode == 0
    assert child.next_line(monotonic() + RUN_TIMEOUT) == "no newline at the end"
    assert child.next_line(monotonic() + RUN_TIMEOUT) is None  # the end, not a wait
    assert [event["n"] for event in child.events()[:-1]] == list(range(100_000))
    assert child.stdout_path.read_text().endswith("}\nno newline at the end")


def test_p2p_row_is_unavailable_without_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(p2p, "cli_path", lambda: tmp_path / "missing")
    assert "not installed" in (P2PRow().unavailable_reason() or "")
    fake = tmp_path / "p2p-transfer"
    fake.write_text("#!/bin/sh\necho 'Commands: id  pair'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(p2p, "cli_path", lambda: fake)
    assert "no receive/send command" in (P2PRow().unavailable_reason() or "")


class _Printed:
    """Stands in for a finished Child: its name and the JSON lines it printed."""

    def __init__(self, *data_paths: str | None) -> None:
        self.name = "sender"
        self._events = [{"event": "connection", "data_path": path} for path in data_paths]

    def events(self) -> list[dict[str, object]]:
        return self._events


def test_p2p_rows_count_only_the_data_path_they_claim() -> None:
    assert p2p.data_path_problem(_Printed(None, "tcp"), "tcp") is None  # type: ignore[arg-type]
    problem = p2p.data_path_problem(_Printed(None, "quic"), "tcp")  # type: ignore[arg-type]
    assert problem == "sender reported data path quic, not tcp"
    assert "none" in (p2p.data_path_problem(_Printed(), "quic") or "")  # type: ignore[arg-type]


def test_command_line_writes_a_report_with_unavailable_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(p2p, "cli_path", lambda: tmp_path / "missing")
    report = tmp_path / "report.md"
    argv = ["--only", "p2p,tcp", "--workloads", "small", "--files", "20"]
    argv += ["--work-dir", str(tmp_path / "work"), "--output", str(report)]
    assert main(argv) == 0
    text = report.read_text()
    assert "| p2p-transfer | unavailable: the p2p-transfer command is not installed |" in text
    assert "| plain TCP sendfile | verified |" in text
    assert "20 files of 4 KiB" in text
    assert text in capsys.readouterr().out
    assert list((tmp_path / "work").iterdir()) == []  # the run's data is gone


def test_share_row_uploads_as_browsers_do_and_is_measured(
    workloads: list[Workload], tmp_path: Path
) -> None:
    uploads = make_uploads(tmp_path / "source", 3, 1 * MiB)
    assert (uploads.total_bytes, uploads.file_count) == (3 * MiB, 3)
    for workload in (workloads[0], uploads):
        result = run_row(ShareRow(), workload, tmp_path / "work")
        assert_measured(result, workload)
    memory = "\n".join(share_rss_lines([result]))
    assert "Peak RSS of the share server while 3 uploads of 1 MiB ran at once" in memory


def test_share_row_pieces(tmp_path: Path) -> None:
    assert ws_url("http://127.0.0.1:8080/abc") == ("ws://127.0.0.1:8080/abc/ws",
                                                   "http://127.0.0.1:8080")
    source = make_uploads(tmp_path / "source", 2, 64 * 1024)
    names = upload_names(source)
    assert names == ["upload-0.bin", "upload-1.bin"]
    out = tmp_path / "out"
    out.mkdir()
    for name in names:
        (out / name).write_bytes(source.path.read_bytes())
    expected = file_hash(source.path)
    assert check_uploads(out, names, expected) is None
    (out / "upload-1.bin.part").write_bytes(b"")
    assert "upload folder holds" in (check_uploads(out, names, expected) or "")
    (out / "upload-1.bin.part").unlink()
    data = bytearray((out / "upload-1.bin").read_bytes())
    data[-1] ^= 1
    (out / "upload-1.bin").write_bytes(bytes(data))
    assert check_uploads(out, names, expected) == "upload-1.bin: BLAKE3 differs from the source"
    over = RowResult(tool=ShareRow().label, workload=source, status="ok", wall_seconds=1.0,
                     receiver_rss_bytes=90_000_000)
    assert "90.0 MB (issue 5's target: under 80 MB; NOT met)" in "\n".join(share_rss_lines([over]))


def test_sync_cost_measures_the_writer_with_and_without_its_flushes(tmp_path: Path) -> None:
    """``python -m bench.sync_cost`` on a few files: a table row per workload, and the
    writer's flushes are back in place afterwards."""
    flushes = [getattr(module, name) for module, name in sync_cost.FLUSHES]
    argv = ["sync_cost", "--work-dir", str(tmp_path / "w"), "--files", "20",
            "--size", str(2 * MiB), "--runs", "1"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        assert sync_cost.main() == 0
    assert [getattr(module, name) for module, name in sync_cost.FLUSHES] == flushes
    assert not (tmp_path / "w").exists()


def test_fan_out_sends_to_one_then_two_receivers_and_checks_what_each_got(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m bench.fan_out`` on a small file: the read cost and a row per count of
    receivers (a receiver that got something else would raise)."""
    argv = ["fan_out", "--work-dir", str(tmp_path / "w"), "--size", str(2 * MiB), "--runs", "1"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        assert fan_out.main() == 0
    printed = capsys.readouterr().out
    assert "read + BLAKE3 of 2 MiB from the page cache" in printed
    rows = [line for line in printed.splitlines() if line.startswith("| 1 |")
            or line.startswith("| 2 |")]
    assert len(rows) == 2
    assert not (tmp_path / "w").exists()


def test_first_progress_to_a_paired_device_is_timed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows pair once (with the code), then each send without a code is timed from
    its spawn to its first progress event: a positive time of well under a few seconds."""
    skip_unless(is_isolated(), "needs a loopback-only namespace: run under scripts/isolated")
    monkeypatch.setattr(p2p, "FIRST_BYTE_SENDS", 2)
    workload = make_first_byte(tmp_path / "source", 4 * MiB)
    row = P2PRow()
    ctx = RunContext(work_dir=tmp_path / "work", timeout=RUN_TIMEOUT)
    try:
        result = row.run(workload, ctx)
    finally:
        ctx.clean()
    assert result.ok, result.status
    assert len(result.first_progress) == 2
    assert all(0 < seconds < 5 for seconds in result.first_progress)
    logs = tmp_path / "work" / "logs" / "p2p-first-byte-0"
    assert sorted(p.name for p in logs.iterdir()) == ["pairing", "send-1", "send-2"]


def test_first_byte_figures_are_gathered_over_rounds_and_reported(
    workloads: list[Workload], tmp_path: Path
) -> None:
    probe = make_first_byte(tmp_path, 64 * KiB)
    assert not probe.many_files

    def round_of(*times: float) -> RowResult:
        return RowResult(tool="p2p-transfer", workload=probe, status="ok", wall_seconds=1.0,
                         first_progress=times)

    merged = best([round_of(0.4, 0.3), RowResult(tool="p2p-transfer", workload=probe,
                                                 status="FAILED: x"), round_of(0.6)])
    assert merged.first_progress == (0.4, 0.3, 0.6)
    quic = RowResult(tool="p2p-transfer (QUIC)", workload=probe, status="FAILED: pairing: boom")
    text = "\n".join(first_byte_lines([merged, quic]))
    assert "### Time to first byte, paired device" in text
    assert f"≤ {FIRST_BYTE_TARGET} s" in text
    assert "| p2p-transfer | verified | 3 | 0.300 | 0.400 | yes |" in text
    assert "| p2p-transfer (QUIC) | FAILED: pairing: boom |" in text
    report = render(RunInfo(mode="quick", repeat=1, isolated=True, load_before=0, load_after=0),
                    [workloads[0], probe], [merged])
    assert "### 1 file of 64 KiB to a paired device" not in report  # no throughput table
    assert "| ratio | 1 file of 3 MiB |" in report


def test_p2p_rows_check_how_the_receiver_was_verified() -> None:
    class Printed:
        name = "sender"

        def __init__(self, *ways: str) -> None:
            self._events = [{"event": "verified", "by": way} for way in ways]

        def events(self) -> list[dict[str, object]]:
            return self._events

    assert p2p.verified_by_problem(Printed("pairing"), "pairing") is None  # type: ignore[arg-type]
    problem = p2p.verified_by_problem(Printed("code"), "pairing")  # type: ignore[arg-type]
    assert problem == "sender reported verification by code, not pairing"


def test_a_full_run_takes_every_workload_and_row() -> None:
    rows = all_rows()
    full = parse_args([], rows)
    assert full.mode == "full"
    assert (full.files, full.medium_files, full.tiny_files) == (10_000, 1_000, 100_000)
    quick = parse_args(["--quick"], rows)
    assert (quick.files, quick.medium_files, quick.tiny_files) == (1_000, 100, 2_000)
    assert parse_args(["--workloads", "big,small,medium,tiny,uploads"], rows).mode == "partial"
    assert parse_args(["--tiny-files", "5000"], rows).mode == "partial"
    takers = {row.key for row in rows if "tiny" in row.workloads}
    assert takers == {"p2p", "wormhole", "p2p-quic", "tcp", "tar"}  # see TINY_NOTE


def test_p2p_rows_measure_the_default_relay_setting(tmp_path: Path) -> None:
    """Issue 25: relays are on by default, and a LAN with no internet must not get slower;
    the bench measures what users run, so no p2p command line names a relay."""
    for row in (P2PRow(), *(r for r in all_rows() if r.key == "p2p-quic")):
        assert isinstance(row, P2PRow)
        argv = [*row.receiver_argv(tmp_path, tmp_path, None),
                *row.sender_argv(tmp_path, "ticket", tmp_path, None)]
        assert "--relay" not in argv
    assert "--relay" not in P2PCodeRow().receiver_argv(tmp_path, "7-foo-bar", tmp_path)


class _Side:
    """Stands in for a finished Child of a code row: its name and some events."""

    def __init__(self, name: str, *data_paths: str | None, done: bool = False) -> None:
        self.name = name
        self._events: list[dict[str, object]] = [
            {"event": "connection", "data_path": path} for path in data_paths
        ]
        if done:
            self._events.append({"event": "done"})

    def events(self) -> list[dict[str, object]]:
        return self._events


def test_code_row_counts_when_both_sides_name_one_data_path() -> None:
    sender, receiver = _Side("sender", None, "tcp"), _Side("receiver", "tcp", done=True)
    assert code.same_data_path(sender, receiver) == ("tcp", None)  # type: ignore[arg-type]
    path, problem = code.same_data_path(  # type: ignore[arg-type]
        _Side("sender", "quic"), _Side("receiver", "tcp", done=True)
    )
    assert path is None
    assert problem == "the two sides named different data paths (sender: quic; receiver: tcp)"
    _, problem = code.same_data_path(sender, _Side("receiver", "tcp"))  # type: ignore[arg-type]
    assert problem == "receiver exited 0 but printed no 'done' event"


def test_wormhole_to_p2p_row_says_when_this_build_cannot_take_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until ``receive`` has ``--transit-relay``, the row is unavailable, said plainly."""
    fake = tmp_path / "p2p-transfer"
    fake.write_text("#!/bin/sh\necho 'Usage: receive [CODE]  --mailbox URL  --json'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(p2p, "cli_path", lambda: fake)
    reason = code.receive_lacks(code.TRANSIT_OPTION) or ""
    assert reason.startswith("not available in this build: p2p-transfer receive has no "
                             "--transit-relay")
    fake.write_text("#!/bin/sh\necho 'Usage: receive [CODE]  --transit-relay HOST:PORT'\n")
    assert code.receive_lacks(code.TRANSIT_OPTION) is None
    row = WormholeToP2PRow()
    argv = row.receiver_argv(tmp_path, "7-foo-bar", tmp_path / "out")
    assert argv[argv.index("--transit-relay") + 1] == row.servers.transit_host_port


@pytest.mark.parametrize("row_type", [P2PCodeRow, WormholeToP2PRow], ids=["p2p", "wormhole"])
def test_code_rows_are_verified_and_measured(
    workloads: list[Workload], row_type: type[Row], tmp_path: Path
) -> None:
    """A code from the sender, typed into ``receive CODE``, through a local mailbox."""
    skip_unless(is_isolated(), "needs a loopback-only namespace: run under scripts/isolated")
    row = row_type()
    reason = row.unavailable_reason()
    skip_unless(reason is None, f"{row.key}: {reason}")
    row.setup(tmp_path / "work")
    try:
        for workload in workloads:
            result = run_row(row, workload, tmp_path / "work")
            assert_measured(result, workload)
            assert "default relay setting" in result.note
            if row_type is P2PCodeRow:
                assert "TCP data path" in result.note  # our own path, loopback's direct one
    finally:
        row.teardown()


def test_each_run_receives_into_a_new_file_system_that_goes_after_it(tmp_path: Path) -> None:
    """No run's creates pay for another run's deletions (bench/fresh_disk.py)."""
    from bench.fresh_disk import fresh_disk, unavailable_reason

    from conftest import skip_unless

    reason = unavailable_reason()
    skip_unless(reason is None, f"no fresh file system: {reason}")
    files = 5000
    with fresh_disk(tmp_path / "disk", 64 * MiB, files) as disk:
        assert os.path.ismount(disk) and os.listdir(disk) == ["lost+found"]
        assert os.statvfs(disk).f_ffree >= 2 * files  # room for the workload's inodes
        (disk / "received.bin").write_bytes(b"x" * KiB)
        run = RunContext(work_dir=tmp_path / "work", disk=disk)
        assert run.out_dir("p2p").is_relative_to(disk)
        assert run.scratch("p2p").is_relative_to(disk)
    assert not os.path.ismount(tmp_path / "disk" / "mnt")
    assert sorted(os.listdir(tmp_path / "disk")) == ["mnt"]  # the image is gone
