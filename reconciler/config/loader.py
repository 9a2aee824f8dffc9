"""Reading and validating reconcile.yaml: `locate` finds it, `load_project` reads it with
every problem at once as FILE:LINE:COLUMN, like state files (the same YAML reading and
refusals, the pydantic model of schema.py for the checks, round-trip nodes for positions),
and makes the validated file a Project with every default filled in."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import Problem, ProjectFileError, ReconcileError
from .approval_rules import _approval_problems, _approval_rule, _describe_approval
from .journals import _clashes, _journals_among_states, _namespaced
from .project import (
    ALL_REVERT,
    DEFAULT_API_KEY_ENV,
    DEFAULT_CONFIG,
    DRIFT_FIELDS,
    POLICIES,
    Defaults,
    Policy,
    Project,
    TeamConfig,
    Unsafe,
)
from .schema import (
    _DEFAULTS_KEYS,
    _NEEDS,
    _TEAM_KEYS,
    _TOP_KEYS,
    _UNSAFE_KEYS,
    TEAM_NAME_MAX,
    _invalid_name,
    _models,
)


def locate(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The project file to use: `explicit` (--config), else RECONCILE_CONFIG, else
    reconcile.yaml in the working directory if there is one; None when there is none.

    A file named by --config or RECONCILE_CONFIG must exist.
    """
    env = os.environ if env is None else env
    named = explicit or env.get("RECONCILE_CONFIG")
    if named:
        if not os.path.isfile(named):
            how = "--config" if explicit else "RECONCILE_CONFIG"
            raise ReconcileError(f"{how}: {named}: no such file")
        return named
    if not os.path.lexists(DEFAULT_CONFIG):
        return None
    if not os.path.isfile(DEFAULT_CONFIG):  # a directory, a broken link: never "no project"
        raise ReconcileError(f"{DEFAULT_CONFIG}: not a readable file")
    return DEFAULT_CONFIG


def find_project(
    explicit: str | None = None, env: Mapping[str, str] | None = None
) -> Project | None:
    """The project `locate` finds, loaded; None when there is no project file."""
    path = locate(explicit, env)
    return None if path is None else load_project(path)


# ---------------------------------------------------------------------------------------------
# Loading


def load_project(path: str) -> Project:
    """Read and validate the project file at `path`; raise ProjectFileError listing every
    problem. Team paths and file journals are relative to the file's folder: kept as written
    when that folder is the working directory, joined to it otherwise."""
    from ..states.reading import read_yaml, too_deep_problem

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ProjectFileError([Problem(path, 0, 0, f"cannot read: {exc.strerror}")]) from None
    read = read_yaml(path, data, needs=_NEEDS)
    if read.stopped:
        raise ProjectFileError(read.problems)
    text, doc, problems = read.text, read.doc, list(read.problems)
    if doc is None and not problems:
        problems.append(Problem(path, 1, 1, "the file is empty; it needs at least 'version: 1'"))
    if doc is None or not isinstance(doc, dict):
        if doc is not None:
            problems.append(
                Problem(path, 1, 1, "the top level must be a mapping with 'version: 1'")
            )
        raise ProjectFileError(problems)
    problems.extend(_stringify_keys(path, text, doc))

    from pydantic import ValidationError

    try:
        model = _models()[1].validate_python(doc)
    except ValidationError as exc:
        deep = too_deep_problem(path, text, doc, _NEEDS)  # through aliases
        if deep is not None:
            raise ProjectFileError([deep]) from None
        problems.extend(_locate(path, text, exc))
        raise ProjectFileError(problems) from None
    if problems:
        raise ProjectFileError(problems)
    project = _project(path, model)
    problems = (
        _clashes(path, text, project)
        + _journals_among_states(path, text, project)
        + _approval_problems(path, text, model, project)
    )
    if problems:
        raise ProjectFileError(problems)
    return project


