"""The project file, `reconcile.yaml`: defaults, drift policies and teams (docs/teams.md).

Optional: without it every command behaves as with one team, the one SPIKE_TEAM_ID names.
This module holds the values a loaded project is made of, `load_project` (reading and
validating the file, every problem at once as FILE:LINE:COLUMN, like state files: the same
YAML reading and refusals, a pydantic model for the checks, round-trip nodes for positions),
`json_schema` (the model's, for editors), and `team_of` / `assign` (which team owns a file).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from .approvals import ApprovalRule, Approver, When
from .errors import Problem, ProjectFileError, ReconcileError, StateFileError
from .model import Unsafe as Unsafe  # re-exported: defaults.unsafe is one

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
# The file's shape

#: A team's name: it names the team's folder and journal by default, and `--team NAME`.
TEAM_NAME_PATTERN = r"[a-z0-9]+(-[a-z0-9]+)*"
TEAM_NAME_MAX = 32
#: A team id is sent as the x-team-id header: printable ASCII, no spaces.
TEAM_ID_PATTERN = r"[!-~]+"
#: The variable holding a team's API key: only a SPIKE_ one, so that a line of reconcile.yaml
#: in a pull request can never send another secret (GITHUB_TOKEN, PGPASSWORD) to Spike's URL.
ENV_NAME_PATTERN = r"SPIKE_[A-Za-z0-9_]+"

_TOP_KEYS = ("version", "defaults", "teams", "approvals")
_DEFAULTS_KEYS = ("batch_size", "parallelism", "unsafe", "drift")
_UNSAFE_KEYS = ("min_incidents", "max_share")
_TEAM_KEYS = ("team_id", "paths", "journal", "api_key_env", "drift")
_APPROVAL_KEYS = ("when", "approvers", "count")
_WHEN_KEYS = ("field", "before", "after", "priority", "severity", "team")
#: An approver as the schema checks it (config.py checks a login's length too).
_APPROVER_SCHEMA = (
    "^@?[A-Za-z0-9]+(-[A-Za-z0-9]+)*$|^@[A-Za-z0-9]+(-[A-Za-z0-9]+)*/[A-Za-z0-9][A-Za-z0-9_-]*$"
)
#: What the nesting refusal says this file needs.
_NEEDS = "reconcile.yaml needs 4"


@functools.cache
def _models() -> tuple[Any, Any]:
    """(the ProjectFile model, its TypeAdapter), built on first use (pydantic is slow to
    import, and only a project file needs it)."""
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, field_validator
    from pydantic import Field as PydanticField
    from typing_extensions import Required, TypedDict

    from .states.schema import version_is_a_number

    def described(text: str) -> Any:
        return PydanticField(description=text)

    one_or_more = Annotated[int, PydanticField(strict=True, ge=1)]
    # No NUL: the operating system cannot take it in a file name (a path with one would only
    # fail later, with a traceback).
    name_text = Annotated[str, StringConstraints(strict=True, min_length=1, pattern="^[^\\x00]+$")]
    team_name = Annotated[
        str,
        StringConstraints(strict=True, pattern=f"^{TEAM_NAME_PATTERN}$", max_length=TEAM_NAME_MAX),
    ]
    forbid = ConfigDict(extra="forbid")

    class DriftPolicies(TypedDict, total=False):
        """A policy per field (docs/drift.md): revert, warn or accept."""

        __pydantic_config__ = forbid  # type: ignore[misc]

        status: Policy
        priority: Policy
        severity: Policy
        public_sharing: Policy

    class UnsafeRule(TypedDict, total=False):
        """The unsafe rule's thresholds (docs/plan-format.md)."""

        __pydantic_config__ = forbid  # type: ignore[misc]

        min_incidents: Annotated[
            int,
            PydanticField(strict=True, ge=0, json_schema_extra={"default": Unsafe.min_incidents}),
        ]
        max_share: Annotated[
            float,
            PydanticField(strict=True, gt=0, le=1, json_schema_extra={"default": Unsafe.max_share}),
        ]

    class ProjectDefaults(TypedDict, total=False):
        """Defaults for every team; command-line flags win over them."""

        __pydantic_config__ = forbid  # type: ignore[misc]

        batch_size: Annotated[one_or_more | None, described("Ids per batched call (--batch-size).")]
        parallelism: Annotated[
            one_or_more | None,
            described("API calls in flight at most, all teams together (--parallelism)."),
        ]
        unsafe: UnsafeRule | None
        drift: Annotated[
            DriftPolicies | None, described("Every team's drift policies; a team may override.")
        ]

    class Team(TypedDict, total=False):
        """One team: its Spike team id, its state files, its journal."""

        __pydantic_config__ = forbid  # type: ignore[misc]

        team_id: Required[
            Annotated[
                str,
                StringConstraints(strict=True, pattern=f"^{TEAM_ID_PATTERN}$"),
                described("The Spike team's id, sent as the x-team-id header."),
            ]
        ]
        paths: Annotated[
            list[name_text],
            PydanticField(min_length=1, description="Folders or files; default teams/NAME."),
        ]
        journal: Annotated[
            name_text,
            PydanticField(
                description="A file or a postgresql:// URL; default .reconcile/NAME.jsonl."
            ),
        ]
        api_key_env: Annotated[
            str,
            StringConstraints(strict=True, pattern=f"^{ENV_NAME_PATTERN}$"),
            PydanticField(
                description="The environment variable holding the API key.",
                json_schema_extra={"default": DEFAULT_API_KEY_ENV},
            ),
        ]
        drift: Annotated[
            DriftPolicies | None, described("Overrides of defaults.drift for this team.")
        ]

    from pydantic import StrictBool, StrictInt, StrictStr

    from .model import FIELDS, PRIORITIES, SEVERITIES
    from .rules import RULE_NAME_MAX, RULE_NAME_PATTERN

    field_value = StrictStr | StrictBool | StrictInt | None
    rule_name = Annotated[
        str,
        StringConstraints(strict=True, pattern=f"^{RULE_NAME_PATTERN}$", max_length=RULE_NAME_MAX),
    ]
    approver = Annotated[str, StringConstraints(strict=True, pattern=_APPROVER_SCHEMA)]

    class ApprovalWhen(TypedDict, total=False):
        """The changes a rule covers: one field, optionally its value before and after (as
        in plan JSON), the incident's desired priority or severity, the team."""

        __pydantic_config__ = forbid  # type: ignore[misc]

        field: Required[Literal[FIELDS]]  # type: ignore[valid-type]
        before: Annotated[field_value, described("The recorded value; any when left out.")]
        after: Annotated[field_value, described("The desired value; any when left out.")]
        priority: Annotated[
            list[Literal[PRIORITIES]],  # type: ignore[valid-type]
            PydanticField(min_length=1, description="The incident's desired priority."),
        ]
        severity: Annotated[
            list[Literal[SEVERITIES]],  # type: ignore[valid-type]
            PydanticField(min_length=1, description="The incident's desired severity."),
        ]
        team: Annotated[
            team_name | list[team_name], described("Teams of reconcile.yaml; any when left out.")
        ]

    class Approval(TypedDict, total=False):
        """A change the rule covers needs `count` approvals of `approvers` on the pull
        request (docs/approvals.md)."""

        __pydantic_config__ = forbid  # type: ignore[misc]

        when: Required[ApprovalWhen]
        approvers: Required[
            Annotated[
                list[approver],
                PydanticField(
                    min_length=1, description="GitHub logins (login or @login), teams as @org/team."
                ),
            ]
        ]
        count: Annotated[
            one_or_more,
            PydanticField(
                description="Distinct approvers needed.", json_schema_extra={"default": 1}
            ),
        ]

    class ProjectFile(BaseModel):
        """reconcile.yaml: `version` (1), optional `defaults`, `teams` and `approvals` by
        name."""

        model_config = ConfigDict(
            extra="forbid",
            title="spike-reconcile project file (reconcile.yaml)",
            json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
        )

        version: Literal[1]

        _version_is_a_number = field_validator("version", mode="before")(version_is_a_number)

        defaults: ProjectDefaults | None = None
        teams: Annotated[
            dict[team_name, Team] | None,
            PydanticField(description="Teams by name; none: one team, from SPIKE_TEAM_ID."),
        ] = None
        approvals: Annotated[
            dict[rule_name, Approval] | None,
            PydanticField(description="Approval rules by name (docs/approvals.md)."),
        ] = None

    return ProjectFile, TypeAdapter(ProjectFile)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of reconcile.yaml, for editors (`yaml-language-server: $schema=`)."""
    schema: dict[str, Any] = _models()[0].model_json_schema()
    # pydantic writes a constrained key type as patternProperties, which lets a key that
    # does not match through unchecked: the names' pattern goes to propertyNames instead.
    teams = schema["properties"]["teams"]["anyOf"][0]
    ((pattern, team),) = teams.pop("patternProperties").items()
    teams["propertyNames"]["pattern"] = pattern
    teams["additionalProperties"] = team
    approvals = schema["properties"]["approvals"]["anyOf"][0]
    ((pattern, rule),) = approvals.pop("patternProperties").items()
    approvals["propertyNames"]["pattern"] = pattern
    approvals["additionalProperties"] = rule
    return schema


def schema_json() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


# ---------------------------------------------------------------------------------------------
# Loading


def load_project(path: str) -> Project:
    """Read and validate the project file at `path`; raise ProjectFileError listing every
    problem. Team paths and file journals are relative to the file's folder: kept as written
    when that folder is the working directory, joined to it otherwise."""
    from .states.loader import read_yaml, too_deep_problem

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
    from .states.problems import position, rt_positions

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
    from .states.problems import model_errors, rt_positions

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
    from .states.problems import position, unknown_key

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


def _invalid_name(what: str, name: Any, limit: int) -> str:
    """The message for a team's or an approval rule's name that is not one."""
    return (
        f"invalid {what} name {name!r}: names are lowercase letters and digits, groups joined "
        f"by single hyphens, at most {limit} characters"
    )


def _describe_approval(at: Callable[..., Problem], loc: tuple[Any, ...], kind: str) -> Problem:
    """A problem of `approvals:` worded for reconcile.yaml."""
    from .model import FIELDS, PRIORITIES, SEVERITIES
    from .rules import RULE_NAME_MAX
    from .states.problems import unknown_key

    if len(loc) == 1:
        return at(loc, "approvals must be a mapping of rule name -> rule")
    rule = f"approval rule {loc[1]}"
    if len(loc) == 3 and loc[2] == "[key]":
        return at(loc[:2], _invalid_name("approval rule", loc[1], RULE_NAME_MAX), at_key=True)
    if len(loc) == 2:
        return at(loc, f"{rule} must be a mapping with when and approvers")
    part = loc[2]
    if kind == "extra_forbidden" and len(loc) == 3:
        return at(loc, unknown_key(part, _APPROVAL_KEYS, f"in {rule}"), at_key=True)
    if kind == "extra_forbidden" and len(loc) == 4 and part == "when":
        return at(loc, unknown_key(loc[3], _WHEN_KEYS, f"in the when of {rule}"), at_key=True)
    if kind == "missing" and len(loc) == 3:
        what = "when (which changes it covers)" if part == "when" else "approvers (who approves)"
        return at(loc[:2], f"{rule}: {what} is required", at_key=True)
    if part == "count":
        return at(loc, f"{rule}: count must be a whole number, 1 or more")
    if part == "approvers" and len(loc) == 3:
        return at(loc, f"{rule}: approvers must be a list of one or more logins or teams")
    if part == "approvers":
        return at(
            loc,
            f"{rule}: approvers[{loc[3]}] must be a GitHub login (login or @login) or a team "
            "(@org/team)",
        )
    if len(loc) == 3:  # when
        return at(loc, f"{rule}: when must be a mapping with at least field")
    key = loc[3]
    if key == "field" and kind == "missing":
        return at(loc[:3], f"{rule}: when.field is required", at_key=True)
    if key == "field":
        return at(loc, f"{rule}: when.field must be one of {', '.join(FIELDS)}")
    if key in ("before", "after"):
        return at(
            loc[:4],
            f"{rule}: when.{key} must be a field's value (a string, true, false, a number or null)",
        )
    if key == "priority":
        return at(loc[:4], f"{rule}: when.priority must be a list of {', '.join(PRIORITIES)}")
    if key == "severity":
        return at(loc[:4], f"{rule}: when.severity must be a list of {', '.join(SEVERITIES)}")
    return at(loc[:4], f"{rule}: when.team must be a team name or a list of team names")


def _approval_problems(path: str, text: str, model: Any, project: Project) -> list[Problem]:
    """What the schema cannot say about `approvals:`: a value the field cannot have, a team
    that is not in `teams:`, a login too long, and a count more than its approvers (when
    they are all users; a team's size is known only to GitHub)."""
    from .model import is_desired_value, is_field_value
    from .states.problems import position, rt_positions

    problems: list[Problem] = []
    root = None

    def at(loc: tuple[Any, ...], message: str) -> None:
        nonlocal root
        if root is None:
            root = rt_positions(text)
        problems.append(Problem(path, *position(root, loc, at_key=False), message))

    for name, given in (model.approvals or {}).items():
        rule, when = f"approval rule {name}", given["when"]
        base = ("approvals", name)
        for key, valid in (("before", is_field_value), ("after", is_desired_value)):
            if key in when and not valid(when["field"], when[key]):
                at((*base, "when", key), f"{rule}: {when[key]!r} is not a value of {when['field']}")
        teams = [when["team"]] if isinstance(when.get("team"), str) else when.get("team", [])
        for n, team in enumerate(teams):
            if team not in project.teams:
                where = (*base, "when", "team") + ((n,) if isinstance(when["team"], list) else ())
                known = ", ".join(project.teams) or "none: reconcile.yaml has no teams"
                at(where, f"{rule}: team {team} is not a team of reconcile.yaml ({known})")
        approvers = []
        for n, text_ in enumerate(given["approvers"]):
            try:
                approvers.append(Approver.parse(text_))
            except ValueError:
                at(
                    (*base, "approvers", n),
                    f"{rule}: approvers[{n}]: a login is at most 39 characters",
                )
        count = given.get("count", 1)
        users = {a.login_or_slug.lower() for a in approvers if not a.is_team}
        if approvers and all(not a.is_team for a in approvers) and count > len(users):
            at(
                (*base, "count"),
                f"{rule}: count {count} is more than the {len(users)} distinct users among its "
                "approvers",
            )
    return problems


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
    from .journal import is_database_url

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


def _approval_rule(name: str, given: Mapping[str, Any]) -> ApprovalRule:
    """A validated rule of `approvals:` as its value (an approver `_approval_problems`
    refuses is left out here: that problem stops the load)."""
    when = given["when"]
    team = when.get("team", ())
    approvers = []
    for text in given["approvers"]:
        try:
            approvers.append(Approver.parse(text))
        except ValueError:
            continue
    return ApprovalRule(
        name,
        When(
            field=when["field"],
            before=(when["before"],) if "before" in when else None,
            after=(when["after"],) if "after" in when else None,
            priority=tuple(when.get("priority", ())),
            severity=tuple(when.get("severity", ())),
            team=(team,) if isinstance(team, str) else tuple(team),
        ),
        tuple(dict.fromkeys(approvers)),
        given.get("count", 1),
    )


def _overlay(
    base: Mapping[str, Policy], given: Mapping[str, Policy] | None
) -> Mapping[str, Policy]:
    return MappingProxyType({name: (given or {}).get(name, base[name]) for name in DRIFT_FIELDS})


def _journals_among_states(path: str, text: str, project: Project) -> list[Problem]:
    """A journal file under a team's paths would be read as a state file: each such team's
    journal is a problem, at its `journal` key (or the team's name when it is the default)."""
    from .journal import is_database_url
    from .states.problems import position, rt_positions

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
    from .states.problems import position, rt_positions

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
    from .journal import same_journal

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
