"""A loaded project's values: its defaults, its teams, the drift policies; and which team
owns a file (`team_of`, `assign`), compared by resolved path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypeVar

from ..approvals import ApprovalRule
from ..errors import Problem, StateFileError
from ..model import Unsafe as Unsafe  # re-exported: defaults.unsafe is one

#: The file looked for in the working directory when neither --config nor RECONCILE_CONFIG
#: names one.
DEFAULT_CONFIG = "reconcile.yaml"
#: What a drifted field gets (docs/drift.md): revert plans the call that restores the
#: desired value; warn reports it and keeps the journal's value; accept is warn until
#: `reconcile accept` writes the live value into the state files.
Policy = Literal["revert", "warn", "accept"]
POLICIES: tuple[Policy, ...] = ("revert", "warn", "accept")
#: The fields a drift policy can be set for.
DRIFT_FIELDS = ("status", "priority", "severity", "public_sharing")
DEFAULT_API_KEY_ENV = "SPIKE_API_KEY"
#: The default of every field's policy.
ALL_REVERT: Mapping[str, Policy] = MappingProxyType(dict.fromkeys(DRIFT_FIELDS, "revert"))


@dataclass(frozen=True)
class Defaults:
    """`defaults:`; command-line flags win over these. None: the command's own default."""

    batch_size: int | None = None
    parallelism: int | None = None
    unsafe: Unsafe = field(default_factory=Unsafe)
    #: Every field of DRIFT_FIELDS, with its policy.
    drift: Mapping[str, Policy] = field(default_factory=lambda: ALL_REVERT)


@dataclass(frozen=True)
class TeamConfig:
    """One team of `teams:`, its defaults filled in."""

    name: str
    team_id: str
    #: Folders or files holding the team's state files, relative to the working directory.
    paths: tuple[str, ...]
    #: A journal file or a postgresql:// URL.
    journal: str
    api_key_env: str = DEFAULT_API_KEY_ENV
    #: Every field of DRIFT_FIELDS: defaults.drift with the team's own overrides.
    drift: Mapping[str, Policy] = field(default_factory=lambda: ALL_REVERT)
    #: The journal as reconcile.yaml spells it (relative to its folder), or its default:
    #: what plan files show, the same from whichever folder a plan is made.
    journal_written: str = field(default="", compare=False)


@dataclass(frozen=True)
class Project:
    """A loaded reconcile.yaml."""

    path: str
    version: int = 1
    defaults: Defaults = field(default_factory=Defaults)
    #: By name, in sorted order; empty when the file has no `teams:`.
    teams: Mapping[str, TeamConfig] = field(default_factory=dict)
    #: `approvals:` (docs/approvals.md), by name; empty: no change needs an approval.
    approvals: tuple[ApprovalRule, ...] = ()


# ---------------------------------------------------------------------------------------------
# Which team owns a file

F = TypeVar("F", str, Path)


def team_of(project: Project, file: str | Path) -> list[str]:
    """The names of the teams whose paths hold `file` (a path is a folder holding it, or the
    file itself), comparing resolved paths; in name order."""
    target = Path(file).resolve()
    return [
        team.name
        for team in project.teams.values()
        if any(target == root or target.is_relative_to(root) for root in _roots(team))
    ]


def _roots(team: TeamConfig) -> list[Path]:
    return [Path(p).resolve() for p in team.paths]


def assign(project: Project, files: Iterable[F]) -> dict[str, list[F]]:
    """Every team of `project` (in name order, empty ones too: a team without files still
    plans what its journal forgets) with the files of `files` it owns, in the given order.
    A file under no team's paths, or under several, is a problem: StateFileError lists
    every one."""
    out: dict[str, list[F]] = {name: [] for name in project.teams}
    problems: list[Problem] = []
    roots = {team.name: _roots(team) for team in project.teams.values()}
    for file in files:
        target = Path(file).resolve()
        owners = [
            name
            for name, paths in roots.items()
            if any(target == root or target.is_relative_to(root) for root in paths)
        ]
        if len(owners) == 1:
            out[owners[0]].append(file)
        elif owners:
            count = "two" if len(owners) == 2 else str(len(owners))
            problems.append(
                Problem(
                    str(file),
                    0,
                    0,
                    f"this file is under the paths of {count} teams: {', '.join(owners)}",
                )
            )
        else:
            problems.append(
                Problem(str(file), 0, 0, f"this file is under no team's paths in {project.path}")
            )
    if problems:
        raise StateFileError(problems)
    return out
