"""Reading live incidents from Spike: `GET /incidents/{counterId}` -> field values.

The parser is tolerant of extra fields and strict about the ones it needs: a missing or
unrecognised status is an error naming the incident and the field, never a wrong plan.
Priority and severity may sit under `groupedIncident`; the incident object is the fallback.
Public sharing and the escalation count are not in the response: they keep journaled values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ApiError, ApiUnavailableError, LiveStateError, printable
from ..model import PRIORITIES, SEVERITIES, Fields, Value
from ..redact import clip
from .client import SpikeClient

STATUS_CODES = {"NACK": "triggered", "ACK": "acknowledged", "RES": "resolved"}


def _shown(value: object) -> str:
    """A value from a response, for a message: short, printable, redacted."""
    text = repr(value)
    return clip(printable(text), 57, "...")


def parse_incident(counter_id: str, body: Any) -> Fields:
    """The status, priority and severity of one incident from Spike's response."""
    where = f"incident {counter_id}"
    if not isinstance(body, Mapping) or not isinstance(body.get("incident"), Mapping):
        raise LiveStateError(f"{where}: the response has no 'incident' object")
    incident = body["incident"]
    grouped = body.get("groupedIncident")
    grouped = grouped if isinstance(grouped, Mapping) else {}
    code = incident.get("status")
    if code is None:
        raise LiveStateError(f"{where}: the response has no 'incident.status'")
    if not isinstance(code, str) or code not in STATUS_CODES:
        raise LiveStateError(
            f"{where}: unrecognised incident.status {_shown(code)} (expected NACK, ACK or RES)"
        )
    fields: Fields = {"status": STATUS_CODES[code]}
    for name, allowed in (("priority", PRIORITIES), ("severity", SEVERITIES)):
        source = grouped if name in grouped else incident
        if name not in source:
            continue  # not reported: keep what the journal knows
        value: Value = source[name]
        if value in ("", None):
            value = None
        elif value not in allowed:
            raise LiveStateError(
                f"{where}: unrecognised {name} {_shown(value)} "
                f"(expected {', '.join(allowed)} or null)"
            )
        fields[name] = value
    return fields


async def read_incidents(
    client: SpikeClient, ids: Iterable[str], missing: list[str] | None = None
) -> dict[str, Fields]:
    """Read each incident concurrently (the client's limiter bounds calls in flight).

    Raises ReconcileError listing every incident that could not be read: 404 means deleted
    or in another team; other failures carry the API's message. Credentials refused or the
    API unavailable raise that one error at once. With a `missing` list, an incident that
    answers 404 is appended to it (in id order) instead: a report of drift shows it.
    """
    ordered = sorted(set(ids))
    results = await asyncio.gather(
        *(client.get_incident(cid) for cid in ordered), return_exceptions=True
    )
    live: dict[str, Fields] = {}
    problems: list[str] = []
    for cid, result in zip(ordered, results, strict=True):
        if isinstance(result, ApiError):
            if result.status_code in (401, 403) or isinstance(result, ApiUnavailableError):
                raise result
            if result.status_code == 404 and missing is not None:
                missing.append(cid)
            elif result.status_code == 404:
                problems.append(f"incident {cid}: not found in Spike (deleted, or another team)")
            else:
                problems.append(f"incident {cid}: could not be read: {result}")
        elif isinstance(result, BaseException):
            raise result
        else:
            try:
                live[cid] = parse_incident(cid, result)
            except LiveStateError as exc:
                problems.append(str(exc))
    if problems:
        raise LiveStateError("\n".join(problems))
    return live