def _stringify_keys(path: str, text: str, doc: dict[Any, Any]) -> list[Problem]:
    """Keys written as numbers (`2024:`, a team named 2024) as the strings they spell, in
    the mappings of the file's shape, so that they are checked as names like any other."""
    from ..states.problems import position, rt_positions

    problems: list[Problem] = []
    seen: set[int] = set()
    stack: list[tuple[tuple[Any, ...], Any]] = [((), doc)]
    while stack:
        loc, mapping = stack.pop()
        if not isinstance(mapping, dict) or id(mapping) in seen or len(loc) > 3:
            continue
        seen.add(id(mapping))
        if any(type(k) is int for k in mapping):
            renamed: dict[Any, Any] = {}
            for key, value in mapping.items():
                name = str(key) if type(key) is int else key
                if name in renamed:
                    line, column = position(rt_positions(text), (*loc, key), at_key=True)
                    problems.append(
                        Problem(
                            path,
                            line,
                            column,
                            f"key {name} is written twice, once as a number and once quoted",
                        )
                    )
                renamed[name] = value
            mapping.clear()
            mapping.update(renamed)
        stack.extend(((*loc, k), v) for k, v in mapping.items())
    return problems


def _locate(path: str, text: str, exc: Any) -> list[Problem]:
    from ..states.problems import model_errors, rt_positions

    root = rt_positions(text)
    problems: list[Problem] = []
    seen: set[tuple[Any, ...]] = set()
    for loc, kind, msg in model_errors(exc):
        if loc in seen or (loc and loc[-1] == "[key]" and kind == "string_type"):
            continue  # a key that is not a string: the loader already asked for quotes
        if kind == "invalid_key" or (kind == "extra_forbidden" and type(loc[-1]) is not str):
            continue  # the same
        seen.add(loc)
        problem = _describe(path, root, loc, kind, msg)
        if problem not in problems:  # a union's members each say the one thing
            problems.append(problem)
    return problems


def _describe(path: str, root: Any, loc: tuple[Any, ...], kind: str, msg: str) -> Problem:
    """One pydantic error at `loc` as a problem worded for reconcile.yaml."""
    from ..states.problems import position, unknown_key

    def at(where: tuple[Any, ...], message: str, at_key: bool = False) -> Problem:
        return Problem(path, *position(root, where, at_key=at_key), message)

    policies = ", ".join(POLICIES)
    head, name = loc[:-1], loc[-1] if loc else ""
    if loc and loc[0] == "approvals":
        return _describe_approval(at, loc, kind)
    if kind == "extra_forbidden":
        if not head:
            return at(loc, unknown_key(name, _TOP_KEYS, "at the top level"), at_key=True)
        if head == ("defaults",):
            return at(loc, unknown_key(name, _DEFAULTS_KEYS, "in defaults"), at_key=True)
        if head == ("defaults", "unsafe"):
            return at(loc, unknown_key(name, _UNSAFE_KEYS, "in defaults.unsafe"), at_key=True)
        if _is_drift(head):
            where = (
                "in defaults.drift" if head[0] == "defaults" else f"in the drift of team {head[1]}"
            )
            return at(loc, unknown_key(name, DRIFT_FIELDS, where), at_key=True)
        return at(loc, unknown_key(name, _TEAM_KEYS, f"in team {head[1]}"), at_key=True)
    if loc == ("version",):
        if kind == "missing":
            return Problem(path, 1, 1, "version is missing; this file's format is 'version: 1'")
        return at(loc, "version must be 1")
    if loc == ("defaults",):
        return at(loc, f"defaults must be a mapping ({', '.join(_DEFAULTS_KEYS)})")
    if loc in (("defaults", "batch_size"), ("defaults", "parallelism")):
        return at(loc, f"{_label(loc)} must be a whole number, 1 or more")
    if loc == ("defaults", "unsafe"):
        return at(loc, f"defaults.unsafe must be a mapping ({', '.join(_UNSAFE_KEYS)})")
    if loc == ("defaults", "unsafe", "min_incidents"):
        return at(loc, f"{_label(loc)} must be a whole number, 0 or more")
    if loc == ("defaults", "unsafe", "max_share"):
        return at(loc, f"{_label(loc)} must be a number greater than 0 and at most 1")
    if _is_drift(loc):
        return at(loc, f"{_label(loc)} must be a mapping of field -> policy ({policies})")
    if _is_drift(head):
        return at(loc, f"{_label(loc)} must be one of {policies}")
    if loc == ("teams",):
        return at(loc, "teams must be a mapping of team name -> team")
    if len(loc) == 3 and loc[2] == "[key]":
        return at(loc[:2], _invalid_name("team", loc[1], TEAM_NAME_MAX), at_key=True)
    team = f"team {loc[1]}" if len(loc) > 1 else ""
    if len(loc) == 2:
        return at(loc, f"{team} must be a mapping with at least team_id")
    if name == "team_id" and kind == "missing":
        return at(head, f"{team}: team_id is required (the Spike team's id)", at_key=True)
    if name == "team_id" and kind == "string_type":
        return at(loc, f"{team}: team_id must be a string; quote an id YAML reads as a number")
    if name == "team_id":
        return at(
            loc,
            f"{team}: team_id must be printable ASCII without spaces "
            "(it is sent as the x-team-id header)",
        )
    if name == "paths":
        return at(loc, f"{team}: paths must be a list of one or more folders or files")
    if len(loc) == 4 and loc[2] == "paths":
        return at(loc, f"{team}: paths[{name}] must be a folder or file name")
    if name == "journal":
        return at(loc, f"{team}: journal must be a file name or a postgresql:// URL")
    if name == "api_key_env":
        return at(
            loc,
            f"{team}: api_key_env must name an environment variable starting with SPIKE_ "
            "(then letters, digits and _): the key variable is never another secret",
        )
    return at(loc, f"{_label(loc)}: {msg}")  # pragma: no cover - defensive


