"""Refresh: record Spike's live values (or an escalation count read in its activity log) in the
journal, changing nothing in Spike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import ALL_REVERT, Policy
from ..errors import (
    ReconcileError,
)
from ..journal import DEFAULT_LOCK_TIMEOUT, open_journal
from ..model import Drift, Fields
from ..spike import DEFAULT_PARALLELISM
from ..states import DEFAULT_PATHS

if TYPE_CHECKING:
    from ..config import TeamConfig
from ..journal.records import ACTIVITY_LOG, REOPENED
from .plan import check_targets, read_live


@dataclass
class RefreshOutcome:
    drift: list[Drift]
    recorded: dict[str, Fields]
    lineage: str | None
    serial: int
    #: How many incidents were read from Spike (0: the journal records none of the state
    #: files' incidents and nothing was adopted: there was nothing to refresh).
    read: int = 0


@dataclass(frozen=True)
class RefreshRequest:
    """What `reconcile refresh` reads and records."""

    paths: Sequence[str] = ()
    #: --id: incidents the journal has never seen, adopted with all their live fields.
    adopt: Sequence[str] = ()
    journal_location: str | None = None
    parallelism: int = DEFAULT_PARALLELISM
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    #: --escalations: the count read in Spike's activity log, for the one incident in `adopt`.
    escalations: int | None = None
    #: A field whose policy is warn or accept keeps its journaled value (docs/drift.md).
    drift_policy: Mapping[str, Policy] = field(default_factory=lambda: ALL_REVERT)
    #: The team of reconcile.yaml read (its id and key); None: SPIKE_TEAM_ID.
    team: TeamConfig | None = None
    #: --reopened: adopt Spike's open status for the incidents in `adopt`, which this journal
    #: recorded as resolved (docs/drift.md, Resolved in the journal, open in Spike).
    reopened: bool = False


def run_refresh(request: RefreshRequest) -> RefreshOutcome:
    """Record live values in the journal without changing anything in Spike.

    Reads the incidents of the state files (the fields they manage or the journal holds)
    and adopts `adopt`: incidents the journal has never seen, all their live fields.

    With `escalations`, reads nothing from Spike: records that count, which the operator read
    in Spike's activity log, for the one incident in `adopt`, and clears the uncertainty of
    its last escalation. A count below the escalations the journal recorded as applied is
    refused.
    """
    from ..planner import overlay_live
    from ..states.loader import load

    paths, adopt, journal_location = request.paths, request.adopt, request.journal_location
    parallelism, lock_timeout = request.parallelism, request.lock_timeout
    escalations = request.escalations
    check_targets(adopt)
    if escalations is not None:
        return _record_escalations(adopt, escalations, journal_location, lock_timeout)
    if request.reopened:
        return _record_reopened(request)
    desired = load(paths or DEFAULT_PATHS).incidents
    journal = open_journal(journal_location)
    with journal.open_for_apply(lock_timeout, "reconcile refresh") as writer:
        state = writer.state
        ids = (set(desired) & set(state.incidents)) | set(adopt)
        live = read_live(ids, parallelism, team=request.team)
        adopted = {cid: live[cid] for cid in adopt if cid not in state.incidents}
        known = {cid: v for cid, v in live.items() if cid not in adopted}
        _, drift, record = overlay_live(state.incidents, known, desired, request.drift_policy)
        record.update(adopted)
        writer.set_values(record, "refresh")
        return RefreshOutcome(
            drift, record, writer.state.lineage, writer.state.serial, read=len(ids)
        )


def _record_escalations(
    ids: Sequence[str], count: int, journal_location: str | None, lock_timeout: float
) -> RefreshOutcome:

    if len(ids) != 1:
        raise ReconcileError("--escalations records the count of one incident: give one --id")
    if type(count) is not int or count < 0:
        raise ReconcileError(f"--escalations must be a whole number, 0 or more, not {count!r}")
    (cid,) = ids
    journal = open_journal(journal_location)
    with journal.open_for_apply(lock_timeout, f"reconcile refresh --id {cid}") as writer:
        state = writer.state
        # Confirmed escalations (2xx) happened; an uncertain one is not counted in them.
        confirmed = state.escalations(cid) or 0
        if count < confirmed:
            raise ReconcileError(
                f"--escalations {count} is below the {confirmed} escalations of {cid} that "
                "Spike confirmed to this tool; the count only grows (nothing recorded)"
            )
        record: dict[str, Fields] = {cid: {"escalations": count}}
        writer.set_values(record, ACTIVITY_LOG)
        return RefreshOutcome([], record, writer.state.lineage, writer.state.serial)


def _record_reopened(request: RefreshRequest) -> RefreshOutcome:
    """Record the live status of `request.adopt`, each recorded as resolved and open in Spike,
    so that the journal no longer holds them resolved (their other fields are left as
    recorded: plain refresh records those). Refuses, recording nothing, an id the
    journal does not record as resolved or that Spike reports resolved too."""
    ids = list(dict.fromkeys(request.adopt))
    if not ids:
        raise ReconcileError("--reopened needs the incidents: one --id for each")
    journal = open_journal(request.journal_location)
    with journal.open_for_apply(request.lock_timeout, "reconcile refresh --reopened") as writer:
        state = writer.state
        never = [cid for cid in ids if not state.resolved(cid)]
        if never:
            raise ReconcileError(
                f"--reopened: {', '.join(never)}: this journal does not record "
                f"{'them' if len(never) > 1 else 'it'} as resolved; `reconcile refresh` "
                "records live values (nothing recorded)"
            )
        live = read_live(ids, request.parallelism, team=request.team)
        closed = [cid for cid in ids if live[cid].get("status") == "resolved"]
        if closed:
            raise ReconcileError(
                f"--reopened: {', '.join(closed)}: Spike reports resolved too; there is "
                "nothing to adopt (nothing recorded)"
            )
        record: dict[str, Fields] = {cid: {"status": live[cid].get("status")} for cid in ids}
        drift = [Drift(cid, "status", "resolved", live[cid].get("status")) for cid in ids]
        writer.set_values(record, REOPENED)
        return RefreshOutcome(drift, record, writer.state.lineage, writer.state.serial)
