"""The `reconcile` command line: parse options, call one function, map errors to exit codes.

Heavy modules (pydantic, ruamel.yaml, httpx) are imported inside the commands, so that
`reconcile --help` starts fast.
"""

from __future__ import annotations

import _thread
import codecs
import contextlib
import io
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO, TypeVar, cast

import click

from .journal import DEFAULT_LOCATION, DEFAULT_LOCK_TIMEOUT
from .planner import DEFAULT_BATCH_SIZE
from .spike import DEFAULT_PARALLELISM

if TYPE_CHECKING:
    pass

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

if TYPE_CHECKING:
    from .approvals import ApprovalRule
    from .config import Project
    from .usecases.project import Selection

EXIT_CHANGES = 2


class Context:
    """Output settings shared by every command."""

    def __init__(self, verbose: bool, no_color: bool) -> None:
        # Given before the subcommand (`reconcile -v drift`) or after it: either counts.
        meta = click.get_current_context(silent=True)
        shared = meta.meta.get(_SHARED, {}) if meta is not None else {}
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


_CONFIG = "reconcile.config"
#: -v and --no-color as given before the subcommand.
_SHARED = "reconcile.shared"


def _remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    # ctx.meta is shared by the group's context and the subcommand's: a --config given
    # before the subcommand is kept when none is given after it.
    if value is not None or _CONFIG not in ctx.meta:
        ctx.meta[_CONFIG] = value


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
        shell_complete=_complete_teams,
    )(func)


def one_team_option(func: F) -> F:
    return team_option(func, one=True)


def _complete_teams(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """--team's candidates: the team names of reconcile.yaml not given yet."""
    from .usecases.complete import team_names

    given = ctx.params.get(param.name or "") or ()
    names = team_names(ctx.meta.get(_CONFIG))
    return [name for name in names if name.startswith(incomplete) and name not in given]


def _complete_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """--target's and --id's candidates: the incident ids of the state files of the teams
    (each --team given, else every team), else of states/; those not given yet."""
    from .usecases.complete import incident_ids

    given = ctx.params.get(param.name or "") or ()
    ids = incident_ids(ctx.params.get("teams") or (), ctx.meta.get(_CONFIG))
    return [cid for cid in ids if cid.startswith(incomplete) and cid not in given]


def _project() -> Project | None:
    """The project file of this command (--config, RECONCILE_CONFIG, ./reconcile.yaml), or
    None; loaded once per command."""
    from .config import find_project

    ctx = click.get_current_context()
    key = _CONFIG + ".loaded"
    if key not in ctx.meta:
        ctx.meta[key] = find_project(ctx.meta.get(_CONFIG))
    project: Project | None = ctx.meta[key]
    return project


def _approval_rules() -> tuple[ApprovalRule, ...]:
    """reconcile.yaml's approval rules (docs/approvals.md); none without the file."""
    project = _project()
    return project.approvals if project is not None else ()


def _select(
    ctx: Context, teams: Sequence[str], paths: Sequence[str], journal: str | None
) -> Selection:
    """The teams this command runs for (docs/teams.md), its warnings shown."""
    from .usecases.project import select

    selection = select(_project(), teams, paths, journal)
    for warning in selection.warnings:
        ctx.warn(warning)
    return selection


def _refuse_inputs_as_out(out: str, selection: Selection) -> None:
    """--out must not name what the command reads: a state file, a journal, the project
    file (a typo would replace a reviewed file, or a journal's whole history)."""
    from .errors import ReconcileError, printable
    from .journal import is_database_url
    from .states.loader import discover

    target = os.path.realpath(out)
    project = _project()
    if project is not None and os.path.realpath(project.path) == target:
        raise ReconcileError(f"--out {printable(out)}: that is the project file")
    for run in selection.runs:
        journal = run.journal or os.environ.get("RECONCILE_JOURNAL") or DEFAULT_LOCATION
        if not is_database_url(journal) and os.path.realpath(journal) == target:
            raise ReconcileError(f"--out {printable(out)}: that is a journal")
        files, _ = discover(run.files)
        if any(os.path.realpath(file) == target for file in files):
            raise ReconcileError(f"--out {printable(out)}: that is a state file")


def _apply_command(out: str, journal: str | None, teams: Sequence[str]) -> str:
    """The command that applies the plan saved to `out`: with the --journal, --config and
    --team this plan was given (a database URL as shown: never with its password)."""
    import shlex

    from .errors import printable
    from .journal import is_database_url, open_journal

    words = ["reconcile", "apply", out]
    if journal:
        words += [
            "--journal",
            open_journal(journal).location if is_database_url(journal) else journal,
        ]
    config = click.get_current_context().meta.get(_CONFIG)
    if config:
        words += ["--config", config]
    for team in teams:
        words += ["--team", team]
    return printable(" ".join(shlex.quote(word) for word in words))


def _credentials_first(selection: Selection) -> None:
    """With teams, every team's key and id are checked before any team is read or written:
    a missing key of the last team must not leave the first team's journal changed."""
    if not selection.teams:
        return
    from .usecases.plan import spike_config

    for run in selection.runs:
        spike_config(run.team)


def _configured(name: str, value: T) -> T:
    """A flag's value, or reconcile.yaml's `defaults.NAME` when the flag was not given."""
    ctx = click.get_current_context()
    if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
        return value
    project = _project()
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spike-reconcile", prog_name="reconcile")
@common
@click.pass_context
def cli(ctx: click.Context, verbose: bool, no_color: bool) -> None:
    """Desired state for Spike.sh incidents: plan in review, apply after merge.

    State files (YAML) say how incidents should be; `plan` diffs them against the journal of
    what was last applied (no network needed) and `apply` makes the batched API calls.
    """
    ctx.meta[_SHARED] = {"verbose": verbose, "no_color": no_color}


# ---------------------------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@common
def validate(paths: tuple[str, ...], verbose: bool, no_color: bool) -> None:
    """Check state files only (default: states, or every team's paths). Exit 0 valid, 1
    invalid."""
    from .usecases.plan import load_teams
    from .wording import counted

    selection = _select(Context(verbose, no_color), (), paths, None)
    loaded = load_teams([run.files if selection.teams else paths for run in selection.runs])
    files = sum(len(desired.files) for desired in loaded)
    incidents = sum(len(desired.incidents) for desired in loaded)
    rules = sum(len(desired.rules) for desired in loaded)
    ruled = f", {counted(rules, 'rule')}" if rules else ""
    click.echo(f"{counted(files, 'file')}, {counted(incidents, 'incident')}{ruled}: valid.")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan (JSON) for apply.")
@format_option("text", "json", "markdown")
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
    shell_complete=_complete_ids,
)
@journal_option
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
@parallelism_option
@team_option
@common
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
    from . import render
    from .errors import printable
    from .planfile import write_plan, write_plan_json, write_teams_plan, write_teams_plan_json
    from .usecases.plan import PlanRequest, run_plan, run_team_plans

    ctx = Context(verbose, no_color)
    selection = _select(ctx, teams, paths, journal_location)
    if out:
        _refuse_inputs_as_out(out, selection)
    if refresh:
        _credentials_first(selection)
    batch_size = _configured("batch_size", batch_size)
    parallelism = _configured("parallelism", parallelism)
    requests = [
        PlanRequest(
            run.paths if selection.teams else paths,
            run.journal,
            batch_size,
            targets,
            refresh,
            parallelism,
            team=run.team,
            unsafe=run.unsafe,
            drift_policy=run.drift,
            only=run.only,
            approvals=_approval_rules(),
        )
        for run in selection.runs
    ]
    if selection.teams:
        made_teams = run_team_plans(requests)
        for team in made_teams.teams:
            for warning in team.made.journal_warnings:
                ctx.warn(f"team {team.name}: {warning}")
        args = (made_teams.teams, made_teams.summary(), made_teams.unsafe, made_teams.created_at)
        if out:
            write_teams_plan(*args, out, plan_id=made_teams.plan_id)
            ctx.info(f"saved the plan to {printable(out)}")
        if fmt == "json":
            write_teams_plan_json(*args, sys.stdout.write, plan_id=made_teams.plan_id)
        elif fmt == "markdown":
            click.echo(render.teams_plan_markdown(made_teams), nl=False)
        else:
            click.echo(
                render.teams_plan_text(made_teams, color=ctx.color(sys.stdout), full=full), nl=False
            )
        has_changes = made_teams.has_changes
    else:
        made = run_plan(requests[0])
        for warning in made.journal_warnings:
            ctx.warn(warning)
        if out:
            write_plan(made, out)
            ctx.info(f"saved the plan to {printable(out)}")
        if fmt == "json":
            write_plan_json(made, sys.stdout.write)
        elif fmt == "markdown":
            click.echo(render.plan_markdown(made.plan), nl=False)
        else:
            shown = render.plan_text(
                made.plan, made.sources, color=ctx.color(sys.stdout), full=full
            )
            click.echo(shown, nl=False)
        has_changes = made.plan.has_changes
    if out and fmt == "text":
        hint = _apply_command(out, journal_location, teams)
        click.echo(f"\nSaved the plan to {printable(out)}. Apply exactly it with: {hint}")
    if detailed_exitcode and has_changes:
        raise click.exceptions.Exit(EXIT_CHANGES)


