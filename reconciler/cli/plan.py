"""`reconcile validate` and `reconcile plan`: the state files checked, and planned."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from ..planner import DEFAULT_BATCH_SIZE
from . import core
from .completion import CONFIG, complete_ids


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@core.common
def validate(paths: tuple[str, ...], verbose: bool, no_color: bool) -> None:
    """Check state files only (default: states, or every team's paths). Exit 0 valid, 1
    invalid."""
    from ..usecases.plan import load_teams
    from ..wording import counted

    selection = core.select(core.Context(verbose, no_color), (), paths, None)
    loaded = load_teams([run.files for run in selection.runs])
    files = sum(len(desired.files) for desired in loaded)
    incidents = sum(len(desired.incidents) for desired in loaded)
    rules = sum(len(desired.rules) for desired in loaded)
    ruled = f", {counted(rules, 'rule')}" if rules else ""
    click.echo(f"{counted(files, 'file')}, {counted(incidents, 'incident')}{ruled}: valid.")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan (JSON) for apply.")
@core.format_option("text", "json", "markdown")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when applying would change something, 0 when not, 1 on error.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="ID",
    help="Plan only these incidents.",
    shell_complete=complete_ids,
)
@core.journal_option
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Read live state from Spike first (needs credentials); show drift, plan against it.",
)
@click.option(
    "--full",
    is_flag=True,
    help="List every changed incident and call in text, however big the plan.",
)
@core.parallelism_option
@core.team_option
@core.common
def plan(
    paths: tuple[str, ...],
    out: str | None,
    fmt: str,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    journal_location: str | None,
    batch_size: int,
    refresh: bool,
    full: bool,
    parallelism: int,
    teams: tuple[str, ...],
    verbose: bool,
    no_color: bool,
) -> None:
    """Show the API calls that would make Spike match the state files.

    Plans against the journal of what was last applied: no network, no credentials. With
    --refresh, reads the managed incidents from Spike first. With teams in reconcile.yaml,
    plans every team (or each --team), each against its own journal.
    """
    from .. import render
    from ..errors import printable
    from ..planfile import write_plan, write_plan_json
    from ..usecases.plan import PlanRequest, run_plan
    from ..usecases.project import team_note

    ctx = core.Context(verbose, no_color)
    selection = core.select(ctx, teams, paths, journal_location, out)
    if refresh:
        selection.credentials_first()
    batch_size = core.configured("batch_size", batch_size)
    parallelism = core.configured("parallelism", parallelism)
    requests = [
        PlanRequest(
            run.paths,
            run.journal,
            batch_size,
            targets,
            refresh,
            parallelism,
            team=run.team,
            unsafe=run.unsafe,
            drift_policy=run.drift,
            only=run.only,
            approvals=core.approval_rules(),
        )
        for run in selection.runs
    ]
    made = run_plan(requests)
    for team in made.teams:
        for warning in team.made.journal_warnings:
            ctx.warn(team_note(team.name, warning))
    if out:
        write_plan(made, out)
        ctx.info(f"saved the plan to {printable(out)}")
    if fmt == "json":
        write_plan_json(made, sys.stdout.write)
    elif fmt == "markdown":
        click.echo(render.plan_markdown(made), nl=False)
    else:
        click.echo(render.plan_text(made, color=ctx.color(sys.stdout), full=full), nl=False)
    has_changes = made.has_changes
    if out and fmt == "text":
        hint = _apply_command(out, journal_location, teams)
        click.echo(f"\nSaved the plan to {printable(out)}. Apply exactly it with: {hint}")
    if detailed_exitcode and has_changes:
        raise click.exceptions.Exit(core.EXIT_CHANGES)


def _apply_command(out: str, journal: str | None, teams: Sequence[str]) -> str:
    """The command that applies the plan saved to `out`: with the --journal, --config and
    --team this plan was given (a database URL as shown: never with its password)."""
    import shlex

    from ..errors import printable
    from ..journal import is_database_url, open_journal

    words = ["reconcile", "apply", out]
    if journal:
        words += [
            "--journal",
            open_journal(journal).location if is_database_url(journal) else journal,
        ]
    config = click.get_current_context().meta.get(CONFIG)
    if config:
        words += ["--config", config]
    for team in teams:
        words += ["--team", team]
    return printable(" ".join(shlex.quote(word) for word in words))
