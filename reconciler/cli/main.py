"""The entry point: the `reconcile` group of every command, the streams and signals set up
around a run, and every error mapped to its message and exit code."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence

import click

from . import apply, core, drift, files, github, journal, plan, sandbox, teams
from .signals import interrupted, terminate
from .streams import ShownStream


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spike-reconcile", prog_name="reconcile")
@core.common
@click.pass_context
def cli(ctx: click.Context, verbose: bool, no_color: bool) -> None:
    """Desired state for Spike.sh incidents: plan in review, apply after merge.

    State files (YAML) say how incidents should be; `plan` diffs them against the journal of
    what was last applied (no network needed) and `apply` makes the batched API calls.
    """
    ctx.meta[core.SHARED] = {"verbose": verbose, "no_color": no_color}


for command in (
    plan.validate,
    plan.plan,
    apply.apply,
    sandbox.sandbox,
    drift.refresh,
    drift.drift,
    drift.accept,
    teams.teams,
    teams.doctor,
    journal.journal,
    journal.show,
    journal.log,
    files.schema,
    files.fmt_command,
    files.import_command,
    files.init,
    github.comment,
    github.approvals,
    github.issue,
):
    cli.add_command(command)

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: every ReconcileError becomes a message and exit 1; usage errors too;
    Ctrl-C and SIGTERM exit 130 and 143. Everything shown passes through `ShownStream`."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = ShownStream(sys.stdout), ShownStream(sys.stderr)
    installed = threading.current_thread() is threading.main_thread()  # else signal() fails
    previous = signal.signal(signal.SIGTERM, terminate) if installed else None
    try:
        code = _run(argv)
    finally:
        if installed:  # None: a handler not set from Python, i.e. the default
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    # Only a bug escapes _run: the streams then stay wrapped, so its traceback is masked too.
    sys.stdout, sys.stderr = streams
    return code


def _run(argv: Sequence[str] | None) -> int:
    from ..errors import ProjectFileError, ReconcileError, StateFileError
    from ..wording import counted

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
                return interrupted(exc.__cause__)
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
            return interrupted(exc)
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
