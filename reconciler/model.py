"""Value types shared by every layer: fields, values, changes, operations, and the predicates
that say which values are valid (the error tree is errors.py).

Nothing here does I/O. Everything sorts deterministically, so plans are stable byte for byte.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ReconcileError

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
IncidentMap = dict[str, Fields]


#: The most escalations a state file may ask for: each is one call, so 3,000,000 planned as
#: many calls; an escalation policy has a handful of levels.
MAX_ESCALATIONS = 100


def is_desired_value(name: object, value: object) -> bool:
    """True when `value` may be asked for in field `name` (state files, a plan's `after`):
    a valid value, and an escalation count of at most MAX_ESCALATIONS."""
    if name == "escalations" and type(value) is int and value > MAX_ESCALATIONS:
        return False
    return is_field_value(name, value)


def is_field_value(name: object, value: object) -> bool:
    """True when `value` is a valid value of field `name` (for untrusted plans and journals).

    A recorded escalation count has no upper bound (the operator records what Spike's
    activity log shows); a desired one has: `is_desired_value`."""
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


@dataclass(frozen=True, order=True, slots=True)
class Change:
    """One managed field moving from its last-applied value to the desired one."""

    incident: str
    field: str
    before: Value
    after: Value
    before_known: bool
    #: The rule whose expansion asked for this value (rules.py); None for a state file's entry.
    rule: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "incident": self.incident,
            "field": self.field,
            "before": self.before,
            "after": self.after,
        }
        if not self.before_known:
            out["before_known"] = False
        if self.rule is not None:
            out["rule"] = self.rule
        return out


@dataclass(frozen=True, order=True, slots=True)
class Drift:
    """A field Spike reports differently from the journal: changed outside reconcile.

    `policy` is the field's drift policy (docs/drift.md): with `revert` the plan is made
    against the live value (and reverts it); with `warn` or `accept` a live value that differs
    from the desired one is only reported, and the journal keeps its value.
    """

    incident: str
    field: str
    journaled: Value
    live: Value
    policy: str = "revert"

    def to_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "field": self.field,
            "journaled": self.journaled,
            "live": self.live,
            "policy": self.policy,
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


@dataclass(frozen=True)
class Unsafe:
    """The unsafe rule's thresholds (docs/plan-format.md): a plan that changes or forgets
    recorded values on more than `max_share` of the journaled incidents is unsafe, once the
    journal records at least `min_incidents`. reconcile.yaml may set them."""

    min_incidents: int = 10
    max_share: float = 0.3

    def exceeded(self, changed: int, journaled: int) -> bool:
        """Whether `changed` of `journaled` incidents is too many."""
        return journaled >= self.min_incidents and changed > self.max_share * journaled
