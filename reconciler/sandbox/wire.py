"""The local API's wire: the endpoint table (what each batch does, which paths take which
methods), request bodies and queries parsed, and the shapes of its answers and errors.

core.py (SandboxCore) routes each request with these; nothing here holds state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from .. import endpoints
from ..model import PRIORITIES, SEVERITIES
from .incidents import _Incident

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class _Response:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def _error(status: int, message: str) -> _Response:
    """Spike's error shape: `{"message", "error"}` with the reason phrase."""
    return _Response(status, {"message": message, "error": _REASONS[status]})


class _BadRequest(Exception):
    """A request the API refuses with 400; carries the message."""


@dataclass(frozen=True)
class _Action:
    """One batch endpoint: what it does to an incident, and what it refuses."""

    verb: str
    change: Callable[[_Incident, Any], None]
    #: The body key besides "ids" and its allowed values, for priority and severity.
    value_key: str | None = None
    allowed: tuple[str, ...] = ()
    #: Resolved is terminal in Spike: these actions would re-open or page for a closed incident.
    refuses_resolved: bool = False


def _acknowledge(incident: _Incident, _: Any) -> None:
    if incident.status == "NACK":
        incident.status = "ACK"


def _unacknowledge(incident: _Incident, _: Any) -> None:
    if incident.status == "ACK":
        incident.status = "NACK"


def _resolve(incident: _Incident, _: Any) -> None:
    incident.status = "RES"


def _escalate(incident: _Incident, _: Any) -> None:
    incident.escalations += 1


def _set_priority(incident: _Incident, value: Any) -> None:
    incident.priority = value


def _set_severity(incident: _Incident, value: Any) -> None:
    incident.severity = value


_ACTIONS: dict[tuple[str, str], _Action] = {
    ("POST", endpoints.ACKNOWLEDGE): _Action("acknowledge", _acknowledge, refuses_resolved=True),
    ("POST", endpoints.UNACKNOWLEDGE): _Action(
        "unacknowledge", _unacknowledge, refuses_resolved=True
    ),
    ("POST", endpoints.RESOLVE): _Action("resolve", _resolve),
    ("POST", endpoints.ESCALATE): _Action("escalate", _escalate, refuses_resolved=True),
    ("POST", endpoints.PRIORITY): _Action("set priority", _set_priority, "priority", PRIORITIES),
    ("DELETE", endpoints.PRIORITY_REMOVE): _Action("remove priority", _set_priority),
    ("POST", endpoints.SEVERITY): _Action("set severity", _set_severity, "severity", SEVERITIES),
    ("DELETE", endpoints.SEVERITY_REMOVE): _Action("remove severity", _set_severity),
}
_BATCH_PATHS = {path: method for method, path in _ACTIONS}
#: The methods the API and the control endpoints use; any other is answered 405.
_METHODS = ("DELETE", "GET", "PATCH", "POST")
_CONTROL_METHODS = {"/_sandbox/calls": ("DELETE", "GET"), "/_sandbox/incidents": ("GET", "POST")}
_PUBLIC_SHARING = re.compile(r"/incidents/([^/]+)/public-sharing")
_INCIDENT = re.compile(r"/incidents/([^/]+)")
_ACTIVITY_LOG = re.compile(r"/incidents/([^/]+)/activity-log")
_NO_BODY = object()
#: The open-incident lists, by path: the status each lists. Matched before `_INCIDENT`.
_TEAMS = "/teams/get-all-teams"
_LISTS = {"/incidents/triggered": "NACK", "/incidents/acknowledged": "ACK"}
PER_PAGE_DEFAULT = 20
PER_PAGE_MAX = 100


def _parse_json(raw: bytes) -> Any:
    """The request body as JSON, `_NO_BODY` when empty; raise _BadRequest when not JSON."""
    if not raw:
        return _NO_BODY
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _BadRequest(f"request body is not valid JSON: {exc}") from exc


def _loggable(raw: bytes) -> Any:
    """How a body appears in the calls log: its JSON, its text when not JSON, None when empty."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _object_body(raw: bytes, expected: set[str]) -> dict[str, Any]:
    """A JSON object body with exactly the keys in `expected`; raise _BadRequest otherwise."""
    body = _parse_json(raw)
    if body is _NO_BODY:
        raise _BadRequest(f"request body is required: {{{', '.join(sorted(expected))}}}")
    if not isinstance(body, dict):
        raise _BadRequest("request body must be a JSON object")
    missing = sorted(expected - set(body))
    if missing:
        raise _BadRequest(f"missing body keys: {', '.join(missing)}")
    extra = sorted(set(body) - expected)
    if extra:
        raise _BadRequest(f"unexpected body keys: {', '.join(extra)}")
    return body


def _paging(query: str) -> tuple[int, int]:
    """`page` (from 1) and `perPage` (1 to PER_PAGE_MAX) from a query; raise _BadRequest."""
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise _BadRequest(f"malformed query string: {exc}") from exc
    unknown = sorted(set(params) - {"page", "perPage"})
    if unknown:
        raise _BadRequest(f"unknown query parameters: {', '.join(unknown)} (valid: page, perPage)")
    values = {"page": 1, "perPage": PER_PAGE_DEFAULT}
    for name, given in params.items():
        if len(given) > 1:
            raise _BadRequest(f"{name} given {len(given)} times")
        text = given[0]
        if not (text.isascii() and text.isdigit()) or len(text) > 9 or int(text) < 1:
            raise _BadRequest(f"{name} must be a whole number, 1 or more, not {text!r}")
        values[name] = int(text)
    if values["perPage"] > PER_PAGE_MAX:
        raise _BadRequest(f"perPage must be at most {PER_PAGE_MAX}, not {values['perPage']}")
    return values["page"], values["perPage"]


def _joined(ids: Sequence[str]) -> str:
    return ", ".join(sorted(set(ids)))


def _not_allowed(method: str, path: str, allowed: Sequence[str]) -> _Response:
    """405 for a method no endpoint here takes (TRACE, OPTIONS, PUT, HEAD...), with `Allow`."""
    return _Response(
        405,
        {"message": f"method {method} is not allowed for {path}", "error": _REASONS[405]},
        {"Allow": ", ".join(allowed or _METHODS)},
    )


def _api_methods(path: str) -> tuple[str, ...]:
    """The methods an API path takes (none for a path that is no endpoint)."""
    if path in _BATCH_PATHS:
        return (_BATCH_PATHS[path],)
    if path in _LISTS or path == _TEAMS:
        return ("GET",)
    if _PUBLIC_SHARING.fullmatch(path):
        return ("PATCH",)
    if _INCIDENT.fullmatch(path) or _ACTIVITY_LOG.fullmatch(path):
        return ("GET",)
    return ()