@cli.command()
@click.argument("args", nargs=-1, type=click.Path(), metavar="[PLANFILE | PATH...]")
@click.option("--auto-approve", is_flag=True, help="Apply without asking (required off a TTY).")
@journal_option
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help=f"[default: {DEFAULT_BATCH_SIZE}]",
)
@parallelism_option
@lock_timeout_option
@click.option("--force", is_flag=True, help="Apply a plan marked unsafe.")
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="ID",
    help="Apply only these.",
    shell_complete=_complete_ids,
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Self-heal: read live state first and revert drift (revert-policy fields only).",
)
@click.option(
    "--pr",
    type=click.IntRange(min=1),
    help="The pull request whose approvals are checked [default: the one merged as GITHUB_SHA].",
)
@click.option(
    "--repo",
    envvar="GITHUB_REPOSITORY",
    metavar="OWNER/NAME",
    help="The repository of --pr [default: GITHUB_REPOSITORY].",
)
@click.option(
    "--force-approvals",
    metavar="REASON",
    help="Apply a plan whose approvals are not met; the journal records REASON.",
)
@click.option(
    "--full",
    is_flag=True,
    help="List every changed incident and call in text, however big the plan.",
)
@format_option("text", "json")
@team_option
@common
def apply(
    args: tuple[str, ...],
    auto_approve: bool,
    journal_location: str | None,
    batch_size: int | None,
    parallelism: int,
    lock_timeout: float,
    force: bool,
    targets: tuple[str, ...],
    refresh: bool,
    pr: int | None,
    repo: str | None,
    force_approvals: str | None,
    full: bool,
    fmt: str,
    teams: tuple[str, ...],
    verbose: bool,
    no_color: bool,
) -> None:
    """Make the API calls: a saved plan exactly, or plan the state files and confirm.

    A single argument that is a file not ending in .yaml/.yml is a saved plan (from
    `plan --out`); it is applied without prompting, and refused when the journal moved on.
    With teams in reconcile.yaml, every team (or each --team) is applied, concurrently.
    With --refresh (self-heal), the plan is made against live state: drifted fields whose
    policy is revert are reverted, and the unsafe rule counts the reverts. A plan whose
    changes need approvals (reconcile.yaml's approvals:) is refused before any call unless
    the pull request's reviews meet them (docs/approvals.md).
    """
    from . import render
    from .usecases.apply import ApplyRequest, run_apply, run_apply_teams
    from .usecases.approvals import ApprovalGate, GitHubAccess

    if force_approvals is not None and not force_approvals.strip():
        raise click.UsageError("--force-approvals needs a reason")
    gate = ApprovalGate(GitHubAccess(repo) if repo else None, pr, force_approvals)

    ctx = Context(verbose, no_color)
    plan_file = None
    named_like_a_plan = len(args) == 1 and not args[0].endswith((".yaml", ".yml"))
    suffix = os.path.splitext(os.path.basename(args[0]))[1] if len(args) == 1 else ""
    if named_like_a_plan and suffix and not os.path.exists(args[0]):
        from .errors import ReconcileError, printable

        # A typo of a plan file's name: not a state folder to plan, and no prompt to refuse.
        raise ReconcileError(f"no such plan file: {printable(args[0])}")
    if named_like_a_plan and os.path.isfile(args[0]):
        plan_file = args[0]
        if batch_size is not None:
            raise click.UsageError("--batch-size cannot change a saved plan; plan again")
        if targets:
            raise click.UsageError("--target cannot change a saved plan; plan again")
        if refresh:
            raise click.UsageError("--refresh cannot change a saved plan; plan --refresh again")
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if plan_file is None and not auto_approve and not interactive:
        raise click.UsageError("not a terminal: pass --auto-approve to apply without asking")
    paths = () if plan_file else args
    unstarted = _ApplyNotStarted(fmt == "json")
    with unstarted:
        selection = _select(ctx, teams, paths, journal_location)
        if refresh:
            _credentials_first(selection)
        batch_size = _configured("batch_size", batch_size) or DEFAULT_BATCH_SIZE
        parallelism = _configured("parallelism", parallelism)
    unstarted.teams = selection.teams

    def ask() -> bool:
        if auto_approve:
            return True
        # Not click.confirm: it turns Ctrl-C into Abort (exit 1); Ctrl-C here must exit 130.
        click.echo("Apply these changes? Only 'yes' applies: ", nl=False)
        try:
            return input().strip().lower() == "yes"
        except EOFError:
            return False

    # With --format json, stdout is the result alone; the plan shown goes to stderr.
    shown = sys.stderr if fmt == "json" else sys.stdout

    def confirm(made: Any) -> bool:
        click.echo(
            render.plan_text(made.plan, made.sources, color=ctx.color(shown), full=full),
            err=fmt == "json",
        )
        return ask()

    def confirm_teams(made: Any) -> bool:
        click.echo(
            render.teams_plan_text(made, color=ctx.color(shown), full=full), err=fmt == "json"
        )
        return ask()

    def progress(total: int) -> Callable[[int], None]:
        if not sys.stderr.isatty() or fmt == "json" or total < 5:
            return lambda _n: None
        done = [0]
        started = time.monotonic()

        def step(n: int) -> None:
            done[0] += n
            line = render.progress_line(done[0], total, time.monotonic() - started)
            # Padded: a shorter line than the last must not leave its tail on the terminal.
            click.echo(f"\r{line:<60}", err=True, nl=done[0] >= total)

        return step

    requests = [
        ApplyRequest(
            plan_file=plan_file,
            paths=run.paths if selection.teams else paths,
            journal_location=run.journal,
            batch_size=batch_size,
            parallelism=parallelism,
            lock_timeout=lock_timeout,
            force=force,
            targets=targets,
            team=run.team,
            unsafe=run.unsafe,
            refresh=refresh,
            drift_policy=run.drift,
            only=run.only,
            approvals=_approval_rules(),
            gate=gate,
        )
        for run in selection.runs
    ]
    observe = ctx.info if ctx.verbose else _retry_notes
    if selection.teams:
        with unstarted:
            outcomes = run_apply_teams(
                requests,
                plan_file=plan_file,
                confirm=confirm_teams,
                observe=observe,
                progress=progress,
            )
        for warning in outcomes.warnings:
            ctx.warn(warning)
        if fmt == "json":
            click.echo(render.teams_apply_json(outcomes), nl=False)
        else:
            click.echo(render.teams_apply_text(outcomes, color=ctx.color(sys.stdout)), nl=False)
        if outcomes.signal is not None:
            raise click.exceptions.Exit(128 + outcomes.signal)
        if outcomes.failed:
            raise click.exceptions.Exit(1)
        return
    with unstarted:
        outcome = run_apply(requests[0], confirm=confirm, observe=observe, progress=progress)
    for warning in outcome.warnings:
        ctx.warn(warning)
    made = outcome.made
    result = outcome.result
    aborted = result is not None and result.error is not None
    # Self-heal with nothing to revert still shows the drift it left alone (warn, accept).
    held = made is not None and refresh and outcome.result is None and bool(made.plan.drift)
    if held and made is not None:
        shown = sys.stderr if fmt == "json" else sys.stdout
        text = render.plan_text(made.plan, made.sources, color=ctx.color(shown), full=full)
        click.echo(text, err=fmt == "json", nl=False)
    if fmt == "json":
        click.echo(render.apply_json(result, outcome.lineage, outcome.serial), nl=False)
    elif not held and not aborted:
        click.echo(render.apply_text(result, color=ctx.color(sys.stdout)), nl=False)
    if aborted and result is not None:  # the error line, as the one boundary prints it
        click.echo(f"error: {render.apply_stopped(result)}", err=True)
    if outcome.signal is not None:
        raise click.exceptions.Exit(128 + outcome.signal)
    if result is not None and result.outcome != "applied":
        raise click.exceptions.Exit(1)


