"""Candidates for shell completion (docs/cli.md): the team names of the project file and the
incident ids of the state files.

Asked for at every Tab, so cheap and lenient: files are read as YAML and nothing is
validated (no pydantic), and whatever cannot be found, read or parsed offers nothing. Nothing
here raises for a missing or broken file; at worst the shell offers fewer words.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import locate
from ..errors import ReconcileError
from ..states import DEFAULT_PATHS
from ..states.loader import discover
from ..states.reading import read_yaml


def team_names(config: str | None) -> list[str]:
    """The names under `teams:` of the project file (--config `config`, RECONCILE_CONFIG, or
    ./reconcile.yaml), sorted; none without one."""
    found = _project_document(config)
    if found is None:
        return []
    _, doc = found
    teams = doc.get("teams")
    return (
        sorted(name for name in teams if isinstance(name, str)) if isinstance(teams, dict) else []
    )


def incident_ids(teams: Sequence[str], config: str | None) -> list[str]:
    """The incident ids of the state files of the project's teams (those of `teams`, if
    named), else of states/; sorted, each once. (A command's PATH arguments are not seen:
    click parses the words before the one completed, and stops at the option that waits for
    it, before the arguments.)"""
    files, _ = discover(_team_paths(teams, config) or list(DEFAULT_PATHS))
    ids: set[str] = set()
    for file in files:
        doc = _document(str(file))
        incidents = doc.get("incidents") if doc is not None else None
        if isinstance(incidents, dict):
            # A bare number is the id spelled in digits, as the loader reads it.
            ids.update(str(key) for key in incidents if type(key) in (str, int))
    return sorted(ids)


def _team_paths(teams: Sequence[str], config: str | None) -> list[str]:
    """The paths of the project's teams `teams` (every team when empty), as reconcile.yaml
    spells them: relative to its folder, `teams/NAME` by default."""
    found = _project_document(config)
    if found is None:
        return []
    path, doc = found
    configured = doc.get("teams")
    if not isinstance(configured, dict):
        return []
    folder = os.path.dirname(path)
    paths: list[str] = []
    for name, team in configured.items():
        if not isinstance(name, str) or (teams and name not in teams):
            continue
        written = (
            team.get("paths", [f"teams/{name}"]) if isinstance(team, dict) else [f"teams/{name}"]
        )
        if isinstance(written, list):
            paths.extend(os.path.join(folder, p) for p in written if isinstance(p, str))
    return paths


def _project_document(config: str | None) -> tuple[str, dict[Any, Any]] | None:
    try:
        path = locate(config)
    except ReconcileError:  # named but missing, or not a file
        return None
    if path is None:
        return None
    doc = _document(path)
    return None if doc is None else (path, doc)


def _document(path: str) -> dict[Any, Any] | None:
    """The YAML mapping in the file at `path`, or None when it cannot be read or is none."""
    try:
        data = Path(path).read_bytes()
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    doc = read_yaml(path, data).doc
    return doc if isinstance(doc, dict) else None
