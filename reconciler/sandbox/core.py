"""A local Spike-compatible HTTP API, for tests, benchmarks and trying `apply` without an account.

Standard library only (no httpx: the clients, `spike/client.py` and `github.py`, use it).
It serves the endpoints this tool drives (docs/api-calls.md) plus `GET /incidents/{counterId}`,
with Spike's semantics as far as they are known; where Spike's behaviour is unknown the sandbox
picks the stricter reading, so a tool that works here does not lean on a guess:

- every API request needs `x-api-key` equal to the configured key and `x-team-id` naming a
  configured team, else 401 `{"message", "error": "Unauthorized"}` (an unknown team is refused
  like a wrong key); no response or log line ever contains the key;
- each team has its own incidents, and a request sees only those of its `x-team-id`;
  `GET /teams/get-all-teams` answers `{"teams": [{"_id", "name"}]}` (the sandbox's reading of
  an undocumented shape; the name is the id) and needs the key only: a team, when sent, must
  be a configured one;
- a batch (`{"ids": [...]}`) is all-or-nothing: an unknown id, a duplicate id, a malformed body,
  a value outside the enum or more than `max_batch` ids is a 400 and changes nothing;
- resolved is terminal: acknowledge, unacknowledge or escalate on a resolved incident is a 400
  naming the ids; acknowledging an acknowledged incident, unacknowledging a triggered one and
  resolving a resolved one are 200s that change nothing;
- `PATCH /incidents/{counterId}/public-sharing` and `GET /incidents/{counterId}` answer 404 for
  an unknown id (the id is a path resource there, not a member of a batch);
- `GET /incidents/{counterId}/activity-log` answers what happened to the incident, oldest
  first, as `{"incident": {"counterId", "status", "message"}, "activities": [{"action", "at",
  "by"}, ...]}` (with `"value"` for priority, severity and public sharing): its trigger, then
  every change since the sandbox started (by "api", "sandbox" for a control request, or
  "acknowledge timeout"). Spike's shape is undocumented: this is the sandbox's reading
  (docs/api-calls.md); 404 for an unknown id;
- `GET /incidents/triggered` and `GET /incidents/acknowledged` list the incidents in that
  status, oldest trigger first, paginated (`page` from 1, `perPage` 1 to 100, default 20;
  anything else is a 400) as `{"incidents": [...], "pagination": {"page", "perPage", "total",
  "totalPages"}}`: Spike's shape is undocumented, this is the sandbox's reading (docs/cli.md);
- a method no endpoint takes (PUT, TRACE, OPTIONS, HEAD, ...) is a 405 with a JSON body and an
  `Allow` header naming the methods the path takes.

Optional latency and seeded fault injection (429/500/503, an injected fault changes nothing)
apply to API endpoints only. Control endpoints under `/_sandbox/` need no auth and see neither:

- `GET /_sandbox/calls`: the API calls received, `[{"method", "path", "body", "status"}]`, in
  the order they were handled (401s and injected faults included), with `"team"` too when
  several teams are served; a list's path keeps its query; `DELETE` clears it;
- `GET /_sandbox/incidents`: `{id: incident}` (see `SandboxServer.incidents`); this and the
  POST below take `?team=ID` (default: the first team; an unknown team is a 404);
- `POST /_sandbox/incidents`: `{id: {field: value}}` creates or changes incidents behind the
  tool's back, as the dashboard or an acknowledge timeout would, and `{id: null}` deletes one
  (see `set_incidents`); it answers `{"success": true, "ids": [...]}`, with `"created":
  [...]` too when an id was new (a deleted or unknown id cannot be deleted: 400).

The server binds loopback addresses only: the control endpoints have no auth.
"""

from __future__ import annotations

import copy
import hmac
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any
from urllib.parse import parse_qs

from ..model import is_loopback
from .incidents import Changes, _check_changes, _Incident, _new_incidents
from .wire import (
    _ACTIONS,
    _ACTIVITY_LOG,
    _BATCH_PATHS,
    _CONTROL_METHODS,
    _INCIDENT,
    _LISTS,
    _METHODS,
    _NO_BODY,
    _PUBLIC_SHARING,
    _REASONS,
    _TEAMS,
    _Action,
    _api_methods,
    _BadRequest,
    _error,
    _joined,
    _loggable,
    _not_allowed,
    _object_body,
    _paging,
    _parse_json,
    _Response,
)

_log = logging.getLogger(__name__)

