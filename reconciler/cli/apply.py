"""`reconcile apply`: a saved plan exactly, or the state files planned and confirmed."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..planner import DEFAULT_BATCH_SIZE
from . import core
from .completion import complete_ids

if TYPE_CHECKING:
    from ..usecases.plan import ProjectPlan


@click.command()
@click.argument("args", nargs=-1, type=click.Path(), metavar="[PLANFILE | PATH...]")
@click.option("--auto-approve", is_flag=True, help="Apply without asking (required off a TTY).")
@core.journal_option
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help=f"[default: {DEFAULT_BATCH_SIZE}]",
)
@core.parallelism_option
@core.lock_timeout_option
@click.option("--force", is_flag=True, help="Apply a plan marked unsafe.")
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="ID",
    help="Apply only these.",
    shell_complete=complete_ids,
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
@core.format_option("text", "json")
@core.team_option
@core.common
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
    from .. import render
    from ..usecases.apply import ApplyRequest, run_apply
    from ..usecases.approvals import ApprovalGate, GitHubAccess

    if force_approvals is not None and not force_approvals.strip():
        raise click.UsageError("--force-approvals needs a reason")
    gate = ApprovalGate(GitHubAccess(repo) if repo else None, pr, force_approvals)

    ctx = core.Context(verbose, no_color)
    plan_file = None
    named_like_a_plan = len(args) == 1 and not args[0].endswith((".yaml", ".yml"))
    suffix = os.path.splitext(os.path.basename(args[0]))[1] if len(args) == 1 else ""
    if named_like_a_plan and suffix and not os.path.exists(args[0]):
        from ..errors import ReconcileError, printable

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
        selection = core.select(ctx, teams, paths, journal_location)
        if refresh:
            selection.credentials_first()
        batch_size = core.configured("batch_size", batch_size) or DEFAULT_BATCH_SIZE
        parallelism = core.configured("parallelism", parallelism)
    unstarted.teams = selection.named

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

    def confirm(made: ProjectPlan) -> bool:
        click.echo(render.plan_text(made, color=ctx.color(shown), full=full), err=fmt == "json")
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
            paths=run.paths,
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
            approvals=core.approval_rules(),
            gate=gate,
        )
        for run in selection.runs
    ]
    observe = ctx.info if ctx.verbose else _retry_notes
    with unstarted:
        outcome = run_apply(
            requests, plan_file=plan_file, confirm=confirm, observe=observe, progress=progress
        )
    for warning in outcome.warnings:
        ctx.warn(warning)
    stopped = outcome.stopped
    # Self-heal with nothing to revert still shows the drift it left alone (warn, accept).
    held = outcome.drift_left if refresh else None
    if held is not None:
        text = render.plan_text(held, color=ctx.color(shown), full=full)
        click.echo(text, err=fmt == "json", nl=False)
    if fmt == "json":
        click.echo(render.apply_json(outcome), nl=False)
    elif held is None and stopped is None:
        click.echo(render.apply_text(outcome, color=ctx.color(sys.stdout)), nl=False)
    if stopped is not None:  # the error line, as the one boundary prints it
        click.echo(f"error: {render.apply_stopped(stopped)}", err=True)
    if outcome.signal is not None:
        raise click.exceptions.Exit(128 + outcome.signal)
    if outcome.failed:
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
        from .. import render
        from ..errors import ReconcileError

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
    from ..spike.client import RETRY_NOTE

    if message.startswith(RETRY_NOTE):
        click.echo(f"  {message}", err=True)
