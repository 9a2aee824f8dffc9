"""Reading the organisation's teams from Spike: `GET /teams/get-all-teams` -> (id, name) pairs.

Spike documents no shape for this answer, so the reading is tolerant where a plausible shape
is unambiguous and strict where it would have to guess (docs/api-calls.md):

- the list of teams: the answer itself when it is a list, else the list under `teams` or
  `data`, else one level further down (`{"data": {"teams": [...]}}`), keys in that order;
- each team: an object; its id from `_id` or `id` (a non-empty string, or an integer), its
  name from `name` or `title` (a string; none is allowed); every other field is ignored.

No list, an item that is no object, or an item without an id is a LiveStateError naming what
was missing, never a partial list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import LiveStateError, printable
from ..redact import clip
from .client import TEAMS_PATH, SpikeClient

#: Where the list of teams may be, in the order looked at.
LIST_KEYS = ("teams", "data")
ID_KEYS = ("_id", "id")
NAME_KEYS = ("name", "title")


@dataclass(frozen=True, order=True)
class SpikeTeam:
    """One team as Spike lists it: its id (the x-team-id value) and its name, if it has one."""

    id: str
    name: str | None


def _said(readings: list[str] | None, reading: str) -> None:
    """Note which reading of the shape was used (`reconcile doctor` reports them)."""
    if readings is not None:
        readings.append(reading)


def _team_list(body: Any, readings: list[str] | None = None) -> Sequence[Any] | None:
    """The list of teams in the answer, or None when there is none where one is looked for."""
    if isinstance(body, list):
        _said(readings, "the list of teams: the answer itself")
        return body
    if not isinstance(body, Mapping):
        return None
    for outer in LIST_KEYS:
        value = body.get(outer)
        if isinstance(value, list):
            _said(readings, f"the list of teams under '{outer}'")
            return value
    for outer in LIST_KEYS:
        value = body.get(outer)
        if isinstance(value, Mapping):
            for inner in LIST_KEYS:
                if isinstance(value.get(inner), list):
                    _said(readings, f"the list of teams under '{outer}.{inner}'")
                    return value[inner]  # type: ignore[no-any-return]
    return None


def _team_id(item: Mapping[str, Any], readings: list[str] | None = None) -> str | None:
    for key in ID_KEYS:
        value = item.get(key)
        if isinstance(value, str) and value:
            _said(readings, f"id from '{key}'")
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            _said(readings, f"id from '{key}' (a number)")
            return str(value)
    return None


def _team_name(item: Mapping[str, Any], readings: list[str] | None = None) -> str | None:
    for key in NAME_KEYS:
        value = item.get(key)
        if isinstance(value, str) and value:
            _said(readings, f"name from '{key}'")
            return value
    _said(readings, "name: none")
    return None


def _json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else type(value).__name__


def parse_teams(body: Any, readings: list[str] | None = None) -> list[SpikeTeam]:
    """The teams in Spike's answer to GET /teams/get-all-teams, in the answer's order.

    Raises LiveStateError naming what was missing: no list of teams, an item that is not an
    object, or an item with no id. With `readings`, the readings used are appended (each
    team's, once per team: callers keep the distinct ones); words, never a value.
    """
    where = f"GET {TEAMS_PATH}"
    items = _team_list(body, readings)
    if items is None:
        raise LiveStateError(
            f"{where}: no list of teams in the answer (looked for a list, or one under "
            "'teams' or 'data')"
        )
    teams: list[SpikeTeam] = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise LiveStateError(
                f"{where}: item {number} of the list of teams is not an object ({_json_kind(item)})"
            )
        team_id = _team_id(item, readings)
        name = _team_name(item, readings)
        if team_id is None:
            named = f" ({clip(printable(repr(name)), 60, '...')})" if name else ""
            raise LiveStateError(
                f"{where}: item {number} of the list of teams{named} has no id "
                "(looked for '_id' or 'id': a non-empty string or a number)"
            )
        teams.append(SpikeTeam(team_id, name))
    return teams


async def read_teams(client: SpikeClient) -> list[SpikeTeam]:
    """The teams the client's key can see (GET /teams/get-all-teams)."""
    return parse_teams(await client.get_teams())
