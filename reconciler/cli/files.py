"""`reconcile fmt`, `import`, `schema` and `init`: state files formatted, written from
Spike, described and scaffolded."""

from __future__ import annotations

import click

from . import core


@click.command("fmt")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--check", is_flag=True, help="Change nothing; exit 1 naming each file to change.")
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff of each change.")
@core.common
def fmt_command(
    paths: tuple[str, ...], check: bool, show_diff: bool, verbose: bool, no_color: bool
) -> None:
    """Rewrite state files in one canonical form, keeping every comment (default: states).

    Prints the name of each file it changes (with --check: would change). A file with
    errors is reported as `validate` would and left untouched.
    """
    from ..errors import ReconcileError, StateFileError, printable
    from ..usecases.files import FmtRequest, run_fmt
    from ..wording import counted

    selection = core.select(core.Context(verbose, no_color), (), paths, None)
    files = tuple(p for run in selection.runs for p in run.files)
    outcome = run_fmt(FmtRequest(files, check, show_diff))
    for changed in outcome.changed:
        click.echo(printable(changed.path))
        click.echo(changed.diff, nl=False)
    core.Context(verbose, no_color).info(f"{counted(outcome.unchanged, 'file')} already formatted")
    if check and outcome.changed:
        message = (
            f"{counted(len(outcome.changed), 'file')} not formatted; run `reconcile fmt` to fix"
        )
        if not outcome.problems:
            raise ReconcileError(message)
        click.echo(f"error: {message}", err=True)
    if outcome.problems:
        raise StateFileError(outcome.problems)


@click.command("import")
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option(
    "--to",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="The state file to add them to (created if needed).",
)
@click.option(
    "--overwrite", is_flag=True, help="Set the live fields of ids already in a state file."
)
@click.option(
    "--states",
    "state_paths",
    multiple=True,
    type=click.Path(),
    metavar="PATH",
    help="State files that may already hold the ids [default: states].",
)
@core.journal_option
@core.parallelism_option
@core.lock_timeout_option
@core.one_team_option
@core.common
def import_command(
    ids: tuple[str, ...],
    to: str,
    overwrite: bool,
    state_paths: tuple[str, ...],
    journal_location: str | None,
    parallelism: int,
    lock_timeout: float,
    teams: tuple[str, ...],
    verbose: bool,
    no_color: bool,
) -> None:
    """Write incidents' live state into a state file and the journal (needs credentials).

    Reads status, priority and severity from Spike and adds them to FILE in canonical form,
    keeping its comments, so the next plan is empty for them. Nothing is written when any
    id fails.
    """
    from .. import render
    from ..usecases.files import ImportRequest, run_import

    selection = core.select(core.Context(verbose, no_color), teams, (), journal_location)
    parallelism = core.configured("parallelism", parallelism)
    run = selection.runs[0]
    if run.team is not None:  # a team of reconcile.yaml: FILE must be one of its files
        if len(teams) != 1:
            raise click.UsageError("import writes into one team: pass exactly one --team")
        from ..config import team_of

        project = core.current_project()
        assert project is not None
        if team_of(project, to) != [run.name]:
            raise click.UsageError(f"--to {to} is not under the paths of team {run.name}")
        state_paths = state_paths or run.paths
    request = ImportRequest(
        ids, to, overwrite, state_paths, run.journal, parallelism, lock_timeout, team=run.team
    )
    click.echo(render.import_text(run_import(request)), nl=False)


@click.command()
@click.option(
    "--config", "project_file", is_flag=True, help="The schema of reconcile.yaml instead."
)
@core.output_options
def schema(project_file: bool, verbose: bool, no_color: bool) -> None:
    """Print the JSON Schema of a state file, or of reconcile.yaml (for editors)."""
    from .. import config
    from ..states import schema as state_file

    click.echo((config if project_file else state_file).schema_json(), nl=False)


@click.command()
@click.option(
    "--teams",
    "team_names",
    metavar="NAME,...",
    help="Write reconcile.yaml with these teams, and an example file in each team's folder.",
)
@click.option(
    "--github", is_flag=True, help="Also the plan/apply workflows and .pre-commit-config.yaml."
)
@core.output_options
def init(team_names: str | None, github: bool, verbose: bool, no_color: bool) -> None:
    """Scaffold a states repository in the working directory; never overwrite a file.

    Writes a commented example state file and its JSON Schema; with --teams, reconcile.yaml
    and an example file per team instead; with --github, the GitHub workflows and the
    pre-commit hooks. A file that exists is reported and left as it is (exit 0).
    """
    from .. import render
    from ..usecases.init import InitRequest, run_init

    names = tuple(n.strip() for n in team_names.split(",")) if team_names is not None else ()
    click.echo(render.init_text(run_init(InitRequest(".", names, github))), nl=False)
