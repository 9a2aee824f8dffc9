"""The `reconcile` command line: parse options, call one function, map errors to exit codes.

A package of command modules (plan, apply, drift, journal, github, files, teams, sandbox)
over one thin shared core (core.py: the output settings, each option defined once, the
project and teams a command runs for); main.py is the entry point (`reconciler.cli:main`),
streams.py the output boundary, signals.py SIGTERM and Ctrl-C, completion.py shell
completion's candidates. Heavy modules (pydantic, ruamel.yaml, httpx) are imported inside
the commands, so that `reconcile --help` starts fast.
"""

from __future__ import annotations

from .main import cli, main
from .streams import ShownStream

__all__ = ["ShownStream", "cli", "main"]
