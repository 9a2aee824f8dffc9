"""The teams' identities in reconcile.yaml: no two teams with one team id or one journal
(compared by what a journal is, not how it is spelled), no journal among a team's state
files, and a PostgreSQL journal namespaced by its team's name when its URL names none."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import Problem, ProjectFileError
from .project import Project, TeamConfig, team_of


def _journals_among_states(path: str, text: str, project: Project) -> list[Problem]:
    """A journal file under a team's paths would be read as a state file: each such team's
    journal is a problem, at its `journal` key (or the team's name when it is the default)."""
    from ..journal import is_database_url
    from ..states.problems import position, rt_positions

    problems: list[Problem] = []
    root = None
    for team in project.teams.values():
        if is_database_url(team.journal) or not team_of(project, team.journal):
            continue
        if root is None:
            root = rt_positions(text)
        written = "journal" in _written(root, team.name)
        line, column = position(
            root,
            ("teams", team.name, "journal") if written else ("teams", team.name),
            at_key=not written,
        )
        owners = ", ".join(team_of(project, team.journal))
        problems.append(
            Problem(
                path,
                line,
                column,
                f"team {team.name}: its journal is under the state files of team {owners}; "
                "it would be read as a state file",
            )
        )
    return problems


def _clashes(
    path: str, text: str, project: Project, whats: tuple[str, ...] = ("team_id", "journal")
) -> list[Problem]:
    """Two teams with one team id, or one journal: each problem at the later team in the
    file, naming the other."""
    from ..states.problems import position, rt_positions

    root = None
    problems: list[Problem] = []
    for what in whats:
        for names in _sharing(project, what):
            if len(names) < 2:
                continue
            if root is None:
                root = rt_positions(text)
            places = {
                name: (
                    position(root, ("teams", name, what), at_key=False)
                    if what in _written(root, name)
                    else position(root, ("teams", name), at_key=True)
                )
                for name in names
            }
            ordered = sorted(names, key=lambda n: (places[n], n))
            first = ordered[0]
            # A journal URL is not repeated: it may hold a password.
            shown = f"team_id {project.teams[first].team_id}" if what == "team_id" else what
            for name in ordered[1:]:
                problems.append(
                    Problem(
                        path,
                        *places[name],
                        f"teams {first} and {name} have the same {shown}; each team needs its own",
                    )
                )
    return problems


def _namespaced(url: str, name: str) -> str:
    """A team's PostgreSQL journal URL, with the team's name as its namespace when the URL
    names none: teams sharing one database never share a journal (docs/teams.md)."""
    query = urlsplit(url).query
    if any(item.partition("=")[0] == "namespace" for item in query.split("&") if item):
        return url
    return url + ("&" if "?" in url else "?") + f"namespace={name}"


def _sharing(project: Project, what: str) -> list[list[str]]:
    """The groups of two or more teams with one team id (`what` "team_id") or one journal
    (`journal.same_journal`: compared by what it is, not by how it is spelled)."""
    from ..journal import same_journal

    groups: list[list[TeamConfig]] = []
    for team in project.teams.values():
        for group in groups:
            first = group[0]
            if (
                team.team_id == first.team_id
                if what == "team_id"
                else same_journal(team.journal, first.journal)
            ):
                group.append(team)
                break
        else:
            groups.append([team])
    return [[team.name for team in group] for group in groups if len(group) > 1]


def check_journals(project: Project) -> None:
    """Raise ProjectFileError when two teams of `project` share one journal: what
    `load_project` checks, again when the journals are about to be opened (a file created,
    a link or a host's addresses changed since)."""
    try:
        text = Path(project.path).read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeError):
        text = ""  # positions unknown: each problem at line 1
    problems = _clashes(project.path, text, project, ("journal",))
    if problems:
        raise ProjectFileError(problems)


def _written(root: Any, name: str) -> Any:
    """The keys the file spells out for team `name` (nothing when positions are unknown)."""
    teams = root.get("teams") if isinstance(root, dict) else None
    team = teams.get(name) if isinstance(teams, dict) else None
    return team if isinstance(team, dict) else {}
