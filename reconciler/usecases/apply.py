"""Apply: plan (or read a saved plan and verify it), take the journal's lock, run the calls,
journal each one; the first signal stops starting calls.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..approvals import Needed
from ..config import ALL_REVERT, Policy
from ..errors import (
    InvalidPlanError,
    ReconcileError,
    StalePlanError,
    UnsafePlanError,
    printable,
)
from ..journal import DEFAULT_LOCK_TIMEOUT, open_journal
from ..journal.base import JournalWriter
from ..journal.records import Recorded, now
from ..model import Fields, Operation, Unsafe
from ..planner import DEFAULT_BATCH_SIZE, DEFAULT_UNSAFE
from ..redact import redact
from ..spike import DEFAULT_PARALLELISM
from ..states import DEFAULT_PATHS

if TYPE_CHECKING:
    from ..applier import ApplyResult
    from ..approvals import ApprovalRule
    from ..config import TeamConfig
    from ..planfile import SavedPlan, SavedTeamsPlan
    from ..spike.client import RetryPolicy, SpikeConfig
    from ..states.loader import DesiredState
    from .approvals import ApprovalGate
from ..planfile import check_made_for, check_signature, plan_content, read_saved_plan
from .plan import (
    MadePlan,
    TeamPlan,
    TeamsPlan,
    check_targets,
    journal_shown,
    make_plan,
    read_live,
    spike_config,
)
from .rules import owners_of_changes, rules_of_changes


@dataclass
class ApplyRequest:
    plan_file: str | None = None
    paths: Sequence[str] = ()
    journal_location: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    parallelism: int = DEFAULT_PARALLELISM
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    force: bool = False
    targets: Sequence[str] = ()
    #: Self-heal (apply --refresh): plan against live values, reverting only the fields whose
    #: `drift_policy` is revert (docs/drift.md); the live values read are recorded.
    refresh: bool = False
    drift_policy: Mapping[str, Policy] = field(default_factory=lambda: ALL_REVERT)
    #: The team of reconcile.yaml applied (its id and key); None: SPIKE_TEAM_ID.
    team: TeamConfig | None = None
    unsafe: Unsafe = DEFAULT_UNSAFE
    #: Apply only the incidents of these state files (docs/teams.md: PATH arguments).
    only: Sequence[str] = ()
    #: reconcile.yaml's approval rules (docs/approvals.md).
    approvals: Sequence[ApprovalRule] = ()
    #: Checks the plan's approvals before any call and says who and why for the journal;
    #: None: no check, no audit record.
    gate: ApprovalGate | None = None


@dataclass
class ApplyOutcome:
    """What happened: the result (None when there was nothing to do), the journal after."""

    result: ApplyResult | None
    lineage: str | None
    serial: int
    signal: int | None = None
    made: MadePlan | None = None
    #: The journal's own warnings (a torn last line ignored).
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Prepared:
    """One journal's apply, decided under its lock: the calls and journal-only changes."""

    writer: JournalWriter
    operations: Sequence[Operation] = ()
    forget: Sequence[str] = ()
    unmanaged: Sequence[tuple[str, str]] = ()
    live: dict[str, Fields] = field(default_factory=dict)
    digest: str = ""
    unsafe: bool = False
    made: MadePlan | None = None
    notes: list[str] = field(default_factory=list)
    #: The approvals its changes need (docs/approvals.md).
    needs: Sequence[Needed] = ()

    @property
    def idle(self) -> bool:
        return not (self.operations or self.forget or self.unmanaged or self.live)


