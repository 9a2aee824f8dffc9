"""Value types shared by every layer: fields, values, changes, operations and the error tree.

Nothing here does I/O. Everything sorts deterministically, so plans are stable byte for byte.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["triggered", "acknowledged", "resolved"]
Priority = Literal["p1", "p2", "p3", "p4", "p5"]
Severity = Literal["sev1", "sev2", "sev3"]
FieldName = Literal["status", "priority", "severity", "public_sharing", "escalations"]

STATUSES: tuple[Status, ...] = ("triggered", "acknowledged", "resolved")
PRIORITIES: tuple[Priority, ...] = ("p1", "p2", "p3", "p4", "p5")
SEVERITIES: tuple[Severity, ...] = ("sev1", "sev2", "sev3")
#: The order fields are shown and stored in, everywhere.
FIELDS: tuple[FieldName, ...] = ("status", "priority", "severity", "public_sharing", "escalations")
#: The fields a read of a live incident can tell; the others keep their journaled values.
LIVE_FIELDS: tuple[FieldName, ...] = ("status", "priority", "severity")

#: A field's value: a status, a priority or severity (None = ensure none), a bool or a count.
Value = str | bool | int | None
#: One incident's fields; a field that is absent is unmanaged (desired) or unknown (journal).
Fields = dict[str, Value]
#: Incident counter id -> its fields.
StateMap = dict[str, Fields]


def is_field_value(name: object, value: object) -> bool:
    """True when `value` is a valid value of field `name` (for untrusted plans and journals)."""
    if name == "status":
        return value in STATUSES
    if name == "priority":
        return value is None or value in PRIORITIES
    if name == "severity":
        return value is None or value in SEVERITIES
    if name == "public_sharing":
        return isinstance(value, bool)
    if name == "escalations":
        return type(value) is int and value >= 0
    return False


COUNTER_ID_PATTERN = r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"
COUNTER_ID_MAX = 64
_COUNTER_ID = re.compile(COUNTER_ID_PATTERN)


def is_counter_id(value: object) -> bool:
    """True for a Spike counter id that is safe to put in a URL path."""
    return (
        isinstance(value, str)
        and len(value) <= COUNTER_ID_MAX
        and _COUNTER_ID.fullmatch(value) is not None
    )


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_header_secret(name: str, value: str) -> None:
    """Refuse a credential that cannot travel in an HTTP header, without ever showing it.

    A key pasted with its trailing newline would otherwise fail inside the HTTP library,
    whose error message quotes the header value.
    """
    if not value or not all("!" <= ch <= "~" for ch in value):
        raise ReconcileError(
            f"{name} holds whitespace or non-ASCII characters, which cannot be sent in an HTTP "
            "header (a trailing newline from a secret store?); its value is not shown"
        )


def printable(name: str) -> str:
    """`name` (a file name, a warning from a plan file) safe to show on one line: control
    characters and other non-printables escaped as in Python literals (\\n, \\x1b, \\u202e).

    A state file's name comes from whoever wrote the pull request; raw, a newline in it would
    start a line of its own in a CI log, e.g. a forged `::error::` annotation.
    """
    if name.isprintable():
        return name
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in name)


@dataclass(frozen=True, order=True, slots=True)
class Change:
    """One managed field moving from its last-applied value to the desired one."""

    incident: str
    field: str
    before: Value
    after: Value
    before_known: bool

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "incident": self.incident,
            "field": self.field,
            "before": self.before,
            "after": self.after,
        }
        if not self.before_known:
            out["before_known"] = False
        return out


@dataclass(frozen=True, order=True, slots=True)
class Drift:
    """A field Spike reports differently from the journal: changed outside reconcile."""

    incident: str
    field: str
    journaled: Value
    live: Value

    def to_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "field": self.field,
            "journaled": self.journaled,
            "live": self.live,
        }


@dataclass(frozen=True, slots=True)
class Operation:
    """One HTTP call to the Spike API, exactly as it will be sent."""

    method: str
    path: str
    body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> tuple[str, ...]:
        """The incidents this call touches."""
        if "ids" in self.body:
            return tuple(self.body["ids"])
        return (self.path.split("/")[2],)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "body": dict(self.body)}


# ---------------------------------------------------------------------------------------------
# Errors. One root; the CLI boundary turns each into a message and exit code 1.


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
