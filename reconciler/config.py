"""The project file, `reconcile.yaml`: defaults, drift policies and teams (docs/teams.md).

Optional: without it every command behaves as with one team, the one SPIKE_TEAM_ID names.
This module holds the values a loaded project is made of; loading and validating the file
(with FILE:LINE:COLUMN problems, like state files) is `load_project`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from .errors import ReconcileError

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
class Unsafe:
    """The unsafe rule's thresholds (docs/plan-format.md): a plan that changes or forgets
    recorded values on more than `max_share` of the journaled incidents is unsafe, once the
    journal records at least `min_incidents`."""

    min_incidents: int = 10
    max_share: float = 0.3


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


@dataclass(frozen=True)
class Project:
    """A loaded reconcile.yaml."""

    path: str
    version: int = 1
    defaults: Defaults = field(default_factory=Defaults)
    #: By name, in sorted order; empty when the file has no `teams:`.
    teams: Mapping[str, TeamConfig] = field(default_factory=dict)


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
    return DEFAULT_CONFIG if os.path.isfile(DEFAULT_CONFIG) else None