class _ApplyNotStarted:
    """With `apply --format json`, an apply that stops before its result is printed (a
    refusal, a lock held, bad input, a signal before the calls) still prints a result on
    stdout, saying so (docs/cli.md); the error itself goes on to the boundary (stderr)."""

    def __init__(self, json: bool) -> None:
        self.json = json
        self.teams = False

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        from . import render
        from .errors import ReconcileError

        if not self.json or exc is None:
            return
        if isinstance(exc, ReconcileError):
            # A state file's problems: one per line, as on stderr.
            click.echo(render.apply_refused_json(str(exc), teams=self.teams), nl=False)
        elif isinstance(exc, KeyboardInterrupt):
            text = "interrupted by a signal before the calls began"
            shown = render.apply_refused_json(text, teams=self.teams, interrupted=True)
            click.echo(shown, nl=False)


def _retry_notes(message: str) -> None:
    """Without -v, apply still says on stderr that a call is being retried (and why)."""
    from .spike.client import RETRY_NOTE

    if message.startswith(RETRY_NOTE):
        click.echo(f"  {message}", err=True)


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="A loopback address only: the control endpoints have no auth.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option(
    "--seed",
    "seed_paths",
    multiple=True,
    type=click.Path(exists=True),
    help="State files or folders: each incident in them exists, triggered.",
)
@click.option(
    "--seed-json",
    type=click.Path(exists=True, dir_okay=False),
    help='A JSON file {"incidents": {id: {status: NACK, title: ..., age: "3d", ...}}}.',
)
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="Milliseconds per call.")
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of API calls answered with an injected 429/500/503.",
)
@click.option("--fault-seed", type=int, default=0, show_default=True)
@click.option("--calls-file", type=click.Path(dir_okay=False), help="Append each call as JSON.")
@click.option(
    "--ack-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Acknowledged incidents return to triggered this long after acknowledging.",
)
@click.option(
    "--team",
    "team_seeds",
    multiple=True,
    metavar="ID=PATH",
    help="Serve team ID (an x-team-id value), seeded from the state files at PATH (as "
    "--seed); repeatable. Without it: one team, SPIKE_TEAM_ID.",
)
@common
def sandbox(
    host: str,
    port: int,
    seed_paths: tuple[str, ...],
    seed_json: str | None,
    latency: float,
    fault_rate: float,
    fault_seed: int,
    calls_file: str | None,
    ack_timeout: float | None,
    team_seeds: tuple[str, ...],
    verbose: bool,
    no_color: bool,
) -> None:
    """Run a local Spike-compatible API for trying apply (key and team: SPIKE_API_KEY and
    SPIKE_TEAM_ID, default "dev"; --team serves several teams instead). Ctrl-C stops it (exit
    130; SIGTERM: 143).

    It listens on loopback addresses only: its control endpoints (/_sandbox/) change
    incidents without any auth, and its credentials default to "dev", so it is never served
    to a network.
    """
    from .errors import ReconcileError
    from .model import is_loopback
    from .sandbox.core import seed_from_json, seed_from_paths
    from .sandbox.server import SandboxServer
    from .wording import counted

    if not is_loopback(host):
        raise ReconcileError(
            f"--host {host}: the sandbox listens on loopback addresses only (127.0.0.1, ::1, "
            "localhost): its /_sandbox/ control endpoints change incidents without auth and "
            'its key and team default to "dev"; run it on the machine (or in the container) '
            "that runs reconcile"
        )
    incidents: dict[str, Any] = {}
    if seed_paths:
        incidents.update(seed_from_paths(list(seed_paths)))
    if seed_json:
        incidents.update(seed_from_json(seed_json))
    teams = _sandbox_teams(team_seeds, seed_paths, seed_json) if team_seeds else None
    server = SandboxServer(
        None if teams is not None else incidents,
        teams=teams,
        host=host,
        port=port,
        api_key=os.environ.get("SPIKE_API_KEY") or "dev",
        team_id=os.environ.get("SPIKE_TEAM_ID") or "dev",
        latency=latency / 1000,
        fault_rate=fault_rate,
        fault_seed=fault_seed,
        calls_file=calls_file,
        ack_timeout=ack_timeout,
    )
    try:
        server.start()
    except OSError as exc:
        if calls_file is not None and exc.filename == calls_file:
            raise ReconcileError(f"--calls-file {calls_file}: {exc.strerror}") from None
        raise ReconcileError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
    if teams is None:
        click.echo(
            f"Spike sandbox on {server.url} with {counted(len(incidents), 'incident')}", err=True
        )
    else:
        count = sum(len(seed) for seed in teams.values())
        click.echo(
            f"Spike sandbox on {server.url} with {counted(count, 'incident')} in "
            f"{counted(len(teams), 'team')}: " + ", ".join(teams),
            err=True,
        )
    click.echo(f"  export SPIKE_API_URL={server.url}", err=True)
    try:
        while True:
            time.sleep(3600)
    finally:  # Ctrl-C or SIGTERM: close the port and the calls file, then exit 130 or 143
        server.stop()


