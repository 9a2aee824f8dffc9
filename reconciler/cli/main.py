"""The entry point: the `reconcile` group of every command, the streams and signals set up
around a run, and every error mapped to its message and exit code."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence

import click

from . import apply, drift, files, github, journal, plan, sandbox, teams
from .signals import interrupted, terminate
from .streams import ShownStream


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spike-reconcile", prog_name="reconcile")
def cli() -> None:
    """Desired state for Spike.sh incidents: plan in review, apply after merge.

    State files (YAML) say how incidents should be; `plan` diffs them against the journal of
    what was last applied (no network needed) and `apply` makes the batched API calls.
    """


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
    github.issue,
):
    cli.add_command(command)


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

    try:
        try:
            code = cli.main(args=argv, prog_name="reconcile", standalone_mode=False)
            sys.stdout.flush()
            sys.stderr.flush()
        except click.ClickException as exc:
            exc.show()
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
            count = len(exc.problems)
            where = "the project file" if isinstance(exc, ProjectFileError) else "the state files"
            click.echo(f"error: {count} problem{'s' * (count != 1)} in {where}", err=True)
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