FAULT_CODES = (429, 500, 503)
#: Bodies beyond this are refused unread: the largest real batch is a few tens of kilobytes.
MAX_BODY_BYTES = 1 << 20
#: How often the accept loop looks for a stop request; it bounds how long `stop()` takes.
_POLL_INTERVAL = 0.02
_CONTROL_PREFIX = "/_sandbox/"


class SandboxCore:
    """A Spike-compatible API (served on a loopback port by SandboxServer), with control
    endpoints for tests: requests in, responses out, no sockets.

    `incidents` seeds the state (`{id: {field: value}}`, the keys of `INCIDENT_KEYS`, statuses
    as NACK/ACK/RES; missing fields take the fresh-incident defaults); ValueError if invalid.
    `latency` seconds are added to every API request. With probability `fault_rate` an API
    request that passed auth is answered with a code drawn from `fault_codes` instead, and
    changes nothing; draws come from `random.Random(fault_seed)`, so the same sequence of
    requests gets the same faults. A 429 carries `Retry-After: retry_after` (None: no header).
    Batches of more than `max_batch` ids are a 400. With `calls_file`, every API call is also
    appended to that file as a JSON line (same shape as `calls`). `clock` gives the time (epoch
    seconds) for trigger and acknowledge times and ages; tests pass one they move by hand.
    With `ack_timeout` seconds, an acknowledged incident returns to triggered that long after
    it was acknowledged (by the API, a control request or the seed: the sandbox's start), as
    an integration's acknowledge timeout does in Spike; its trigger time and escalations stay.
    The timeout is applied lazily, when a request or a method call reads the clock.
    `teams` (`{team id: incidents}`, instead of `incidents` and `team_id`) serves several
    teams, each with its own incidents; the first is the default of the `team=` arguments and
    of the control endpoints, and every logged call then has "team": the team it was served
    for (null when refused).

    Thread-safe: requests are served concurrently, but each is applied and logged atomically.
    """

    def __init__(
        self,
        incidents: Mapping[str, Mapping[str, object]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "dev",
        team_id: str = "dev",
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_codes: Sequence[int] = FAULT_CODES,
        fault_seed: int = 0,
        retry_after: str | None = "0",
        max_batch: int = 500,
        calls_file: str | None = None,
        clock: Callable[[], float] = time.time,
        ack_timeout: float | None = None,
        teams: Mapping[str, Changes] | None = None,
    ) -> None:
        if not is_loopback(host):
            # The control endpoints rewrite state without auth: never expose them.
            raise ValueError(f"the sandbox only binds loopback addresses, not {host!r}")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        if fault_rate > 0 and not fault_codes:
            raise ValueError("fault_codes must not be empty when fault_rate > 0")
        bad_codes = [c for c in fault_codes if c not in FAULT_CODES]
        if bad_codes:
            raise ValueError(f"fault codes must be among {FAULT_CODES}, got {bad_codes}")
        if latency < 0:
            raise ValueError("latency must be 0 or more")
        if max_batch < 1:
            raise ValueError("max_batch must be 1 or more")
        if ack_timeout is not None and not ack_timeout > 0:
            raise ValueError("ack_timeout must be more than 0 seconds")
        if teams is not None:
            if incidents:
                raise ValueError("give incidents or teams, not both")
            if not teams:
                raise ValueError("teams must name at least one team")
            bad = [t for t in teams if not isinstance(t, str) or not t]
            if bad:
                raise ValueError(f"team ids must be non-empty strings, got {bad!r}")
        self.host = host
        self.port = port
        self.latency = latency
        self.fault_rate = fault_rate
        self.fault_codes = tuple(fault_codes)
        self.retry_after = retry_after
        self.max_batch = max_batch
        self.calls_file = calls_file
        self.clock = clock
        self.ack_timeout = ack_timeout
        # Compared as bytes with compare_digest, so response time does not leak the key.
        self._api_key = api_key.encode()
        seeds = dict(teams) if teams is not None else {team_id: incidents or {}}
        #: Each team's id as bytes (compared with compare_digest) and its incidents, in order:
        #: the first is the default team of the Python API and the control endpoints.
        self._team_ids = {team: team.encode() for team in seeds}
        self._teams = {team: _new_incidents(seed, clock()) for team, seed in seeds.items()}
        #: With several teams (`teams` given), each logged call names the team it was for.
        self._log_teams = teams is not None
        self._lock = threading.Lock()
        self._rng = random.Random(fault_seed)
        self._incidents = next(iter(self._teams.values()))  # the default team's
        self._calls: list[dict[str, Any]] = []
        self._calls_out: IO[str] | None = None
        #: Bumped by everything that may change an incident (a call other than GET, a control
        #: change, an expired acknowledgement): the open-incident lists' order is kept until
        #: then, so paging through 10,000 incidents does not sort them once per page.
        self._generation = 0
        self._list_order: dict[tuple[int, str], tuple[int, list[str]]] = {}

    # -- inspection and control -------------------------------------------------------------

    @property
    def calls(self) -> list[dict[str, Any]]:
        """A copy of the API calls handled so far: `{"method", "path", "body", "status"}`."""
        with self._lock:
            return copy.deepcopy(self._calls)

    def clear_calls(self) -> int:
        """Forget the recorded calls; returns how many there were."""
        with self._lock:
            count = len(self._calls)
            self._calls.clear()
            return count

    @property
    def team_ids(self) -> list[str]:
        """The teams served, in order; the first is the default of `team=` arguments."""
        return list(self._teams)

    def incidents(self, team: str | None = None) -> dict[str, dict[str, Any]]:
        """A snapshot of a team's incidents (default: the first team), by id: `{"counterId",
        "status", "message", "priority", "severity", "public_sharing", "escalations"}` (and
        "title" when set), statuses as NACK/ACK/RES. ValueError for an unknown team."""
        with self._lock:
            self._expire_acks()
            store = self._store(team)
            return {cid: incident.snapshot(cid) for cid, incident in store.items()}

    def set_incidents(self, changes: Changes, team: str | None = None) -> list[str]:
        """Create, change or delete incidents behind the tool's back (the dashboard, a timeout).

        `{id: {field: value}}` (keys: `INCIDENT_KEYS`): the given fields change, the others stay
        (or take the defaults for a new incident). `title` is a string, or null for the message;
        `age` says it was triggered that long ago ("3d", "12h", "30m", "90s" or seconds).
        `{id: None}` deletes that incident: reads of it answer 404 and batches naming it 400,
        as for an id that never existed (deleting an unknown id is an error).
        All-or-nothing: ValueError, and no change, if any of it is invalid. `team`: whose
        incidents (default: the first team's); ValueError for an unknown team. Returns the ids
        it created (sorted): an id the team lacked is a new incident, never an error, so that a
        caller can see a typo for what it is.
        """
        with self._lock:
            self._expire_acks()
            store = self._store(team)
            self._generation += 1
            created = []
            for cid, incident in _check_changes(changes, store, self.clock()).items():
                if incident is None:
                    del store[cid]
                else:
                    if cid not in store:
                        created.append(cid)
                    store[cid] = incident
            return sorted(created)

    def _store(self, team: str | None) -> dict[str, _Incident]:
        """A team's incidents (None: the first team's). Caller holds the lock."""
        if team is None:
            return self._incidents
        store = self._teams.get(team)
        if store is None:
            raise ValueError(f"unknown team {team!r} (teams: {', '.join(self._teams)})")
        return store

    # -- requests ---------------------------------------------------------------------------

    def _handle_api(
        self,
        method: str,
        path: str,
        key: str | None,
        team: str | None,
        raw: bytes,
        query: str = "",
    ) -> _Response:
        if self.latency:
            time.sleep(self.latency)  # outside the lock, so slow requests still overlap
        # The organisation's team list needs the key only (Spike: "most" requests need the
        # team); a team, when sent, must still be one of ours.
        team_optional = path == _TEAMS
        served = self._authorized(key, team, team_optional)
        with self._lock:
            if method != "GET":
                self._generation += 1
            self._expire_acks()
            if served is None:
                response = _error(
                    401,
                    "missing x-api-key or x-team-id header"
                    if key is None or (team is None and not team_optional)
                    else "invalid API key or team id",
                )
            else:
                response = self._fault() or self._route(method, path, raw, query, served)
            # A list's query says which page was read; other paths are logged as before.
            logged = f"{path}?{query}" if query and path in _LISTS else path
            self._record(
                method, logged, _loggable(raw), response.status, served if served else None
            )
        return response

    def _authorized(self, key: str | None, team: str | None, team_optional: bool) -> str | None:
        """The team a request is served for ("" for no team where none is needed), or None
        when it is refused: no key or a wrong one, no team or one not configured."""
        if key is None or (team is None and not team_optional):
            return None
        # http.server decodes headers as latin-1; undo that to compare the bytes sent.
        key_ok = hmac.compare_digest(key.encode("latin-1", "replace"), self._api_key)
        if team is None:
            return "" if key_ok else None
        sent = team.encode("latin-1", "replace")
        served = None
        for name, expected in self._team_ids.items():  # every one: no early exit to time
            if hmac.compare_digest(sent, expected):
                served = name
        return served if key_ok else None

    def _expire_acks(self) -> None:
        """Return acknowledged incidents whose acknowledge timeout has passed to triggered.
        Caller holds the lock."""
        if self.ack_timeout is None:
            return
        now = self.clock()
        for store in self._teams.values():
            for incident in store.values():
                ack_at = incident.ack_at
                due = ack_at is not None and now - ack_at >= self.ack_timeout
                if incident.status == "ACK" and due:
                    self._generation += 1
                    before = incident.state()
                    incident.status = "NACK"
                    incident.moved("ACK", now)
                    incident.log_changes(before, now, "acknowledge timeout")

    def _fault(self) -> _Response | None:
        """An injected failure, or None. Caller holds the lock (the draws must be in order)."""
        if self.fault_rate <= 0 or self._rng.random() >= self.fault_rate:
            return None
        code = self._rng.choice(self.fault_codes)
        headers = {"Retry-After": self.retry_after} if code == 429 and self.retry_after else {}
        return _Response(
            code,
            {"message": "injected fault (sandbox)", "error": _REASONS[code]},
            headers,
        )

    def _record(
        self, method: str, path: str, body: Any, status: int, team: str | None = None
    ) -> None:
        """Log one API call. Caller holds the lock, so the log order is the handling order."""
        call = {"method": method, "path": path, "body": body, "status": status}
        if self._log_teams:
            call["team"] = team
        self._calls.append(call)
        if self._calls_out is not None:
            self._calls_out.write(json.dumps(call, separators=(",", ":")) + "\n")
            self._calls_out.flush()

    def _record_unread(self, method: str, path: str, status: int) -> None:
        """Log an API call refused before its body could be read (bad framing, too large)."""
        with self._lock:
            self._record(method, path, None, status)

    def _route(self, method: str, path: str, raw: bytes, query: str, team: str) -> _Response:
        """Answer one authorized API request for `team` ("": none sent, where none is needed).
        Caller holds the lock."""
        if method not in _METHODS:
            return _not_allowed(method, path, _api_methods(path))
        if path == _TEAMS:
            if method != "GET":
                return _not_allowed(method, path, ("GET",))
            return _Response(200, {"teams": [{"_id": t, "name": t} for t in self._teams]})
        store = self._teams[team]
        try:
            if path in _LISTS:
                if method != "GET":
                    return _not_allowed(method, path, ("GET",))
                return self._list(store, _LISTS[path], query)
            action = _ACTIONS.get((method, path))
            if action is not None:
                return self._batch(store, action, raw)
            if path in _BATCH_PATHS:
                return _Response(
                    405,
                    {"message": f"use {_BATCH_PATHS[path]} for {path}", "error": _REASONS[405]},
                    {"Allow": _BATCH_PATHS[path]},
                )
            match = _PUBLIC_SHARING.fullmatch(path)
            if match is not None and method == "PATCH":
                return self._public_sharing(store, match.group(1), raw)
            match = _INCIDENT.fullmatch(path)
            if match is not None and method == "GET":
                return self._get(store, match.group(1))
            match = _ACTIVITY_LOG.fullmatch(path)
            if match is not None and method == "GET":
                incident = store.get(match.group(1))
                if incident is None:
                    return _error(404, f"unknown incident id: {match.group(1)}")
                return _Response(200, incident.activity_log(match.group(1)))
        except _BadRequest as exc:
            return _error(400, str(exc))
        return _error(404, f"no such endpoint: {method} {path}")

    def _batch(self, store: dict[str, _Incident], action: _Action, raw: bytes) -> _Response:
        expected = {"ids", action.value_key} if action.value_key else {"ids"}
        body = _object_body(raw, expected)
        ids = body["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _BadRequest("ids must be a list of counter id strings")
        if not ids:
            raise _BadRequest("ids must not be empty")
        if len(ids) > self.max_batch:
            raise _BadRequest(f"too many ids: {len(ids)}, at most {self.max_batch} per call")
        duplicates = [i for i, count in Counter(ids).items() if count > 1]
        if duplicates:
            # Spike's answer is unknown; refusing keeps "at most once per call" checkable.
            raise _BadRequest(f"duplicate incident ids: {_joined(duplicates)}")
        value = body.get(action.value_key) if action.value_key else None
        if action.value_key and value not in action.allowed:
            raise _BadRequest(f"{action.value_key} must be one of {', '.join(action.allowed)}")
        unknown = [i for i in ids if i not in store]
        if unknown:
            raise _BadRequest(f"unknown incident ids: {_joined(unknown)}")
        if action.refuses_resolved:
            resolved = [i for i in ids if store[i].status == "RES"]
            if resolved:
                raise _BadRequest(
                    f"cannot {action.verb} resolved incidents (resolved is terminal): "
                    f"{_joined(resolved)}"
                )
        now = self.clock()
        for cid in ids:
            incident = store[cid]
            previous, before = incident.status, incident.state()
            action.change(incident, value)
            incident.moved(previous, now)
            incident.log_changes(before, now, "api")
        response: dict[str, Any] = {"success": True, "ids": ids}
        if action.value_key:
            response[action.value_key] = value
        return _Response(200, response)

    def _public_sharing(self, store: dict[str, _Incident], cid: str, raw: bytes) -> _Response:
        incident = store.get(cid)
        if incident is None:
            return _error(404, f"unknown incident id: {cid}")
        body = _object_body(raw, {"publicSharing"})
        enabled = body["publicSharing"]
        if not isinstance(enabled, bool):
            raise _BadRequest("publicSharing must be true or false")
        before = incident.state()
        incident.public_sharing = enabled
        incident.log_changes(before, self.clock(), "api")
        response: dict[str, Any] = {"success": True, "counterId": cid, "publicSharing": enabled}
        if enabled:
            # Spike's field name is unknown; `.invalid` is a name that can never resolve.
            response["publicUrl"] = f"https://share.spike.invalid/incidents/{cid}"
        return _Response(200, response)

    def _list(self, store: dict[str, _Incident], status: str, query: str) -> _Response:
        """One page of the incidents in `status`, oldest trigger first (ties: by counter id)."""
        page, per_page = _paging(query)
        cached = self._list_order.get((id(store), status))
        if cached is not None and cached[0] == self._generation:
            matching = cached[1]
        else:
            matching = [
                cid
                for _, cid in sorted(
                    (incident.nack_at, cid)
                    for cid, incident in store.items()
                    if incident.status == status
                )
            ]
            self._list_order[(id(store), status)] = (self._generation, matching)
        total = len(matching)
        chosen = matching[(page - 1) * per_page : page * per_page]
        return _Response(
            200,
            {
                "incidents": [store[cid].list_item(cid) for cid in chosen],
                "pagination": {
                    "page": page,
                    "perPage": per_page,
                    "total": total,
                    "totalPages": -(-total // per_page),
                },
            },
        )

    def _get(self, store: dict[str, _Incident], cid: str) -> _Response:
        incident = store.get(cid)
        if incident is None:
            return _error(404, f"unknown incident id: {cid}")
        return _Response(
            200,
            {
                "incident": {
                    "counterId": cid,
                    "status": incident.status,
                    "message": incident.message,
                    "priority": incident.priority,
                    "severity": incident.severity,
                },
                "groupedIncident": {"priority": incident.priority, "severity": incident.severity},
            },
        )

    def _handle_control(self, method: str, path: str, raw: bytes, query: str = "") -> _Response:
        if method not in _METHODS:
            return _not_allowed(method, path, _CONTROL_METHODS.get(path, ()))
        if path == "/_sandbox/calls":
            if method == "GET":
                return _Response(200, self.calls)
            if method == "DELETE":
                return _Response(200, {"success": True, "cleared": self.clear_calls()})
        elif path == "/_sandbox/incidents" and method in ("GET", "POST"):
            # `?team=ID` picks a team; without it, the first one.
            chosen = parse_qs(query, keep_blank_values=True).get("team")
            if chosen is not None and len(chosen) > 1:
                return _error(400, f"team given {len(chosen)} times")
            team = chosen[0] if chosen else None
            if team is not None and team not in self._teams:
                return _error(404, f"unknown team: {team}")
            if method == "GET":
                return _Response(200, self.incidents(team))
            if method == "POST":
                try:
                    changes = _parse_json(raw)
                    if changes is _NO_BODY:
                        raise _BadRequest("request body is required: {id: {field: value}}")
                    created = self.set_incidents(changes, team)
                except (_BadRequest, ValueError) as exc:
                    return _error(400, str(exc))
                # Creating is how a test triggers a new incident; naming what was created keeps
                # a mistyped id from passing for a change to an existing incident.
                answer: dict[str, object] = {"success": True, "ids": sorted(changes)}
                return _Response(200, {**answer, "created": created} if created else answer)
        return _error(404, f"no such control endpoint: {method} {path}")
