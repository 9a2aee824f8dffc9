"""A state file's data checked without pydantic: incidents and rules that are plainly valid,
exactly as the StateFile model would read them; None leaves the file to the model (schema.py),
which also words any problem. Values are checked by the predicates of model.py and rules.py.
"""

from __future__ import annotations

import re
from typing import Any

from ..model import (
    FIELDS,
    PRIORITIES,
    SEVERITIES,
    is_counter_id,
    is_desired_value,
    is_field_value,
)
from ..rules import (
    AGE_PATTERN,
    DEFAULT_MAX_MATCHES,
    MAX_MATCHES_LIMIT,
    OPEN_STATUSES,
    is_rule_name,
)

_TOP_KEY_SET = frozenset(("version", "incidents", "rules"))
_FIELD_SET = frozenset(FIELDS)


def _valid_incidents(doc: dict[Any, Any]) -> dict[str, Any] | None:
    """A file's incidents exactly as the StateFile model reads them (fields in FIELDS
    order, None for an incident without fields), when they are plainly valid; None leaves
    the file to the model, which also explains any problem. Values are checked by the one
    predicate that plan files and journal records use too."""
    if not doc.keys() <= _TOP_KEY_SET:
        return None
    version = doc.get("version", 1)
    if type(version) is not int or version != 1:
        return None
    incidents = doc.get("incidents")
    if incidents is None:
        return {}
    if type(incidents) is not dict:
        return None
    out: dict[str, Any] = {}
    for cid, spec in incidents.items():
        if not is_counter_id(cid):
            return None
        if spec is None:
            out[cid] = None
            continue
        if type(spec) is not dict or not spec.keys() <= _FIELD_SET:
            return None
        for name, value in spec.items():
            if not is_desired_value(name, value):
                return None
        out[cid] = {name: spec[name] for name in FIELDS if name in spec}
    return out


_RULE_KEY_SET = frozenset(("match", "set", "max_matches"))
_RULE_MATCH_KEY_SET = frozenset(("status", "older_than", "priority", "severity", "title"))
_RULE_SET_KEY_SET = frozenset(("status", "priority", "severity", "public_sharing"))
_AGE = re.compile(AGE_PATTERN)


def _valid_rules(raw: Any) -> dict[str, Any] | None:
    """A file's rules as the StateFile model reads them, when they are plainly valid; None
    leaves them to the model, which explains any problem (as `_valid_incidents` does for
    incidents: a file with rules needs no pydantic either)."""
    if type(raw) is not dict:
        return None
    for name, spec in raw.items():
        if not is_rule_name(name) or type(spec) is not dict or not spec.keys() <= _RULE_KEY_SET:
            return None
        match, sets = spec.get("match"), spec.get("set")
        if type(match) is not dict or not match.keys() <= _RULE_MATCH_KEY_SET:
            return None
        if type(sets) is not dict or not sets or not sets.keys() <= _RULE_SET_KEY_SET:
            return None
        statuses = match.get("status")
        if type(statuses) is not list or not statuses:
            return None
        if not all(type(s) is str and s in OPEN_STATUSES for s in statuses):
            return None
        older = match.get("older_than")
        if older is not None and (type(older) is not str or _AGE.fullmatch(older) is None):
            return None
        for name_of, allowed in (("priority", PRIORITIES), ("severity", SEVERITIES)):
            if name_of in match:
                values = match[name_of]
                if type(values) is not list or not values:
                    return None
                if not all(v is None or (type(v) is str and v in allowed) for v in values):
                    return None
        if "title" in match and type(match["title"]) is not str:
            return None
        for field_name, value in sets.items():
            if field_name == "public_sharing":
                if value is not False:
                    return None
            elif not is_field_value(field_name, value):
                return None
        count = spec.get("max_matches", DEFAULT_MAX_MATCHES)
        if type(count) is not int or not 1 <= count <= MAX_MATCHES_LIMIT:
            return None
    return raw


def _stringify_keys(incidents: dict[Any, Any]) -> tuple[dict[Any, Any], list[str]]:
    """`116:` means the incident "116"; report ids written both ways."""
    out: dict[Any, Any] = {}
    clashes: list[str] = []
    for key, value in incidents.items():
        text = str(key) if type(key) is int else key
        if text in out:
            clashes.append(text)
        out[text] = value
    return out, clashes
