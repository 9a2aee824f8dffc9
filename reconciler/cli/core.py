"""The command line's one shared core: the output settings every command gets (Context),
each option defined once, and the project and teams a command runs for."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from ..journal import DEFAULT_LOCATION, DEFAULT_LOCK_TIMEOUT
from ..spike import DEFAULT_PARALLELISM
from .completion import CONFIG, complete_teams

if TYPE_CHECKING:
    from ..approvals import ApprovalRule
    from ..config import Project
    from ..usecases.project import Selection

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

EXIT_CHANGES = 2


class Context:
    """Output settings shared by every command."""

    def __init__(self, verbose: bool, no_color: bool) -> None:
        # Given before the subcommand (`reconcile -v drift`) or after it: either counts.
        meta = click.get_current_context(silent=True)
        shared = meta.meta.get(SHARED, {}) if meta is not None else {}
        self.verbose = verbose or bool(shared.get("verbose"))
        self.no_color = no_color or bool(shared.get("no_color"))

    def color(self, stream: Any) -> bool:
        if self.no_color or os.environ.get("NO_COLOR"):
            return False
        return bool(getattr(stream, "isatty", lambda: False)())

    def warn(self, message: str) -> None:
        click.echo(
            click.style("warning: ", fg="yellow") + message
            if self.color(sys.stderr)
            else f"warning: {message}",
            err=True,
        )

    def info(self, message: str) -> None:
        if self.verbose:
            click.echo(message, err=True)


def output_options(func: F) -> F:
    """-v/--verbose and --no-color."""
    func = click.option("-v", "--verbose", is_flag=True, help="Say more on stderr.")(func)
    return click.option(
        "--no-color", is_flag=True, help="Never color output (NO_COLOR is honoured too)."
    )(func)


def common(func: F) -> F:
    """-v/--verbose, --no-color and --config on every subcommand, after its name (but
    `schema`, whose --config asks for the project file's schema), and on the group, before it."""
    func = output_options(func)
    func = click.option(
        "--config",
        metavar="FILE",
        expose_value=False,
        is_eager=True,
        callback=_remember_config,
        help="The project file [default: RECONCILE_CONFIG, else ./reconcile.yaml if present].",
    )(func)
    return func


#: -v and --no-color as given before the subcommand.
SHARED = "reconcile.shared"


def _remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    # ctx.meta is shared by the group's context and the subcommand's: a --config given
    # before the subcommand is kept when none is given after it.
    if value is not None or CONFIG not in ctx.meta:
        ctx.meta[CONFIG] = value


def team_option(func: F, *, one: bool = False) -> F:
    """--team NAME: repeatable, or (`one`) the one team a command writes into."""
    return click.option(
        "--team",
        "teams",
        multiple=True,
        metavar="NAME",
        help="The team of reconcile.yaml to write into (exactly one when teams are configured)."
        if one
        else "Only this team of reconcile.yaml (repeatable) [default: every team].",
        shell_complete=complete_teams,
    )(func)


def one_team_option(func: F) -> F:
    return team_option(func, one=True)


def current_project() -> Project | None:
    """The project file of this command (--config, RECONCILE_CONFIG, ./reconcile.yaml), or
    None; loaded once per command."""
    from ..config import find_project

    ctx = click.get_current_context()
    key = CONFIG + ".loaded"
    if key not in ctx.meta:
        ctx.meta[key] = find_project(ctx.meta.get(CONFIG))
    project: Project | None = ctx.meta[key]
    return project


def approval_rules() -> tuple[ApprovalRule, ...]:
    """reconcile.yaml's approval rules (docs/approvals.md); none without the file."""
    project = current_project()
    return project.approvals if project is not None else ()


def select(
    ctx: Context,
    teams: Sequence[str],
    paths: Sequence[str],
    journal: str | None,
    out: str | None = None,
) -> Selection:
    """The teams this command runs for (docs/teams.md), its warnings shown; `out`, a file the
    command writes, must not be one it reads (refuse_inputs_as_out)."""
    from ..usecases.project import select

    selection = select(current_project(), teams, paths, journal)
    for warning in selection.warnings:
        ctx.warn(warning)
    if out:
        refuse_inputs_as_out(out, selection)
    return selection


def refuse_inputs_as_out(out: str, selection: Selection) -> None:
    """--out must not name what the command reads: a state file, a journal, the project
    file (a typo would replace a reviewed file, or a journal's whole history)."""
    from ..errors import ReconcileError, printable
    from ..journal import is_database_url
    from ..states.loader import discover

    target = os.path.realpath(out)
    project = current_project()
    if project is not None and os.path.realpath(project.path) == target:
        raise ReconcileError(f"--out {printable(out)}: that is the project file")
    for run in selection.runs:
        journal = run.journal or os.environ.get("RECONCILE_JOURNAL") or DEFAULT_LOCATION
        if not is_database_url(journal) and os.path.realpath(journal) == target:
            raise ReconcileError(f"--out {printable(out)}: that is a journal")
        files, _ = discover(run.files)
        if any(os.path.realpath(file) == target for file in files):
            raise ReconcileError(f"--out {printable(out)}: that is a state file")


def configured(name: str, value: T) -> T:
    """A flag's value, or reconcile.yaml's `defaults.NAME` when the flag was not given."""
    ctx = click.get_current_context()
    if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
        return value
    project = current_project()
    configured = getattr(project.defaults, name) if project is not None else None
    return value if configured is None else cast(T, configured)


def parallelism_option(func: F) -> F:
    return click.option(
        "--parallelism",
        type=click.IntRange(min=1),
        default=DEFAULT_PARALLELISM,
        show_default=True,
        help="API calls in flight at most (fewer while Spike answers 429).",
    )(func)


def _finite(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    if value != value or value == float("inf"):  # NaN compares unequal to itself
        raise click.BadParameter("must be a finite number of seconds")
    return value


def lock_timeout_option(func: F) -> F:
    return click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        callback=_finite,
        default=DEFAULT_LOCK_TIMEOUT,
        show_default=True,
        help="Seconds to wait for another apply's lock on the journal.",
    )(func)


def format_option(*formats: str) -> Callable[[F], F]:
    """--format FORMAT among `formats`, the first the default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(formats)),
        default=formats[0],
        show_default=True,
    )


def journal_option(func: F) -> F:
    return click.option(
        "--journal",
        "journal_location",
        metavar="LOCATION",
        envvar="RECONCILE_JOURNAL",
        help=f"Journal file or postgresql:// URL [default: {DEFAULT_LOCATION}].",
    )(func)


def echo_parts(parts: dict[str | None, str], fmt: str) -> None:
    """Each team's output (render.by_team_text, by_team_json)."""
    from .. import render

    click.echo((render.by_team_json if fmt == "json" else render.by_team_text)(parts), nl=False)


def journal_writer_options(func: F) -> F:
    """The options of a command that writes a team's journal under its lock: --journal,
    --parallelism, --lock-timeout, --format text|json, --team and the common ones."""
    for option in (
        common,
        team_option,
        format_option("text", "json"),
        lock_timeout_option,
        parallelism_option,
        journal_option,
    ):
        func = option(func)
    return func


def repo_option(func: F) -> F:
    return click.option("--repo", envvar="GITHUB_REPOSITORY", required=True, metavar="OWNER/NAME")(
        func
    )


def plan_on_pull_request_options(func: F) -> F:
    """--plan FILE (from `reconcile plan --out`), --repo and --pr N: a plan on a pull request."""
    func = click.option(
        "--pr", type=click.IntRange(min=1), required=True, help="Pull request number."
    )(func)
    func = repo_option(func)
    return click.option(
        "--plan",
        "plan_file",
        required=True,
        type=click.Path(dir_okay=False),
        help="A plan file from `reconcile plan --out`.",
    )(func)


def author_option(what: str) -> Callable[[F], F]:
    """--author: whose marked `what` (comment, issue) is ours."""
    return click.option(
        "--author",
        metavar="LOGIN",
        default="github-actions[bot]",
        show_default=True,
        help=f"Whose marked {what} is ours when the token cannot read its own login "
        "(GET /user answers 403 to the Actions token).",
    )


def ids_option(name: str, help: str) -> Callable[[F], F]:
    """--id ID (repeatable), completed with the incident ids of the state files."""
    from .completion import complete_ids

    return click.option(
        "--id", name, multiple=True, metavar="ID", help=help, shell_complete=complete_ids
    )
