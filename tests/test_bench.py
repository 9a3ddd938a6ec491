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
from bench.cli import main
from bench.config import SET_ASIDE_DIR, MiB
from bench.data import Workload, file_hash, make_big, make_small, make_uploads, tree_digest
from bench.isolation import is_isolated
from bench.peers.share_upload import ws_url
from bench.peers.stream import Decoder, FileSink, StreamError, encode_header
from bench.report import RunInfo, render, share_rss_lines
from bench.results import RowResult
from bench.rows import p2p
from bench.rows.base import Row, RunContext, verify_output
from bench.rows.iroh_raw import IrohRawRow
from bench.rows.p2p import P2PRow
from bench.rows.share import ShareRow, check_uploads, upload_names
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
        waiting = children.start("waiting", [sys.executable, "-c", "import time; time.sleep(60)"])
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
