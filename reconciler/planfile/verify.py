"""Checking a read plan file against where it is applied: the signing key, the team and
journal it was made for, the journal it names (verify) and Spike's live values again."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from ..errors import InvalidPlanError, PlanError, StalePlanError, printable
from ..model import (
    Change,
    Fields,
    IncidentMap,
    Operation,
    Unsafe,
)
from ..planner import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_UNSAFE,
    Journaled,
    Options,
    Wanted,
    plan,
    with_resolved,
)
from .content import KEY_ENV, plan_key, sign
from .read import SavedPlan, SavedTeamsPlan

if TYPE_CHECKING:
    from ..journal.records import Recorded


def check_signature(saved: SavedPlan | SavedTeamsPlan) -> str | None:
    """Check the plan's signature against RECONCILE_PLAN_KEY; a warning when none can be done.

    With the key set, an unsigned or wrongly signed plan raises InvalidPlanError. Without
    it, a signed plan is applied with a warning: the signature could not be checked, and a
    job without the key would accept the same plan with its signature removed anyway.
    """
    key = plan_key()
    if key is None:
        if saved.signature is None:
            return None
        return f"{saved.path} is signed, but {KEY_ENV} is not set: its signature was not checked"
    if saved.signature is None:
        raise InvalidPlanError(
            f"{saved.path} is not signed, and {KEY_ENV} is set: only plans signed with that "
            f"key are applied (make it with `reconcile plan --out` where {KEY_ENV} is set)"
        )
    if not hmac.compare_digest(saved.signature, sign(saved.digest, key)):
        raise InvalidPlanError(
            f"{saved.path}: the signature does not match {KEY_ENV}: the plan was not made by a "
            "job holding this key, or was changed after it was signed"
        )
    return None


@dataclass(frozen=True)
class Verified:
    """What `verify` worked out: whether the plan is unsafe by the journal's numbers."""

    unsafe: bool


def check_made_for(saved: SavedPlan, team_id: str | None, location: str) -> None:
    """Refuse (InvalidPlanError), before the journal is opened, a plan made for another team
    than `team_id` (the one apply would call Spike as; None: none is set) or for another
    journal than the one at `location` (the one apply would write)."""
    if saved.team_id != team_id:
        raise InvalidPlanError(
            f"{saved.path} was made for another team: team id {_team(saved.team_id)}, not "
            f"{_team(team_id)}; plan again as the team it is to be applied to"
        )
    from ..journal import same_journal

    if not same_journal(saved.location, location):
        raise InvalidPlanError(
            f"{saved.path} was made for another journal: {printable(saved.location)}, not "
            f"{printable(_shown(location))}; plan again against the journal it is to be "
            "applied to"
        )


def _team(team_id: str | None) -> str:
    return printable(team_id) if team_id is not None else "(none: SPIKE_TEAM_ID was not set)"


def _shown(location: str) -> str:
    from ..journal import open_journal

    return open_journal(location).location  # a database URL without its credentials


def check_journal(saved: SavedPlan, state: Recorded) -> None:
    """Refuse (InvalidPlanError) a plan made for another journal than `state`'s (another
    lineage; a plan made before its journal existed applies only while it is still empty),
    or one this journal has applied already (its plan id is in an apply-start record)."""
    path = saved.path
    if saved.plan_id in state.applied_plans:
        raise InvalidPlanError(
            f"{path}: plan {saved.plan_id} was already applied to this journal; a plan is "
            "applied once. Plan again."
        )
    if saved.lineage != state.lineage:
        if saved.lineage is None:
            made = "before its journal existed, and applies only while that journal is still empty"
        else:
            made = f"against the journal of lineage {saved.lineage}"
        now = "has no records" if state.lineage is None else f"has lineage {state.lineage}"
        raise InvalidPlanError(
            f"{path} was made for another journal: it was made {made}; this journal {now}. "
            "Plan again."
        )


