"""The project file, `reconcile.yaml`: defaults, drift policies and teams (docs/teams.md).

Optional: without it every command behaves as with one team, the one SPIKE_TEAM_ID names.
Every name is imported from here. project.py holds the values a loaded project is made of
and `team_of` / `assign` (which team owns a file); loader.py `load_project` (reading and
validating the file, every problem at once as FILE:LINE:COLUMN); schema.py the file's shape
and `json_schema` (for editors); approval_rules.py the `approvals:` section; journals.py the
teams' team id and journal clash checks (`check_journals`).
"""

from __future__ import annotations

from .journals import check_journals
from .loader import find_project, load_project, locate
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
    assign,
    team_of,
)
from .schema import (
    ENV_NAME_PATTERN,
    TEAM_ID_PATTERN,
    TEAM_NAME_MAX,
    TEAM_NAME_PATTERN,
    json_schema,
    schema_json,
)

__all__ = [
    "ALL_REVERT",
    "DEFAULT_API_KEY_ENV",
    "DEFAULT_CONFIG",
    "DRIFT_FIELDS",
    "ENV_NAME_PATTERN",
    "POLICIES",
    "TEAM_ID_PATTERN",
    "TEAM_NAME_MAX",
    "TEAM_NAME_PATTERN",
    "Defaults",
    "Policy",
    "Project",
    "TeamConfig",
    "Unsafe",
    "assign",
    "check_journals",
    "find_project",
    "json_schema",
    "load_project",
    "locate",
    "schema_json",
    "team_of",
]
