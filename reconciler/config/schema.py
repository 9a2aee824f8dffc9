"""reconcile.yaml's shape: the names' patterns, the keys each mapping takes, the pydantic
model that checks a file (built on first use) and its JSON Schema, for editors."""

from __future__ import annotations

import functools
import json
from typing import Any, Literal

from .project import DEFAULT_API_KEY_ENV, Policy, Unsafe

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
#: An approver as the schema checks it (approval_rules.py checks a login's length too).
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

    from ..states.schema import version_is_a_number

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

    from ..model import FIELDS, PRIORITIES, SEVERITIES
    from ..rules import RULE_NAME_MAX, RULE_NAME_PATTERN

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


def _invalid_name(what: str, name: Any, limit: int) -> str:
    """The message for a team's or an approval rule's name that is not one."""
    return (
        f"invalid {what} name {name!r}: names are lowercase letters and digits, groups joined "
        f"by single hyphens, at most {limit} characters"
    )
