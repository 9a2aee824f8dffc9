"""`reconcile journal migrate`, `show` and `log`: the journal itself, its state and its
history."""

from __future__ import annotations

import click

from . import core


@click.group()
def journal() -> None:
    """Manage the journal itself."""


@journal.command("migrate")
@click.option("--from", "source", required=True, metavar="LOCATION", help="File or URL.")
@click.option("--to", "dest", required=True, metavar="LOCATION", help="An empty journal.")
@core.lock_timeout_option
@core.common
def journal_migrate(
    source: str, dest: str, lock_timeout: float, verbose: bool, no_color: bool
) -> None:
    """Copy a journal with its lineage and history (file <-> postgresql://), retire the source."""
    import shlex

    from ..errors import printable
    from ..journal import migrate, open_journal

    src, dst = open_journal(source), open_journal(dest)
    done = migrate(src, dst, timeout=lock_timeout)
    what = (
        f"Copied {done.records} records from {src.location} to {dst.location}"
        if done.copied
        else f"{dst.location} holds the whole copy of {src.location} ({done.records} records)"
    )
    hint = f"use --journal {shlex.quote(dst.location)} from now on"
    click.echo(printable(f"{what}; {src.location} is retired: {hint}."))


@click.command()
@core.journal_option
@core.format_option("text", "json")
@core.team_option
@core.common
def show(
    journal_location: str | None, fmt: str, teams: tuple[str, ...], verbose: bool, no_color: bool
) -> None:
    """Print the journaled last-applied state (of every team, or each --team)."""
    from .. import render
    from ..journal import open_journal
    from ..usecases.project import team_note

    ctx = core.Context(verbose, no_color)
    selection = core.select(ctx, teams, (), journal_location)
    show_state = render.state_json if fmt == "json" else render.state_text
    parts: dict[str | None, str] = {}
    for run in selection.runs:
        state = open_journal(run.journal).read(retired_ok=True)
        for warning in state.warnings:
            ctx.warn(team_note(run.name, warning))
        parts[run.name] = show_state(state)
    core.echo_parts(parts, fmt)


@click.command()
@core.journal_option
@core.format_option("text", "json")
@core.team_option
@core.common
def log(
    journal_location: str | None, fmt: str, teams: tuple[str, ...], verbose: bool, no_color: bool
) -> None:
    """Show the journal's history: when, which plan, which calls, what happened."""
    import json

    from .. import render
    from ..journal import open_journal

    selection = core.select(core.Context(verbose, no_color), teams, (), journal_location)
    parts: dict[str | None, str] = {}
    for run in selection.runs:
        entries = render.history(open_journal(run.journal).records())
        if fmt == "json":
            parts[run.name] = json.dumps(entries, indent=2, ensure_ascii=False) + "\n"
        else:
            parts[run.name] = render.history_text(entries)
    core.echo_parts(parts, fmt)
