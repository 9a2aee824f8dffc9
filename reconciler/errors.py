"""The whole exception tree. One root, ReconcileError: the CLI's one error boundary turns each
into a one-line message and exit code 1. Imports nothing from the package.
"""

from __future__ import annotations

from dataclasses import dataclass


def printable(name: str) -> str:
    """`name` (a file name, a warning from a plan file) safe to show on one line: control
    characters and other non-printables escaped as in Python literals (\\n, \\x1b, \\u202e).

    A state file's name comes from whoever wrote the pull request; raw, a newline in it would
    start a line of its own in a CI log, e.g. a forged `::error::` annotation.
    """
    if name.isprintable():
        return name
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in name)


class ReconcileError(Exception):
    """Root of every error this tool reports to the user (exit 1, no traceback)."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one input, with where it is."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        # The message may quote another file's name (a duplicate id) or the file's text.
        path, message = printable(self.path), printable(self.message)
        if self.line == 0:  # about the file as a whole (missing, unreadable)
            return f"{path}: {message}"
        return f"{path}:{self.line}:{self.column}: {message}"


class StateFileError(ReconcileError):
    """One or more state files are invalid; carries every problem found, with positions."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ProjectFileError(StateFileError):
    """reconcile.yaml is invalid; its problems are reported as a state file's are."""


class PlanError(ReconcileError):
    """Desired states that cannot be planned (e.g. re-opening a resolved incident)."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("\n".join(messages))


class JournalError(ReconcileError):
    """The journal cannot be read, written or locked."""


class LockHeldError(JournalError):
    """Another apply holds the journal's lock."""


class StalePlanError(ReconcileError):
    """A saved plan was made against a journal that has moved on."""


class InvalidPlanError(ReconcileError):
    """A saved plan file is malformed, edited, or asks for a call outside the endpoint table."""


class UnsafePlanError(ReconcileError):
    """A plan changes too much of the journaled state to apply without --force."""


class ApiError(ReconcileError):
    """The Spike API refused or failed a call. Carries the request and response, never the key."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status_code: int | None = None,
        api_message: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status_code = status_code
        self.api_message = api_message
        super().__init__(message)


class CredentialsError(ApiError):
    """401/403: the key or team id is wrong. Stops an apply at once."""


class UncertainOutcomeError(ApiError):
    """A non-idempotent call (escalate) failed after it may have reached Spike (a 500, 502,
    504, a timeout or a reset after sending): whether Spike acted is unknown, so it is never
    retried; the journal records the escalation as uncertain."""


class ApiUnavailableError(ApiError):
    """Too many consecutive calls failed (an outage, a wrong SPIKE_API_URL): the client stops
    sending instead of retrying every remaining call. Stops an apply at once."""


class GitHubError(ReconcileError):
    """GitHub refused a call or could not be reached. Never holds the token."""


class LiveStateError(ReconcileError):
    """Spike answered, but not in a shape this tool can read safely."""


class RuleError(PlanError):
    """Rules that cannot be expanded: a rule over its max_matches, two rules setting one field
    of one incident differently, a field a rule reads that Spike did not report. Raised
    before any call; carries every problem."""
