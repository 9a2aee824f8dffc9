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

from ..approvals import Needed, merge_needed
from ..errors import (
    InvalidPlanError,
    ReconcileError,
    StalePlanError,
    UnsafePlanError,
    printable,
)
from ..journal import DEFAULT_LOCK_TIMEOUT, open_journal
from ..journal.base import JournalWriter
from ..journal.records import Recorded
from ..model import Fields, Operation, Unsafe
from ..redact import redact
from ..states import DEFAULT_PATHS

if TYPE_CHECKING:
    from ..applier import ApplyResult
    from ..planfile import SavedPlan, SavedTeamsPlan
    from ..spike.client import RetryPolicy, SpikeConfig
    from ..states.loader import DesiredState
    from .approvals import ApprovalGate
from ..planfile import check_made_for, check_signature, section_content
from .plan import (
    MadePlan,
    PlanRequest,
    ProjectPlan,
    check_targets,
    journal_shown,
    make_plan,
    project_plan,
    read_live,
    spike_config,
)
from .project import team_note
from .rules import owners_of_changes, rules_of_changes


@dataclass(frozen=True)
class ApplyRequest(PlanRequest):
    """What `reconcile apply` applies for one team: a plan of its state files (the
    PlanRequest; with `refresh`, self-heal: plan against live values, reverting only the
    fields whose `drift_policy` is revert, docs/drift.md, and record the live values read),
    or its section of a saved plan."""

    plan_file: str | None = None
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    force: bool = False
    #: Checks the plan's approvals before any call and says who and why for the journal;
    #: None: no check, no audit record.
    gate: ApprovalGate | None = None


@dataclass
class TeamApplied:
    """One team's part of an apply: its result (None when there was nothing to do) and its
    journal after, or the error that stopped it."""

    #: None: the one implicit team of a repository without reconcile.yaml.
    name: str | None
    result: ApplyResult | None = None
    lineage: str | None = None
    serial: int = 0
    #: The plan made from the state files (None for a saved plan).
    made: MadePlan | None = None
    #: The apply of this team died on this error (its journal says so); the others went on.
    error: str | None = None

    @property
    def failed(self) -> bool:
        if self.error is not None:
            return True
        return self.result is not None and self.result.outcome != "applied"


@dataclass
class ApplyOutcome:
    """What happened in each team of the project, in name order."""

    teams: list[TeamApplied]
    signal: int | None = None
    #: The plan made from the state files, shown before it was applied (None for a saved plan).
    made: ProjectPlan | None = None
    #: The journals' own warnings (a torn last line ignored), the signature's.
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(team.failed for team in self.teams)

    @property
    def named(self) -> bool:
        """Whether the teams are reconcile.yaml's (the views then name them)."""
        return any(team.name is not None for team in self.teams)

    @property
    def stopped(self) -> ApplyResult | None:
        """The implicit team's result when an error stopped its apply (outcome aborted: its
        error is shown as the one error line); None otherwise, and always with teams, which
        show each team's result."""
        if self.named:
            return None
        result = self.teams[0].result
        return result if result is not None and result.error is not None else None

    @property
    def drift_left(self) -> ProjectPlan | None:
        """The implicit team's plan when it applied nothing but shows drift (a self-heal with
        nothing to revert: the drift it left alone is shown instead of the result); None
        otherwise, and always with teams, which show each team's result."""
        made = self.made
        if made is None or made.named or self.teams[0].result is not None:
            return None
        return made if made.only.plan.drift else None


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
    requests: Sequence[ApplyRequest],
    *,
    plan_file: str | None = None,
    confirm: Callable[[ProjectPlan], bool],
    observe: Callable[[str], None] | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
    retry: RetryPolicy | None = None,
) -> ApplyOutcome:
    """Apply the project's teams (one request per team: the implicit one, or each team of
    reconcile.yaml selected, docs/teams.md): plan each (or verify its part of the saved
    plan), take the locks, run the calls, journal each one. All share `requests[0]`'s
    parallelism, lock timeout and --force.

    Every input is checked first, before any journal is touched (not even created); then the
    journals' locks are taken in team-name order (so two applies of overlapping teams never
    wait on each other in a circle), each team is planned (or its section of the saved plan
    verified, as docs/trust.md describes) under its lock, and `confirm` is shown the plan made
    from the state files. Raises StalePlanError, UnsafePlanError, InvalidPlanError before any
    call is made. The teams run concurrently under one shared limit of calls in flight; a
    team whose calls fail never stops another. The implicit team's error is raised.
    """
    from ..planfile import read_plan_file
    from .plan import load_teams

    first = requests[0]
    named = first.team is not None
    notes: list[str] = []
    if plan_file is not None:
        saved = _of_format(read_plan_file(plan_file), named)
        if note := check_signature(saved):
            notes.append(note)
        sections = _saved_sections(saved, requests)
        jobs = [_TeamJob(request, section) for request, section in sections]
    else:
        runs = sorted(requests, key=_name)
        loaded = load_teams([request.paths for request in runs])
        jobs = [_TeamJob(r, None, d) for r, d in zip(runs, loaded, strict=True)]
    for job in jobs:
        check_targets(job.request.targets)
        if job.saved is not None and not named:
            check_made_for(job.saved, _team_id(job.request), job.journal.location)
    if named:
        shown = plan_file or "of teams " + ", ".join(job.name or "" for job in jobs)
    else:
        shown = plan_file or " ".join(map(str, first.paths or DEFAULT_PATHS))
    purpose = f"reconcile apply {printable(shown)}"
    with ExitStack() as stack:
        # In name order: two applies of overlapping teams never wait on each other in a
        # circle; the one that comes second fails at the first lock it cannot take.
        for job in jobs:
            opened = job.journal.open_for_apply(first.lock_timeout, purpose)
            job.writer = stack.enter_context(opened)
        for job in jobs:
            assert job.writer is not None
            job.prepared = _prepare(job.request, job.writer, job.saved, job.read_before)
            notes.extend(team_note(job.name, note) for note in job.prepared.notes)
        busy = [job for job in jobs if not job.ready.idle]
        unsafe = [job.name or "" for job in busy if job.ready.unsafe]
        if unsafe and not first.force:
            message = _unsafe_message(first.unsafe)
            if named:
                message = f"the plan is marked unsafe for team {', '.join(unsafe)}: " + (
                    message.removeprefix("the plan is marked unsafe ")
                )
            raise UnsafePlanError(message)
        if busy and first.gate is not None:
            record = first.gate.check(merge_needed(job.ready.needs for job in busy))
            for job in busy:
                job.ready.writer.audit = record
        for job in busy:
            if job.saved is not None:
                _check_live_again(job.saved, job.ready, job.request)
        configs = [spike_config(job.request.team) if job.ready.operations else None for job in busy]
        made = None
        if plan_file is None:
            made = project_plan(
                [
                    (job.request.team, job.request.journal_location, job.ready.made)
                    for job in jobs
                    if job.ready.made is not None
                ]
            )
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
        if not named and isinstance(error := outcomes.get(None), BaseException):
            raise error
        applied = [job.applied(outcomes) for job in jobs]
        return ApplyOutcome(applied, signal, made, notes)


