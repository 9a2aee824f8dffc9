"""Which teams a command runs for, each with its state files, journal and policies: the teams
of reconcile.yaml narrowed by --team and PATH arguments (docs/teams.md), or, without teams,
the one team SPIKE_TEAM_ID names.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..config import ALL_REVERT, Policy, Project, TeamConfig, check_journals
from ..errors import Problem, ReconcileError, StateFileError, printable
from ..model import Unsafe
from ..states import DEFAULT_PATHS


@dataclass(frozen=True)
class TeamRun:
    """One team's share of a command: what a single-team use case takes."""

    #: None: no teams in reconcile.yaml (SPIKE_TEAM_ID, SPIKE_API_KEY).
    team: TeamConfig | None
    #: The state files or folders to load: with teams, every file of the team.
    paths: tuple[str, ...]
    #: None: --journal, RECONCILE_JOURNAL or the default (only without teams).
    journal: str | None
    drift: Mapping[str, Policy] = field(default_factory=lambda: ALL_REVERT)
    unsafe: Unsafe = field(default_factory=Unsafe)
    #: With teams and PATH arguments: the team's files among them. plan and apply load every
    #: file of the team but change only these files' incidents (never forgetting the rest);
    #: the other commands read only these.
    only: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        """What a command over files alone reads: `only`, else `paths`."""
        return self.only or self.paths

    @property
    def name(self) -> str | None:
        return None if self.team is None else self.team.name


@dataclass(frozen=True)
class Selection:
    """The runs of one command, in team-name order, and what to warn about: the project's
    teams, the one implicit team (`TeamRun.team` None) of a repository without
    reconcile.yaml, or the teams of reconcile.yaml that the command selects. Which of the two
    is the one difference between them: the outputs then name the teams (plan format 2,
    `Team NAME:` headings), and every team's inputs are checked before any team is read."""

    runs: list[TeamRun]
    warnings: list[str] = field(default_factory=list)

    @property
    def named(self) -> bool:
        """Whether the teams are reconcile.yaml's."""
        return any(run.team is not None for run in self.runs)

    def credentials_first(self) -> None:
        """With teams, every team's key and id are checked before any team is read or
        written: a missing key of the last team must not leave the first team's journal
        changed. (The implicit team's are checked when its first call is made.)"""
        from .plan import spike_config

        for run in self.runs:
            if run.team is not None:
                spike_config(run.team)

    def files_first(self) -> None:
        """With teams, every team's files are loaded before any call (StateFileError with
        the problems of all of them)."""
        from .plan import load_teams

        if self.named:
            load_teams([run.files for run in self.runs])


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
    --journal with teams, (ProjectFileError) two teams sharing one journal, and
    (StateFileError) a state file under two teams' paths or under none.
    """
    env = os.environ if env is None else env
    defaults = project.defaults if project is not None else None
    unsafe = defaults.unsafe if defaults is not None else Unsafe()
    drift = defaults.drift if defaults is not None else ALL_REVERT
    if project is None or not project.teams:
        if teams:
            if project is None:
                raise ReconcileError(
                    "--team: there is no reconcile.yaml here (nor --config or "
                    "RECONCILE_CONFIG): --team picks a team of a project file's `teams` "
                    "(docs/teams.md)"
                )
            raise ReconcileError(f"--team: {printable(project.path)} configures no teams")
        run = TeamRun(None, tuple(paths) or DEFAULT_PATHS, journal, drift, unsafe)
        return Selection([run])
    if journal:
        raise ReconcileError(
            "--journal (or RECONCILE_JOURNAL) cannot be used with the teams of "
            f"{printable(project.path)}: each team's journal is set there"
        )
    # Again here, not only when reconcile.yaml was read: a journal file created or linked,
    # or a host name's addresses, may have made two teams' journals one since.
    check_journals(project)
    warnings = ignored_env(project, env)
    chosen = _chosen(project, teams)
    owners = _owners(project, paths)
    runs = []
    for name in chosen:
        team = project.teams[name]
        only: tuple[str, ...] = ()
        if paths:
            only = tuple(owners.get(name, ()))
            if not only:
                continue
        runs.append(TeamRun(team, team.paths, team.journal, team.drift, unsafe, only))
    if paths:
        strays = sorted(name for name, files in owners.items() if files and name not in chosen)
        if strays:
            files = [f for name in strays for f in owners[name]]
            raise ReconcileError(
                f"{printable(files[0])} belongs to team {strays[0]}, which --team does not select"
            )
    return Selection(runs, warnings=warnings)


def team_note(name: str | None, message: str) -> str:
    """A message about one team of the project: named after it, unless it is the implicit one."""
    return message if name is None else f"team {name}: {message}"


def ignored_env(project: Project | None, env: Mapping[str, str] | None = None) -> list[str]:
    """The warning for SPIKE_TEAM_ID set while `project` configures teams (it is then never
    sent: each team's id comes from reconcile.yaml), or none."""
    env = os.environ if env is None else env
    if project is None or not project.teams or not env.get("SPIKE_TEAM_ID"):
        return []
    return [f"SPIKE_TEAM_ID is ignored: {printable(project.path)} configures the teams"]


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
    """The state files under `paths` (default: every team's paths) by owning team. A file
    under two teams' paths or under none, and a file found under one team's paths that is
    (a link to) another team's file, are errors (StateFileError, every such file at once)."""
    from ..config import assign
    from ..states.loader import discover

    if paths:
        files, problems = discover(paths)
        if problems:
            raise StateFileError(problems)
        if not files:
            raise ReconcileError(f"no state file under {', '.join(map(printable, paths))}")
        return {name: [str(f) for f in owned] for name, owned in assign(project, files).items()}
    # Every team's files, selected or not: a file two teams claim is an error whichever team
    # runs. Folders not there yet are left to the runs' own loads to report.
    found = {name: discover(team.paths)[0] for name, team in project.teams.items()}
    owners = assign(project, [f for files in found.values() for f in files])
    problems = [
        Problem(
            str(file),
            0,
            0,
            f"this file is under the paths of team {name} but is a file of team {owner} "
            "(a symbolic link?); each team's incidents are sent with its own team id",
        )
        for owner, owned in owners.items()
        for name, files in found.items()
        if name != owner
        for file in files
        if file in owned
    ]
    if problems:
        raise StateFileError(problems)
    return {name: [str(f) for f in owned] for name, owned in owners.items()}