def _sandbox_teams(
    team_seeds: tuple[str, ...], seed_paths: tuple[str, ...], seed_json: str | None
) -> dict[str, dict[str, Any]]:
    """`--team ID=PATH` options as `{team id: incidents}`, in the order given; a team given
    twice is seeded from all its paths."""
    from .errors import ReconcileError
    from .sandbox.core import seed_from_paths

    if seed_paths or seed_json:
        raise ReconcileError(
            "--team seeds each team from its PATH: use it instead of --seed and --seed-json"
        )
    paths: dict[str, list[str]] = {}
    for option in team_seeds:
        team, sep, path = option.partition("=")
        if not sep or not team or not path:
            raise ReconcileError(f"--team {option}: expected ID=PATH, e.g. team-a=states/a")
        if not os.path.exists(path):
            raise ReconcileError(f"--team {option}: {path} does not exist")
        paths.setdefault(team, []).append(path)
    return {team: seed_from_paths(team_paths) for team, team_paths in paths.items()}


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--id",
    "adopt",
    multiple=True,
    metavar="ID",
    help="Adopt an incident the journal lacks.",
    shell_complete=_complete_ids,
)
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
@journal_option
@parallelism_option
@lock_timeout_option
@format_option("text", "json")
@team_option
@common
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
    from . import render
    from .usecases.plan import load_teams
    from .usecases.refresh import RefreshRequest, run_refresh

    if escalations is not None:
        if len(adopt) != 1:
            raise click.UsageError("--escalations needs exactly one --id")
        if paths:
            raise click.UsageError("--escalations takes no PATH: it records one incident's count")
    if reopened and (not adopt or paths or escalations is not None):
        raise click.UsageError("--reopened takes the incidents as --id, no PATH, no --escalations")
    selection = _select(Context(verbose, no_color), teams, paths, journal_location)
    parallelism = _configured("parallelism", parallelism)
    if selection.teams and adopt and len(selection.runs) != 1:
        raise click.UsageError("--id: an incident belongs to one team: pass exactly one --team")
    if selection.teams and escalations is None and not reopened:
        load_teams([run.files for run in selection.runs])  # every team's files, before any call
        _credentials_first(selection)
    show = render.refresh_json if fmt == "json" else render.refresh_text
    parts: dict[str, str] = {}
    for run in selection.runs:
        request = RefreshRequest(
            run.files if selection.teams else paths,
            adopt,
            run.journal,
            parallelism,
            lock_timeout,
            escalations,
            team=run.team,
            drift_policy=run.drift,
            reopened=reopened,
        )
        parts[run.name or ""] = show(run_refresh(request))
    _echo_parts(selection, parts, fmt)


