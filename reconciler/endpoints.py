"""The endpoint table: which call sets which field, in which wave (docs/api-calls.md,
Endpoints; Order: waves).

Pure data and functions. The planner builds operations from it, the journal derives what an
applied operation changed from it, and `apply` checks every operation of an untrusted plan
file against it before making any call.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidPlanError
from .model import PRIORITIES, SEVERITIES, Operation, Value, is_counter_id

ACKNOWLEDGE = "/incidents/acknowledge"
UNACKNOWLEDGE = "/incidents/unacknowledge"
RESOLVE = "/incidents/resolve"
ESCALATE = "/incidents/escalate"
PRIORITY = "/incidents/priority"
PRIORITY_REMOVE = "/incidents/priority/remove"
SEVERITY = "/incidents/severity"
SEVERITY_REMOVE = "/incidents/severity/remove"
_PUBLIC_SHARING = re.compile(r"/incidents/([^/]+)/public-sharing")

#: (method, path) -> (wave, field, fixed value or None when the value comes from the body).
_BATCH_ENDPOINTS: dict[tuple[str, str], tuple[int, str, Value]] = {
    ("POST", ACKNOWLEDGE): (1, "status", "acknowledged"),
    ("POST", UNACKNOWLEDGE): (1, "status", "triggered"),
    ("POST", PRIORITY): (2, "priority", None),
    ("DELETE", PRIORITY_REMOVE): (2, "priority", None),
    ("POST", SEVERITY): (2, "severity", None),
    ("DELETE", SEVERITY_REMOVE): (2, "severity", None),
    ("POST", ESCALATE): (3, "escalations", None),
    ("POST", RESOLVE): (4, "status", "resolved"),
}
#: Body keys besides "ids" that an endpoint takes, with their allowed values.
_VALUE_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    PRIORITY: ("priority", PRIORITIES),
    SEVERITY: ("severity", SEVERITIES),
}
WAVES = (1, 2, 3, 4)


def public_sharing_path(counter_id: str) -> str:
    return f"/incidents/{counter_id}/public-sharing"


def wave_of(op: Operation) -> int:
    """The execution wave: 1 (un)acknowledge, 2 priority/severity/sharing, 3 escalate, 4 resolve."""
    entry = _BATCH_ENDPOINTS.get((op.method, op.path))
    return entry[0] if entry else 2


def effects(op: Operation) -> tuple[str, Value]:
    """The (field, value) an applied operation leaves on each of its incidents.

    For escalate the value is the increment (1): the journal adds it to its count.
    """
    entry = _BATCH_ENDPOINTS.get((op.method, op.path))
    if entry is None:
        return ("public_sharing", bool(op.body["publicSharing"]))
    _, field, fixed = entry
    if field == "escalations":
        return (field, 1)
    if op.method == "DELETE":
        return (field, None)
    if fixed is not None:
        return (field, fixed)
    value: Value = op.body[field]
    return (field, value)


def is_idempotent(op: Operation) -> bool:
    """Whether sending `op` twice leaves Spike as sending it once, so a retry is safe.

    Every call sets a value (status, priority, severity, sharing) except escalate, which moves
    each incident one level up its escalation policy per call (docs/api-calls.md).
    """
    return (op.method, op.path) != ("POST", ESCALATE)


def parse_operation(raw: Any, where: str) -> Operation:
    """Check one operation of an untrusted plan against the endpoint table.

    Raises InvalidPlanError naming `where` for anything that is not exactly one of the calls
    this tool makes: unknown method or path, bad ids, extra or missing body keys, bad values.
    """
    if not isinstance(raw, dict) or set(raw) != {"method", "path", "body"}:
        raise InvalidPlanError(f"{where}: not an operation object (method, path, body)")
    method, path, body = raw["method"], raw["path"], raw["body"]
    if not isinstance(method, str) or not isinstance(path, str) or not isinstance(body, dict):
        raise InvalidPlanError(f"{where}: method and path must be strings, body an object")
    match = _PUBLIC_SHARING.fullmatch(path)
    if match is not None:
        if method != "PATCH":
            raise InvalidPlanError(f"{where}: {method} {path} is not a call this tool makes")
        if not is_counter_id(match.group(1)):
            raise InvalidPlanError(f"{where}: invalid counter id in path {path!r}")
        if set(body) != {"publicSharing"} or not isinstance(body["publicSharing"], bool):
            raise InvalidPlanError(f"{where}: body must be exactly {{publicSharing: true|false}}")
        return Operation(method, path, {"publicSharing": body["publicSharing"]})
    if (method, path) not in _BATCH_ENDPOINTS:
        raise InvalidPlanError(f"{where}: {method} {path} is not a call this tool makes")
    value_key = _VALUE_KEYS.get(path)
    expected = {"ids", value_key[0]} if value_key else {"ids"}
    if set(body) != expected:
        raise InvalidPlanError(f"{where}: body keys must be {sorted(expected)}, got {sorted(body)}")
    ids = body["ids"]
    if (
        not isinstance(ids, list)
        or not ids
        or not all(is_counter_id(i) for i in ids)
        or len(set(ids)) != len(ids)
    ):
        raise InvalidPlanError(f"{where}: ids must be a non-empty list of distinct counter ids")
    clean: dict[str, Any] = {"ids": list(ids)}
    if value_key:
        key, allowed = value_key
        if body[key] not in allowed:
            raise InvalidPlanError(f"{where}: {key} must be one of {', '.join(allowed)}")
        clean = {key: body[key], "ids": list(ids)}
    return Operation(method, path, clean)
