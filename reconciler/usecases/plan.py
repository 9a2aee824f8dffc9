"""Make a plan: load the state files and the journal (with refresh, Spike's live values too)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import ALL_REVERT, Policy
from ..errors import LiveStateError, ReconcileError, StateFileError
from ..journal import open_journal
from ..journal.records import Recorded, new_plan_id, now
from ..model import Fields, Unsafe, is_counter_id
from ..planner import DEFAULT_BATCH_SIZE, DEFAULT_UNSAFE, Journaled, Options, Plan, Wanted, plan
from ..spike import DEFAULT_PARALLELISM
from ..states import DEFAULT_PATHS
from .rules import RulesInPlan

if TYPE_CHECKING:
    from ..approvals import ApprovalRule
    from ..config import TeamConfig
    from ..planfile import Bound, SavedPlan, SavedTeamsPlan
    from ..spike.client import SpikeConfig
    from ..states.loader import DesiredState


@dataclass
class MadePlan:
    plan: Plan
    created_at: str
    sources: dict[str, str] = field(default_factory=dict)
    journal_warnings: list[str] = field(default_factory=list)
    #: The batch size the operations were made with (written into the plan file).
    batch_size: int | None = None
    #: Where the plan is for: team id, journal location, plan id (written into the plan file).
    bound: Bound | None = None


@dataclass(frozen=True)
class PlanRequest:
    """What `reconcile plan` plans: the state files, the journal, and how."""

    paths: Sequence[str] = ()
    journal_location: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    targets: Sequence[str] = ()
    #: Read the managed incidents' live values from Spike first (plan --refresh).
    refresh: bool = False
    parallelism: int = DEFAULT_PARALLELISM
    #: Each field's drift policy (docs/drift.md), followed with `refresh`.
    drift_policy: Mapping[str, Policy] = field(default_factory=lambda: ALL_REVERT)
    #: The team of reconcile.yaml planned (its id and key for --refresh); None: one team,
    #: SPIKE_TEAM_ID.
    team: TeamConfig | None = None
    unsafe: Unsafe = DEFAULT_UNSAFE
    #: Plan only the incidents of these state files (docs/teams.md: PATH arguments).
    only: Sequence[str] = ()
    #: reconcile.yaml's approval rules: the plan names the approvals its changes need.
    approvals: Sequence[ApprovalRule] = ()


@dataclass
class TeamPlan:
    """One team's plan in the plan of a project."""

    #: None: the one implicit team of a repository without reconcile.yaml.
    name: str | None
    team_id: str | None
    #: The journal's location as shown (never with a password).
    journal: str
    made: MadePlan


@dataclass
class ProjectPlan:
    """The plan of a project's teams, each planned independently: the one implicit team of a
    repository without reconcile.yaml (plan format 1, no team headings), or the teams of
    reconcile.yaml that the command selected (format 2, docs/teams.md)."""

    created_at: str
    teams: list[TeamPlan]
    #: The plan's random id (each team's journal records it when the plan is applied).
    plan_id: str = field(default_factory=new_plan_id)

    @property
    def named(self) -> bool:
        """Whether the teams are reconcile.yaml's: the one property every view and the plan
        file's format follow (format 2, `Team NAME:` headings)."""
        return any(team.name is not None for team in self.teams)

    @property
    def only(self) -> MadePlan:
        """The plan of the one implicit team."""
        assert not self.named and len(self.teams) == 1, "a plan of the implicit team"
        return self.teams[0].made

    def summary(self) -> dict[str, int]:
        """The teams' summaries added up."""
        total: dict[str, int] = {}
        for team in self.teams:
            for key, value in team.made.plan.summary().items():
                total[key] = total.get(key, 0) + value
        return total

    @property
    def unsafe(self) -> bool:
        return any(team.made.plan.unsafe for team in self.teams)

    @property
    def has_changes(self) -> bool:
        return any(team.made.plan.has_changes for team in self.teams)


def project_plan(made: Sequence[tuple[TeamConfig | None, str | None, MadePlan]]) -> ProjectPlan:
    """The plan of the teams planned, as (team, journal location given, its plan): the plan
    of the implicit team (None) takes that plan's id, bound into its file."""
    teams = [TeamPlan(*_whose(team, location, one), one) for team, location, one in made]
    if len(teams) == 1 and teams[0].name is None and made[0][2].bound is not None:
        return ProjectPlan(made[0][2].created_at, teams, made[0][2].bound.plan_id)
    return ProjectPlan(now(), teams)