def verify(saved: SavedPlan, state: Recorded, unsafe: Unsafe = DEFAULT_UNSAFE) -> Verified:
    """Check the plan against the journal it was made from; raise before any call.

    InvalidPlanError when the journal is another one (another lineage: a plan made before
    the journal existed applies only while it is still empty) or has applied this plan
    already; StalePlanError when the journal moved on; InvalidPlanError when the plan asks for
    anything its own changes do not: forgetting an incident or field the journal lacks, a
    `before` that is not the journal's value, or operations other than the planner's for its
    changes (in the same order, with its batch size). The planner's refusals (reopening a
    resolved incident, escalating one) are refusals here too.
    """
    path = saved.path
    check_journal(saved, state)
    if saved.serial != state.serial:
        raise StalePlanError(
            f"{path} is stale: it was made against journal serial {saved.serial} "
            f"(lineage {saved.lineage}), the journal is now at serial {state.serial} "
            f"(lineage {state.lineage}). Plan again."
        )
    journal = state.incidents
    changed = {c.incident for c in saved.changes}
    for cid in saved.forget:
        if cid not in journal:
            raise InvalidPlanError(f"{path}: forget: incident {cid} is not in the journal")
        if cid in changed:
            raise InvalidPlanError(f"{path}: forget: incident {cid} also has changes")
    changed_fields = {(c.incident, c.field) for c in saved.changes}
    for cid, name in saved.unmanaged:
        if name == "escalations":
            # The count is kept through unmanaging (docs/state-files.md): the planner never
            # lists it, and journaling it would record an action that changed nothing.
            raise InvalidPlanError(
                f"{path}: unmanaged: incident {cid} escalations: the escalation count is "
                "never unmanaged"
            )
        if name not in journal.get(cid, {}):
            raise InvalidPlanError(
                f"{path}: unmanaged: the journal has no {name} for incident {cid}"
            )
        if (cid, name) in changed_fields:
            raise InvalidPlanError(f"{path}: unmanaged: incident {cid} {name} also has a change")
    # The state the plan was made against: the journal with the live values it carries.
    before: IncidentMap = dict(journal)
    for cid, fields in saved.refresh.items():
        before[cid] = {**journal.get(cid, {}), **fields}
    desired: IncidentMap = {}
    rules: dict[str, dict[str, str]] = {}
    for change in saved.changes:
        if change.rule is not None:
            rules.setdefault(change.incident, {})[change.field] = change.rule
        fields = desired.setdefault(change.incident, {})
        if change.field in fields:
            raise InvalidPlanError(
                f"{path}: changes: incident {change.incident} {change.field} changes twice"
            )
        fields[change.field] = change.after
    try:
        said = Journaled(
            before,
            state.lineage,
            state.serial,
            with_resolved(journal, state.kept),
            state.uncertain,
            state.rules,
            recorded=journal,
        )
        options = Options(
            saved.batch_size or _batch_size(saved.operations),
            # The forgets too (checked above: journaled, no change): the unsafe rule counts
            # them as a fresh plan does, and tells those a rule resolved from the journal.
            sorted({*desired, *saved.forget}),
            unsafe,
        )
        again = plan(Wanted(desired, rules=rules), said, options=options)
    except PlanError as exc:
        raise InvalidPlanError(
            f"{path}: the journal refuses the plan's changes: " + "; ".join(exc.messages)
        ) from None
    # Compared as they come: a plan of 100k incidents never holds its changes twice.
    _same(path, "changes", saved.changes, again.changes, Change.to_json)
    _same(path, "operations", saved.operations, again.operations, Operation.to_json)
    if "forget_left_rule" in saved.body and saved.left_rule != again.left_rule:
        raise InvalidPlanError(
            f"{path}: forget_left_rule does not match the journal (the incidents a rule put "
            "there and that it records as resolved); plan again"
        )
    return Verified(unsafe=again.unsafe)


def _batch_size(operations: list[Operation]) -> int:
    """The batch size of a plan file older than the `batch_size` key: its largest batch.

    Exact, not a guess: a batch smaller than the size it was made with means its ids all
    fitted in one call, and batching with the largest batch found splits nothing else.
    """
    sizes = [len(op.ids) for op in operations if "ids" in op.body]
    return max(sizes, default=DEFAULT_BATCH_SIZE)


def _same(
    path: str,
    key: str,
    saved: Sequence[Any],
    derived: Iterable[Any],
    encode: Callable[[Any], Any],
) -> None:
    """Refuse the plan, naming the first difference, unless the two lists are equal."""
    missing = object()
    for index, (mine, theirs) in enumerate(zip_longest(saved, derived, fillvalue=missing)):
        if mine == theirs:
            continue
        if key == "changes":
            why = "does not match the journal it names (a before that is not the journal's value?)"
        else:
            why = "are not the calls its changes make"
        found = "nothing" if mine is missing else encode(mine)
        expected = "nothing" if theirs is missing else encode(theirs)
        raise InvalidPlanError(
            f"{path}: {key} {why}: {key}[{index}] is {found}, the planner makes {expected}; "
            "plan again"
        )


def stale_live(saved: SavedPlan, live: Mapping[str, Fields]) -> None:
    """Refuse (StalePlanError) a plan whose live values Spike no longer reports.

    `live` is what Spike says now for each incident of `saved.refresh`.
    """
    differ = [
        f"incident {cid} {name}: the plan has {value!r}, Spike now reports "
        f"{live.get(cid, {}).get(name, '(nothing)')!r}"
        for cid, fields in sorted(saved.refresh.items())
        for name, value in fields.items()
        if live.get(cid, {}).get(name, ...) != value
    ]
    if differ:
        raise StalePlanError(
            f"{saved.path} is stale: live values changed since the plan was made ("
            + "; ".join(differ)
            + "). Plan again with --refresh."
        )