def run_apply(
    request: ApplyRequest,
    *,
    confirm: Callable[[MadePlan], bool],
    observe: Callable[[str], None] | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
    retry: RetryPolicy | None = None,
) -> ApplyOutcome:
    """Plan (or read a saved plan), take the lock, apply, journal.

    `confirm` is shown the plan made from paths and says whether to go on. Raises
    StalePlanError, UnsafePlanError, InvalidPlanError before any call is made. A saved plan
    is checked against its signature, the journal and (for the live values it carries)
    Spike, as docs/trust.md describes.
    """
    from ..states.loader import load

    # Every input is checked before the journal is touched (not even created); what the
    # lock protects (the journal, the state files that import writes under it) is read
    # again once it is held.
    notes: list[str] = []
    saved = read_saved_plan(request.plan_file) if request.plan_file else None
    if saved is not None and (note := check_signature(saved)):
        notes.append(note)
    read_before = None if saved is not None else load(request.paths or DEFAULT_PATHS)
    check_targets(request.targets)
    journal = open_journal(request.journal_location)
    if saved is not None:
        check_made_for(saved, _team_id(request), journal.location)
    shown = request.plan_file or " ".join(map(str, request.paths or DEFAULT_PATHS))
    purpose = f"reconcile apply {printable(shown)}"
    with journal.open_for_apply(request.lock_timeout, purpose) as writer:
        prepared = _prepare(request, writer, saved, read_before, notes)
        if prepared.idle:
            return ApplyOutcome(
                None,
                writer.state.lineage,
                writer.state.serial,
                made=prepared.made,
                warnings=prepared.notes,
            )
        if prepared.unsafe and not request.force:
            raise UnsafePlanError(_unsafe_message(request.unsafe))
        if request.gate is not None:
            writer.audit = request.gate.check(prepared.needs)
        if saved is not None:
            _check_live_again(saved, prepared, request)
        config = spike_config(request.team) if prepared.operations else None
        if prepared.made is not None and not confirm(prepared.made):
            raise ReconcileError("apply cancelled; nothing was changed")
        results, signal = asyncio.run(
            _apply_all(
                [(config, prepared)],
                parallelism=request.parallelism,
                observe=observe,
                progress=progress(len(prepared.operations))
                if progress and prepared.operations
                else None,
                retry=retry,
            )
        )
        result = results[0]
        if isinstance(result, BaseException):
            raise result
        return ApplyOutcome(
            result, writer.state.lineage, writer.state.serial, signal, prepared.made, notes
        )


@dataclass
class TeamApplied:
    """One team's part of an apply of teams: its outcome, or the error that stopped it."""

    name: str
    outcome: ApplyOutcome | None = None
    #: The apply of this team died on this error (its journal says so); the others went on.
    error: str | None = None

    @property
    def failed(self) -> bool:
        if self.error is not None:
            return True
        result = self.outcome.result if self.outcome is not None else None
        return result is not None and result.outcome != "applied"


@dataclass
class TeamsApplyOutcome:
    """What happened in each team, in name order."""

    teams: list[TeamApplied]
    signal: int | None = None
    made: TeamsPlan | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(team.failed for team in self.teams)


