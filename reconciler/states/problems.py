"""What is wrong with a state file, said with FILE:LINE:COLUMN: the positions of values in
a round-trip document, and the message and suggestion for each problem the loader or the
schema finds (an unknown key with the nearest valid one, a value not allowed, a rule that
cannot be, an id written twice). The loader (loader.py) finds the problems; this module
words them. `position`, `rt_positions` and `unknown_key` serve the project file too.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import Problem
from ..model import (
    COUNTER_ID_MAX,
    FIELDS,
    MAX_ESCALATIONS,
    PRIORITIES,
    SEVERITIES,
    STATUSES,
)
from ..rules import MAX_MATCHES_LIMIT, RULE_NAME_MAX


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def rule_problems(path: str, text: str, rules: dict[str, Any]) -> list[Problem]:
    """What the model cannot say about rules: a `set` with no field, a title that is not a
    regular expression. Also for rules the model refused (all problems are reported)."""
    problems: list[Problem] = []
    for name, spec in rules.items():
        if not isinstance(spec, dict):
            continue
        if spec.get("set") == {}:
            line, column = position(rt_positions(text), ("rules", name, "set"), at_key=False)
            problems.append(
                Problem(
                    path,
                    line,
                    column,
                    f"rule {name}: set must set at least one of {', '.join(_RULE_SET_KEYS)}",
                )
            )
        match = spec.get("match")
        title = match.get("title") if isinstance(match, dict) else None
        if isinstance(title, str):
            import regex  # only for files with rules: the module `Rule` matches titles with

            try:
                regex.compile(title)
            except (regex.error, OverflowError, ValueError) as exc:
                where = ("rules", name, "match", "title")
                line, column = position(rt_positions(text), where, at_key=False)
                problems.append(
                    Problem(
                        path,
                        line,
                        column,
                        f"rule {name}: match.title is not a valid regular expression: {exc}",
                    )
                )
    return problems


@functools.lru_cache(maxsize=4)
def rt_positions(text: str) -> Any:
    """The document with positions, or None when ruamel's pure-Python round-trip loader
    refuses a text that libyaml and the safe constructor read (a few tab corner cases, deep
    nesting, self-merges): positions then fall back to 1:1 rather than turning a validation
    message into a crash.

    Cached: every duplicate id across two files needs both files' positions, and parsing
    them once per duplicate made a copied file of 300 incidents take half a minute."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    try:
        return yaml.load(text)
    # RecursionError: deep nesting that libyaml read; AttributeError: ruamel's round-trip
    # constructor fails on a node merging itself (`a: &a {<<: *a}`), which the safe one reads.
    except (YAMLError, RecursionError, AttributeError):
        return None


def _key_in(mapping: Any, key: Any) -> Any:
    """The key of a round-trip mapping that a validated key came from (ints became strings)."""
    if key in mapping:
        return key
    for candidate in mapping:
        if candidate == key or str(candidate) == str(key):
            return candidate
    return None


def position(root: Any, loc: tuple[Any, ...], at_key: bool) -> tuple[int, int]:
    """Line and column (1-based) of the node at `loc` (or of its key, with at_key) in a
    round-trip document (`rt_positions`); the deepest place written when `loc` goes past
    what the text spells out. An int in `loc` indexes a sequence."""
    node: Any = root
    line, column = 1, 1
    for depth, part in enumerate(loc):
        lc: Any = getattr(node, "lc", None)
        if lc is None:
            break
        last = depth == len(loc) - 1
        if isinstance(node, list):
            if type(part) is not int or not 0 <= part < len(node):
                break
            line, column = lc.item(part)
            line, column = line + 1, column + 1
            node = node[part]
            continue
        if not isinstance(node, dict):
            break
        key = _key_in(node, part)
        if key is None or key not in (lc.data or {}):  # merged in by `<<`: not written here
            break
        if last and at_key:
            line, column = lc.key(key)
        else:
            line, column = lc.value(key)
            value = node[key]
            if value is None or (isinstance(value, dict) and not value and not last):
                line, column = lc.key(key)
        line, column = line + 1, column + 1
        node = node[key]
    return line, column


