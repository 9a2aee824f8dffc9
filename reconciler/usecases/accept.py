"""Accept: live wins. Write the live values of drifted fields into the state files (comments
kept, canonical form as `fmt`) and into the journal, so the drift report then has nothing to
say about them (docs/drift.md, Accepting live values).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ALL_REVERT, Policy, TeamConfig
from ..errors import LiveStateError, ReconcileError, printable
from ..journal import DEFAULT_LOCK_TIMEOUT, open_journal
from ..journal.records import Recorded
from ..model import LIVE_FIELDS, Fields, is_counter_id
from ..spike import DEFAULT_PARALLELISM
from ..states import DEFAULT_PATHS
from .drift import DriftEntry, find_drift
from .files import write_state_file
from .plan import read_live

if TYPE_CHECKING:
    from ..states.loader import DesiredState

#: The journal record's source (docs/journal.md): values read from Spike by `accept`.
SOURCE = "accept"


@dataclass(frozen=True)
class AcceptRequest:
    """What `reconcile accept` takes: every drifted field whose policy is accept, or with
    `ids`/`fields` the drifted fields of those incidents / of those names, whatever their
    policy."""

    paths: Sequence[str] = ()
    journal_location: str | None = None
    ids: Sequence[str] = ()
    fields: Sequence[str] = ()
    parallelism: int = DEFAULT_PARALLELISM
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    drift_policy: Mapping[str, Policy] = field(default_factory=lambda: ALL_REVERT)
    #: The team of reconcile.yaml whose files are rewritten (its id and key); None:
    #: SPIKE_TEAM_ID.
    team: TeamConfig | None = None


@dataclass
class AcceptOutcome:
    #: The state files rewritten (sorted), each with the fields accepted into it: their live
    #: value is now in the file and the journal.
    files: dict[str, list[DriftEntry]]
    lineage: str | None
    serial: int
    #: Drifted fields left alone, and why (a resolved incident is never reopened).
    warnings: list[str] = field(default_factory=list)


def run_accept(requests: Sequence[AcceptRequest]) -> list[AcceptOutcome]:
    """Rewrite the state files of the project's teams (one request per team) with live
    values, and record them in their journals.

    Without `ids` and `fields`, takes the `outside` drift of fields whose policy is accept
    (a `pending` field is a change of the files not applied yet: the files win). With them,
    takes every drifted field selected (both filters when both are given), outside or
    pending, whatever its policy.

    Everything is read first, all or nothing as far as reading goes (every team's state
    files, journal and Spike's values; each --id found in some team, the team whose files
    hold it): any failed read, a 404 included, raises with nothing written. Each team's
    files (each atomically) and then its journal are written under the journal's apply
    lock, decided again there if another writer moved the journal or the files meanwhile.
    """
    named = requests[0].team is not None
    prepared = [_prepare(request, anywhere=named) for request in requests]
    ids = {cid for request in requests for cid in request.ids}
    found = {cid for job in prepared for cid in job.desired.incidents}
    unknown = sorted(ids - found)
    if unknown:
        raise ReconcileError(
            f"--id {', '.join(unknown)}: in no state file of any team; `reconcile import` "
            "adds an incident"
        )
    outcomes: list[AcceptOutcome] = []
    for n, job in enumerate(prepared):
        try:
            outcomes.append(_write(job))
        except ReconcileError as exc:
            done = [path for outcome in outcomes for path in outcome.files]
            if not done:
                raise
            raise ReconcileError(
                f"{exc}\nalready accepted, in files and journal, before this error: "
                + ", ".join(map(printable, done))
                + f"; the teams after it ({len(prepared) - n - 1}) were not accepted"
            ) from None
    return outcomes


@dataclass
class _Prepared:
    """One journal's accept, read and decided, nothing written yet."""

    request: AcceptRequest
    paths: Sequence[str]
    desired: DesiredState
    state: Recorded
    chosen: list[DriftEntry]
    warnings: list[str]


def _prepare(request: AcceptRequest, *, anywhere: bool = False) -> _Prepared:
    """Read the files, the journal and the live values, and choose the fields; with
    `anywhere`, ids this team's files lack are another team's, not an error."""
    from dataclasses import replace

    from ..states.loader import load

    _check(request)
    paths = request.paths or DEFAULT_PATHS
    desired = load(paths)
    unknown = [cid for cid in request.ids if cid not in desired.incidents]
    if unknown and not anywhere:
        raise ReconcileError(
            f"--id {', '.join(unknown)}: in no state file; `reconcile import` adds an incident"
        )
    journal = open_journal(request.journal_location)
    state = journal.read()
    if anywhere and request.ids:
        mine = [cid for cid in request.ids if cid in desired.incidents]
        if not mine:  # --id names only other teams' incidents: nothing to read here
            return _Prepared(request, paths, desired, state, [], [])
        request = replace(request, ids=mine)
    live = _read(request, desired)
    chosen, warnings = _choose(request, desired, state, live)
    return _Prepared(request, paths, desired, state, chosen, warnings)


