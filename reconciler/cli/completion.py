"""Shell completion's glue: the candidates of --team (reconcile.yaml's team names) and of
--target and --id (the incident ids of the state files), read at each Tab."""

from __future__ import annotations

import click

#: Where a command's context keeps the --config given (core.common remembers it), for the
#: commands and for completion, which runs before any command.
CONFIG = "reconcile.config"


def complete_teams(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """--team's candidates: the team names of reconcile.yaml not given yet."""
    from ..usecases.complete import team_names

    given = ctx.params.get(param.name or "") or ()
    names = team_names(ctx.meta.get(CONFIG))
    return [name for name in names if name.startswith(incomplete) and name not in given]


def complete_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """--target's and --id's candidates: the incident ids of the state files of the teams
    (each --team given, else every team), else of states/; those not given yet."""
    from ..usecases.complete import incident_ids

    given = ctx.params.get(param.name or "") or ()
    ids = incident_ids(ctx.params.get("teams") or (), ctx.meta.get(CONFIG))
    return [cid for cid in ids if cid.startswith(incomplete) and cid not in given]