def _is_drift(loc: tuple[Any, ...]) -> bool:
    """Whether `loc` is a drift map's (not, say, a team named drift)."""
    return loc == ("defaults", "drift") or (
        len(loc) == 3 and loc[0] == "teams" and loc[2] == "drift"
    )


def _label(loc: tuple[Any, ...]) -> str:
    """`defaults.drift.status`, or `team payments: drift.status`."""
    if len(loc) >= 3 and loc[0] == "teams":
        return f"team {loc[1]}: " + ".".join(str(p) for p in loc[2:])
    return ".".join(str(p) for p in loc)


def _project(path: str, model: Any) -> Project:
    """The validated file as a Project, every default filled in."""
    from ..journal import is_database_url

    folder = os.path.dirname(path)
    here = not folder or Path(folder).resolve() == Path.cwd().resolve()

    def relative(name: str) -> str:
        return name if here else os.path.normpath(os.path.join(folder, name))

    given = model.defaults or {}
    given_unsafe = given.get("unsafe") or {}
    defaults = Defaults(
        batch_size=given.get("batch_size"),
        parallelism=given.get("parallelism"),
        unsafe=Unsafe(
            min_incidents=given_unsafe.get("min_incidents", Unsafe.min_incidents),
            max_share=float(given_unsafe.get("max_share", Unsafe.max_share)),
        ),
        drift=_overlay(ALL_REVERT, given.get("drift")),
    )
    teams: dict[str, TeamConfig] = {}
    for name, team in sorted((model.teams or {}).items()):
        journal = team.get("journal", f".reconcile/{name}.jsonl")
        teams[name] = TeamConfig(
            name=name,
            team_id=team["team_id"],
            paths=tuple(relative(p) for p in team.get("paths", [f"teams/{name}"])),
            journal=_namespaced(journal, name) if is_database_url(journal) else relative(journal),
            api_key_env=team.get("api_key_env", DEFAULT_API_KEY_ENV),
            drift=_overlay(defaults.drift, team.get("drift")),
            journal_written=journal,
        )
    return Project(
        path=path,
        version=model.version,
        defaults=defaults,
        teams=teams,
        approvals=tuple(
            _approval_rule(name, rule) for name, rule in sorted((model.approvals or {}).items())
        ),
    )


def _overlay(
    base: Mapping[str, Policy], given: Mapping[str, Policy] | None
) -> Mapping[str, Policy]:
    return MappingProxyType({name: (given or {}).get(name, base[name]) for name in DRIFT_FIELDS})
