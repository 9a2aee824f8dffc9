"""`reconcile doctor`: check, with GET requests only, that this tool reads an account's answers
as it expects, before it is trusted (docs/cli.md, reconcile doctor).

For each team (reconcile.yaml's, or SPIKE_TEAM_ID's): the key and the team id
(`GET /teams/get-all-teams`), page 1 of each open-incident list, one incident and its activity
log, each read by the same tolerant parsers the other commands use (`spike.teams`,
`spike.live`), which say which reading of the shape they used. Each endpoint is understood
(and how), not understood (what was missing), refused (an HTTP error), not reached, or not
checked. `shape_of` turns an answer into its shape for a bug report: no value survives.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, LiveStateError, ReconcileError, printable
from ..model import is_counter_id
from ..wording import counted

if TYPE_CHECKING:
    from ..config import TeamConfig
    from ..spike.client import SpikeClient, SpikeConfig

#: Reads one answer into the readings it used; returns a problem of its own (or None) and
#: raises LiveStateError for what it cannot read.
Reader = Callable[[Any, list[str]], "str | None"]

UNDERSTOOD = "understood"
NOT_UNDERSTOOD = "not understood"
#: Spike answered with an HTTP error (401, 404, a 5xx after the retries...).
REFUSED = "refused"
#: No HTTP answer: the connection failed, or every retry did.
NOT_REACHED = "not reached"
#: Nothing to ask: no incident is listed and no --id was given.
NOT_CHECKED = "not checked"

TEAMS_ENDPOINT = "GET /teams/get-all-teams"
INCIDENT_ENDPOINT = "GET /incidents/{counterId}"
ACTIVITY_ENDPOINT = "GET /incidents/{counterId}/activity-log"


@dataclass(frozen=True)
class Check:
    """One endpoint of one team, checked."""

    #: The endpoint as documented: "GET /incidents/{counterId}".
    endpoint: str
    #: The request as sent: "GET /incidents/pay-1" (none when not checked).
    request: str | None
    #: The HTTP status of the answer; None when none came.
    status: int | None
    outcome: str
    #: The readings of the shape used, distinct, in order: words, never a value.
    readings: tuple[str, ...] = ()
    #: What was missing, or why it was refused, not reached or not checked.
    problem: str | None = None
    #: The answer's shape (`shape_of`), None when there is no answer.
    shape: Any = None

    @property
    def understood(self) -> bool:
        return self.outcome == UNDERSTOOD


@dataclass(frozen=True)
class TeamChecks:
    """The checks of one team: its name in reconcile.yaml (None: SPIKE_TEAM_ID's team), the
    variables its key and id come from (names, never values)."""

    team: str | None
    key_source: str
    team_source: str
    checks: list[Check]


@dataclass(frozen=True)
class DoctorRequest:
    #: Each team to check: one of reconcile.yaml, or None for SPIKE_TEAM_ID's.
    teams: Sequence[TeamConfig | None] = (None,)
    #: The incident to read (--id); None: the first one listed.
    counter_id: str | None = None
    #: Told each request and its answer's status (-v), redacted.
    observe: Callable[[str], None] | None = None


@dataclass(frozen=True)
class DoctorOutcome:
    teams: list[TeamChecks] = field(default_factory=list)

    @property
    def checks(self) -> Iterator[Check]:
        return (check for team in self.teams for check in team.checks)

    @property
    def understood(self) -> bool:
        """Every endpoint of every team understood: doctor's exit 0."""
        return all(check.understood for check in self.checks)

    def shapes(self) -> dict[str, Any]:
        """What `--shapes FILE` holds: per team (numbered, not named) each endpoint's
        status and shape; no request (it holds the counter id), reading or problem."""
        return {
            "teams": [
                {
                    "team": number,
                    "endpoints": [
                        {"endpoint": c.endpoint, "status": c.status, "shape": c.shape}
                        for c in team.checks
                    ],
                }
                for number, team in enumerate(self.teams, start=1)
            ]
        }


def run_doctor(request: DoctorRequest) -> DoctorOutcome:
    """Check every team of `request`, one request at a time, GET only.

    Raises ReconcileError, before any request, for an --id that is not a counter id or a team
    whose key or id is missing; everything Spike answers is a Check, never an error.
    """
    import asyncio  # here, not at the top: slow to import, and only calls need it

    from .plan import spike_config

    if request.counter_id is not None and not is_counter_id(request.counter_id):
        raise ReconcileError(f"--id {printable(request.counter_id)!r}: not a counter id")
    configs = [(team, spike_config(team)) for team in request.teams]  # every key, first

    async def check_all() -> list[TeamChecks]:
        return [
            TeamChecks(
                None if team is None else team.name,
                config.key_source,
                config.team_source,
                await _check_endpoints(
                    config,
                    request.counter_id,
                    () if team is None else (team.name,),
                    request.observe,
                ),
            )
            for team, config in configs
        ]

    return DoctorOutcome(asyncio.run(check_all()))


async def _check_endpoints(
    config: SpikeConfig,
    counter_id: str | None,
    names: Collection[str],
    observe: Callable[[str], None] | None,
) -> list[Check]:
    from ..spike.client import SpikeClient
    from ..spike.live import OPEN_LISTS, PER_PAGE, parse_activity_log, parse_incident
    from ..spike.live import parse_list_page as read_page
    from ..spike.teams import parse_teams

    hidden = {config.api_key, *names, *([config.team_id] if config.team_id else [])}
    checks: list[Check] = []
    async with SpikeClient(config, parallelism=1, observe=observe) as client:

        def read_teams(body: Any, readings: list[str]) -> str | None:
            teams = parse_teams(body, readings)
            hidden.update(t.name for t in teams if t.name)
            readings.append(counted(len(teams), "team"))
            if config.team_id is None:
                return None
            if config.team_id in {t.id for t in teams}:
                readings.append("the team id is listed")
                return None
            return (
                f"team id {printable(config.team_id)} ({config.team_source}) is not among the "
                "teams the key sees (`reconcile teams` lists them)"
            )

        checks.append(
            await _check(
                client,
                TEAMS_ENDPOINT,
                "GET /teams/get-all-teams",
                client.get_teams,
                hidden,
                read_teams,
            )
        )
        listed: list[str] = []
        for path in OPEN_LISTS:

            def read_list(body: Any, readings: list[str], path: str = path) -> str | None:
                ids, paging = read_page(path, 1, PER_PAGE, body, readings)
                listed.extend(ids)
                readings.append(f"{counted(len(ids), 'item')} on page 1")
                if paging is not None:
                    pages, total = paging
                    shown_total = "" if total is None else f", {counted(total, 'incident')}"
                    readings.append(f"{counted(pages, 'page')}{shown_total}")
                return None

            sent = f"GET {path}?page=1&perPage={PER_PAGE}"

            def fetch(path: str = path) -> Awaitable[Any]:
                return client.get_list_page(path, 1, PER_PAGE)

            checks.append(await _check(client, f"GET {path}", sent, fetch, hidden, read_list))
        cid = counter_id or (listed[0] if listed else None)
        if cid is None:
            read = all(check.understood for check in checks[1:])
            why = (
                "no open incident is listed" if read else "the open-incident lists were not read"
            ) + ": pass --id ID (a resolved incident will do)"
            checks.append(Check(INCIDENT_ENDPOINT, None, None, NOT_CHECKED, problem=why))
            checks.append(Check(ACTIVITY_ENDPOINT, None, None, NOT_CHECKED, problem=why))
            return checks
        hidden.add(cid)

        def read_incident(body: Any, readings: list[str]) -> str | None:
            parse_incident(cid, body, readings)
            return None

        def read_log(body: Any, readings: list[str]) -> str | None:
            parse_activity_log(cid, body, readings)
            return None

        sent = f"GET /incidents/{cid}"
        checks.append(
            await _check(
                client,
                INCIDENT_ENDPOINT,
                sent,
                lambda: client.get_incident(cid),
                hidden,
                read_incident,
            )
        )
        checks.append(
            await _check(
                client,
                ACTIVITY_ENDPOINT,
                f"{sent}/activity-log",
                lambda: client.get_activity_log(cid),
                hidden,
                read_log,
            )
        )
    return checks


async def _check(
    client: SpikeClient,
    endpoint: str,
    sent: str,
    fetch: Callable[[], Awaitable[Any]],
    hidden: set[str],
    read: Reader,
) -> Check:
    """`fetch` the answer to `sent` (one GET of `client`) and `read` it."""
    client.last_status = None
    try:
        body = await fetch()
    except ApiError as exc:
        message = _without(str(exc), sent)
        # Retries used up name no status of their own: the last answer's is the one.
        status = exc.status_code if exc.status_code is not None else client.last_status
        if status is None:
            return Check(endpoint, sent, None, NOT_REACHED, problem=message)
        outcome = NOT_UNDERSTOOD if 200 <= status < 300 else REFUSED
        return Check(endpoint, sent, status, outcome, problem=message)
    status = client.last_status
    readings: list[str] = []
    try:
        problem = read(body, readings)
    except LiveStateError as exc:
        problem, outcome = str(exc), NOT_UNDERSTOOD
    else:
        outcome = UNDERSTOOD if problem is None else NOT_UNDERSTOOD
    shape = shape_of(body, hidden | set(_strings(body)))
    return Check(endpoint, sent, status, outcome, tuple(dict.fromkeys(readings)), problem, shape)


def _without(message: str, sent: str) -> str:
    """An error's message without the request it starts with (the check names it)."""
    for prefix in (f"{sent}: ", f"{sent.split('?')[0]}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


# ---------------------------------------------------------------------------------------------
# Shapes: an answer with every value replaced by its type, for a bug report

#: A mapping key kept as it is: letters and underscores, at most two digits at the end
#: (`counterId`, `NACK_at`, `sev1`), 40 characters at most. Any other key (`pay-101`, a hex
#: or numeric id, a name with a space) is data, shown as HIDDEN_KEY.
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z_]{0,37}[0-9]{0,2}")
HIDDEN_KEY = "<key>"


def _strings(value: Any) -> Iterator[str]:
    """Every string value in a JSON value (keys aside)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def shape_of(value: Any, hidden: Collection[str] = ()) -> Any:
    """A JSON value with every value replaced by its type name (`"string"`, `"integer"`,
    `"number"`, `"boolean"`, `"null"`); a list by the distinct shapes of its items, in order;
    an object's keys kept when they look like field names (FIELD_NAME) and are none of
    `hidden` (the answer's own strings, the team ids and names, the counter id, the key),
    else HIDDEN_KEY (`"<key>"`, `"<key 2>"` for a second distinct shape under such keys...).
    """
    if isinstance(value, list):
        return _distinct(shape_of(item, hidden) for item in value)
    if isinstance(value, dict):
        shown: dict[str, Any] = {}
        data: list[Any] = []
        for key, item in value.items():
            shape = shape_of(item, hidden)
            if isinstance(key, str) and FIELD_NAME.fullmatch(key) and key not in hidden:
                shown[key] = shape
            elif shape not in data:
                data.append(shape)
        for number, shape in enumerate(data, start=1):
            shown[HIDDEN_KEY if number == 1 else f"<key {number}>"] = shape
        return shown
    return _type_name(value)


def _distinct(shapes: Iterator[Any]) -> list[Any]:
    out: list[Any] = []
    for shape in shapes:
        if shape not in out:
            out.append(shape)
    return out