def _whose(
    team: TeamConfig | None, location: str | None, made: MadePlan
) -> tuple[str | None, str | None, str]:
    if team is not None:
        return team.name, team.team_id, journal_shown(team, location)
    bound = made.bound
    return None, bound.team_id if bound else None, bound.location if bound else ""


def plan_from_saved(saved: SavedPlan | SavedTeamsPlan) -> ProjectPlan:
    """A checked plan file of either format as the plan it holds, for its markdown
    (reconcile comment)."""
    from ..planfile import SavedTeamsPlan, section_plan

    created = saved.body.get("created_at")
    shown = created if isinstance(created, str) else ""
    if not isinstance(saved, SavedTeamsPlan):
        made = MadePlan(section_plan(saved), shown, batch_size=saved.batch_size)
        return ProjectPlan(shown, [TeamPlan(None, saved.team_id, saved.location, made)])
    teams = [
        TeamPlan(
            name,
            team.team_id,
            team.journal,
            MadePlan(section_plan(team.plan), "", batch_size=team.plan.batch_size),
        )
        for name, team in saved.teams.items()
    ]
    return ProjectPlan(shown, teams, saved.plan_id)


def run_plan(requests: Sequence[PlanRequest]) -> ProjectPlan:
    """Plan each team of the project (one request per team): files and journals are read
    first, each team's live values after (plan --refresh), so bad input fails before any
    call."""
    desired = load_teams([request.paths for request in requests])
    made = [
        (
            request.team,
            request.journal_location,
            make_plan(request, desired=loaded),
        )
        for request, loaded in zip(requests, desired, strict=True)
    ]
    return project_plan(made)


def journal_shown(team: TeamConfig, location: str | None) -> str:
    """A team's journal as plan files name it: a file as reconcile.yaml spells it (the same
    bytes from any folder), a database URL without credentials."""
    from ..journal import is_database_url

    if team.journal_written and not is_database_url(team.journal_written):
        return team.journal_written
    return open_journal(location).location


def load_teams(paths: Sequence[Sequence[str]]) -> list[DesiredState]:
    """Every team's state files (`paths` per team), loaded before anything else is done; the
    problems of all teams' files at once (StateFileError)."""
    from ..states.loader import load

    loaded, problems = [], []
    for team_paths in paths:
        try:
            loaded.append(load(team_paths or DEFAULT_PATHS))
        except StateFileError as exc:
            problems.extend(exc.problems)
    if problems:
        raise StateFileError(problems)
    return loaded


def check_targets(targets: Sequence[str]) -> None:
    bad = [t for t in targets if not is_counter_id(t)]
    if bad:
        raise ReconcileError(f"--target: invalid incident id {bad[0]!r}")


def make_plan(
    request: PlanRequest,
    *,
    desired: DesiredState | None = None,
    state: Recorded | None = None,
    evaluate_rules: bool | None = None,
) -> MadePlan:
    """Load the state files and the journal, and plan. Reads files only, no network, unless
    `request.refresh` asks to read the managed incidents' live values from Spike first.

    `apply` passes the journal's `state` it read under the lock, and the `desired` state it
    loaded, so that nothing is read twice. With `request.only` (state files among its paths:
    PATH arguments with teams), only their incidents are planned, as targets: nothing else
    is changed or forgotten. Rules are evaluated (reading Spike's open incidents) with
    `evaluate_rules`, by default when refreshing (usecases.rules). The plan names the
    approvals its changes need under `request.approvals` (docs/approvals.md).
    """
    from ..approvals import needed
    from ..states.loader import load

    check_targets(request.targets)
    team, only = request.team, request.only
    desired = desired or load(request.paths or DEFAULT_PATHS)
    state = state or open_journal(request.journal_location).read()
    targets = asked = request.targets
    if only:
        targets = _incidents_of(desired.sources, only, asked)
    evaluate = request.refresh if evaluate_rules is None else evaluate_rules
    rules = RulesInPlan.make(
        desired,
        state,
        evaluate=evaluate,
        parallelism=request.parallelism,
        # The team's id and key: rules are evaluated once per team, against its incidents.
        config=spike_config(team) if evaluate and desired.rules else None,
    )
    live = None
    if request.refresh:
        scope = set(targets) & set(desired.incidents) if targets else set(desired.incidents)
        missing: list[str] = []
        live = read_live(scope, request.parallelism, missing, team=team)
        if missing:
            raise LiveStateError(_not_found(missing, desired.sources, spike_config(team)))
    live = rules.live(desired, live)
    if only:  # the incidents the rules of those files expanded to as well
        targets = _incidents_of(rules.sources(desired), only, asked)
    wanted = Wanted(
        rules.desired(desired),
        rules.sources(desired),
        desired.inputs_digest,
        warnings=rules.notes,
        **rules.planner_arguments(),
    )
    options = Options(
        request.batch_size,
        list(targets) if only or targets else None,
        request.unsafe,
        request.drift_policy,
    )
    result = plan(wanted, Journaled.of(state), live, options)
    rules.settle(result, desired, state)
    if request.approvals:
        name = team.name if team is not None else None
        result.approvals = needed(request.approvals, result.changes, wanted.incidents, name)
    return MadePlan(
        result,
        now(),
        rules.sources(desired),
        list(state.warnings),
        request.batch_size,
        bound_to(team, request.journal_location),
    )