def _echo_parts(selection: Selection, parts: dict[str, str], fmt: str) -> None:
    """One team's output as it is; several teams' under their names."""
    from . import render

    if not selection.teams:
        click.echo(parts.get("", ""), nl=False)
    elif fmt == "json":
        click.echo(render.by_team_json(parts), nl=False)
    else:
        click.echo(render.by_team_text(parts), nl=False)


@cli.command()
@format_option("text", "json")
@common
def teams(fmt: str, verbose: bool, no_color: bool) -> None:
    """List the Spike teams the API key can see: id, name, and whether configured.

    Reads GET /teams/get-all-teams with SPIKE_API_KEY (and, without teams in reconcile.yaml,
    SPIKE_TEAM_ID as x-team-id when set). Configured means reconcile.yaml names the team
    (without teams: SPIKE_TEAM_ID).
    """
    from . import render
    from .usecases.project import ignored_env
    from .usecases.teams import TeamsRequest, run_teams

    project = _project()
    request = TeamsRequest()
    if project is not None and project.teams:
        for warning in ignored_env(project):
            Context(verbose, no_color).warn(warning)
        keys = {team.api_key_env for team in project.teams.values()}
        configured = {team.team_id for team in project.teams.values()}
        request = TeamsRequest(configured, keys.pop() if len(keys) == 1 else "SPIKE_API_KEY")
    outcome = run_teams(request)
    show = render.teams_json if fmt == "json" else render.teams_text
    click.echo(show(outcome), nl=False)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@journal_option
