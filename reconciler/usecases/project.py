"""Which teams a command runs for, each with its state files, journal and policies: the teams
of reconcile.yaml narrowed by --team and PATH arguments (docs/teams.md), or, without teams,
the one team SPIKE_TEAM_ID names.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ALL_REVERT, Policy, Project, TeamConfig
from ..errors import ReconcileError, StateFileError, printable
from ..model import Unsafe
from ..states import DEFAULT_PATHS


@dataclass(frozen=True)
class TeamRun:
    """One team's share of a command: what a single-team use case takes."""

    #: None: no teams in reconcile.yaml (SPIKE_TEAM_ID, SPIKE_API_KEY).
    team: TeamConfig | None
    #: The state files or folders to load.
    paths: tuple[str, ...]
    #: None: --journal, RECONCILE_JOURNAL or the default (only without teams).
    journal: str | None
    drift: Mapping[str, Policy] = field(default_factory=lambda: ALL_REVERT)
    unsafe: Unsafe = field(default_factory=Unsafe)

    @property
    def name(self) -> str | None:
        return None if self.team is None else self.team.name


@dataclass(frozen=True)
class Selection:
    """The runs of one command, in team-name order, and what to warn about."""

    runs: list[TeamRun]
    #: Whether reconcile.yaml configures teams (outputs then name them: plan format 2 ...).
    teams: bool
    warnings: list[str] = field(default_factory=list)


def select(
    project: Project | None,
    teams: Sequence[str] = (),
    paths: Sequence[str] = (),
    journal: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Selection:
    """The team runs for `teams` (--team, default every team) and `paths` (PATH arguments,
    which narrow the run to those files and to the teams owning them).

    Raises ReconcileError for a --team reconcile.yaml does not name, --team without teams,
    --journal with teams, and (StateFileError) a state file under two teams' paths or
    under none.
    """
    env = os.environ if env is None else env
    defaults = project.defaults if project is not None else None
    unsafe = defaults.unsafe if defaults is not None else Unsafe()
    drift = defaults.drift if defaults is not None else ALL_REVERT
    if project is None or not project.teams:
        if teams:
            where = project.path if project is not None else "reconcile.yaml"
            raise ReconcileError(f"--team: {printable(where)} configures no teams")
        run = TeamRun(None, tuple(paths) or DEFAULT_PATHS, journal, drift, unsafe)
        return Selection([run], teams=False)
    if journal:
        raise ReconcileError(
            "--journal (or RECONCILE_JOURNAL) cannot be used with the teams of "
            f"{printable(project.path)}: each team's journal is set there"
        )
    warnings = []
    if env.get("SPIKE_TEAM_ID"):
        warnings.append(f"SPIKE_TEAM_ID is ignored: {printable(project.path)} configures the teams")
    chosen = _chosen(project, teams)
    owners = _owners(project, paths)
    runs = []
    for name in chosen:
        team = project.teams[name]
        if paths:
            files = owners.get(name)
            if not files:
                continue
            run_paths = tuple(files)
        else:
            run_paths = team.paths
        runs.append(TeamRun(team, run_paths, team_journal(team), team.drift, unsafe))
    if paths:
        strays = sorted(name for name, files in owners.items() if files and name not in chosen)
        if strays:
            files = [f for name in strays for f in owners[name]]
            raise ReconcileError(
                f"{printable(files[0])} belongs to team {strays[0]}, which --team does not select"
            )
    return Selection(runs, teams=True, warnings=warnings)


def _chosen(project: Project, teams: Sequence[str]) -> list[str]:
    """The names selected by --team (all when none), sorted; an unknown one is an error."""
    for name in teams:
        if name not in project.teams:
            close = difflib.get_close_matches(name, list(project.teams), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            known = ", ".join(project.teams)
            raise ReconcileError(
                f"--team {printable(name)}: no such team in {printable(project.path)}{hint}; "
                f"its teams: {known}"
            )
    return sorted(set(teams) or set(project.teams))


def _owners(project: Project, paths: Sequence[str]) -> dict[str, list[str]]:
    """The state files under `paths` (default: every team's paths) by owning team; a file
    under two teams or none is an error (StateFileError, every such file at once)."""
    from ..config import assign
    from ..states.loader import discover

    if paths:
        files, problems = discover(paths)
        if problems:
            raise StateFileError(problems)
    else:
        # Every team's files, selected or not: a file two teams claim is an error whichever
        # team runs. Folders not there yet are left to the runs' own loads to report.
        files, _ = discover([p for team in project.teams.values() for p in team.paths])
    return {name: [str(f) for f in owned] for name, owned in assign(project, files).items()}


def team_journal(team: TeamConfig) -> str:
    """The team's journal location: a PostgreSQL URL without a namespace gets the team's
    name as its namespace, so that teams sharing a database never share a journal."""
    location = team.journal
    if location.startswith(("postgresql://", "postgres://")) and "namespace=" not in location:
        location += ("&" if "?" in location else "?") + f"namespace={team.name}"
    return location


def paths_of(selection: Selection) -> list[str]:
    """Every state file or folder of the selection's runs, for commands over files alone
    (validate, fmt)."""
    return [str(Path(p)) for run in selection.runs for p in run.paths]