def bound_to(team: TeamConfig | None, journal_location: str | None) -> Bound:
    """Where a plan made now is for (docs/trust.md): the team it would apply to (`team`, else
    SPIKE_TEAM_ID), its journal as given or configured, and a new plan id."""
    import os

    from ..planfile import Bound

    if team is not None:
        team_id: str | None = team.team_id
        location = journal_shown(team, journal_location)
    else:
        team_id = os.environ.get("SPIKE_TEAM_ID") or None
        location = open_journal(journal_location).location
    return Bound(team_id, location, new_plan_id())


def _incidents_of(
    sources: Mapping[str, str], files: Sequence[str], targets: Sequence[str]
) -> list[str]:
    """The incidents written in `files`, or expanded by their rules (`sources`: incident ->
    file; compared as resolved paths), among `targets` when any are given."""
    from pathlib import Path

    wanted = {Path(file).resolve() for file in files}
    ids = [cid for cid, source in sources.items() if Path(source).resolve() in wanted]
    return sorted(set(ids) & set(targets)) if targets else sorted(ids)


def read_live(
    ids: Iterable[str],
    parallelism: int,
    missing: list[str] | None = None,
    team: TeamConfig | None = None,
    observe: Callable[[str], None] | None = None,
) -> dict[str, Fields]:
    """Read incidents from Spike (GET /incidents/{counterId}), concurrently; with a `missing`
    list, the ids that answer 404 go there instead of failing the read (spike.live). `team`
    says which team's id and key to use (None: SPIKE_TEAM_ID and SPIKE_API_KEY); `observe` is
    told of each request (-v)."""
    import asyncio  # here, not at the top: `plan` never needs it, and it is slow to import

    from ..spike.client import SpikeClient
    from ..spike.live import read_incidents

    config = spike_config(team)

    async def read() -> dict[str, Fields]:
        async with SpikeClient(config, parallelism=parallelism, observe=observe) as client:
            return await read_incidents(client, ids, missing)

    return asyncio.run(read())


def _not_found(missing: Sequence[str], sources: Mapping[str, str], config: SpikeConfig) -> str:
    """Incidents of the state files that Spike does not find, and what to do about them."""
    from ..errors import printable
    from ..wording import natural_sorted

    ids = natural_sorted(missing)
    files = ", ".join(sorted({printable(sources[cid]) for cid in ids if cid in sources}))
    them = "it" if len(ids) == 1 else "them"
    lines = [f"incident {cid}: not found in Spike (deleted, or another team)" for cid in ids]
    lines.append(
        f"nothing was planned: if Spike deleted {them}, remove {them} from the state files "
        f"({files}) and plan again (the journal then forgets {them}); if "
        f"{'it belongs' if len(ids) == 1 else 'they belong'} to another team, check "
        f"{config.team_source}"
    )
    return "\n".join(lines)


def spike_config(team: TeamConfig | None) -> SpikeConfig:
    """The client settings for `team` (its id and key variable), or from SPIKE_TEAM_ID."""
    from ..spike.client import SpikeConfig

    if team is None:
        return SpikeConfig.from_env()
    return SpikeConfig.from_env(team_id=team.team_id, key_env=team.api_key_env)
