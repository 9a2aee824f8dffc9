"""`reconcile drift`, `accept` and `refresh`: live values compared, taken into the state
files, or recorded in the journal."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from . import core


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@core.journal_option
@core.format_option("text", "json", "markdown")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Also save the report as JSON, whatever --format prints.",
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 2 when there is drift, 0 when not, 1 on error."
)
@core.parallelism_option
@core.team_option
@core.common
def drift(
    paths: tuple[str, ...],
    journal_location: str | None,
    fmt: str,
    out: str | None,
    detailed_exitcode: bool,
    parallelism: int,
    teams: tuple[str, ...],
    verbose: bool,
    no_color: bool,
) -> None:
    """Report the fields whose live value differs from the state files; change nothing.

    Reads every incident of the state files from Spike (needs credentials); writes nothing to
    the journal and sends no call but reads. An incident Spike does not find is `missing`.
    """
    from .. import render
    from ..errors import printable
    from ..planfile import atomic_write
    from ..usecases.drift import DriftRequest, run_drift

    ctx = core.Context(verbose, no_color)
    selection = core.select(ctx, teams, paths, journal_location, out)
    selection.credentials_first()
    parallelism = core.configured("parallelism", parallelism)
    requests = [
        DriftRequest(
            run.files,
            run.journal,
            parallelism,
            team=run.team,
            drift_policy=run.drift,
            observe=ctx.info if ctx.verbose else None,
        )
        for run in selection.runs
    ]
    report = run_drift(requests)
    if out:
        saved = render.drift_json(report)

        def produce(write: Callable[[str], object]) -> None:
            write(saved)

        atomic_write(out, produce)
        ctx.info(f"saved the drift report to {printable(out)}")
    if fmt == "json":
        click.echo(render.drift_json(report), nl=False)
    elif fmt == "markdown":
        click.echo(render.drift_markdown(report), nl=False)
    else:
        click.echo(render.drift_text(report, color=ctx.color(sys.stdout)), nl=False)
    if detailed_exitcode and report.has_drift:
        raise click.exceptions.Exit(core.EXIT_CHANGES)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@core.ids_option("ids", "Accept this incident's drift.")
@click.option(
    "--field",
    "fields",
    multiple=True,
    type=click.Choice(["status", "priority", "severity"]),
    help="Accept this field's drift.",
)
@core.journal_writer_options
def accept(
    paths: tuple[str, ...],
    ids: tuple[str, ...],
    fields: tuple[str, ...],
    journal_location: str | None,
    parallelism: int,
    lock_timeout: float,
    fmt: str,
    teams: tuple[str, ...],
    verbose: bool,
    no_color: bool,
) -> None:
    """Write live values of drifted fields into the state files and the journal.

    Takes the fields whose drift policy is accept (with --id/--field: those, whatever their
    policy), keeps every comment, and prints the files it changed. Nothing is written when
    any incident cannot be read.
    """
    from .. import render
    from ..usecases.accept import AcceptRequest, run_accept
    from ..usecases.project import team_note

    ctx = core.Context(verbose, no_color)
    selection = core.select(ctx, teams, paths, journal_location)
    selection.credentials_first()
    parallelism = core.configured("parallelism", parallelism)
    show = render.accept_json if fmt == "json" else render.accept_text
    requests = [
        AcceptRequest(
            run.files,
            run.journal,
            ids,
            fields,
            parallelism,
            lock_timeout,
            run.drift,
            team=run.team,
        )
        for run in selection.runs
    ]
    outcomes = run_accept(requests)
    parts: dict[str | None, str] = {}
    for run, outcome in zip(selection.runs, outcomes, strict=True):
        for warning in outcome.warnings:
            ctx.warn(team_note(run.name, warning))
        parts[run.name] = show(outcome)
    core.echo_parts(parts, fmt)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@core.ids_option("adopt", "Adopt an incident the journal lacks.")
@click.option(
    "--escalations",
    type=click.IntRange(min=0),
    metavar="N",
    help="Record N, the incident's escalation count in Spike's activity log (one --id, no "
    "PATH, no network); clears an uncertain escalation.",
)
@click.option(
    "--reopened",
    is_flag=True,
    help="With --id: adopt Spike's open status for incidents this journal recorded as "
    "resolved (Spike's data was reset). Check the team and key first.",
)
@core.journal_writer_options
def refresh(
    paths: tuple[str, ...],
    adopt: tuple[str, ...],
    escalations: int | None,
    reopened: bool,
    journal_location: str | None,
    parallelism: int,
    lock_timeout: float,
    fmt: str,
    teams: tuple[str, ...],
    verbose: bool,
    no_color: bool,
) -> None:
    """Record live values from Spike in the journal; change nothing in Spike.

    Reads the incidents of the state files that the journal knows, and with --id adopts
    incidents it has never seen, so the next plan shows only real differences.

    `--id ID --escalations N` reads nothing: it records N, counted in Spike's activity log,
    as the incident's escalation count, after an escalate call whose outcome is unknown.

    `--id ID --reopened` records Spike's open status for an incident this journal recorded as
    resolved, which Spike says cannot happen: only once the journal is known to be this
    team's and Spike's data to have been reset.
    """
    from .. import render
    from ..usecases.refresh import RefreshRequest, run_refresh

    if escalations is not None:
        if len(adopt) != 1:
            raise click.UsageError("--escalations needs exactly one --id")
        if paths:
            raise click.UsageError("--escalations takes no PATH: it records one incident's count")
    if reopened and (not adopt or paths or escalations is not None):
        raise click.UsageError("--reopened takes the incidents as --id, no PATH, no --escalations")
    selection = core.select(core.Context(verbose, no_color), teams, paths, journal_location)
    parallelism = core.configured("parallelism", parallelism)
    if adopt and len(selection.runs) != 1:
        raise click.UsageError("--id: an incident belongs to one team: pass exactly one --team")
    if escalations is None and not reopened:
        selection.files_first()
        selection.credentials_first()
    show = render.refresh_json if fmt == "json" else render.refresh_text
    parts: dict[str | None, str] = {}
    for run in selection.runs:
        request = RefreshRequest(
            run.files,
            adopt,
            run.journal,
            parallelism,
            lock_timeout,
            escalations,
            team=run.team,
            drift_policy=run.drift,
            reopened=reopened,
        )
        parts[run.name] = show(run_refresh(request))
    core.echo_parts(parts, fmt)
