"""The state file's schema: the pydantic models (built on first use: pydantic is slow to import),
json_schema() and schema_json() for editors.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Literal

from ..model import (
    COUNTER_ID_MAX,
    COUNTER_ID_PATTERN,
    MAX_ESCALATIONS,
    Priority,
    Severity,
    Status,
)
from ..rules import AGE_PATTERN, MAX_MATCHES_LIMIT, RULE_NAME_MAX, RULE_NAME_PATTERN


def version_is_a_number(value: Any) -> Any:
    """`version`'s check before its Literal[1], which accepts True (True == 1): a YAML
    boolean is not a version (the state file's and reconcile.yaml's models). Not cached:
    a list or a mapping is no key of a cache."""
    if isinstance(value, bool):
        raise ValueError("version must be 1")
    return value


@functools.cache
def models() -> tuple[Any, Any]:
    """(the StateFile model, its TypeAdapter). Built on first use: importing pydantic and
    building the models costs more than planning the bundled states, and a valid file in
    the usual shapes never needs them (see `_valid_incidents`)."""
    from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, field_validator
    from pydantic import Field as PydanticField
    from typing_extensions import NotRequired, TypedDict

    counter_id = Annotated[
        str, StringConstraints(pattern=f"^{COUNTER_ID_PATTERN}$", max_length=COUNTER_ID_MAX)
    ]
    sharing = Annotated[bool, PydanticField(strict=True)]
    count = Annotated[int, PydanticField(strict=True, ge=0, le=MAX_ESCALATIONS)]

    class IncidentSpec(TypedDict, total=False):
        """How one incident should be. Every field is optional; an absent field is unmanaged."""

        __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

        status: NotRequired[Status]
        priority: NotRequired[Priority | None]
        severity: NotRequired[Severity | None]
        public_sharing: NotRequired[sharing]
        escalations: NotRequired[count]

    rule_name = Annotated[
        str, StringConstraints(pattern=f"^{RULE_NAME_PATTERN}$", max_length=RULE_NAME_MAX)
    ]
    open_status = Literal["triggered", "acknowledged"]

    class RuleMatch(TypedDict):
        """Which open incidents a rule applies to; every condition given must hold."""

        __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

        status: Annotated[list[open_status], PydanticField(min_length=1)]
        older_than: NotRequired[Annotated[str, StringConstraints(pattern=f"^{AGE_PATTERN}$")]]
        priority: NotRequired[Annotated[list[Priority | None], PydanticField(min_length=1)]]
        severity: NotRequired[Annotated[list[Severity | None], PydanticField(min_length=1)]]
        title: NotRequired[Annotated[str, PydanticField(strict=True)]]

    class RuleSet(TypedDict, total=False):
        """What a rule sets on every incident it matches: never public, never an escalation."""

        __pydantic_config__ = ConfigDict(  # type: ignore[misc]
            extra="forbid", json_schema_extra={"minProperties": 1}
        )

        status: NotRequired[Status]
        priority: NotRequired[Priority | None]
        severity: NotRequired[Severity | None]
        public_sharing: NotRequired[Literal[False]]

    class RuleSpec(TypedDict):
        """One rule: desired fields for every open incident that matches (docs/rules.md)."""

        __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

        match: RuleMatch
        set: RuleSet
        max_matches: NotRequired[
            Annotated[int, PydanticField(strict=True, ge=1, le=MAX_MATCHES_LIMIT)]
        ]

    class StateFile(BaseModel):
        """One state file: `version` (optional, 1) and `incidents` by Spike counter id."""

        model_config = ConfigDict(
            extra="forbid",
            title="spike-reconcile state file",
            json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
        )

        version: Literal[1] = 1

        _version_is_a_number = field_validator("version", mode="before")(version_is_a_number)

        incidents: dict[counter_id, IncidentSpec | None] | None = None
        rules: dict[rule_name, RuleSpec] | None = None

    return StateFile, TypeAdapter(StateFile)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a state file, for editors (`yaml-language-server: $schema=`)."""
    schema: dict[str, Any] = models()[0].model_json_schema()
    return schema


def schema_json() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"
