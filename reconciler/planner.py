"""Desired states x journal -> Plan. Pure: no I/O, no clock, no randomness.

For each incident and managed field, the desired value is compared with the journal's
last-applied one; differences become changes, and changes that share an endpoint and a value
become one batched call. The operation count is the minimum possible for the changes.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, overload

from . import endpoints as ep
from .approvals import Needed
from .errors import PlanError
from .model import (
    FIELDS,
    PRIORITIES,
    SEVERITIES,
    Change,
    Drift,
    Fields,
    IncidentMap,
    Operation,
    Unsafe,
    Value,
)

DEFAULT_BATCH_SIZE = 100
#: The unsafe rule's default thresholds (reconcile.yaml's defaults.unsafe may change them).
DEFAULT_UNSAFE = Unsafe()


@dataclass
class Plan:
    """Everything `apply` needs, and everything a reviewer reads."""

    lineage: str | None
    serial: int
    inputs_digest: str
    incidents: int
    changes: Sequence[Change] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)
    unmanaged: list[tuple[str, str]] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    unsafe: bool = False
    warnings: list[str] = field(default_factory=list)
    #: Fields Spike reported differently from the journal (plan --refresh).
    drift: list[Drift] = field(default_factory=list)
    #: Live values read by --refresh that the journal does not hold yet; apply records them.
    #: (Written to the plan file as its `refresh` key: docs/plan-format.md.)
    live_values: dict[str, Fields] = field(default_factory=dict)
    #: The rule behind each rule-expanded field: counter id -> field -> rule name.
    rules: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The forgets (among `forget`) of incidents a rule put in the journal and that are
    #: resolved: they left the rule's matches (docs/rules.md). Counter id -> the rule.
    left_rule: dict[str, str] = field(default_factory=dict)
    #: The approvals its changes need (reconcile.yaml's `approvals:`; docs/approvals.md).
    approvals: list[Needed] = field(default_factory=list)

    @property
    def changed_incidents(self) -> int:
        if isinstance(self.changes, ChangeView):
            return self.changes.incidents
        return len({c.incident for c in self.changes})

    @property
    def has_changes(self) -> bool:
        """True when applying would do anything: API calls or journal-only changes."""
        return bool(self.operations or self.forget or self.unmanaged or self.live_values)

    def summary(self) -> dict[str, int]:
        return {
            "incidents": self.incidents,
            "changed_incidents": self.changed_incidents,
            "changes": len(self.changes),
            "operations": len(self.operations),
        }


# ---------------------------------------------------------------------------------------------


#: The two public-sharing bodies, shared by every such call (never mutated).
_SHARING: dict[Value, Mapping[str, Any]] = {
    True: MappingProxyType({"publicSharing": True}),
    False: MappingProxyType({"publicSharing": False}),
}


def _chunks(ids: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _batched(method: str, path: str, ids: list[str], size: int, **value: Any) -> list[Operation]:
    ids.sort()
    return [Operation(method, path, {**value, "ids": chunk}) for chunk in _chunks(ids, size)]


def pack_escalations(counts: Mapping[str, int], size: int) -> list[Operation]:
    """Escalate calls so each incident is escalated counts[id] times, in the fewest calls.

    An incident can appear once per call and a call holds `size` ids, so the minimum is
    max(max count, ceil(total / size)); taking the largest remaining counts first reaches it.
    """
    heap = [(-n, cid) for cid, n in counts.items() if n > 0]
    heapq.heapify(heap)
    calls: list[Operation] = []
    while heap:
        taken = [heapq.heappop(heap) for _ in range(min(size, len(heap)))]
        calls.append(Operation("POST", ep.ESCALATE, {"ids": sorted(cid for _, cid in taken)}))
        for negative, cid in taken:
            if negative < -1:
                heapq.heappush(heap, (negative + 1, cid))
    return calls


@dataclass(frozen=True)
class _Reopened:
    """An incident this journal recorded as resolved that Spike now reports open (`live`)."""

    incident: str
    live: Value


def reopened_error(reopened: Sequence[tuple[str, Value]]) -> str:
    """The one message for every incident whose live status contradicts a resolved one
    recorded in the journal: what it means and the deliberate way out (docs/drift.md)."""
    ids = [cid for cid, _ in reopened]
    statuses = ", ".join(f"{cid} {live}" for cid, live in reopened)
    return (
        f"{len(ids)} incident{'s' if len(ids) != 1 else ''} this journal recorded as resolved "
        f"{'are' if len(ids) != 1 else 'is'} open in Spike ({statuses}), and resolved is "
        "terminal in Spike: this journal may belong to another team or account (check "
        "SPIKE_TEAM_ID, the team's team_id and api_key_env, SPIKE_API_URL and the journal), or "
        "Spike's data was reset (a restarted sandbox). Nothing was planned. If Spike is right, "
        "record its status deliberately with `reconcile refresh "
        + " ".join(f"--id {cid}" for cid in ids)
        + " --reopened` (with this command's --journal or --team)"
    )


def _diff(
    desired: IncidentMap,
    journal: IncidentMap,
    scope: Sequence[str],
    sources: Mapping[str, str],
    kept: Mapping[str, Fields] | None = None,
    uncertain: Mapping[str, str] | None = None,
    rules: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[Change | str | tuple[str, str] | _Reopened]:
    """Every difference in plan order: a Change, a refusal (str), an unmanaged field, or
    a live open status that contradicts a resolved one of the journal (_Reopened).

    The one place that compares desired with last-applied values; the planner walks it once
    to build the calls, and ChangeView walks it again to show the changes. `kept` holds the
    facts Spike cannot undo about incidents (or statuses) no longer journaled: a resolved
    status and an escalation count; they count as known values but are never listed as
    unmanaged. An incident in `uncertain` gets no escalation change. `rules` names the rule
    behind a rule-expanded field (Change.rule).
    """
    empty: dict[str, Value] = {}
    no_rules: dict[str, str] = {}
    kept = kept or {}
    uncertain = uncertain or {}
    rules = rules or {}
    for cid in scope:
        want = desired[cid]
        have = journal.get(cid, empty)
        facts = kept.get(cid, empty)
        where = f"{sources[cid]}: " if cid in sources else ""
        resolved = have.get("status") == "resolved" or facts.get("status") == "resolved"
        by_rule = rules.get(cid, no_rules)
        for name in FIELDS:
            if name not in want:
                if name in have and name != "escalations":
                    yield (cid, name)
                continue
            after = want[name]
            known = name in have or name in facts
            before = have[name] if name in have else facts.get(name)
            if name == "escalations":
                done = before if isinstance(before, int) else 0
                assert isinstance(after, int)
                if after == done:
                    continue
                if after < done:
                    yield (
                        f"{where}incident {cid}: escalations: {after} is below the {done} "
                        "already applied; the count only grows"
                    )
                    continue
                if resolved:
                    yield f"{where}incident {cid}: escalations: cannot escalate a resolved incident"
                    continue
                if cid in uncertain:
                    continue  # never escalated again until the operator records the count
            elif known and before == after:
                continue
            elif name == "status" and resolved:
                if have.get("status") not in (None, "resolved"):
                    # Live values laid over a journal that says resolved (--refresh).
                    yield _Reopened(cid, have["status"])
                    continue
                yield (
                    f"{where}incident {cid}: status: resolved incidents are terminal "
                    f"in Spike; it cannot become {after}"
                )
                continue
            yield Change(cid, name, before, after, known, by_rule.get(name))


def with_resolved(journal: IncidentMap, kept: Mapping[str, Fields] | None) -> IncidentMap:
    """`kept` with a resolved status for every incident `journal` records as resolved.

    For planning against live values laid over the journal: resolved is terminal, so a live
    status that says otherwise (Spike's own data, a reused id) never lets a file reopen what
    this tool recorded as resolved.
    """
    facts = {cid: dict(fields) for cid, fields in (kept or {}).items()}
    for cid, fields in journal.items():
        if fields.get("status") == "resolved":
            facts[cid] = {**facts.get(cid, {}), "status": "resolved"}
    return facts


def uncertain_warning(cid: str, reason: str) -> str:
    """The plan's note about an incident whose last escalation has an unknown outcome."""
    return (
        f"incident {cid}: escalations: the outcome of an escalate call is unknown ({reason}); "
        "no escalation is planned for it until you record the count shown in Spike's "
        f"activity log: reconcile refresh --id {cid} --escalations N"
    )


class ChangeView(Sequence[Change]):
    """A plan's changes, derived again from its inputs on each pass instead of held.

    A plan of 100k incidents has half a million changes; as objects they would outweigh
    the state files they came from. Iterating re-runs the (pure, deterministic) diff.
    """

    def __init__(
        self,
        desired: IncidentMap,
        journal: IncidentMap,
        scope: Sequence[str],
        count: int,
        incidents: int,
        kept: Mapping[str, Fields] | None = None,
        uncertain: Mapping[str, str] | None = None,
        rules: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._inputs = (desired, journal, scope)
        self._facts = (kept, uncertain, rules)
        self._count = count
        #: How many distinct incidents change.
        self.incidents = incidents

    def __iter__(self) -> Iterator[Change]:
        desired, journal, scope = self._inputs
        for item in _diff(desired, journal, scope, {}, *self._facts):
            if isinstance(item, Change):
                yield item

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Change: ...

    @overload
    def __getitem__(self, index: slice) -> list[Change]: ...

    def __getitem__(self, index: int | slice) -> Change | list[Change]:
        return list(self)[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ChangeView({list(self)!r})"


@dataclass(frozen=True)
class Wanted:
    """What the state files ask, the rules' expansion included: the planner's first input."""

    #: Counter id -> the desired fields.
    incidents: IncidentMap
    #: Counter id -> the state file naming it (or whose rule expanded to it).
    sources: Mapping[str, str] = field(default_factory=dict)
    inputs_digest: str = ""
    #: The rule behind each rule-expanded field: counter id -> field -> rule name.
    rules: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: Journaled incidents a rule put there, when the rules were not evaluated.
    keep: Collection[str] = ()
    #: Notes the plan carries (what the rules said).
    warnings: Sequence[str] = ()


@dataclass(frozen=True)
class Journaled:
    """What the journal says (journal.records.Recorded): the planner's second input."""

    #: Counter id -> the last-applied fields.
    incidents: IncidentMap
    lineage: str | None = None
    serial: int = 0
    #: Facts that survive forgetting ({"status": "resolved"}, {"escalations": N}).
    kept: IncidentMap = field(default_factory=dict)
    #: Incidents whose last escalation has an unknown outcome -> what happened.
    uncertain: Mapping[str, str] = field(default_factory=dict)
    #: The rule that put each journaled incident there.
    owners: Mapping[str, str] = field(default_factory=dict)
    #: The journaled incidents the unsafe rule counts (default: those of `incidents`).
    recorded: Collection[str] | None = None

    @classmethod
    def of(cls, state: Any) -> Journaled:
        """From a journal's Recorded state."""
        return cls(
            state.incidents, state.lineage, state.serial, state.kept, state.uncertain, state.rules
        )


@dataclass(frozen=True)
class Options:
    """How to plan: the planner's last input."""

    batch_size: int = DEFAULT_BATCH_SIZE
    #: Plan only these incidents (None: all).
    targets: Sequence[str] | None = None
    unsafe: Unsafe = DEFAULT_UNSAFE
    #: Field -> revert | warn | accept, followed with live values (revert when absent).
    drift_policy: Mapping[str, str] | None = None


DEFAULT_OPTIONS = Options()


def plan(
    wanted: Wanted | IncidentMap,
    journal: Journaled | IncidentMap,
    live: Mapping[str, Fields] | None = None,
    options: Options = DEFAULT_OPTIONS,
) -> Plan:
    """The minimal plan that takes `journal` (last-applied) to `wanted`; a bare mapping
    stands for a Wanted or Journaled of those incidents alone.

    `wanted.rules` names the rule behind each rule-expanded field (counter id -> field -> rule);
    each such change carries it. `keep` lists journaled incidents a rule put in the journal,
    when the rules were not evaluated (docs/rules.md): never forgotten although no entry
    names them, and none of their fields unmanaged although no entry holds it.

    With `live` (values read from Spike by --refresh), the plan diffs against live values
    instead, lists where they differ from the journal as drift, and carries them for apply to
    record; except, per `drift_policy` (field -> revert | warn | accept, revert when absent),
    a field whose policy is not revert and whose live value differs from the desired one:
    that one is only listed as drift, planned as without --refresh and not recorded.
    `kept` and `uncertain` come from the journal (Recorded): facts that survive forgetting,
    and incidents whose last escalation has an unknown outcome (no escalation is planned for
    them; the plan warns). Raises PlanError listing every incident that cannot
    be planned: a resolved incident (journaled or kept) moved out of resolved, an escalation
    count that shrinks, or grows on a resolved incident.

    `owners` names the rule that put each journaled incident there (Recorded.rules): a
    forgotten one the journal records as resolved left its rule's matches (it is no longer
    open), and is listed in `left_rule`.

    The unsafe rule (docs/plan-format.md, Unsafe plans): the numerator is the incidents
    whose recorded values the plan changes or forgets, the denominator the journaled
    incidents plus the incidents a rule changes. The journaled ones are those of `recorded`
    (default: those of `journal`, before any live value is laid over it): a new incident of
    the files, whatever its live values, is neither a recorded value changed nor one more
    journaled incident. A rule's change counts whatever its before (an open list that does
    not carry a field does not make the change a first-time setting); a rule match that
    changes nothing counts in neither; a forget in `left_rule` counts in neither numerator
    nor, beyond being journaled, denominator.
    """
    asks = wanted if isinstance(wanted, Wanted) else Wanted(wanted)
    said = journal if isinstance(journal, Journaled) else Journaled(journal)
    desired, sources, inputs_digest = asks.incidents, asks.sources, asks.inputs_digest
    rules, keep, warnings = asks.rules, asks.keep, asks.warnings
    lineage, serial, kept, uncertain = said.lineage, said.serial, said.kept, said.uncertain
    owners, recorded = said.owners, said.recorded
    batch_size, targets, unsafe = options.batch_size, options.targets, options.unsafe
    if batch_size < 1:
        raise PlanError(["--batch-size must be at least 1"])
    drift: list[Drift] = []
    refresh: dict[str, Fields] = {}
    # A snapshot of the mapping (incidents' fields are never changed in place): the plan's
    # ChangeView reads it later, while apply may be recording into the journal's own.
    journal = dict(said.incidents)
    journaled = set(journal if recorded is None else recorded)
    last_applied = journal
    if live:
        kept = with_resolved(journal, kept)
        journal, drift, refresh = overlay_live(journal, live, desired, options.drift_policy)
    sources = sources or {}
    notes = list(warnings)
    if targets is not None:
        targeted = set(targets)
        scope = sorted(cid for cid in targeted if cid in desired)
        forget = sorted(
            cid for cid in targeted if cid in journal and cid not in desired and cid not in keep
        )
        notes.extend(
            f"target {cid} is in no state file and not in the journal"
            for cid in sorted(targeted)
            if cid not in desired and cid not in journal
        )
    else:
        scope = sorted(desired)
        forget = sorted(cid for cid in journal if cid not in desired and cid not in keep)

    errors: list[str] = []
    unmanaged: list[tuple[str, str]] = []
    acknowledge: list[str] = []
    unacknowledge: list[str] = []
    resolve: list[str] = []
    priority: dict[Value, list[str]] = {}
    severity: dict[Value, list[str]] = {}
    sharing: list[Operation] = []
    escalate: dict[str, int] = {}
    # Counted, not collected: the diff yields one incident's changes together.
    count = changed = changes_recorded = by_rule_only = 0
    last: str | None = None
    last_recorded: str | None = None
    last_by_rule: str | None = None

    kept = dict(kept or {})
    uncertain = dict(uncertain or {})
    notes.extend(uncertain_warning(cid, uncertain[cid]) for cid in sorted(uncertain))
    attribution = {cid: dict(by_field) for cid, by_field in (rules or {}).items() if cid in desired}
    reopened: list[tuple[str, Value]] = []
    for item in _diff(desired, journal, scope, sources, kept, uncertain, attribution):
        if isinstance(item, str):
            errors.append(item)
            continue
        if isinstance(item, _Reopened):
            reopened.append((item.incident, item.live))
            continue
        if isinstance(item, tuple):
            if item[0] not in keep:
                unmanaged.append(item)
            continue
        cid, name, after = item.incident, item.field, item.after
        count += 1
        if cid != last:
            changed, last = changed + 1, cid
        if (item.rule is not None or (item.before_known and cid in journaled)) and (
            cid != last_recorded
        ):
            changes_recorded, last_recorded = changes_recorded + 1, cid
        if item.rule is not None and cid not in journaled and cid != last_by_rule:
            by_rule_only, last_by_rule = by_rule_only + 1, cid
        if name == "escalations":
            done = item.before if isinstance(item.before, int) else 0
            assert isinstance(after, int)
            escalate[cid] = after - done
        elif name == "status":
            {"acknowledged": acknowledge, "triggered": unacknowledge}.get(
                str(after), resolve
            ).append(cid)
        elif name == "priority":
            priority.setdefault(after, []).append(cid)
        elif name == "severity":
            severity.setdefault(after, []).append(cid)
        else:
            sharing.append(Operation("PATCH", ep.public_sharing_path(cid), _SHARING[after]))
    if reopened:
        errors.insert(0, reopened_error(reopened))
    if errors:
        raise PlanError(errors)

    size = batch_size
    operations = [
        *_batched("POST", ep.ACKNOWLEDGE, acknowledge, size),
        *_batched("POST", ep.UNACKNOWLEDGE, unacknowledge, size),
    ]
    for value_key, groups, set_path, remove_path, values in (
        ("priority", priority, ep.PRIORITY, ep.PRIORITY_REMOVE, PRIORITIES),
        ("severity", severity, ep.SEVERITY, ep.SEVERITY_REMOVE, SEVERITIES),
    ):
        for value in values:
            if value in groups:
                operations += _batched("POST", set_path, groups[value], size, **{value_key: value})
        if None in groups:
            operations += _batched("DELETE", remove_path, groups[None], size)
    operations += sharing
    operations += pack_escalations(escalate, size)
    operations += _batched("POST", ep.RESOLVE, resolve, size)

    result = Plan(
        lineage=lineage,
        serial=serial,
        inputs_digest=inputs_digest,
        incidents=len(scope),
        changes=ChangeView(desired, journal, scope, count, changed, kept, uncertain, attribution),
        forget=forget,
        unmanaged=unmanaged,
        operations=operations,
        warnings=notes,
        drift=drift,
        live_values=refresh,
        rules=attribution,
        left_rule=_left_rule(forget, last_applied, kept, owners or {}),
    )
    # Forgetting a journaled incident drops its recorded values: it counts as a change
    # (an emptied state file, or a plan of a subset of the files, must not pass quietly);
    # except an incident a rule resolved, which left the open lists and so its matches.
    changes_recorded += len(forget) - len(result.left_rule)
    counted = len(journaled) + by_rule_only
    result.unsafe = unsafe.exceeded(changes_recorded, counted)
    if result.unsafe:
        # Say which incidents were counted: with none but the journaled, exactly those.
        which = (
            "journaled incidents"
            if by_rule_only == 0
            else "incidents: journaled, or changed by a rule"
        )
        result.warnings.append(
            f"unsafe plan: it changes or forgets recorded values on {changes_recorded} of "
            f"{counted} {which} (more than {unsafe.max_share:.0%}); "
            "apply refuses it without --force"
        )
    return result


def _left_rule(
    forget: Iterable[str],
    journal: IncidentMap,
    kept: Mapping[str, Fields],
    owners: Mapping[str, str],
) -> dict[str, str]:
    """The forgotten incidents a rule put in the journal and the journal records as
    resolved, with the rule: resolved, they are no longer open, so no rule matches them."""
    return {
        cid: owners[cid]
        for cid in forget
        if cid in owners
        and (
            journal.get(cid, {}).get("status") == "resolved"
            or kept.get(cid, {}).get("status") == "resolved"
        )
    }


def overlay_live(
    journal: IncidentMap,
    live: Mapping[str, Fields],
    desired: Mapping[str, Fields] | None = None,
    drift_policy: Mapping[str, str] | None = None,
) -> tuple[IncidentMap, list[Drift], dict[str, Fields]]:
    """The journal with live values laid over it: (merged state, drift, values to record).

    Only fields the journal already holds or `desired` manages are taken from `live`, so a
    refresh never starts tracking a field nobody asked for. With `desired` None, every live
    field of an incident the journal does not know yet is taken (adopting it).

    A field whose `drift_policy` is warn or accept (docs/drift.md, Policies) and whose live
    value differs from the desired one is held: listed as drift (when the journal has a value
    for it) with its policy, but neither laid over nor recorded, so the journal keeps its
    value and nothing reverts it.
    """
    merged = dict(journal)
    drift: list[Drift] = []
    record: dict[str, Fields] = {}
    for cid in sorted(live):
        have = journal.get(cid, {})
        managed = desired.get(cid, {}) if desired is not None else (have or live[cid])
        changed: Fields = {}
        for name, value in live[cid].items():
            if name not in have and name not in managed:
                continue
            policy = drift_policy.get(name, "revert") if drift_policy else "revert"
            if name in have:
                if have[name] == value:
                    continue
                drift.append(Drift(cid, name, have[name], value, policy))
            if policy != "revert" and name in managed and managed[name] != value:
                continue  # held: the journal keeps its value, the plan reverts nothing
            changed[name] = value
        if changed:
            merged[cid] = {**have, **changed}
            record[cid] = changed
    return merged, drift, record
