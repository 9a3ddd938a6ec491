"""Offers as the receiving user sees them, and the one way every offer is decided.

Shared by every receiver, whatever protocol the offer came over (ours, LocalSend):
the offer shown, the answer, the limits on offers waiting, and ``Refused``, which
turns a peer away with words it is told. An offer of ours can hold files that are
already here, so it is surveyed first and judged by what it still needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from p2p_transfer.disk import TargetError, TargetFolder, describe_os_error
from p2p_transfer.disk.writable import write_problem
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import OfferEvent, Via
from p2p_transfer.limits import DECISION_TIMEOUT
from p2p_transfer.protocol import Error, ErrorKind, Manifest
from p2p_transfer.transfer.admission import CountedSlots
from p2p_transfer.transfer.claims import ClaimOwner, FileClaims, FilesBusyError
from p2p_transfer.transfer.intake import PreparedOffer, room_shortage
from p2p_transfer.transfer.session import DataTransport
from p2p_transfer.trust.vouched import VouchedPeer


@dataclass(frozen=True, slots=True)
class IncomingOffer:
    """What the receiving user decides on."""

    #: The receiving session's ID (the ``session`` of its events).
    session: str
    peer_id: str
    peer_name: str
    files: int
    folders: int
    total_bytes: int
    sample: list[str]
    #: Which protocol the offer came over; a LocalSend sender is never a paired device.
    via: Via = "p2p-transfer"
    #: The sender's device model, as a LocalSend sender states it.
    device_model: str = ""
    #: A text message (shown when accepted, not stored): ``total_bytes`` of UTF-8 whose
    #: first line is ``preview``.
    text: bool = False
    preview: str = ""
    #: Offered files already in the target: same name and size, or a partial ``.part``.
    already_there: int = 0
    partly_there: int = 0

    def event(self) -> OfferEvent:
        """The offer as every front end is told of it."""
        return OfferEvent(
            self.session, self.files, self.total_bytes, self.peer_name, self.peer_id,
            self.folders, self.sample, self.via, self.device_model, self.text, self.preview,
            self.already_there, self.partly_there,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """Accept, or decline with a reason the sender will see."""

    accept: bool
    reason: str = ""


Decider = Callable[[IncomingOffer], Awaitable[Decision]]


@dataclass(slots=True)
class ReceiveOptions:
    """How to receive."""

    target: Path
    auto_accept: bool = False
    fixed_code: str | None = None
    max_size: int | None = None
    umask: int = 0o022
    transport: DataTransport = "auto"
    #: Set by a receive by code: only this peer is served, and without a 6-digit code.
    vouched: VouchedPeer | None = None


#: The HTTP status a LocalSend peer gets for a refusal that names none.
FORBIDDEN = 403


class Refused(P2PTransferError):
    """This receiver turns the peer away; the message is what the peer is told.

    Our protocol sends it as an ``Error`` (``kind`` and its numbers let the sender act
    without reading the words); LocalSend's HTTP as ``status``, the code its spec gives
    for the case.
    """

    def __init__(
        self,
        message: str,
        kind: ErrorKind = "",
        *,
        attempts_left: int = 0,
        retry_after: float = 0.0,
        status: int = FORBIDDEN,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.attempts_left = attempts_left
        self.retry_after = retry_after
        self.status = status

    @property
    def error(self) -> Error:
        """The refusal as our protocol's last message to the peer."""
        return Error(str(self), self.kind, self.attempts_left, self.retry_after)


def cannot_write(problem: str) -> str:
    """What a sender is told when the receiver's folder takes no files (not where it is:
    that is the receiving user's business)."""
    return (f"the receiver cannot save files: its download folder is not writable "
            f"({problem}); its user must choose another folder or fix this one")


async def decide_offer(
    offer: IncomingOffer, options: ReceiveOptions, decide: Decider, pending: CountedSlots
) -> Decision:
    """The answer to an offer that holds nothing of what is already here (LocalSend): the
    target's room for all of it first, then ``ask_for_decision``."""
    target = options.target
    shortage = await asyncio.to_thread(
        room_shortage, target, offer.total_bytes, offer.files + offer.folders, options.max_size
    )
    if shortage:
        return Decision(False, shortage)
    return await ask_for_decision(offer, options, decide, pending)


async def ask_for_decision(
    offer: IncomingOffer, options: ReceiveOptions, decide: Decider, pending: CountedSlots
) -> Decision:
    """``--yes``, or the user's answer within DECISION_TIMEOUT, with a bounded number of
    offers waiting. Every offer takes this path, whatever protocol it came over.

    Files are offered to a folder that can take them: one that cannot is the reason
    given, before anyone is asked (never a failure after acceptance)."""
    if not offer.text and (problem := await asyncio.to_thread(write_problem, options.target)):
        return Decision(False, cannot_write(problem))
    if options.auto_accept:
        return Decision(True)
    if not pending.try_acquire():
        return Decision(False, "the receiver has too many offers waiting; try again later")
    try:
        return await asyncio.wait_for(decide(offer), DECISION_TIMEOUT)
    except TimeoutError:
        return Decision(False, "the receiver did not answer in time")
    finally:
        pending.release()


async def survey(
    manifest: Manifest, options: ReceiveOptions, claims: FileClaims, owner: ClaimOwner
) -> tuple[PreparedOffer | None, str]:
    """Reserve the offered files for ``owner`` (no other session writes them) and find what
    the target holds of them, writing nothing: the prepared offer, or None and why the
    target cannot take it (a file where a folder must go, files being received)."""
    target: TargetFolder | None = None
    try:
        target = TargetFolder(options.target, options.umask)
        paths = (target.location_of(manifest.path(i)) for i in manifest.file_indexes())
        await claims.claim(owner, await asyncio.to_thread(FileClaims.keys, paths))
        return await asyncio.to_thread(PreparedOffer.survey, target, manifest), ""
    except TimeoutError:  # before OSError: it is one
        reason = "an earlier transfer of these files is still stopping"
    except (FilesBusyError, TargetError) as exc:
        reason = str(exc)
    except OSError as exc:
        reason = describe_os_error(exc)
    if target is not None:
        target.close()
    return None, reason


async def consider(
    prepared: PreparedOffer, max_size: int | None, ask: Callable[[], Awaitable[Decision]]
) -> Decision:
    """Decide on a surveyed offer by what it still needs (``ask`` only when the target has
    room for that), then make its folders; a declined offer lets go of its target."""
    accepted = False
    try:
        shortage = await asyncio.to_thread(prepared.shortage, max_size)
        decision = Decision(False, shortage) if shortage else await ask()
        if decision.accept:
            await asyncio.to_thread(prepared.make_folders)
            accepted = True
        return decision
    except TargetError as exc:
        return Decision(False, str(exc))
    except OSError as exc:
        return Decision(False, describe_os_error(exc))
    finally:
        if not accepted:
            prepared.target.close()
