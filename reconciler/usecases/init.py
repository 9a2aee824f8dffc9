"""`reconcile init`: scaffold a states repository in a folder (docs/cli.md, reconcile init).

An example state file (or, with teams, reconcile.yaml and one example file per team), the
JSON Schemas their first lines name, and with `github` the plan and apply workflows (shipped
in the package: `reconciler/templates/github/`, copies of examples/github/) and a
.pre-commit-config.yaml. A file that exists is never overwritten: it is reported as kept.
What is written validates and plans with no change: the examples' incidents are comments.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources

from ..config import TEAM_NAME_MAX, TEAM_NAME_PATTERN
from ..errors import ReconcileError, printable

#: The workflows written with `github`: the package's template -> where it goes.
WORKFLOWS = {
    "plan.yml": ".github/workflows/reconcile-plan.yml",
    "apply.yml": ".github/workflows/reconcile-apply.yml",
}

EXAMPLE = """\
# yaml-language-server: $schema={schema}
#
# How {whose} Spike incidents should be (the format: docs/state-files.md). `reconcile plan`
# shows the API calls that would make Spike match this file; `reconcile apply` makes them.
version: 1
incidents: {{}}
# Replace `{{}}` above with incidents, by counter id, and only the fields you manage:
#
# incidents:
#   pay-101:
#     status: acknowledged   # triggered, acknowledged or resolved (resolved is final)
#     priority: p1           # p1 to p5, or null for none
#     severity: sev1         # sev1 to sev3, or null for none
#     public_sharing: false  # the incident's public link on or off
#     escalations: 1         # how often it was escalated: it only ever goes up
#
# Or let `reconcile import` write incidents here as they are live in Spike, so that the
# first plan shows only real differences:
#
#   reconcile import ID... --to {path}
"""

PROJECT_HEAD = """\
# yaml-language-server: $schema=schema/reconcile.json
#
# The teams of this repository (docs/teams.md): each has its state files under teams/NAME and
# its journal in .reconcile/NAME.jsonl. Replace each team_id with the team's Spike id:
# `reconcile teams` lists the ids the API key can see.
version: 1
teams:
"""

PROJECT_TEAM = """\
  {name}:
    team_id: replace-with-the-{name}-team-id
    # api_key_env: SPIKE_API_KEY  # the variable holding this team's API key
"""

PRE_COMMIT = """\
# pre-commit hooks (https://pre-commit.com, docs/github.md): run `pre-commit install` once.
# Replace OWNER and rev with the spike-reconcile repository and the release tag or commit you
# pinned.
repos:
  - repo: https://github.com/OWNER/spike-reconcile
    rev: "<release tag or commit>"
    hooks:
      - id: reconcile-validate{files}
      - id: reconcile-fmt{files}
"""
#: With teams, the hooks look at the teams' folders instead of states/.
TEAM_FILES = "\n        files: ^teams/.*\\.ya?ml$"


@dataclass(frozen=True)
class InitRequest:
    #: The folder to scaffold.
    folder: str = "."
    #: Team names: reconcile.yaml and teams/NAME/ for each; none: states/ alone.
    teams: Sequence[str] = ()
    #: Also the GitHub workflows and .pre-commit-config.yaml.
    github: bool = False
    #: The folder has a reconcile.yaml already: without `teams`, no states/ example is
    #: written (the project's teams own the state files) and the hooks look at teams/.
    has_project: bool = False


@dataclass(frozen=True)
class InitOutcome:
    #: The files written and the files that existed (left as they are), relative to the
    #: folder, in the order they were considered.
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    teams: tuple[str, ...] = ()


def scaffold(request: InitRequest) -> dict[str, str]:
    """The files to write, relative path -> text (pure: nothing is read but the package's
    templates). Raises ReconcileError for a team name that is not one, or one given twice."""
    from ..config import schema_json as project_schema
    from ..states.schema import schema_json as state_schema

    teams = list(request.teams)
    for name in teams:
        if not re.fullmatch(TEAM_NAME_PATTERN, name) or len(name) > TEAM_NAME_MAX:
            raise ReconcileError(
                f"--teams: {printable(name)!r} is not a team name: lowercase letters and "
                f"digits, in groups joined by single hyphens, at most {TEAM_NAME_MAX} characters"
            )
    twice = sorted({name for name in teams if teams.count(name) > 1})
    if twice:
        raise ReconcileError(f"--teams: {', '.join(twice)} given twice")
    files: dict[str, str] = {}
    if teams:
        files["reconcile.yaml"] = PROJECT_HEAD + "".join(
            PROJECT_TEAM.format(name=name) for name in teams
        )
        for name in teams:
            path = f"teams/{name}/example.yaml"
            whose = f"team {name}'s"
            files[path] = EXAMPLE.format(
                schema="../../schema/state-file.json", whose=whose, path=path
            )
    elif not request.has_project:
        path = "states/example.yaml"
        files[path] = EXAMPLE.format(schema="../schema/state-file.json", whose="the", path=path)
    files["schema/state-file.json"] = state_schema()
    if teams or request.has_project:
        files["schema/reconcile.json"] = project_schema()
    if request.github:
        templates = resources.files("reconciler").joinpath("templates").joinpath("github")
        for template, target in WORKFLOWS.items():
            files[target] = templates.joinpath(template).read_text(encoding="utf-8")
        by_team = teams or request.has_project
        files[".pre-commit-config.yaml"] = PRE_COMMIT.format(files=TEAM_FILES if by_team else "")
    return files


def run_init(request: InitRequest) -> InitOutcome:
    """Write the scaffold's files that do not exist yet; keep the others untouched.

    Raises ReconcileError for a bad team name (nothing written) or a file that cannot be
    written (the files before it stay written: each is whole, none is overwritten).
    """
    has_project = os.path.lexists(os.path.join(request.folder, "reconcile.yaml"))
    files = scaffold(replace(request, has_project=request.has_project or has_project))
    outcome = InitOutcome(teams=tuple(request.teams))
    for relative, text in files.items():
        path = os.path.join(request.folder, *relative.split("/"))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as exc:
            raise ReconcileError(
                f"{printable(relative)}: cannot make its folder: {exc.strerror or exc}"
            ) from None
        try:
            # "x": created here or refused, so a file made meanwhile is never replaced.
            with open(path, "x", encoding="utf-8", newline="\n") as out:
                out.write(text)
        except FileExistsError:
            outcome.kept.append(relative)
            continue
        except OSError as exc:
            raise ReconcileError(
                f"{printable(relative)}: cannot write: {exc.strerror or exc}"
            ) from None
        outcome.written.append(relative)
    return outcome