@format_option("text", "json", "markdown")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Also save the report as JSON, whatever --format prints.",
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 2 when there is drift, 0 when not, 1 on error."
)
@parallelism_option
@team_option
@common
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
    from . import render
    from .errors import printable
    from .planfile import atomic_write
    from .usecases.drift import DriftRequest, run_drift_teams

    ctx = Context(verbose, no_color)
    selection = _select(ctx, teams, paths, journal_location)
    if out:
        _refuse_inputs_as_out(out, selection)
    _credentials_first(selection)
    parallelism = _configured("parallelism", parallelism)
    requests = [
        DriftRequest(
            run.files if selection.teams else paths,
            run.journal,
            parallelism,
            team=run.team,
            drift_policy=run.drift,
            observe=ctx.info if ctx.verbose else None,
        )
        for run in selection.runs
    ]
    report = run_drift_teams(requests)
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
        raise click.exceptions.Exit(EXIT_CHANGES)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--id",
    "ids",
    multiple=True,
    metavar="ID",
    help="Accept this incident's drift.",
    shell_complete=_complete_ids,
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    type=click.Choice(["status", "priority", "severity"]),
    help="Accept this field's drift.",
)
@journal_option
@parallelism_option
@lock_timeout_option
@format_option("text", "json")
@team_option
@common
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
    from . import render
    from .usecases.accept import AcceptRequest, run_accept, run_accept_teams

    ctx = Context(verbose, no_color)
    selection = _select(ctx, teams, paths, journal_location)
    _credentials_first(selection)
    parallelism = _configured("parallelism", parallelism)
    show = render.accept_json if fmt == "json" else render.accept_text
    requests = [
        AcceptRequest(
            run.files if selection.teams else paths,
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
    outcomes = run_accept_teams(requests) if selection.teams else [run_accept(requests[0])]
    parts: dict[str, str] = {}
    for run, outcome in zip(selection.runs, outcomes, strict=True):
        for warning in outcome.warnings:
            ctx.warn(f"team {run.name}: {warning}" if run.name else warning)
        parts[run.name or ""] = show(outcome)
    _echo_parts(selection, parts, fmt)


@cli.group()
def journal() -> None:
    """Manage the journal itself."""


@journal.command("migrate")
@click.option("--from", "source", required=True, metavar="LOCATION", help="File or URL.")
@click.option("--to", "dest", required=True, metavar="LOCATION", help="An empty journal.")
@lock_timeout_option
@common
def journal_migrate(
    source: str, dest: str, lock_timeout: float, verbose: bool, no_color: bool
) -> None:
    """Copy a journal with its lineage and history (file <-> postgresql://)."""
    from .journal import migrate, open_journal

    src, dst = open_journal(source), open_journal(dest)
    count = migrate(src, dst, timeout=lock_timeout)
    click.echo(f"Copied {count} records from {src.location} to {dst.location}.")


@cli.command()
@journal_option
@format_option("text", "json")
@team_option
@common
def show(
    journal_location: str | None, fmt: str, teams: tuple[str, ...], verbose: bool, no_color: bool
) -> None:
    """Print the journaled last-applied state (of every team, or each --team)."""
    from . import render
    from .journal import open_journal

    ctx = Context(verbose, no_color)
    selection = _select(ctx, teams, (), journal_location)
    show_state = render.state_json if fmt == "json" else render.state_text
    parts: dict[str, str] = {}
    for run in selection.runs:
        state = open_journal(run.journal).read()
        for warning in state.warnings:
            ctx.warn(f"team {run.name}: {warning}" if run.name else warning)
        parts[run.name or ""] = show_state(state)
    _echo_parts(selection, parts, fmt)


@cli.command()
@journal_option
@format_option("text", "json")
@team_option
@common
def log(
    journal_location: str | None, fmt: str, teams: tuple[str, ...], verbose: bool, no_color: bool
) -> None:
    """Show the journal's history: when, which plan, which calls, what happened."""
    import json

    from . import render
    from .journal import open_journal

    selection = _select(Context(verbose, no_color), teams, (), journal_location)
    parts: dict[str, str] = {}
    for run in selection.runs:
        entries = render.history(open_journal(run.journal).records())
        if fmt == "json":
            parts[run.name or ""] = json.dumps(entries, indent=2, ensure_ascii=False) + "\n"
        else:
            parts[run.name or ""] = render.history_text(entries)
    _echo_parts(selection, parts, fmt)


@cli.command()
@click.option(
    "--config", "project_file", is_flag=True, help="The schema of reconcile.yaml instead."
)
@output_options
def schema(project_file: bool, verbose: bool, no_color: bool) -> None:
    """Print the JSON Schema of a state file, or of reconcile.yaml (for editors)."""
    from . import config
    from .states import schema as state_file

    click.echo((config if project_file else state_file).schema_json(), nl=False)


@cli.command()
@click.option(
    "--plan",
    "plan_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="A plan file from `reconcile plan --out`.",
)
@click.option("--repo", envvar="GITHUB_REPOSITORY", required=True, metavar="OWNER/NAME")
@click.option("--pr", type=click.IntRange(min=1), required=True, help="Pull request number.")
@click.option("--marker", default="default", show_default=True, help="One comment per marker.")
@click.option("--commit", metavar="SHA", help="The commit the plan is for (shown in the comment).")
@click.option("--run-url", metavar="URL", help="Link to the CI run [default: from GITHUB_* vars].")
@click.option(
    "--author",
    metavar="LOGIN",
    default="github-actions[bot]",
    show_default=True,
    help="Whose marked comment is ours when the token cannot read its own login "
    "(GET /user answers 403 to the Actions token).",
)
@common
def comment(
    plan_file: str,
    repo: str,
    pr: int,
    marker: str,
    commit: str | None,
    run_url: str | None,
    author: str,
    verbose: bool,
    no_color: bool,
) -> None:
    """Create or update the pull request's one plan comment (needs GITHUB_TOKEN).

    A plan with no changes posts nothing unless the comment exists, which then says so.
    Only a comment the token's account wrote is edited. GITHUB_API_URL points at GitHub
    Enterprise Server.
    """
    from . import render
    from .usecases.comment import CommentRequest, post_plan_comment

    request = CommentRequest(
        plan_file,
        repo,
        pr,
        marker,
        commit,
        run_url,
        author,
        markdown=render.plan_markdown,
        teams_markdown=render.teams_plan_markdown,
    )
    click.echo(render.comment_text(post_plan_comment(request), pr))


@cli.command()
@click.option(
    "--plan",
    "plan_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="A plan file from `reconcile plan --out`.",
)
@click.option("--repo", envvar="GITHUB_REPOSITORY", required=True, metavar="OWNER/NAME")
@click.option("--pr", type=click.IntRange(min=1), required=True, help="Pull request number.")
@common
def approvals(plan_file: str, repo: str, pr: int, verbose: bool, no_color: bool) -> None:
    """Check the plan's approvals against the pull request's reviews (needs GITHUB_TOKEN).

    Exit 0 when every approval rule the plan names is met by an approval of the pull
    request's head commit, 1 naming each unmet rule and who could meet it (docs/approvals.md).
    Writes a step summary when GITHUB_STEP_SUMMARY is set.
    """
    from . import render
    from .usecases.approvals import GitHubAccess, check_plan_file

    outcome = check_plan_file(plan_file, pr, GitHubAccess(repo))
    click.echo(render.approvals_text(outcome), nl=False)
    _step_summary(render.approvals_markdown_summary(outcome))
    if not outcome.met:
        raise click.exceptions.Exit(1)


def _step_summary(markdown: str) -> None:
    """Append to the job's summary page ($GITHUB_STEP_SUMMARY), when there is one."""
    from .errors import ReconcileError

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(markdown + "\n")
    except OSError as exc:
        raise ReconcileError(f"GITHUB_STEP_SUMMARY: cannot write: {exc.strerror}") from None


@cli.command()
@click.option(
    "--drift",
    "drift_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="A drift report from `reconcile drift --format json --out FILE`.",
)
@click.option("--repo", envvar="GITHUB_REPOSITORY", required=True, metavar="OWNER/NAME")
@click.option("--marker", default="default", show_default=True, help="One open issue per marker.")
@click.option(
    "--author",
    metavar="LOGIN",
    default="github-actions[bot]",
    show_default=True,
    help="Whose marked issue is ours when the token cannot read its own login "
    "(GET /user answers 403 to the Actions token).",
)
@format_option("text", "json")
@common
def issue(
    drift_file: str,
    repo: str,
    marker: str,
    author: str,
    fmt: str,
    verbose: bool,
    no_color: bool,
) -> None:
    """Keep one GitHub issue for a drift report (needs GITHUB_TOKEN with issues: write).

    Opens it when there is drift, edits it while drift lasts, closes it with a comment when
    the report is clean; a clean report and no open issue sends nothing. Only an issue the
    token's account opened counts. Exit 0 whatever was done, 1 on errors.
    """
    from . import render
    from .usecases.issue import IssueRequest, run_issue

    outcome = run_issue(
        IssueRequest(drift_file, repo, marker, author, markdown=render.drift_markdown)
    )
    show = render.issue_json if fmt == "json" else render.issue_text
    click.echo(show(outcome), nl=False)


@cli.command("fmt")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--check", is_flag=True, help="Change nothing; exit 1 naming each file to change.")
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff of each change.")
@common
def fmt_command(
    paths: tuple[str, ...], check: bool, show_diff: bool, verbose: bool, no_color: bool
) -> None:
    """Rewrite state files in one canonical form, keeping every comment (default: states).

    Prints the name of each file it changes (with --check: would change). A file with
    errors is reported as `validate` would and left untouched.
    """
    from .errors import ReconcileError, StateFileError, printable
    from .usecases.files import FmtRequest, run_fmt
    from .wording import counted

    selection = _select(Context(verbose, no_color), (), paths, None)
    if selection.teams:
        paths = tuple(p for run in selection.runs for p in run.files)
    outcome = run_fmt(FmtRequest(paths, check, show_diff))
    for changed in outcome.changed:
        click.echo(printable(changed.path))
        click.echo(changed.diff, nl=False)
    Context(verbose, no_color).info(f"{counted(outcome.unchanged, 'file')} already formatted")
    if check and outcome.changed:
        message = (
            f"{counted(len(outcome.changed), 'file')} not formatted; run `reconcile fmt` to fix"
        )
        if not outcome.problems:
            raise ReconcileError(message)
        click.echo(f"error: {message}", err=True)
    if outcome.problems:
        raise StateFileError(outcome.problems)


@cli.command("import")
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
@journal_option
@parallelism_option
@lock_timeout_option
@one_team_option
@common
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
    from . import render
    from .usecases.files import ImportRequest, run_import

    selection = _select(Context(verbose, no_color), teams, (), journal_location)
    parallelism = _configured("parallelism", parallelism)
    run = selection.runs[0]
    if selection.teams:
        if len(teams) != 1:
            raise click.UsageError("import writes into one team: pass exactly one --team")
        from .config import team_of

        project = _project()
        assert project is not None
        if team_of(project, to) != [run.name]:
            raise click.UsageError(f"--to {to} is not under the paths of team {run.name}")
        state_paths = state_paths or run.paths
    request = ImportRequest(
        ids, to, overwrite, state_paths, run.journal, parallelism, lock_timeout, team=run.team
    )
    click.echo(render.import_text(run_import(request)), nl=False)


@cli.command()
@click.option(
    "--id", "counter_id", metavar="ID", help="Read this incident [default: the first listed]."
)
@click.option(
    "--shapes",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the answers' shapes (every value replaced by its type) to FILE, for a bug report.",
)
@format_option("text", "json")
@team_option
@common
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

    from . import render
    from .errors import printable
    from .planfile import atomic_write
    from .usecases.doctor import DoctorRequest, run_doctor

    ctx = Context(verbose, no_color)
    selection = _select(ctx, teams, (), None)
    if shapes:
        _refuse_inputs_as_out(shapes, selection)
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


@cli.command()
@click.option(
    "--teams",
    "team_names",
    metavar="NAME,...",
    help="Write reconcile.yaml with these teams, and an example file in each team's folder.",
)
@click.option(
    "--github", is_flag=True, help="Also the plan/apply workflows and .pre-commit-config.yaml."
)
@output_options
def init(team_names: str | None, github: bool, verbose: bool, no_color: bool) -> None:
    """Scaffold a states repository in the working directory; never overwrite a file.

    Writes a commented example state file and its JSON Schema; with --teams, reconcile.yaml
    and an example file per team instead; with --github, the GitHub workflows and the
    pre-commit hooks. A file that exists is reported and left as it is (exit 0).
    """
    from . import render
    from .usecases.init import InitRequest, run_init

    names = tuple(n.strip() for n in team_names.split(",")) if team_names is not None else ()
    click.echo(render.init_text(run_init(InitRequest(".", names, github))), nl=False)


#: Each command's line in `reconcile --help`: whole sentences that fit, where click would cut
#: the docstring's first sentence mid-way.
SHORT_HELP = {
    "accept": "Write drifted live values into the state files and the journal.",
    "apply": "Make the API calls: a saved plan, or plan the files and confirm.",
    "approvals": "Check a plan's approvals against the pull request's reviews.",
    "comment": "Create or update the pull request's plan comment.",
    "doctor": "Check that reconcile reads this account's answers (GETs only).",
    "drift": "Report live values that differ from the state files.",
    "fmt": "Rewrite state files in canonical form, keeping comments.",
    "import": "Write incidents' live state into a state file and the journal.",
    "init": "Scaffold a states repository here; never overwrite a file.",
    "issue": "Keep one GitHub issue for a drift report.",
    "journal": "Manage the journal itself.",
    "log": "Show the journal's history: runs, plans, calls, outcomes.",
    "plan": "Show the API calls that would make Spike match the state files.",
    "refresh": "Record live values from Spike in the journal.",
    "sandbox": "Run a local Spike-compatible API for trying apply.",
    "schema": "Print the JSON Schema of a state file or of reconcile.yaml.",
    "show": "Print the journaled last-applied state.",
    "teams": "List the Spike teams the API key can see.",
    "validate": "Check state files only; exit 0 valid, 1 invalid.",
}
for _name, _line in SHORT_HELP.items():
    cli.commands[_name].short_help = _line


# ---------------------------------------------------------------------------------------------


class ShownStream(io.TextIOBase):
    """stdout or stderr as the CLI's output boundary: every text on its way out has each
    registered secret masked (reconciler.redact), whatever printed it, and a write the stream
    refuses becomes one clean error instead of a traceback.

    Text is passed on a line at a time, so that a secret split across two writes is still
    seen whole; `flush` (which click.echo calls after every message) passes on the rest.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending = ""
        self.failed = False
        self._bytes = ShownBytes(self)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._stream, "errors", None)

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def buffer(self) -> ShownBytes:
        """Where bytes go (click.echo writes bytes to a stream's `buffer`, as shell
        completion does): they are shown as text, through this stream, so masked too."""
        return self._bytes

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click probes streams with b"": this one takes text
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        pending = self._pending + text
        cut = pending.rfind("\n") + 1
        self._pending = pending[cut:]
        if cut:
            self._send(pending[:cut])
        return len(text)

    def flush(self) -> None:
        if self._pending:
            text, self._pending = self._pending, ""
            self._send(text)
        if not self.failed:
            try:
                self._stream.flush()
            except OSError as exc:
                raise self._failure(exc) from None

    def _send(self, text: str) -> None:
        from .redact import redact

        if self.failed:  # already reported; the rest has nowhere to go
            return
        try:
            self._stream.write(redact(text))
        except OSError as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: OSError) -> Exception:
        from .errors import ReconcileError

        self.failed = True
        # The interpreter flushes the standard streams once more at exit; pointed at
        # /dev/null, what the stream still buffers goes nowhere instead of into a second error.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            fd = self._stream.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        return ReconcileError(f"cannot write output: {exc.strerror or exc}")


class ShownBytes:
    """The `buffer` of a ShownStream: bytes decoded with the stream's encoding (a character
    split across two writes is kept whole) and passed on as text. Not an io class: those
    flush (so may fail) whenever the garbage collector closes them."""

    def __init__(self, shown: ShownStream) -> None:
        self._shown = shown
        self._decoder = codecs.getincrementaldecoder(shown.encoding)(errors="replace")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._shown.write(self._decoder.decode(chunk))
        return len(chunk)

    def flush(self) -> None:
        self._shown.flush()


#: Set by SIGTERM, which is then handled as Ctrl-C (exit 143 instead of 130).
_terminated = threading.Event()


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM takes Ctrl-C's path, so the same clean-up runs (locks released, half-written
    files removed). Raising here instead would land in whatever asyncio task was running
    (a call in flight) and leave it failed and unreported; as a SIGINT, asyncio's runner
    cancels its main task cleanly first."""
    _terminated.set()
    if callable(signal.getsignal(signal.SIGINT)):
        _thread.interrupt_main(signal.SIGINT)
    else:
        # SIGINT is ignored (a script's background job inherits that): interrupt_main would
        # do nothing, and SIGTERM must still end the command.
        raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: every ReconcileError becomes a message and exit 1; usage errors too;
    Ctrl-C and SIGTERM exit 130 and 143. Everything shown passes through `ShownStream`."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = ShownStream(sys.stdout), ShownStream(sys.stderr)
    installed = threading.current_thread() is threading.main_thread()  # else signal() fails
    previous = signal.signal(signal.SIGTERM, _terminate) if installed else None
    try:
        code = _run(argv)
    finally:
        if installed:  # None: a handler not set from Python, i.e. the default
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    # Only a bug escapes _run: the streams then stay wrapped, so its traceback is masked too.
    sys.stdout, sys.stderr = streams
    return code


def _run(argv: Sequence[str] | None) -> int:
    from .errors import ProjectFileError, ReconcileError, StateFileError
    from .wording import counted

    try:
        try:
            code = cli.main(args=argv, prog_name="reconcile", standalone_mode=False)
            sys.stdout.flush()
            sys.stderr.flush()
        except click.ClickException as exc:
            _show_click_error(exc)
            return 1
        except click.Abort as exc:
            # click turns Ctrl-C (and so SIGTERM) into Abort; EOF on a prompt too.
            if isinstance(exc.__cause__, KeyboardInterrupt):
                return _interrupted(exc.__cause__)
            click.echo("Aborted.", err=True)
            return 1
        except StateFileError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            where = "the project file" if isinstance(exc, ProjectFileError) else "the state files"
            click.echo(f"error: {counted(len(exc.problems), 'problem')} in {where}", err=True)
            return 1
        except ReconcileError as exc:
            click.echo(f"error: {exc}", err=True)
            return 1
        except KeyboardInterrupt as exc:
            return _interrupted(exc)
        sys.stderr.flush()
    except ReconcileError:  # stderr itself refused the message: nothing more can be said
        return 1
    return code if isinstance(code, int) else 0


def _show_click_error(exc: click.ClickException) -> None:
    """A usage error as click shows it (the usage line, where to find help), but its last
    line is `error: ...` like every other error of this tool, not click's `Error: ...`."""
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    if ctx is not None:
        hint = ""
        if ctx.command.get_help_option(ctx) is not None:
            hint = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.\n"
        click.echo(f"{ctx.get_usage()}\n{hint}", err=True, color=ctx.color)
    click.echo(f"error: {exc.format_message()}", err=True)


def _interrupted(exc: KeyboardInterrupt) -> int:
    terminated = _terminated.is_set()
    click.echo("Terminated." if terminated else "Interrupted.", err=True)
    return 128 + (signal.SIGTERM if terminated else signal.SIGINT)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
