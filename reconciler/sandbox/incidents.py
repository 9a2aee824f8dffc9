"""A sandbox incident and its changes: the state the local API serves, changed all-or-nothing
(every change validated before any is made), and the seeds read from state or JSON files.

core.py (SandboxCore) holds these per team and answers requests with them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from ..errors import ReconcileError
from ..model import PRIORITIES, SEVERITIES, is_counter_id

#: Spike's status codes in API data: triggered, acknowledged, resolved.
API_STATUSES = ("NACK", "ACK", "RES")
#: The keys an incident has in the Python API and in control requests.
INCIDENT_KEYS = (
    "status",
    "priority",
    "severity",
    "public_sharing",
    "escalations",
    "message",
    "title",
    "age",
)


@dataclass
class _Incident:
    status: str = "NACK"
    priority: str | None = None
    severity: str | None = None
    public_sharing: bool = False
    escalations: int = 0
    message: str = ""
    #: The title in list items; None: the message.
    title: str | None = None
    #: When it was triggered and (while acknowledged) when it was acknowledged, as epoch seconds.
    nack_at: float = 0.0
    ack_at: float | None = None
    #: What happened since the trigger, oldest first: `{"action", "at", "by"[, "value"]}`.
    activities: list[dict[str, Any]] = field(default_factory=list)

    def state(self) -> tuple[Any, ...]:
        """What an activity is logged for: status, priority, severity, sharing, escalations."""
        return (self.status, self.priority, self.severity, self.public_sharing, self.escalations)

    def log_changes(self, before: tuple[Any, ...], now: float, by: str) -> None:
        """Log one activity per field that differs from `before` (a `state()`); escalations
        one per level."""
        status, priority, severity, sharing, escalations = before
        at = _iso(now)
        if self.status != status:
            moved = {"NACK": "unacknowledged", "ACK": "acknowledged", "RES": "resolved"}
            self.activities.append({"action": moved[self.status], "at": at, "by": by})
        for action, old, new in (
            ("priority changed", priority, self.priority),
            ("severity changed", severity, self.severity),
            ("public sharing changed", sharing, self.public_sharing),
        ):
            if old != new:
                self.activities.append({"action": action, "at": at, "by": by, "value": new})
        for _ in range(self.escalations - escalations):
            self.activities.append({"action": "escalated", "at": at, "by": by})

    def activity_log(self, counter_id: str) -> dict[str, Any]:
        """The answer of `GET /incidents/{counterId}/activity-log`."""
        trigger = {"action": "triggered", "at": _iso(self.nack_at), "by": "alert"}
        return {
            "incident": {"counterId": counter_id, "status": self.status, "message": self.message},
            "activities": [trigger, *(dict(a) for a in self.activities)],
        }

    def snapshot(self, counter_id: str) -> dict[str, Any]:
        """The shape of `GET /incidents/{id}`'s "incident", plus public_sharing and escalations
        (and title, when one was set)."""
        snapshot: dict[str, Any] = {
            "counterId": counter_id,
            "status": self.status,
            "message": self.message,
            "priority": self.priority,
            "severity": self.severity,
            "public_sharing": self.public_sharing,
            "escalations": self.escalations,
        }
        if self.title is not None:
            snapshot["title"] = self.title
        return snapshot

    def moved(self, previous: str, now: float) -> None:
        """Stamp a status change: acknowledging starts the acknowledge clock, leaving ACK
        stops it. The trigger time (nack_at) never changes."""
        if self.status == previous:
            return
        self.ack_at = now if self.status == "ACK" else None

    def list_item(self, counter_id: str) -> dict[str, Any]:
        """An item of `GET /incidents/triggered` and `/incidents/acknowledged`."""
        item: dict[str, Any] = {
            "counterId": counter_id,
            "status": self.status,
            "title": self.message if self.title is None else self.title,
            "message": self.message,
            "NACK_at": _iso(self.nack_at),
        }
        if self.ack_at is not None:
            item["ACK_at"] = _iso(self.ack_at)
        # Spike's items may lack them: present only when set, so clients learn to read the
        # incident (GET /incidents/{counterId}) for the rest.
        if self.priority is not None:
            item["priority"] = self.priority
        if self.severity is not None:
            item["severity"] = self.severity
        return item


def _iso(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. `2026-11-30T15:10:03.123Z`."""
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_AGE = re.compile(r"([0-9]{1,9})([dhms])")
_AGE_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _age_seconds(where: str, value: object) -> float:
    """An age as seconds: `"3d"`, `"12h"`, `"30m"`, `"90s"` or a number of seconds, 0 or more."""
    if isinstance(value, str):
        match = _AGE.fullmatch(value)
        if match is not None:
            return int(match.group(1)) * _AGE_UNITS[match.group(2)]
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e10:
        return float(value)  # NaN and infinities failed the range
    raise ValueError(f'{where} must be seconds (0 or more) or a string like "3d", "12h"')


def _default_message(counter_id: str) -> str:
    return f"Sandbox incident {counter_id}"