_ALLOWED: dict[str, tuple[str, ...]] = {
    "status": STATUSES,
    "priority": (*PRIORITIES, "null"),
    "severity": (*SEVERITIES, "null"),
}


_TOP_KEYS = ("version", "incidents", "rules")


NOT_A_MAPPING = "the top level must be a mapping with 'incidents' or 'rules'"


_RULE_KEYS = ("match", "set", "max_matches")
_RULE_MATCH_KEYS = ("status", "older_than", "priority", "severity", "title")
_RULE_SET_KEYS = ("status", "priority", "severity", "public_sharing")


def model_errors(exc: Any) -> Iterator[tuple[tuple[Any, ...], str, str]]:
    """Each error of a pydantic ValidationError: where (its loc), its type, its message."""
    for error in exc.errors(include_url=False, include_input=False):
        yield tuple(error["loc"]), error["type"], error["msg"]


def locate(path: str, text: str, exc: Any) -> list[Problem]:
    root = rt_positions(text)
    problems: list[Problem] = []
    seen: set[tuple[Any, ...]] = set()
    for loc, kind, msg in model_errors(exc):
        # A field that is a union (priority: p1..p5 | null) reports once per member.
        if loc and loc[-1] in (
            "literal['p1','p2','p3','p4','p5']",
            "literal['sev1','sev2','sev3']",
        ):
            loc = loc[:-1]
        if loc and loc[-1] == "[key]" and kind == "string_type" and loc[0] != "rules":
            continue  # an incident key that is not a string: the loader already asked for quotes
        if loc and loc[-1] == "none-required":
            loc = loc[:-1]
        if loc and loc[0] == "rules":
            loc = tuple(
                p for p in loc if not (isinstance(p, str) and p.startswith(("literal[", "none-")))
            )
            # One message per list (`status: [resolved, x]` is one mistake to fix); the rule's
            # name stays, even when YAML read it as a number.
            clean = loc[:2] + tuple(p for p in loc[2:] if p != "[key]" and not isinstance(p, int))
            if clean in seen:
                continue
            seen.add(clean)
            problems.append(_describe_rule(path, root, loc, clean, kind))
            continue
        clean = tuple(p for p in loc if p not in ("IncidentSpec", "[key]"))
        if clean in seen:
            continue
        seen.add(clean)
        problems.append(_describe(path, root, loc, clean, kind, msg))
    return problems


def _describe(
    path: str, root: Any, loc: tuple[Any, ...], clean: tuple[Any, ...], kind: str, msg: str
) -> Problem:
    is_key = "[key]" in loc
    if kind == "model_type" or (kind == "model_attributes_type" and not clean):
        return Problem(path, 1, 1, NOT_A_MAPPING)
    if kind in ("extra_forbidden", "invalid_key"):  # invalid_key: `1:` read as an int
        line, column = position(root, clean, at_key=True)
        name = clean[-1]
        if len(clean) == 1:
            valid: Sequence[str] = _TOP_KEYS
            where = "at the top level"
        else:
            valid = FIELDS
            where = f"in incident {clean[-2]}"
        return Problem(path, line, column, unknown_key(name, valid, where))
    if is_key:
        line, column = position(root, clean, at_key=True)
        return Problem(
            path,
            line,
            column,
            f"invalid incident id {short(clean[-1])}: ids are letters and digits, "
            f"groups joined by single hyphens, at most {COUNTER_ID_MAX} characters",
        )
    line, column = position(root, clean, at_key=False)
    name = str(clean[-1]) if clean else ""
    label = _label(clean)
    if name in _ALLOWED and len(clean) == 3:
        return Problem(path, line, column, f"{label} must be one of {', '.join(_ALLOWED[name])}")
    if name == "public_sharing" and len(clean) == 3:
        return Problem(path, line, column, f"{label} must be true or false (a YAML boolean)")
    if name == "escalations" and len(clean) == 3:
        return Problem(
            path, line, column, f"{label} must be a whole number from 0 to {MAX_ESCALATIONS}"
        )
    if clean == ("version",):
        return Problem(path, line, column, "version must be 1")
    if clean == ("incidents",):
        return Problem(path, line, column, "incidents must be a mapping of id -> fields")
    if len(clean) == 2:
        return Problem(path, line, column, f"{label} must be a mapping of fields")
    return Problem(path, line, column, f"{label}: {msg}")  # pragma: no cover - defensive