def run_apply_teams(
    requests: Sequence[ApplyRequest],
    *,
    plan_file: str | None = None,
    confirm: Callable[[TeamsPlan], bool],
    observe: Callable[[str], None] | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
    retry: RetryPolicy | None = None,
) -> TeamsApplyOutcome:
    """Apply several teams of reconcile.yaml at once (docs/teams.md): every team's request
    names its team, and all share `requests[0]`'s parallelism, lock timeout and --force.

    Every input is checked first; then the teams' journal locks are taken in name order
    (so two applies of overlapping teams never wait on each other in a circle), each team
    is planned (or its section of the saved plan verified) under its lock, and the teams
    run concurrently under one shared limit of calls in flight. A team whose calls fail
    never stops another.
    """
    from ..planfile import SavedTeamsPlan, check_signature, read_plan_file
    from .plan import load_teams

    first = requests[0]
    notes: list[str] = []
    by_name = {request.team.name: request for request in requests if request.team is not None}
    assert len(by_name) == len(requests), "an apply of teams applies teams"
    sections: dict[str, SavedPlan] = {}
    if plan_file is not None:
        saved = read_plan_file(plan_file)
        if not isinstance(saved, SavedTeamsPlan):
            raise InvalidPlanError(
                f"{saved.path}: a plan of one team (format_version 1), but reconcile.yaml "
                "configures teams; plan again"
            )
        if note := check_signature(saved):
            notes.append(note)
        sections = _saved_sections(saved, by_name)
        jobs = [_TeamJob(by_name[name], sections[name]) for name in sorted(sections)]
    else:
        runs = [by_name[name] for name in sorted(by_name)]
        loaded = load_teams([request.paths for request in runs])
        jobs = [_TeamJob(r, None, d) for r, d in zip(runs, loaded, strict=True)]
    for job in jobs:
        check_targets(job.request.targets)
    purpose = f"reconcile apply {printable(plan_file or 'of teams ' + ', '.join(by_name))}"
    with ExitStack() as stack:
        # In name order: two applies of overlapping teams never wait on each other in a
        # circle; the one that comes second fails at the first lock it cannot take.
        for job in jobs:
            opened = job.journal.open_for_apply(first.lock_timeout, purpose)
            job.writer = stack.enter_context(opened)
        for job in jobs:
            assert job.writer is not None
            job.prepared = _prepare(job.request, job.writer, job.saved, job.read_before, [])
            notes.extend(f"team {job.name}: {note}" for note in job.prepared.notes)
        unsafe = [job.name for job in jobs if job.ready.unsafe and not job.ready.idle]
        if unsafe and not first.force:
            raise UnsafePlanError(
                f"the plan is marked unsafe for team {', '.join(unsafe)}: "
                + _unsafe_message(first.unsafe).removeprefix("the plan is marked unsafe ")
            )
        busy = [job for job in jobs if not job.ready.idle]
        if busy and first.gate is not None:
            from ..approvals import merge_needed

            record = first.gate.check(merge_needed(job.ready.needs for job in busy))
            for job in busy:
                job.ready.writer.audit = record
        for job in busy:
            if job.saved is not None:
                _check_live_again(job.saved, job.ready, job.request)
        configs = [spike_config(job.request.team) if job.ready.operations else None for job in busy]
        made = None
        if plan_file is None:
            made = TeamsPlan(now(), [job.team_plan() for job in jobs])
        if busy and made is not None and not confirm(made):
            raise ReconcileError("apply cancelled; nothing was changed")
        results: list[ApplyResult | BaseException] = []
        signal = None
        if busy:
            total = sum(len(job.ready.operations) for job in busy)
            results, signal = asyncio.run(
                _apply_all(
                    [(config, job.ready) for config, job in zip(configs, busy, strict=True)],
                    parallelism=first.parallelism,
                    observe=observe,
                    progress=progress(total) if progress and total else None,
                    retry=retry,
                )
            )
        outcomes = dict(zip([job.name for job in busy], results, strict=True))
        applied = [job.applied(outcomes, signal) for job in jobs]
        return TeamsApplyOutcome(applied, signal, made, notes)


@dataclass
class _TeamJob:
    """One team's part of an apply of teams, filled in step by step."""

    request: ApplyRequest
    saved: SavedPlan | None = None
    read_before: DesiredState | None = None
    writer: JournalWriter | None = None
    prepared: _Prepared | None = None

    def __post_init__(self) -> None:
        self.journal = open_journal(self.request.journal_location)

    @property
    def name(self) -> str:
        return _name(self.request)

    @property
    def ready(self) -> _Prepared:
        assert self.prepared is not None
        return self.prepared

    def team_plan(self) -> TeamPlan:
        team, made = self.request.team, self.ready.made
        assert team is not None and made is not None
        return TeamPlan(
            team.name, team.team_id, journal_shown(team, self.request.journal_location), made
        )

    def applied(
        self, results: Mapping[str, ApplyResult | BaseException], signal: int | None
    ) -> TeamApplied:
        assert self.writer is not None
        state = self.writer.state
        result = results.get(self.name)
        if isinstance(result, BaseException):
            message = str(result) if isinstance(result, ReconcileError) else repr(result)
            return TeamApplied(self.name, error=redact(message))
        outcome = ApplyOutcome(
            result, state.lineage, state.serial, signal if result else None, self.ready.made
        )
        return TeamApplied(self.name, outcome)


def _team_id(request: ApplyRequest) -> str | None:
    """The team id apply calls Spike as: the team's of reconcile.yaml, else SPIKE_TEAM_ID."""
    import os

    if request.team is not None:
        return request.team.team_id
    return os.environ.get("SPIKE_TEAM_ID") or None


def _name(request: ApplyRequest) -> str:
    assert request.team is not None
    return request.team.name