#: What `set_incidents` takes: `{id: {field: value}}`, `{id: None}` deleting that incident.
Changes = Mapping[str, Mapping[str, object] | None]


def _check_changes(
    changes: Changes, existing: Mapping[str, _Incident], now: float
) -> dict[str, _Incident | None]:
    """Validate every change and return the incidents as they would become (None: deleted);
    raise ValueError.

    Validating everything before touching anything is what makes a change all-or-nothing.
    `now` (epoch seconds) stamps new incidents, acknowledgements and ages.
    """
    if not isinstance(changes, Mapping):
        raise ValueError("incidents must be a mapping of counter id -> fields")
    out: dict[str, _Incident | None] = {}
    for cid, fields in changes.items():
        if not is_counter_id(cid):
            raise ValueError(f"invalid counter id {cid!r}")
        current = existing.get(cid)
        if fields is None:
            if current is None:
                raise ValueError(f"incident {cid}: cannot delete it, there is no such incident")
            out[cid] = None
            continue
        if not isinstance(fields, Mapping):
            raise ValueError(f"incident {cid}: fields must be a mapping (or null: delete it)")
        incident = (
            copy.copy(current)
            if current is not None
            else _Incident(message=_default_message(cid), nack_at=now)
        )
        incident.activities = list(incident.activities)
        before = incident.state()
        for key, value in fields.items():
            _set_field(cid, incident, key, value, now)
        if current is not None:
            incident.log_changes(before, now, "sandbox")
        out[cid] = incident
    return out


def _new_incidents(changes: Changes, now: float) -> dict[str, _Incident]:
    """`_check_changes` from nothing: there is nothing to delete, so every value is set."""
    return {
        cid: incident
        for cid, incident in _check_changes(changes, {}, now).items()
        if incident is not None
    }


def _set_field(cid: str, incident: _Incident, key: object, value: object, now: float) -> None:
    where = f"incident {cid}: {key}"
    if key == "status":
        if value not in API_STATUSES:
            raise ValueError(f"{where} must be one of {', '.join(API_STATUSES)}")
        previous, incident.status = incident.status, value
        incident.moved(previous, now)
    elif key == "priority":
        if value is not None and value not in PRIORITIES:
            raise ValueError(f"{where} must be one of {', '.join(PRIORITIES)} or null")
        incident.priority = cast("str | None", value)
    elif key == "severity":
        if value is not None and value not in SEVERITIES:
            raise ValueError(f"{where} must be one of {', '.join(SEVERITIES)} or null")
        incident.severity = cast("str | None", value)
    elif key == "public_sharing":
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false")
        incident.public_sharing = value
    elif key == "escalations":
        # bool is an int in Python; True escalations is a typo, not a count.
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{where} must be a whole number, 0 or more")
        incident.escalations = value
    elif key == "message":
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string")
        incident.message = value
    elif key == "title":
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where} must be a string or null")
        incident.title = value
    elif key == "age":
        # Triggered that long ago; an acknowledgement cannot predate the trigger.
        incident.nack_at = now - _age_seconds(where, value)
        if incident.ack_at is not None:
            incident.ack_at = max(incident.ack_at, incident.nack_at)
    elif key == "counterId":
        # Accepted so that a snapshot from incidents() can be fed back as it is.
        if value != cid:
            raise ValueError(f"{where} must equal the incident's id")
    else:
        raise ValueError(f"incident {cid}: unknown key {key!r} (valid: {', '.join(INCIDENT_KEYS)})")


# ---------------------------------------------------------------------------------------------
# Seeding


def seed_from_paths(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """One fresh incident per id in the state files under `paths`.

    Each is triggered (NACK), with no priority or severity, sharing off and 0 escalations: the
    state a new Spike incident is in, so that `apply` has everything to do. Raises
    StateFileError (from `reconciler.states`) when the files are invalid.
    """
    from ..states.loader import load

    desired = load(paths)
    return {
        cid: _Incident(message=_default_message(cid)).snapshot(cid) for cid in desired.incidents
    }


def seed_from_json(path: str) -> dict[str, dict[str, Any]]:
    """Incidents from a JSON file `{"incidents": {id: {"status": "NACK", ...}}}`.

    Fields left out take the fresh-incident defaults. An incident may have a `title` and an
    `age` ("3d", "12h", or seconds: triggered that long before the sandbox starts), kept in
    the result for SandboxCore. Raises ReconcileError naming the file for a file that cannot be
    read, is not JSON or does not have that shape.
    """
    try:
        data = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ReconcileError(f"{path}: cannot read: {exc.strerror}") from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ReconcileError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"incidents"}:
        raise ReconcileError(f'{path}: expected an object with one key, "incidents"')
    try:
        incidents = _new_incidents(data["incidents"], 0.0)
    except ValueError as exc:
        raise ReconcileError(f"{path}: {exc}") from exc
    seed = {cid: incident.snapshot(cid) for cid, incident in incidents.items()}
    for cid, incident in incidents.items():
        if "age" in data["incidents"][cid]:
            seed[cid]["age"] = 0.0 - incident.nack_at  # in seconds, validated
    return seed