def unknown_key(name: Any, valid: Sequence[str], where: str) -> str:
    """The message for a key that is not one of `valid`, with the closest one as a hint."""
    hint = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.6)
    suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
    return f"unknown key '{name}' {where}{suggestion} (valid: {', '.join(valid)})"


_RULE_VALUES = {
    ("match", "status"): "must be a non-empty list of triggered, acknowledged (open only)",
    ("match", "older_than"): "must be a number of days or hours, like 14d or 12h",
    ("match", "priority"): f"must be a non-empty list of {', '.join((*PRIORITIES, 'null'))}",
    ("match", "severity"): f"must be a non-empty list of {', '.join((*SEVERITIES, 'null'))}",
    ("match", "title"): "must be a string: a regular expression searched in the title",
    ("set", "status"): f"must be one of {', '.join(STATUSES)}",
    ("set", "priority"): f"must be one of {', '.join((*PRIORITIES, 'null'))}",
    ("set", "severity"): f"must be one of {', '.join((*SEVERITIES, 'null'))}",
    ("set", "public_sharing"): "can only be false: a rule never makes an incident page public",
}


def _describe_rule(
    path: str, root: Any, loc: tuple[Any, ...], clean: tuple[Any, ...], kind: str
) -> Problem:
    """A problem of a `rules:` entry (loc starts with "rules")."""
    at_key = kind in ("extra_forbidden", "missing") or "[key]" in loc
    line, column = position(root, clean[:-1] if kind == "missing" else clean, at_key=at_key)
    if len(clean) == 1:
        return Problem(path, line, column, "rules must be a mapping of rule name -> rule")
    name = clean[1]
    if "[key]" in loc and kind == "string_type":
        return Problem(
            path, line, column, f"rule name {short(name)} must be text: write it in quotes"
        )
    if "[key]" in loc:
        return Problem(
            path,
            line,
            column,
            f"invalid rule name {short(name)}: names are lower-case letters and digits, "
            f"groups joined by single hyphens, at most {RULE_NAME_MAX} characters",
        )
    if len(clean) == 2:
        return Problem(path, line, column, f"rule {name} must be a mapping with match and set")
    part = clean[2]
    if kind == "missing":
        what = ".".join(str(p) for p in clean[2:])
        hint = " (triggered and/or acknowledged)" if what == "match.status" else ""
        return Problem(path, line, column, f"rule {name}: {what} is required{hint}")
    if kind == "extra_forbidden":
        key = str(clean[-1])
        if clean[2:] == ("set", "escalations"):
            return Problem(path, line, column, f"rule {name}: set: a rule never escalates")
        valid: Sequence[str] = (
            _RULE_KEYS
            if len(clean) == 3
            else _RULE_MATCH_KEYS
            if part == "match"
            else _RULE_SET_KEYS
        )
        where = f"in rule {name}" if len(clean) == 3 else f"in rule {name} {part}"
        return Problem(path, line, column, unknown_key(key, valid, where))
    if len(clean) == 3:
        if part == "max_matches":
            message = f"must be a whole number from 1 to {MAX_MATCHES_LIMIT}"
        else:
            message = "must be a mapping"
        return Problem(path, line, column, f"rule {name}: {part} {message}")
    message = _RULE_VALUES.get((str(part), str(clean[3])), "is invalid")
    return Problem(path, line, column, f"rule {name}: {part}.{clean[3]} {message}")


def _label(loc: tuple[Any, ...]) -> str:
    if len(loc) >= 3:
        return f"incident {loc[1]}: {loc[2]}"
    if len(loc) == 2:
        return f"incident {loc[1]}"
    return ".".join(str(p) for p in loc)


def duplicate_problem(
    path: str,
    other: str,
    text: str,
    other_text: str,
    cid: str,
    section: str = "incidents",
    what: str = "incident",
) -> Problem:
    here = position(rt_positions(text), (section, cid), at_key=True)
    there = position(rt_positions(other_text), (section, cid), at_key=True)
    return Problem(
        path,
        here[0],
        here[1],
        f"{what} {cid} is also defined at {other}:{there[0]}:{there[1]}",
    )
