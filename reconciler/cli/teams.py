"""`reconcile teams` and `reconcile doctor`: the teams the key sees, and whether this
account's answers are understood."""

from __future__ import annotations

from collections.abc import Callable

import click

from . import core


@click.command()
@core.format_option("text", "json")
@core.common
def teams(fmt: str, verbose: bool, no_color: bool) -> None:
    """List the Spike teams the API key can see: id, name, and whether configured.

    Reads GET /teams/get-all-teams with SPIKE_API_KEY (and, without teams in reconcile.yaml,
    SPIKE_TEAM_ID as x-team-id when set). Configured means reconcile.yaml names the team
    (without teams: SPIKE_TEAM_ID).
    """
    from .. import render
    from ..usecases.project import ignored_env
    from ..usecases.teams import TeamsRequest, run_teams

    project = core.current_project()
    request = TeamsRequest()
    if project is not None and project.teams:
        for warning in ignored_env(project):
            core.Context(verbose, no_color).warn(warning)
        keys = {team.api_key_env for team in project.teams.values()}
        configured = {team.team_id for team in project.teams.values()}
        request = TeamsRequest(configured, keys.pop() if len(keys) == 1 else "SPIKE_API_KEY")
    outcome = run_teams(request)
    show = render.teams_json if fmt == "json" else render.teams_text
    click.echo(show(outcome), nl=False)


@click.command()
@click.option(
    "--id", "counter_id", metavar="ID", help="Read this incident [default: the first listed]."
)
@click.option(
    "--shapes",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the answers' shapes (every value replaced by its type) to FILE, for a bug report.",
)
@core.format_option("text", "json")
@core.team_option
@core.common
def doctor(
    counter_id: str | None,
    shapes: str | None,
    fmt: str,
    teams: tuple[str, ...],
    verbose: bool,
    no_color: bool,
) -> None:
    """Check that reconcile reads this account's answers (GET requests only).

    For each team: the key and team id, page 1 of each open-incident list, one incident and
    its activity log. Each endpoint is understood (and how), not understood (what was
    missing), refused, not reached or not checked. Exit 0 when every one is understood.
    """
    import json

    from .. import render
    from ..errors import printable
    from ..planfile import atomic_write
    from ..usecases.doctor import DoctorRequest, run_doctor

    ctx = core.Context(verbose, no_color)
    selection = core.select(ctx, teams, (), None, shapes)
    request = DoctorRequest(
        [run.team for run in selection.runs], counter_id, ctx.info if ctx.verbose else None
    )
    outcome = run_doctor(request)
    if shapes:
        text = json.dumps(outcome.shapes(), indent=2) + "\n"

        def produce(write: Callable[[str], object]) -> None:
            write(text)

        atomic_write(shapes, produce, 0o644)
        ctx.info(f"saved the answers' shapes to {printable(shapes)}")
    show = render.doctor_json if fmt == "json" else render.doctor_text
    click.echo(show(outcome), nl=False)
    if not outcome.understood:
        raise click.exceptions.Exit(1)