def _saved_sections(
    saved: SavedTeamsPlan, requests: Mapping[str, ApplyRequest]
) -> dict[str, SavedPlan]:
    """The saved plan's sections, each checked to be a configured team: the same team id and
    the same journal as reconcile.yaml says now (a file journal as it spells it, a database
    by what it is: journal.same_journal)."""
    import os

    from ..journal import is_database_url, same_journal

    sections: dict[str, SavedPlan] = {}
    for name, team in saved.teams.items():
        request = requests.get(name)
        if request is None or request.team is None:
            raise InvalidPlanError(
                f"{saved.path}: team {printable(name)} is not a team of reconcile.yaml "
                "(or not selected by --team)"
            )
        if team.team_id != request.team.team_id:
            raise InvalidPlanError(
                f"{saved.path}: team {name}: the plan was made for another team: team id "
                f"{printable(team.team_id)}, reconcile.yaml says {request.team.team_id}; "
                "plan again"
            )
        location = journal_shown(request.team, request.journal_location)
        if not (
            same_journal(team.journal, location)
            if is_database_url(location)
            else os.path.normpath(team.journal) == os.path.normpath(location)
        ):
            raise InvalidPlanError(
                f"{saved.path}: team {name}: the plan was made for another journal: "
                f"{printable(team.journal)}, reconcile.yaml now says {location}; plan again"
            )
        sections[name] = team.plan
    return sections


def _unsafe_message(unsafe: Unsafe) -> str:
    return (
        "the plan is marked unsafe (it changes or forgets recorded values on more than "
        f"{unsafe.max_share:.0%} of the incidents it counts: journaled, or changed by a rule); "
        "review it, then apply with --force"
    )


def _prepare(
    request: ApplyRequest,
    writer: JournalWriter,
    saved: SavedPlan | None,
    read_before: DesiredState | None,
    notes: list[str],
) -> _Prepared:
    """Decide, under the journal's lock, what applying means for one journal: the saved
    plan checked against the journal, or a fresh plan of the state files."""
    from ..planfile import check_journal, verify
    from ..states.loader import load, reload

    state = writer.state
    notes = [*notes, *state.warnings]
    if saved is not None:
        # A plan for another journal, or applied already, says so whatever it asks; then
        # the specific refusal: verify would only say the calls differ.
        check_journal(saved, state)
        _refuse_uncertain_escalations(saved.path, saved.operations, state)
        # The file's own flag is untrusted: verify works the unsafe rule out again, forgets
        # included, as a fresh plan does.
        unsafe = verify(saved, state, request.unsafe).unsafe or saved.unsafe
        writer.plan_id = saved.plan_id
        # The journal names the rule behind each rule-expanded incident it records.
        writer.rule_owners = owners_of_changes(rules_of_changes(saved.changes))
        return _Prepared(
            writer,
            saved.operations,
            saved.forget,
            saved.unmanaged,
            saved.refresh,
            saved.digest,
            unsafe,
            None,
            notes,
            saved.approvals,
        )
    # Read again under the lock (an import may have written meanwhile); parsed again only
    # if the files changed.
    paths = request.paths or DEFAULT_PATHS
    desired = load(paths) if read_before is None else reload(read_before, paths)
    made = make_plan(
        request.paths,
        request.journal_location,
        request.batch_size,
        request.targets,
        journal_state=state,
        refresh=request.refresh,
        parallelism=request.parallelism,
        desired=desired,
        team=request.team,
        unsafe=request.unsafe,
        drift_policy=request.drift_policy,
        only=request.only,
        evaluate_rules=True,  # apply reads Spike anyway (docs/rules.md)
        approvals=request.approvals,
    )
    fresh = made.plan
    writer.rule_owners = owners_of_changes(fresh.rules)
    writer.plan_id = made.bound.plan_id if made.bound is not None else None
    if not fresh.has_changes:
        # The plan is not shown, but its warnings (uncertain escalations) still are.
        return _Prepared(writer, made=made, notes=[*notes, *fresh.warnings])
    return _Prepared(
        writer,
        fresh.operations,
        fresh.forget,
        fresh.unmanaged,
        fresh.live_values,
        plan_content(fresh, request.batch_size)["plan_digest"],
        fresh.unsafe,
        made,
        notes,
        fresh.approvals,
    )


