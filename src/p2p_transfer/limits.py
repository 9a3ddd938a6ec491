"""Every limit the program enforces, in one place, named.

The values come from the design reviews of the Rust predecessor: each one is a
fault that program had (unbounded buffers, tasks or frames) turned into a bound.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# --- I/O -------------------------------------------------------------------
#: Size of one file read/write and of one network write of file data.
IO_BUFFER_SIZE = 256 * KiB
#: Fewest bytes a stream reads at once, for messages and tiny files (a run of a file's
#: bytes, or several files of 64 KiB, read IO_BUFFER_SIZE). iroh's read makes a buffer
#: of the size asked for each call, whatever arrived: at IO_BUFFER_SIZE, 100,000 files
#: of 1 KiB over QUIC (four streams) peaked ~2-3 MiB higher on each side (4 pairs).
MESSAGE_READ_SIZE = 64 * KiB
#: Files whose bytes are in flight at once in one session (``--parallel``).
DEFAULT_PARALLEL_FILES = 4
#: Upper bound accepted for ``--parallel``.
MAX_PARALLEL_FILES = 16
#: Read size when hashing a file that is already on disk (resume checks).
HASH_READ_SIZE = 4 * MiB
#: Files up to this size are read, hashed (and on the receiver written) in one step.
SMALL_FILE_SIZE = IO_BUFFER_SIZE
#: Small files are packed into one network write until it reaches this size.
BATCH_WRITE_SIZE = IO_BUFFER_SIZE
#: Small files a receiving stream holds in memory while earlier ones are stored: its
#: disk thread takes all of them in one hop (64 KiB made a hop of 16 files of 4 KiB,
#: and the stream waited for it each time). Each of a session's streams has one (QUIC:
#: DEFAULT_PARALLEL_FILES): 1 MiB took a QUIC receiver of 100,000 files to 88–95 MB
#: peak, 256 KiB keeps it at 74–76 at the same speed within the noise (bench, 30,000
#: files, alternately).
SMALL_STORE_BACKLOG = 256 * KiB
#: Disk work the last run's pace says will take at most this many seconds runs on the
#: event loop, not through a thread hop (``pace.Pace``): a batch of small files
#: (transfer/store_behind) and a QUIC sender's read or receiver's write of
#: PUMP_BUFFER_SIZE (~1 ms, hashing included). A full backlog of 256 files of 1 KiB
#: takes 10–20 ms: at 15 ms, many such batches went to threads, and 100,000 files of
#: 1 KiB took 13 % longer over TCP (7 pairs) and ~30 % longer over QUIC (2 pairs), its
#: four streams' threads contending. 50 ms is still no pause a person notices.
INLINE_DISK_BUDGET = 0.05
#: Small files a sender reads in one go (one thread hop), in bytes and in files.
SMALL_READ_AHEAD = 256 * KiB
SMALL_READ_AHEAD_FILES = 256

# --- Disk (the file writer) ----------------------------------------------------
#: Received files of at least this size are flushed to disk (fdatasync) before they get
#: their name; smaller ones are flushed together by one syncfs before the transfer is
#: reported done: an fsync per 4 KiB file costs ~18x its write (~430 µs vs ~24 µs here).
SYNC_EACH_FILE_FROM = 1 * MiB
#: Folders that got new names are fsynced one by one when a transfer ends, up to this
#: many; beyond it one syncfs flushes them all.
SYNC_FOLDERS_ONE_BY_ONE = 16
#: A big file's writer asks the kernel to start writing back every this many bytes, so
#: the flush before its name waits for the tail only (1 GiB: ~0.28 s → ~0.01 s here).
WRITEBACK_STEP = 32 * MiB
#: Folder handles one target keeps open (a tree may hold 10,000 folders; a process may
#: open ~1024 descriptors, shared by every transfer and connection).
FOLDER_HANDLE_CACHE = 32
#: Seconds a writer waits for another one in this process to let go of a part (a
#: superseded session winding down) before it treats the part as busy.
PART_RELEASE_WAIT = 5.0
#: What one new file or folder counts on disk besides its bytes (about one block: an
#: inode, a directory entry, a small file's last block), against the free space and
#: ``--max-size``, so an offer of many empty files is not free.
ENTRY_DISK_COST = 4 * KiB

# --- Framing ---------------------------------------------------------------
#: Bytes of the big-endian length prefix in front of every control message.
FRAME_HEADER_SIZE = 4
#: Largest control message body; a longer declared length is refused unread.
MAX_MESSAGE_SIZE = 64 * KiB
#: Target encoded size of one manifest page, leaving room for the envelope.
MANIFEST_PAGE_BUDGET = 48 * KiB
#: Bytes of the reason a closing connection gives its peer (QUIC sends it in one frame).
CLOSE_REASON_BYTES = 200

# --- Deadlines (seconds) ---------------------------------------------------
#: A new connection must send its first message within this time.
FIRST_MESSAGE_TIMEOUT = 5.0
#: Time the sending user has to type the verification code.
CODE_ENTRY_TIMEOUT = 60.0
#: Delay before answering a wrong verification code.
WRONG_CODE_DELAY = 2.0
#: Time the receiving user has to accept or decline an offer.
DECISION_TIMEOUT = 300.0
#: Time an incoming connection has to complete its QUIC handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Time a sender waits for a connection to be established.
CONNECT_TIMEOUT = 15.0
#: Time a node with a relay waits for it before going on with direct addresses only.
RELAY_ONLINE_TIMEOUT = 5.0
#: Time ``send --to HOST:PORT`` waits for the receiver's ticket.
IDENTIFY_TIMEOUT = 5.0
#: Largest ticket reply accepted from ``HOST:PORT``.
MAX_IDENTIFY_REPLY = 4096
#: Time allowed for a closing endpoint to deliver its close to the peer.
CLOSE_GRACE = 1.0

# --- LAN fast path (TCP + TLS) ------------------------------------------------
#: Time the sender gives the TCP connect and TLS handshake before using QUIC instead.
TCP_CONNECT_TIMEOUT = 2.0
#: Time a new data connection has to present its token.
TCP_TOKEN_TIMEOUT = 2.0
#: Seconds the data listener's throw-away certificate is valid (the listener lives for
#: one session)...
TCP_CERT_LIFETIME = 24 * 3600
#: ...from this many seconds before it was made: the two peers' clocks differ.
TCP_CERT_CLOCK_SKEW = 5 * 60
#: Bytes of the single-use token that binds a TCP data connection to its session.
TCP_TOKEN_BYTES = 32
#: Connections a data listener holds at once before one has presented the token
#: (TLS handshake or token still to come); more are closed before any TLS work.
#: The real sender needs one: the others can only be strangers who found the port.
TCP_MAX_PENDING_CONNECTIONS = 8
#: Bytes a data channel pumps per disk read or write and per TLS socket call.
PUMP_BUFFER_SIZE = 1 * MiB
#: A receiving pump hands over what it holds once it has this much (TCP; on QUIC a
#: batch of PUMP_BUFFER_SIZE goes to the disk)...
PUMP_HANDOVER_SIZE = 256 * KiB
#: ...or when no more bytes came for this long (seconds), so slow links show progress
#: and what arrived is on disk while the sender is away.
PUMP_HANDOVER_WAIT = 0.5
#: Writes a data channel queues behind the event loop before ``write_all`` waits for the
#: oldest: enough to keep the socket busy, few enough to bound memory (x PUMP_BUFFER_SIZE).
TCP_CHANNEL_BUFFERS = 4
#: Bytes read from a socket at a time during the TLS handshake and token: strangers who
#: found the port get no big buffer.
TCP_HANDSHAKE_READ_SIZE = 64 * KiB
#: Seconds between a listening thread's looks at whether it was stopped (how long closing
#: a data listener may take).
TCP_ACCEPT_POLL = 0.2

# --- Verification and pairing -----------------------------------------------
#: Digits of the verification code.
CODE_DIGITS = 6
#: Verifications waiting for a code at the same time (each shows the user a code).
MAX_PENDING_VERIFICATIONS = 8
#: ...of them from one address: an IPv4 address, an IPv6 /64, or all relayed peers
#: together (their addresses are not known).
MAX_PENDING_VERIFICATIONS_PER_ADDRESS = 2
#: Wrong codes typed by one endpoint, within WRONG_CODE_WINDOW, that lock it out (the
#: sender's "attempt 2 of 5"). Codes left unanswered count apart, below.
MAX_WRONG_CODES = 5
#: Codes shown to one endpoint and left unanswered (it said hello and left, its prompt
#: was closed, the time ran out), within WRONG_CODE_WINDOW, that lock it out: no wrong
#: codes, but each one a code on the receiving user's screen.
MAX_UNANSWERED_CODES = 5
#: Window in which failed attempts are counted (seconds).
WRONG_CODE_WINDOW = 10 * 60
#: How long a lock-out lasts (seconds).
LOCKOUT_SECONDS = 10 * 60
#: New verification attempts accepted per minute from all endpoints together...
GLOBAL_ATTEMPTS_PER_MINUTE = 30
#: ...and, beyond them, from addresses that made no attempt within WRONG_CODE_WINDOW:
#: a few busy addresses cannot use up first contact for everyone else.
FRESH_ADDRESS_ATTEMPTS_PER_MINUTE = 30
#: Failed attempts from one address, within WRONG_CODE_WINDOW, that lock it out
#: (for LOCKOUT_SECONDS), whatever endpoints it uses: two endpoints' worth.
MAX_ADDRESS_FAILURES = 10
#: How long a successful pairing is trusted, by default (seconds).
DEFAULT_PAIRING_LIFETIME = 24 * 3600
#: Addresses a pairing remembers a device was reached at (newest first).
PAIRING_MAX_ADDRESSES = 8
#: Longest remembered ticket, in characters (ours are ~80; a few addresses and a relay more).
PAIRING_MAX_TICKET_CHARS = 2048
#: Longest remembered address, in characters (``[IPv6]:port`` is at most ~47); a longer
#: one is not kept.
PAIRING_MAX_ADDRESS_CHARS = 64

# --- Connections (receiver) ---------------------------------------------------
#: Connections a receiver holds at once.
MAX_CONNECTIONS = 64
#: Connections a receiver holds at once from one IP address.
MAX_CONNECTIONS_PER_IP = 16
#: Offers waiting for the receiving user's answer at once.
MAX_PENDING_OFFERS = 8
#: A data stream that moves no byte for this long ends its connection (seconds).
DATA_STALL_TIMEOUT = 60.0
#: Seconds a superseded session (the same sender again, after a cut) gets to let go of
#: the files the new one claims; after that the new session is refused as busy.
SUPERSEDE_TIMEOUT = 10.0

# --- Continuing a transfer after a broken path (sender and receiver) -----------
#: How long a sender keeps trying to reach its receiver again (``--retry-for``).
DEFAULT_RETRY_FOR = 120.0
#: First and longest pause between a sender's tries to reach its receiver again.
RETRY_FIRST_PAUSE = 0.5
RETRY_LONGEST_PAUSE = 5.0
#: A try to reach the receiver again gives up after this long (the next one follows).
RETRY_CONNECT_TIMEOUT = 10.0
#: A sender that may reach its receiver again takes a transfer whose data moved not one
#: byte for this long (bytes still to send) as a broken path: a path cut without a reset
#: leaves TCP retransmitting for minutes and QUIC silent for ~35 s.
SEND_STALL_TIMEOUT = 5.0
#: An accepted transfer may be continued for this long after its acceptance (seconds).
CONTINUATION_LIFETIME = 3600.0
#: Continuations a receiver keeps at once; the oldest goes first.
MAX_CONTINUATIONS = 64
#: Bytes of a continuation's secret.
CONTINUATION_SECRET_BYTES = 16

# --- Names -----------------------------------------------------------------
#: Longest file name component, in UTF-8 bytes.
MAX_NAME_BYTES = 255
#: Longest relative path in a manifest, in UTF-8 bytes.
MAX_PATH_BYTES = 4096
#: Deepest folder nesting in a manifest.
MAX_PATH_DEPTH = 64
#: How many ``name (N).ext`` alternatives are tried for one name (received files, uploads).
MAX_NAME_ALTERNATIVES = 999
#: Longest device name, in characters.
MAX_DEVICE_NAME_CHARS = 64

# --- Manifest --------------------------------------------------------------
#: Most entries (files and folders) in one offer.
MAX_MANIFEST_ENTRIES = 200_000
#: Most bytes of path names in one offer, all entries together.
MAX_MANIFEST_NAME_BYTES = 16 * MiB
#: Largest total size an offer may declare.
MAX_OFFER_BYTES = 1 << 50
#: Manifest entries the offers of all peers together may hold in memory at once (an
#: entry costs ~100 bytes while its offer is decided on and received): an offer that
#: would go over is declined before one of its entries is kept.
MANIFEST_ENTRIES_HELD = 3 * MAX_MANIFEST_ENTRIES
#: The same, for the offers of one peer together.
MANIFEST_ENTRIES_HELD_PER_PEER = MAX_MANIFEST_ENTRIES
#: An offer of at most this many entries (a few files, a text) always fits: it draws on
#: a reserve of its own, so a few peers holding the budget above cannot starve it...
MANIFEST_SMALL_OFFER_ENTRIES = 1_000
#: ...of this many entries (~10 MB): more than every connection's offer at once
#: (MAX_CONNECTIONS, and LocalSend's one session) could hold.
MANIFEST_SMALL_OFFERS_RESERVE = 100_000
#: An offer of at least this many entries hands the memory it freed back to the system
#: when it ends (a garbage collection and ``malloc_trim``: tens of ms).
LARGE_MANIFEST_ENTRIES = 10_000
#: Seconds after such an offer before that is done: not on the transfer's last steps, and
#: not at all by a receiver that exits when its one transfer is over (``--once``).
RETURN_MEMORY_DELAY = 1.0

# --- Text messages (``send --text``) ----------------------------------------
#: Longest text sent as a message (UTF-8 bytes): a note, a link, a password; more is a
#: file's job.
MAX_TEXT_BYTES = 64 * KiB
#: UTF-8 bytes of text in one TextPage, leaving room for the envelope under
#: MAX_MESSAGE_SIZE (a text of MAX_TEXT_BYTES travels in two pages).
TEXT_PAGE_BYTES = 48 * KiB
#: Characters of a text's first line that travel with its offer, for the question.
TEXT_PREVIEW_CHARS = 80

# --- Progress --------------------------------------------------------------
#: Most progress events per second per transfer.
PROGRESS_EVENTS_PER_SECOND = 10
#: Files in flight named in one progress event (with --parallel up to 16, the event and
#: the terminal stay short).
MAX_ACTIVE_FILES_SHOWN = 8
#: Random bytes of a session ID (hex in events): unique within a process and its history.
SESSION_ID_BYTES = 6

# --- Identity --------------------------------------------------------------
#: Length of an Ed25519 secret key file.
SECRET_KEY_SIZE = 32
#: Seconds a child process has to make an RSA key and certificate (LocalSend's identity);
#: a key takes well under a second, so more means the machine is stuck.
RSA_KEY_TIMEOUT = 60.0

# --- Share -----------------------------------------------------------------
# The browser share (``p2p-transfer share``): an HTTP + WebSocket server that
# strangers' browsers reach, so every resource it holds for them is bounded.
#: Largest binary WebSocket frame of upload data a browser may send.
SHARE_CHUNK_SIZE = 256 * KiB
#: Smallest one, except the last frame of a file (a smaller one ends the socket): a
#: frame costs the server about what ~100 KiB of data does, so 1-byte frames would
#: cost it ~100,000x more per byte; at this size the worst framing costs at most
#: twice what the page's does (SHARE.md).
SHARE_MIN_CHUNK_SIZE = 64 * KiB
#: Largest WebSocket message of any kind; a longer one closes the socket (1009).
SHARE_MAX_MESSAGE_SIZE = 512 * KiB
#: Seconds between WebSocket pings (the Rust app's 5 s was needlessly chatty).
SHARE_PING_INTERVAL = 30.0
#: Seconds a new (or idle) upload socket has to send ``file_info``.
SHARE_HANDSHAKE_TIMEOUT = 10.0
#: Seconds the host has to accept or decline one upload.
SHARE_ANSWER_TIMEOUT = 60.0
#: Seconds an accepted upload may go without data before it is failed.
SHARE_DATA_TIMEOUT = 60.0
#: Open TCP connections to the share server, in total and from one IP address.
SHARE_MAX_CONNECTIONS = 100
SHARE_MAX_CONNECTIONS_PER_IP = 20
#: Uploads waiting for the host's answer, and uploads receiving bytes, at once.
SHARE_MAX_PENDING_UPLOADS = 10
SHARE_MAX_ACTIVE_UPLOADS = 5
#: Random bits in the share URL's token and in each upload's request ID.
SHARE_TOKEN_BITS = 128
#: Bytes of an HTTP request head read from a connection held while the slots are full
#: before it is answered (503, or a slot if it asks for the token).
SHARE_REFUSED_HEAD_BYTES = 8 * KiB
#: Seconds a connection has to ask for the token while newcomers find the slots full
#: (else SHARE_HANDSHAKE_TIMEOUT): a browser asks at once, a slow-loris never does.
SHARE_PRESSED_HEAD_TIMEOUT = 2.0
#: Seconds a refused client is told to wait (``Retry-After`` of a 503) before it asks again.
SHARE_RETRY_AFTER = 5
#: Frames an upload reads ahead of its disk writer: small, so a socket holds ~1 MiB at
#: most; beyond them the browser waits (backpressure).
SHARE_UPLOAD_QUEUE_FRAMES = 2
#: Random bytes of a download's ID in the host's events: enough to tell concurrent ones apart.
SHARE_DOWNLOAD_ID_BYTES = 6
#: Characters of the reason a WebSocket close carries (a close frame holds 123 bytes of
#: it; the full message went in the ``error`` message before it).
SHARE_CLOSE_REASON_CHARS = 100

# --- Discovery -------------------------------------------------------------
# LAN discovery (mDNS / DNS-SD with zeroconf). Announcements come from anyone
# on the LAN, so what a browser accepts from them is bounded too.
#: TTL (seconds) of our SRV, TXT, PTR and address records. A device that
#: vanishes without a goodbye drops out of other tables this long after its
#: last answer (RFC 6762's host-record TTL).
DISCOVERY_RECORD_TTL = 120
#: Most seconds between checks of the device table for records near or past
#: expiry (checks also run at each record's next refresh point).
DISCOVERY_SWEEP_INTERVAL = 1.0
#: Least seconds between two checks, so a burst of due records cannot spin.
DISCOVERY_MIN_SWEEP_DELAY = 0.05
#: Percent of a record's lifetime after which a browser asks for it again
#: (RFC 6762 section 5.2 suggests 80 %).
DISCOVERY_REFRESH_PERCENT = 80
#: ...and again every this many percent more, until it expires (80, 85, 90, 95 %).
DISCOVERY_REFRESH_STEP_PERCENT = 5
#: Milliseconds a browser waits for a newly seen service's SRV/TXT/address answers.
DISCOVERY_RESOLVE_TIMEOUT_MS = 3000
#: Default ``devices --timeout``: seconds to listen before listing.
DISCOVERY_LIST_TIMEOUT = 3.0
#: Largest ``devices --timeout`` accepted (seconds).
DISCOVERY_MAX_LIST_TIMEOUT = 600.0
#: Seconds ``send --to NAME`` looks for the named device before giving up.
DISCOVERY_FIND_TIMEOUT = 5.0
#: After a first match, seconds to keep listening for another device of the
#: same name, so an ambiguous name is reported instead of silently picked.
DISCOVERY_SETTLE_TIME = 1.0
#: Seconds ``send --to NAME`` looks on the LAN for a paired device that was reached
#: before: past it, the device is dialed where it was last reached (mDNS finds a
#: device in well under a second when multicast passes; this bounds the wait when not).
PAIRED_LOOKUP_WINDOW = 2.5
#: Seconds a paired device, not announced on the LAN, has to answer where it was last
#: reached before the send says it is not there (on a LAN it answers in milliseconds;
#: a remembered route with a relay gets the full CONNECT_TIMEOUT when this node is at a
#: relay itself).
REMEMBERED_ROUTE_TIMEOUT = 3.0
#: Shortest endpoint-ID prefix accepted by ``send --to`` (hex characters).
MIN_ENDPOINT_PREFIX = 4
#: Most direct addresses kept from one announcement.
MAX_DEVICE_ADDRESSES = 16
#: Most devices kept in a table; announcements beyond it are ignored.
MAX_DISCOVERED_DEVICES = 256
#: Longest DNS-SD TXT ``key=value`` string, in bytes (RFC 6763 section 6.1).
MAX_TXT_ITEM_BYTES = 255
#: Longest DNS label (the service instance name), in bytes (RFC 1035).
MAX_DNS_LABEL_BYTES = 63

# --- App -------------------------------------------------------------------
# The desktop app (``p2p-transfer app``): a UI server on 127.0.0.1 that only
# its own browser tab should reach, so what it accepts is bounded as well.
#: Random bits of the UI key (in the URL the app opens, then in a cookie).
APP_KEY_BITS = 256
#: Port of the UI server by default: 0 lets the system choose a free one.
APP_DEFAULT_PORT = 0
#: Largest JSON request body the UI API reads.
APP_MAX_JSON_BODY = 1 * MiB
#: Largest WebSocket message a UI tab may send (it sends nothing meaningful).
APP_WS_MAX_MESSAGE = 4 * KiB
#: Seconds between pings on the UI WebSocket.
APP_WS_PING_INTERVAL = 30.0
#: Events queued for one UI tab; a tab that falls this far behind is
#: disconnected and resynchronizes from a fresh state snapshot.
APP_WS_QUEUE_EVENTS = 2000
#: UI WebSockets open at once (tabs).
APP_MAX_UI_CLIENTS = 16
#: Entries returned for one folder listing (the rest are counted, not listed).
APP_MAX_DIR_ENTRIES = 5000
#: Paths in one send request.
APP_MAX_SEND_PATHS = 10_000
#: Devices one send request goes to (a session each).
APP_MAX_SEND_TARGETS = 16
#: Finished transfers kept on the live board (the history keeps the rest).
APP_FINISHED_ON_BOARD = 50
#: Rows kept in the transfer history; older ones are pruned.
APP_HISTORY_MAX_ROWS = 10_000
#: Rows returned by one history query.
APP_HISTORY_PAGE = 200
#: Rows a history query returns when it does not say how many.
APP_HISTORY_DEFAULT_ROWS = 100
#: Seconds the app's "Receive with a code" waits for the code's sender (``receive CODE
#: --wait``): the person may type the code before the other device shows it.
APP_CODE_WAIT = 120.0
#: Seconds a history write waits for another one holding the database (SQLite's lock).
APP_HISTORY_LOCK_TIMEOUT = 5.0
#: Bounds of the pairing-lifetime setting, in hours.
APP_MIN_PAIRING_HOURS = 1
APP_MAX_PAIRING_HOURS = 24 * 365
#: Seconds a staged drag-and-drop upload may go without a byte before it is failed.
APP_STAGING_DATA_TIMEOUT = 60.0
#: Seconds the browser shows the receiver's code when the sender never answers
#: (the code deadline plus the wrong-code delay, and a little slack).
APP_CODE_SHOWN_SECONDS = CODE_ENTRY_TIMEOUT + WRONG_CODE_DELAY + 3.0
#: Files offered for download through the share at once.
APP_MAX_SHARED_ITEMS = 256
#: Text messages the app keeps for tabs opened later.
APP_TEXTS_KEPT = 20
#: Characters of the reason a tab gives for declining an offer (sent to the sender).
APP_DECLINE_REASON_CHARS = 200
#: Random bytes of an open prompt's ID (the tab answers by it).
APP_PROMPT_ID_BYTES = 12
#: Hex characters of a staging batch's ID (64 random bits).
APP_STAGING_BATCH_ID_CHARS = 16
#: Sends waiting in the outbox for a trusted device that is away; one more is refused
#: (each holds its paths, and a device's tries run while any of its sends waits).
APP_OUTBOX_MAX_SENDS = 64
#: Seconds a send waits in the outbox; past that it is dropped, and its card says so.
APP_OUTBOX_MAX_AGE = 7 * 24 * 3600.0
#: First and longest pause between two tries to reach a device an outbox send waits for
#: (doubling in between); a device announcing itself on the LAN is tried at once.
APP_OUTBOX_FIRST_PAUSE = 2.0
APP_OUTBOX_LONGEST_PAUSE = 60.0
#: Seconds one try waits for an answer at a device's remembered addresses (all asked at
#: once): on a LAN a device answers at once or not at all.
APP_OUTBOX_TRY_TIMEOUT = 3.0
#: Largest outbox file read at start (64 sends of 10,000 paths fit); a larger one is
#: ignored and said, as a damaged one is.
APP_OUTBOX_MAX_FILE_BYTES = 64 * MiB

# --- LocalSend ---------------------------------------------------------------
# The LocalSend protocol (v2.1): an HTTPS server any device on the LAN reaches,
# with no authentication beyond an optional PIN, so everything it holds is bounded.
#: TCP port of the LocalSend server, and UDP port of its multicast announcements.
LOCALSEND_PORT = 53317
#: Largest JSON body read (register, prepare-upload): ~20,000 files' metadata, or a
#: long text message; a longer one is refused (413) before it is read.
LOCALSEND_MAX_JSON_BODY = 4 * MiB
#: Bytes of JSON bodies read (and their offers planned) at once, from all addresses and
#: from one: one session is taken at a time, so two of the largest are plenty; a body
#: that does not fit now is refused (503) before it is read...
LOCALSEND_BODIES_HELD = 2 * LOCALSEND_MAX_JSON_BODY
LOCALSEND_BODIES_HELD_PER_IP = LOCALSEND_MAX_JSON_BODY
#: ...except one of at most this many bytes (a register, an offer of a few hundred
#: files), which the connection cap bounds: LOCALSEND_MAX_CONNECTIONS of them, 6.4 MiB.
LOCALSEND_SMALL_BODY = 64 * KiB
#: Most files one prepare-upload may announce.
LOCALSEND_MAX_FILES = 20_000
#: Files of an offer planned (decoded, names sanitized and numbered) in one go before
#: the event loop serves others (~0.25 ms here): planning never holds it longer...
LOCALSEND_PLAN_STEP = 25
#: ...and the share of the time planning takes, the rest left free: the largest offer,
#: ~0.2 s of work, is planned in ~2 s while a transfer goes on at its pace.
LOCALSEND_PLAN_SHARE = 0.1
#: Longest text message shown (characters of a ``text/plain`` preview).
LOCALSEND_MAX_TEXT_CHARS = 100_000
#: Largest multicast announcement read (one UDP datagram).
LOCALSEND_MAX_DATAGRAM = 16 * KiB
#: Open TCP connections to the LocalSend server, in total and from one IP address,
#: counted from the TCP accept (before TLS); a newcomer that finds them full takes the
#: place of the oldest one not waiting for an answer or uploading.
LOCALSEND_MAX_CONNECTIONS = 100
LOCALSEND_MAX_CONNECTIONS_PER_IP = 20
#: Seconds a connection has, from its TCP accept (and again after each answer or
#: upload), for its TLS handshake and a request that waits for an answer or uploads,
#: its body included; else it is dropped. Also how long an idle keep-alive is kept.
LOCALSEND_HANDSHAKE_TIMEOUT = 10.0
#: Seconds an upload may go without a byte before it fails.
LOCALSEND_DATA_TIMEOUT = 60.0
#: Seconds an accepted session may wait for its next upload before it ends failed.
LOCALSEND_SESSION_IDLE_TIMEOUT = 120.0
#: Wrong PINs from one address that make it wait, and for how long (seconds).
LOCALSEND_MAX_WRONG_PINS = 3
LOCALSEND_PIN_LOCKOUT = 60.0
#: Seconds a LocalSend 503 (too many connections or bodies) asks the client to wait.
LOCALSEND_RETRY_AFTER = 5
#: Longest LocalSend PIN, set in the app or typed to a device that asks, in characters
#: (the official app takes any text).
LOCALSEND_MAX_PIN_CHARS = 64
#: Wrong PINs from all addresses together within LOCALSEND_WRONG_PINS_WINDOW seconds
#: that close the PIN door until the user starts receiving again: at most this many
#: guesses (a 4-digit PIN: a 0.1 % chance), however many addresses try.
LOCALSEND_MAX_WRONG_PINS_IN_ALL = 10
LOCALSEND_WRONG_PINS_WINDOW = 600.0
#: Seconds a sender waits for a LocalSend device to connect and answer a request.
LOCALSEND_CONNECT_TIMEOUT = 10.0
#: Seconds a LocalSend device is listed after its last announcement.
LOCALSEND_DEVICE_TTL = 120.0
#: Seconds between our multicast announcements while announcing (after a first burst).
LOCALSEND_ANNOUNCE_INTERVAL = 30.0
#: Most LocalSend devices kept in the table; more announcements are ignored.
LOCALSEND_MAX_DEVICES = 256
#: Register requests we send in answer to announcements at once (others are dropped).
LOCALSEND_MAX_REGISTER_REPLIES = 8

# --- Terminal and JSON output ------------------------------------------------
#: Seconds of connecting before the sender says whom it is trying to reach.
REACH_NOTICE_DELAY = 2.0
#: JSON lines of a burst go out together at most this often (seconds); a line after a
#: quiet spell goes out at once. A transfer of many small files emits an event per file,
#: and a write per line cost a receiver of 100,000 files ~0.4 s.
JSON_FLUSH_INTERVAL = 0.02

# --- Doctor ----------------------------------------------------------------
# ``p2p-transfer doctor`` runs its checks at once; the slowest bounds the run.
#: Seconds the multicast probe listens for its own echo and other devices' answers.
DOCTOR_MULTICAST_WAIT = 1.5
#: Seconds spent looking for devices on the LAN.
DOCTOR_BROWSE_TIME = 2.5
#: Seconds allowed to reach one device's port.
DOCTOR_REACH_TIMEOUT = 1.5
#: Seconds allowed to reach the relay (then it counts as unreachable).
DOCTOR_RELAY_TIMEOUT = 5.0
#: Most devices whose reachability one run checks.
DOCTOR_MAX_DEVICES = 16

# --- magic-wormhole (the classic file transfer) ------------------------------------
# A plain magic-wormhole client (``wormhole send``/``receive``) is a stranger until its
# PAKE, and afterwards only as honest as it chooses to be: what it sends is bounded.
#: Largest message a magic-wormhole peer may send through the mailbox (an offer, its
#: transit hints, an answer): a text of MAX_TEXT_BYTES fits even fully \u-escaped.
WORMHOLE_MAX_MESSAGE_SIZE = 512 * KiB
#: Messages a peer may send before its offer (transit hints; the CLI sends one).
WORMHOLE_MAX_MESSAGES_BEFORE_OFFER = 8
#: Seconds a peer has to send its offer once the code's PAKE is done.
WORMHOLE_OFFER_TIMEOUT = 60.0
#: Seconds a sender waits for the receiver's answer (its user decides, as ours do).
WORMHOLE_ANSWER_TIMEOUT = DECISION_TIMEOUT + 10.0
#: Connection hints accepted from a peer (direct addresses and relays together).
WORMHOLE_MAX_HINTS = 32
#: Longest host name accepted in a hint (DNS's own limit).
WORMHOLE_MAX_HOST_CHARS = 253
#: Seconds to connect over transit (direct, or through the transit relay).
WORMHOLE_TRANSIT_TIMEOUT = 60.0
#: Seconds direct hints get before the transit relay is tried too (the library's value).
WORMHOLE_RELAY_DELAY = 2.0
#: Inbound transit connections still in their handshake at once; more are closed.
WORMHOLE_MAX_PENDING_TRANSIT = 8
#: Largest transit record accepted (the wormhole CLI sends 16 KiB ones); the declared
#: length of a longer one is refused before its body is read.
WORMHOLE_MAX_RECORD_SIZE = 4 * MiB
#: Plaintext bytes in each record we send: the reference sender's size, which every
#: client takes.
WORMHOLE_SEND_RECORD_SIZE = 16 * KiB
#: Seconds a sender waits for the receiver's ack after the last byte: a receiver acks a
#: folder only once its zip is unpacked and on disk.
WORMHOLE_ACK_TIMEOUT = 600.0
#: Largest ratio of an entry's size to its compressed size in a received zip: deflate
#: cannot do better than ~1032:1, so a higher claim is a crafted zip (a "zip bomb").
WORMHOLE_ZIP_MAX_RATIO = 1032
#: Most entries (files and folders) in a received zip.
WORMHOLE_ZIP_MAX_ENTRIES = MAX_MANIFEST_ENTRIES

# --- Send by code (magic-wormhole's mailbox server) ----------------------------
#: Seconds to reach the code server (its welcome) before saying it cannot be reached.
MAILBOX_CONNECT_TIMEOUT = 5.0
#: Largest WebSocket message taken from the code server: a boxed message in hex (the
#: largest a wormhole client may send us is WORMHOLE_MAX_MESSAGE_SIZE, refused after).
MAILBOX_MAX_FRAME = 4 * MiB
#: Messages of the other side held unread before it is refused (a wormhole client sends
#: two or three at once, ours one).
MAILBOX_MAX_PENDING = 8
#: Seconds a receiver waits for the sender's half of the key exchange after claiming a
#: code: a waiting sender posted it long before, so silence means a code used up,
#: mistyped, or whose sender left.
CODE_PEER_TIMEOUT = 5.0
#: Seconds each side waits for the other's ticket once the key is agreed.
CODE_TICKET_TIMEOUT = 10.0
#: Largest rendezvous message accepted from the other side (its abilities, its ticket).
MAX_RENDEZVOUS_MESSAGE = 4 * KiB
#: Seconds a code's receiver waits for the sender's connection after the tickets crossed.
CODE_CONNECT_TIMEOUT = CONNECT_TIMEOUT + 10.0
#: Words after the nameplate number in a code we allocate (the wormhole CLI's default).
CODE_WORDS = 2
#: Seconds a code's receiver waits for its home relay before sending its ticket (with
#: internet the relay is up well before the code is typed; without, it never comes).
RELAY_TICKET_WAIT = 1.5
#: Seconds a code's receiver looks for the code's sender on the LAN before claiming the
#: code on the server (a code offered only on the LAN must not burn a stranger's).
LAN_CODE_LOOKUP = 1.0
#: Seconds a code's receiver keeps looking on the LAN when the server is out of reach.
LAN_CODE_SEARCH = 10.0
#: Seconds between fresh questions for a code's sender on the LAN...
LAN_CODE_ASK = 0.5
#: ...and, past LAN_CODE_SEARCH (``receive CODE --wait``), growing up to this: a long wait
#: does not ask the LAN twice a second for minutes.
LAN_CODE_ASK_LONGEST = 5.0
#: Seconds the LAN key exchange (connect, both messages, both proofs) may take.
LAN_PAKE_TIMEOUT = 5.0

# --- A receiver's stable port ----------------------------------------------------
#: UDP port ``receive`` tries first when it has none of its own yet (then the last one
#: it used, kept in the config dir), so a ticket printed yesterday still reaches it.
DEFAULT_RECEIVE_PORT = 41837