def _write(job: _Prepared) -> AcceptOutcome:
    """Write the chosen values into the files, then the journal, under its lock."""
    from ..states.loader import reload

    request, desired, state = job.request, job.desired, job.state
    chosen, warnings = job.chosen, job.warnings
    if not chosen:
        return AcceptOutcome({}, state.lineage, state.serial, warnings)
    journal = open_journal(request.journal_location)
    with journal.open_for_apply(request.lock_timeout, "reconcile accept") as writer:
        again = reload(desired, job.paths)
        if writer.state.serial != state.serial or again is not desired:
            live = _read(request, again)
            chosen, warnings = _choose(request, again, writer.state, live)
        by_file: dict[str, list[DriftEntry]] = {}
        for entry in chosen:
            by_file.setdefault(again.sources[entry.incident], []).append(entry)
        texts = _accepted_texts(again, by_file)
        # Files first, as import does: a file without its journal record only plans an
        # idempotent call of the live value; a record without its file would revert it.
        written: list[str] = []
        for path, text in texts.items():
            try:
                write_state_file(Path(path), text)
            except ReconcileError as exc:
                if not written:
                    raise
                raise ReconcileError(
                    f"{exc}\nalready rewritten before this error (not yet in the journal: the "
                    "next plan sets these live values again, harmlessly): "
                    + ", ".join(map(printable, written))
                ) from None
            written.append(path)
        record: dict[str, Fields] = {}
        for entry in chosen:
            assert entry.field is not None
            record.setdefault(entry.incident, {})[entry.field] = entry.live
        writer.set_values(record, SOURCE)
        files = {path: by_file[path] for path in sorted(by_file)}
        return AcceptOutcome(files, writer.state.lineage, writer.state.serial, warnings)


def _check(request: AcceptRequest) -> None:
    bad = [cid for cid in request.ids if not is_counter_id(cid)]
    if bad:
        raise ReconcileError(f"--id: invalid incident id {bad[0]!r}")
    for name in request.fields:
        if name not in LIVE_FIELDS:
            raise ReconcileError(
                f"--field {name}: only {', '.join(LIVE_FIELDS)} can drift (Spike's incident "
                "read reports no other field)"
            )


def _read(request: AcceptRequest, desired: DesiredState) -> dict[str, Fields]:
    """The live values of the incidents in scope; any failure (404 included) raises."""
    scope = request.ids or list(desired.incidents)
    try:
        return read_live(scope, request.parallelism, team=request.team)
    except LiveStateError as exc:
        raise LiveStateError(
            f"{exc}\nnothing accepted, nothing written: every incident must be read (one that "
            "is not found must leave the state files first)"
        ) from None


def _choose(
    request: AcceptRequest, desired: DesiredState, state: Recorded, live: dict[str, Fields]
) -> tuple[list[DriftEntry], list[str]]:
    """The drifted fields to accept, and a warning for each one left out as unsafe."""
    entries = find_drift(desired.incidents, state.incidents, live, (), request.drift_policy)
    explicit = bool(request.ids or request.fields)
    chosen: list[DriftEntry] = []
    warnings: list[str] = []
    for entry in entries:
        if explicit:
            if request.ids and entry.incident not in request.ids:
                continue
            if request.fields and entry.field not in request.fields:
                continue
        elif entry.policy != "accept" or entry.kind != "outside":
            continue
        if entry.field == "status" and entry.live != "resolved" and _resolved(state, entry):
            warnings.append(
                f"incident {entry.incident}: status: not accepted: this tool recorded it as "
                f"resolved, which is terminal, and Spike now says {entry.live} (if Spike's data "
                f"was reset: reconcile refresh --id {entry.incident} --reopened)"
            )
            continue
        chosen.append(entry)
    return chosen, warnings


def _resolved(state: Recorded, entry: DriftEntry) -> bool:
    cid = entry.incident
    return "resolved" in (
        state.incidents.get(cid, {}).get("status"),
        state.kept.get(cid, {}).get("status"),
    )


def _accepted_texts(
    desired: DesiredState, by_file: Mapping[str, Sequence[DriftEntry]]
) -> dict[str, str]:
    """The new text of each state file holding an accepted field: the file as it is, comments
    and rules and all, with the live values put in, in canonical form."""
    from ..states.document import parse, rewrite

    texts: dict[str, str] = {}
    for path, entries in by_file.items():
        mine = {cid: f for cid, f in desired.incidents.items() if desired.sources[cid] == path}
        try:
            text = Path(path).read_bytes().decode("utf-8-sig")
        except OSError as exc:
            raise ReconcileError(f"{printable(path)}: cannot read: {exc.strerror}") from None
        doc = parse(text, mine, path)
        for entry in entries:
            assert entry.field is not None
            doc.put(entry.incident, {entry.field: entry.live})
        texts[path] = rewrite(path, doc, text)
    return texts
