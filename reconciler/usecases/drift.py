"""The drift report: read the managed incidents' live values and say which fields differ from
the state files, changing nothing (no journal write, no call but GET /incidents/{counterId}).

Each entry carries its field's drift policy (the request's, from reconcile.yaml); there are no
teams yet, so an entry's team is None. docs/drift.md describes the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from ..config import ALL_REVERT, Policy
from ..journal import open_journal
from ..journal.records import now
from ..model import FIELDS, LIVE_FIELDS, Fields, IncidentMap, Value
from ..spike import DEFAULT_PARALLELISM
from ..states import DEFAULT_PATHS
from .plan import read_live, spike_config
from .rules import evaluate_rules

if TYPE_CHECKING:
    from ..config import TeamConfig

#: outside: the journal holds the desired value, so something outside reconcile changed the
#: field; pending: the journal differs too (the change is not applied yet); missing: the
#: incident answers 404 (deleted, or in another team).
DriftKind = Literal["outside", "pending", "missing"]
#: The policy of a field the request's mapping does not name, and of a missing incident.
DEFAULT_POLICY = "revert"


@dataclass(frozen=True)
class DriftRequest:
    """What `reconcile drift` checks: the state files, the journal, how many reads at once."""

    paths: Sequence[str] = ()
    journal_location: str | None = None
    parallelism: int = DEFAULT_PARALLELISM
    #: Each field's drift policy, reported with its entries (docs/drift.md, Policies).
    drift_policy: Mapping[str, Policy] = field(default_factory=lambda: ALL_REVERT)
    #: The team of reconcile.yaml checked (its id, key and name); None: SPIKE_TEAM_ID.
    team: TeamConfig | None = None
    #: Told of each request and its answer (`-v`).
    observe: Callable[[str], None] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class DriftEntry:
    """One drifted field of one incident, or (field None) one missing incident."""

    incident: str
    field: str | None
    desired: Value
    #: None also when the journal has no value for the field.
    journaled: Value
    live: Value
    kind: DriftKind
    #: False when the journal holds no value for the field (never applied nor read).
    journaled_known: bool = True
    policy: str = DEFAULT_POLICY
    team: str | None = None


@dataclass(frozen=True)
class LastApply:
    """A team's last apply, from its journal's last apply-start record and its `audit`
    (docs/approvals.md, The audit trail): each field None when the audit does not say."""

    team: str | None
    at: str
    commit: str | None = None
    repository: str | None = None
    pull_request: int | None = None
    run_url: str | None = None

    @classmethod
    def of(cls, team: str | None, record: Mapping[str, Any]) -> LastApply:
        audit = record.get("audit")
        said: Mapping[str, Any] = audit if isinstance(audit, dict) else {}

        def text(name: str) -> str | None:
            value = said.get(name)
            return value if isinstance(value, str) else None

        number = said.get("pull_request")
        return cls(
            team,
            str(record["at"]),
            text("commit"),
            text("repository"),
            number if type(number) is int else None,
            text("run_url"),
        )


@dataclass(frozen=True)
class DriftReport:
    checked_at: str
    #: Sorted by incident, then in the order of model.FIELDS.
    entries: list[DriftEntry]
    #: How many managed incidents were checked.
    incidents: int
    #: Per team checked whose journal records an apply, its last one (by team name).
    last_apply: list[LastApply] = field(default_factory=list)

    @property
    def drifted_incidents(self) -> int:
        """Ids are per team: `shared-9` of two teams is two incidents."""
        return len({(entry.team, entry.incident) for entry in self.entries})

    @property
    def fields(self) -> int:
        """Drifted fields; a missing incident is not counted here (it has no field)."""
        return sum(entry.field is not None for entry in self.entries)

    @property
    def missing(self) -> int:
        return sum(entry.kind == "missing" for entry in self.entries)

    @property
    def has_drift(self) -> bool:
        return bool(self.entries)


def _team_drift(request: DriftRequest) -> DriftReport:
    """Read every incident of one team's state files from Spike and report its drifted fields.

    The state files and the journal are read first, so bad input fails before any call.
    A read that fails other than with 404 fails the whole report (ReconcileError naming the
    incident): a partial report would say "no drift" about what it could not see.
    """
    from ..states.loader import load

    loaded = load(request.paths or DEFAULT_PATHS)
    explicit = desired = loaded.incidents
    state = open_journal(request.journal_location).read()
    journal = state.incidents
    team_name = request.team.name if request.team is not None else None
    last = [] if state.last_apply is None else [LastApply.of(team_name, state.last_apply)]
    checked_at = now()
    listed: dict[str, Fields] = {}
    unlisted: set[str] = set()
    if loaded.rules:
        # Rule-expanded incidents are checked with the values their listing gave; those
        # whose listing left out a field the rule sets are read like the others.
        evaluation = evaluate_rules(
            loaded.rules, explicit, request.parallelism, config=spike_config(request.team)
        )
        desired, listed = evaluation.desired(explicit), evaluation.live(explicit)
        unlisted = {
            cid
            for cid, fields in listed.items()
            if not set(evaluation.expansion.incidents[cid]) & set(LIVE_FIELDS) <= set(fields)
        }
    missing: list[str] = []
    read = read_live(
        {*explicit, *unlisted},
        request.parallelism,
        missing,
        team=request.team,
        observe=request.observe,
    )
    live = {**listed, **read}
    entries = find_drift(desired, journal, live, missing, request.drift_policy)
    if request.team is not None:
        entries = [replace(entry, team=request.team.name) for entry in entries]
    return DriftReport(checked_at, entries, len(desired), last)


def run_drift(requests: Sequence[DriftRequest]) -> DriftReport:
    """One report for the project's teams (one request per team): each team's files are
    loaded before any team is read, entries sorted by team, then incident."""
    from .plan import load_teams

    if len(requests) > 1:
        load_teams([request.paths for request in requests])
    reports = [_team_drift(request) for request in requests]
    if len(reports) == 1:
        return reports[0]
    entries = [entry for report in reports for entry in report.entries]
    return DriftReport(
        min((report.checked_at for report in reports), default=now()),
        entries,
        sum(report.incidents for report in reports),
        [last for report in reports for last in report.last_apply],
    )


def find_drift(
    desired: IncidentMap,
    journal: IncidentMap,
    live: IncidentMap,
    missing: Sequence[str] = (),
    drift_policy: Mapping[str, Policy] = ALL_REVERT,
) -> list[DriftEntry]:
    """The drifted fields: those the state files manage whose live value differs from the
    desired one (only the fields a live read reports can drift), each with its policy, plus
    one entry per missing incident. Pure: no I/O."""
    entries = [DriftEntry(cid, None, None, None, None, "missing", False) for cid in missing]
    for cid in sorted(live):
        want, have, seen = desired.get(cid, {}), journal.get(cid, {}), live[cid]
        for name in LIVE_FIELDS:
            if name not in want or name not in seen or seen[name] == want[name]:
                continue
            outside = name in have and have[name] == want[name]
            entries.append(
                DriftEntry(
                    cid,
                    name,
                    want[name],
                    have.get(name),
                    seen[name],
                    "outside" if outside else "pending",
                    journaled_known=name in have,
                    policy=drift_policy.get(name, DEFAULT_POLICY),
                )
            )
    return sorted(entries, key=_order)


_FIELD_ORDER: dict[str, int] = {name: n for n, name in enumerate(FIELDS)}


def _order(entry: DriftEntry) -> tuple[str, int]:
    return entry.incident, -1 if entry.field is None else _FIELD_ORDER[entry.field]
