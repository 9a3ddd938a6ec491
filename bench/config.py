"""Named constants of the benchmark, with the reason for each."""

from __future__ import annotations

from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
#: Throughput is reported in MB/s with MB = 10^6 bytes, as network tools do.
MB = 1_000_000

#: Root of the repository: peers are started with it on ``PYTHONPATH``.
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Default folder for generated and received data (gitignored).
DEFAULT_WORK_DIR = Path(__file__).resolve().parent / ".work"
#: Folder of the work dir that holds each run's process output and rusage.
LOGS_DIR = "logs"
#: Where a full run (every row, default sizes) writes its table: committed.
RESULTS_PATH = Path(__file__).resolve().parent / "results.md"
#: Runs of each row and workload in a full run: this machine is shared, so one
#: run can catch a busy moment; the fastest verified one is reported.
FULL_RUN_REPEAT = 3
#: Where other runs write theirs (gitignored), so a smoke run or a partial one
#: never overwrites the figures of a full one.
QUICK_RESULTS_PATH = Path(__file__).resolve().parent / "results" / "quick.md"
PARTIAL_RESULTS_PATH = Path(__file__).resolve().parent / "results" / "partial.md"

# --- Workloads --------------------------------------------------------------
#: The one large file of the full run.
BIG_FILE_SIZE = 1 * GiB
#: Count and size of the small files of the full run.
SMALL_FILE_COUNT = 10_000
SMALL_FILE_SIZE = 4 * KiB
#: Issue 16's two other many-file workloads: files the size of a photo thumbnail
#: or a source file (1,000 of 64 KiB), and a tree where per-file cost is all there
#: is (100,000 of 1 KiB: a node_modules or a mail folder).
MEDIUM_FILE_COUNT = 1_000
MEDIUM_FILE_SIZE = 64 * KiB
TINY_FILE_COUNT = 100_000
TINY_FILE_SIZE = 1 * KiB
#: The same for ``--quick``: enough to exercise every row in well under a minute.
QUICK_BIG_FILE_SIZE = 64 * MiB
QUICK_SMALL_FILE_COUNT = 1_000
QUICK_MEDIUM_FILE_COUNT = 100
QUICK_TINY_FILE_COUNT = 2_000
#: The share server's concurrent uploads (issue 5: 5 browsers, 200 MiB each),
#: and their size in a quick run.
UPLOAD_CLIENTS = 5
UPLOAD_SIZE = 200 * MiB
QUICK_UPLOAD_SIZE = 16 * MiB
#: Issue 5's bar: the share server's peak RSS while those uploads run.
SHARE_RSS_TARGET = 80 * MB
#: The one file sent to a paired device to time its first progress event
#: (issue 16: file data on the wire ≤ 0.5 s after ``send`` starts): several
#: times the sender's 1 MiB pump buffer, so that event comes mid-file, after bytes
#: went to the socket (a file of up to 256 KiB is counted before its batch is
#: written), and small enough that each send takes well under a second.
FIRST_BYTE_FILE_SIZE = 8 * MiB
#: Sends timed per row in each round (``--repeat`` rounds): a start-up time varies
#: more from run to run than a throughput, so it takes several to give a median.
FIRST_BYTE_SENDS = 3
#: Issue 16's bar for that time, in seconds.
FIRST_BYTE_TARGET = 0.5
#: Small files are spread over folders of this many, so the receiving side
#: also has to create a tree, as with a real photo or source folder.
SMALL_FILES_PER_FOLDER = 100
#: Seed of the pseudo-random (incompressible) test data, so runs are repeatable.
DATA_SEED = b"p2p-transfer benchmark data v1"
#: Block in which test data is generated and hashed.
GENERATE_BLOCK = 4 * MiB
#: Free space kept in reserve beyond what a run writes.
DISK_RESERVE = 512 * MiB
#: A received tree of more files than this is set aside until the whole run ends,
#: not deleted: ext4 without a journal passes over inodes freed in the last
#: minutes when it creates files (``recently_deleted``), so deleting one run's
#: 10,000 files made the next run's creates several times slower, whichever
#: tool came next. Even the 1,000-file trees count: deleted, they slowed the row
#: that came first in the next workload (ours) on 100,000 files.
SET_ASIDE_FILES = 1
#: Folder of the work dir that holds those trees.
SET_ASIDE_DIR = "set-aside"

# --- Peers ------------------------------------------------------------------
#: File read / network write size of the benchmark's own peers: the project's
#: I/O buffer (256 KiB; larger iroh reads are slower, see DESIGN.md).
CHUNK_SIZE = 256 * KiB
#: ALPN of the raw iroh copy; no other program speaks it.
RAW_IROH_ALPN = b"p2p-transfer/bench-raw/1"
#: Verification code both p2p-transfer peers are given (the receiver's
#: ``--code`` fixes it, so no one has to type it).
P2P_CODE = "123456"
#: Nameplate of the first magic-wormhole code; each run takes the next one, so
#: a run never meets a claim left behind by the previous one.
WORMHOLE_FIRST_NAMEPLATE = 7
WORMHOLE_CODE_WORDS = "foo-bar"

# --- Deadlines (seconds) -------------------------------------------------------
#: Time for a receiver to print its ticket or address, or a server to listen.
STARTUP_TIMEOUT = 60.0
#: A run is given this much time plus the time its data takes at the slowest
#: rate still worth reporting; past that it is killed and marked failed.
RUN_TIMEOUT_BASE = 60.0
SLOWEST_RATE = 2 * MB
SLOWEST_FILE_RATE = 20
#: Grace between SIGTERM and SIGKILL when a process must be stopped.
KILL_GRACE = 3.0
#: Time for a finished peer to see its connection closed before giving up.
CLOSE_TIMEOUT = 10.0
