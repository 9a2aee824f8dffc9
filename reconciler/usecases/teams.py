"""Teams: the Spike teams the API key can see, and which of them this repository configures.

Until the project file (reconcile.yaml) exists, the one configured team is SPIKE_TEAM_ID's;
`TeamsRequest.configured` is where reconcile.yaml's team ids will come in.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..spike.teams import SpikeTeam


@dataclass(frozen=True)
class ListedTeam:
    """One team the key can see: its id (the x-team-id value), its name if Spike gives one,
    and whether this repository configures it."""

    id: str
    name: str | None
    configured: bool


@dataclass(frozen=True)
class TeamsRequest:
    """What `reconcile teams` asks."""

    #: The configured team ids (reconcile.yaml's: SPIKE_TEAM_ID is then never sent); None:
    #: SPIKE_TEAM_ID's, or none when unset.
    configured: Collection[str] | None = None
    #: The variable holding the API key.
    key_env: str = "SPIKE_API_KEY"


@dataclass(frozen=True)
class TeamsOutcome:
    #: Sorted by name, then id; teams without a name last.
    teams: list[ListedTeam]


def run_teams(request: TeamsRequest) -> TeamsOutcome:
    """List the teams SPIKE_API_KEY can see (GET /teams/get-all-teams), sending SPIKE_TEAM_ID
    as x-team-id only when it is set and reconcile.yaml configures no teams (with teams it is
    ignored, as by every command).

    Raises CredentialsError for a key Spike refuses, LiveStateError for an answer without a
    list of teams or with a team without an id, ApiError for any other failure.
    """
    import asyncio  # here, not at the top: slow to import, and only calls need it

    from ..spike.client import SpikeClient, SpikeConfig
    from ..spike.teams import read_teams

    configured = request.configured
    env = dict(os.environ)
    if configured is not None:
        env.pop("SPIKE_TEAM_ID", None)
    config = SpikeConfig.from_env(env, team_required=False, key_env=request.key_env)
    if configured is None:
        configured = () if config.team_id is None else (config.team_id,)

    async def read() -> list[SpikeTeam]:
        async with SpikeClient(config, parallelism=1) as client:
            return await read_teams(client)

    return TeamsOutcome(list_teams(asyncio.run(read()), configured))


def list_teams(teams: Iterable[SpikeTeam], configured: Collection[str]) -> list[ListedTeam]:
    """The teams marked configured or not, sorted by name, then id; teams without a name last."""
    listed = [ListedTeam(t.id, t.name, t.id in configured) for t in teams]
    return sorted(listed, key=lambda t: (t.name is None, t.name or "", t.id))