def _check_live_again(saved: SavedPlan, prepared: _Prepared, request: ApplyRequest) -> None:
    """Live values are recorded as facts: record only what Spike still says. (An incident
    the journal lacks and the plan does not change is one whose live values already match
    its file: recorded as `refresh --id` would.)"""
    from ..errors import LiveStateError
    from ..planfile import stale_live

    if not prepared.live:
        return
    try:
        now_live = read_live(prepared.live, request.parallelism, team=request.team)
    except LiveStateError as exc:
        raise StalePlanError(
            f"{saved.path} is stale: its live values cannot be read again: {exc}"
        ) from None
    stale_live(saved, now_live)


def _refuse_uncertain_escalations(
    path: str, operations: Sequence[Operation], state: Recorded
) -> None:
    """A saved plan never escalates an incident whose last escalation has an unknown outcome
    (a plan made now would not; the file is untrusted input)."""
    from ..endpoints import ESCALATE

    uncertain = sorted(
        {cid for op in operations if op.path == ESCALATE for cid in op.ids} & set(state.uncertain)
    )
    if uncertain:
        raise InvalidPlanError(
            f"{path} escalates {', '.join(uncertain)}, whose last escalation has an unknown "
            "outcome; record the count from Spike's activity log with `reconcile refresh "
            "--id ID --escalations N`, then plan again"
        )


async def _apply_all(
    jobs: Sequence[tuple[SpikeConfig | None, _Prepared]],
    *,
    parallelism: int,
    observe: Callable[[str], None] | None,
    progress: Callable[[int], None] | None,
    retry: RetryPolicy | None,
) -> tuple[list[ApplyResult | BaseException], int | None]:
    """Run each journal's apply concurrently, all under one limit of calls in flight (one
    key, one rate limit: a 429 slows every team). A job that dies on an error (its journal
    cannot be written) has its partial result, outcome `aborted`; one that raises anything
    else (a bug) has the exception; the others go on. A stop signal stops starting calls;
    a grace later, the journal writes still waiting are cancelled (JournalWriter.cancel)."""
    from ..applier import Applier
    from ..spike.client import AdaptiveLimiter, RetryPolicy, SpikeClient

    stop = asyncio.Event()
    received: list[int] = []
    loop = asyncio.get_running_loop()

    def cancel_writes() -> None:
        for _, job in jobs:
            job.writer.cancel()

    give_up = threading.Timer((retry or RetryPolicy()).grace, cancel_writes)
    give_up.daemon = True

    def on_signal(number: int) -> None:
        # Stop starting calls; the ones in flight finish and are journaled, within the grace
        # (a statement blocked behind another session's lock would otherwise hold the exit
        # for its whole statement_timeout). A second signal gets the default behaviour: the
        # operator insists, the process ends at once.
        received.append(number)
        stop.set()
        give_up.start()
        for installed_number in installed:
            loop.remove_signal_handler(installed_number)
        installed.clear()

    installed: list[int] = []
    for number in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
            loop.add_signal_handler(number, on_signal, int(number))
            installed.append(number)
    limiter = AdaptiveLimiter(parallelism)

    async def applied(applier: Applier, job: _Prepared) -> ApplyResult:
        try:
            return await applier.run(job.operations, job.forget, job.unmanaged, job.live)
        except ReconcileError:
            return applier.result  # aborted: its error, and what was done before it

    async def run(config: SpikeConfig | None, job: _Prepared) -> ApplyResult:
        if config is None:  # journal-only changes: no client, no network
            return await applied(Applier(None, job.writer, plan_digest=job.digest, stop=stop), job)
        client = SpikeClient(
            config,
            parallelism=parallelism,
            retry=retry,
            observe=observe,
            stop=stop,
            limiter=limiter,
        )
        async with client:
            applier = Applier(
                client, job.writer, plan_digest=job.digest, stop=stop, progress=progress
            )
            return await applied(applier, job)

    try:
        results = await asyncio.gather(
            *(run(config, job) for config, job in jobs), return_exceptions=True
        )
    finally:
        give_up.cancel()
        for handled in installed:
            loop.remove_signal_handler(handled)
    return list(results), (received[0] if received else None)