@dataclass
class _TeamJob:
    """One team's part of an apply, filled in step by step."""

    request: ApplyRequest
    saved: SavedPlan | None = None
    read_before: DesiredState | None = None
    writer: JournalWriter | None = None
    prepared: _Prepared | None = None

    def __post_init__(self) -> None:
        self.journal = open_journal(self.request.journal_location)

    @property
    def name(self) -> str | None:
        return None if self.request.team is None else self.request.team.name

    @property
    def ready(self) -> _Prepared:
        assert self.prepared is not None
        return self.prepared

    def applied(self, results: Mapping[str | None, ApplyResult | BaseException]) -> TeamApplied:
        assert self.writer is not None
        state = self.writer.state
        result = results.get(self.name)
        if isinstance(result, BaseException):
            message = str(result) if isinstance(result, ReconcileError) else repr(result)
            return TeamApplied(self.name, error=redact(message))
        return TeamApplied(self.name, result, state.lineage, state.serial, self.ready.made)


def _name(request: ApplyRequest) -> str:
    return "" if request.team is None else request.team.name


def _team_id(request: ApplyRequest) -> str | None:
    """The team id apply calls Spike as: the team's of reconcile.yaml, else SPIKE_TEAM_ID."""
    import os

    if request.team is not None:
        return request.team.team_id
    return os.environ.get("SPIKE_TEAM_ID") or None


def _of_format(saved: SavedPlan | SavedTeamsPlan, named: bool) -> SavedPlan | SavedTeamsPlan:
    """The saved plan, refused unless of the project's format: 1 for the implicit team, 2
    for the teams of reconcile.yaml."""
    from ..planfile import SavedTeamsPlan, one_team

    if not named:
        return one_team(saved)
    if not isinstance(saved, SavedTeamsPlan):
        raise InvalidPlanError(
            f"{saved.path}: a plan of one team (format_version 1), but reconcile.yaml "
            "configures teams; plan again"
        )
    return saved


def _saved_sections(
    saved: SavedPlan | SavedTeamsPlan, requests: Sequence[ApplyRequest]
) -> list[tuple[ApplyRequest, SavedPlan]]:
    """The saved plan's sections with the team each applies to, in name order: a plan of one
    team (format 1) for the implicit team; for the teams of reconcile.yaml a plan of teams,
    each section checked to be a configured team: the same team id and the same journal as
    reconcile.yaml says now (a file journal as it spells it, a database by what it is:
    journal.same_journal)."""
    import os

    from ..journal import is_database_url, same_journal
    from ..planfile import SavedTeamsPlan

    if not isinstance(saved, SavedTeamsPlan):
        return [(requests[0], saved)]
    by_name = {request.team.name: request for request in requests if request.team is not None}
    sections: list[tuple[ApplyRequest, SavedPlan]] = []
    for name, team in saved.teams.items():
        request = by_name.get(name)
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
        sections.append((request, team.plan))
    return sorted(sections, key=lambda pair: _name(pair[0]))


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
) -> _Prepared:
    """Decide, under the journal's lock, what applying means for one journal: the saved
    plan checked against the journal, or a fresh plan of the state files."""
    from ..planfile import check_journal, verify
    from ..states.loader import load, reload

    state = writer.state
    notes = list(state.warnings)
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
    # apply reads Spike anyway (docs/rules.md): rules are evaluated.
    made = make_plan(request, desired=desired, state=state, evaluate_rules=True)
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
        section_content(fresh, request.batch_size)["plan_digest"],
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
