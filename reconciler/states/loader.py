"""State files -> desired states, with FILE:LINE:COLUMN errors. Reads files, nothing else.

The fast path parses with ruamel.yaml's C-backed safe loader and checks each file's data with
the value predicates of model.py; a file that is not plainly valid goes to the pydantic model
(imported only then), which words its problems. Positions cost time, so they are only computed
for a file that has a problem: it is read again in round-trip mode, whose nodes carry line and
column. A text nested too deep for the parser's recursion is refused before it is parsed.

The reading, with every refusal, is reading.py's (`read_yaml`, which serves the project file's
loader too); the fast path's checks are fastpath.py's. This module finds the problems;
problems.py words them (positions, messages, suggestions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Problem, StateFileError
from ..model import IncidentMap
from ..rules import DEFAULT_MAX_MATCHES, Rule, age_seconds
from . import DEFAULT_PATHS, SUFFIXES
from .fastpath import _stringify_keys, _valid_incidents, _valid_rules
from .problems import (
    NOT_A_MAPPING,
    duplicate_problem,
    locate,
    rt_positions,
    rule_problems,
)
from .reading import read_yaml, too_deep_problem
from .schema import models


@dataclass
class DesiredState:
    """Every incident the state files manage, and where each one was written; the rules
    (each knows its file), in name order."""

    incidents: IncidentMap = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    inputs_digest: str = ""
    rules: list[Rule] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Finding files


def discover(paths: Sequence[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Every *.yaml / *.yml under `paths`, recursively, in sorted order."""
    found: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            problems.append(Problem(str(path), 0, 0, "no such file or directory"))
    # One file named twice (`states states/a.yaml`, or relative and absolute) is read once:
    # otherwise every id in it would be its own duplicate.
    unique: dict[Path, Path] = {}
    for file in sorted(found, key=lambda p: p.as_posix()):
        unique.setdefault(file.resolve(), file)
    return list(unique.values()), problems


# ---------------------------------------------------------------------------------------------
# Loading one file


@dataclass
class _Loaded:
    path: str
    text: str
    data: dict[str, Any] | None  # the validated incidents, or None when the file has problems
    problems: list[Problem]
    #: The file's rules (raw validated specs, by name), when it has any and no problems.
    rules: dict[str, Any] = field(default_factory=dict)


def _load_file(path: str, data: bytes, fast: bool = True) -> _Loaded:
    """One file's incidents or problems; `fast=False` validates with the model only."""
    read = read_yaml(path, data, fast)
    text, doc, problems = read.text, read.doc, read.problems
    if read.stopped:
        return _Loaded(path, text, None, problems)
    if doc is None:
        return _Loaded(path, text, None if problems else {}, problems)
    if not isinstance(doc, dict):
        return _Loaded(path, text, None, [*problems, Problem(path, 1, 1, NOT_A_MAPPING)])
    incidents = doc.get("incidents")
    if isinstance(incidents, dict) and any(type(k) is int for k in incidents):
        doc["incidents"], clashes = _stringify_keys(incidents)
        if clashes:
            root = rt_positions(text)
            spelled: Any = root.get("incidents") if isinstance(root, dict) else None
            keys = list(spelled) if hasattr(spelled, "lc") else []
            for cid in clashes:
                # Both places: the problem sits at the second, naming the first.
                places = [
                    (spelled.lc.key(k)[0] + 1, spelled.lc.key(k)[1] + 1)
                    for k in keys
                    if str(k) == cid and k in (spelled.lc.data or {})  # not merged in by `<<`
                ] or [(1, 1)]
                problems.append(
                    Problem(
                        path,
                        *places[-1],
                        f"incident {cid} is written twice, once as a number and once quoted "
                        f"(first at line {places[0][0]})",
                    )
                )
    valid = _valid_incidents(doc) if fast else None
    raw_rules = doc.get("rules")
    if valid is not None:
        plain_rules = {} if raw_rules is None else _valid_rules(raw_rules)
        if plain_rules is not None and not (plain_rules and rule_problems(path, text, plain_rules)):
            return _Loaded(path, text, None if problems else valid, problems, plain_rules)
    from pydantic import ValidationError

    try:
        # A file with rules is checked by the model (rules are few; the fast path stays the
        # incidents'): only its rules when its incidents already passed.
        model = models()[1].validate_python(doc if valid is None else {"rules": raw_rules})
    except ValidationError as exc:
        deep = too_deep_problem(path, text, doc)  # through aliases: each part is shallow
        if deep is not None:
            return _Loaded(path, text, None, [deep])
        located = locate(path, text, exc)
        if isinstance(raw_rules, dict):
            located.extend(rule_problems(path, text, raw_rules))
        if not (problems or located):
            # Never a file left out in silence: its incidents would be forgotten.
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            located = [Problem(path, 1, 1, f"not a valid state file: {where}: {first['msg']}")]
        return _Loaded(path, text, None, [*problems, *located])
    rules = dict(model.rules or {})
    problems.extend(rule_problems(path, text, rules))
    incidents = valid if valid is not None else (model.incidents or {})
    return _Loaded(path, text, None if problems else incidents, problems, rules)


def _make_rule(name: str, source: str, spec: Mapping[str, Any]) -> Rule:
    """A validated rule spec (see rule_problems) as a Rule."""
    match = spec["match"]
    older = match.get("older_than")
    return Rule(
        name=name,
        source=source,
        statuses=frozenset(match["status"]),
        set=dict(spec["set"]),
        older_than=None if older is None else age_seconds(older),
        priority=frozenset(match["priority"]) if "priority" in match else None,
        severity=frozenset(match["severity"]) if "severity" in match else None,
        title=match.get("title"),
        max_matches=spec.get("max_matches", DEFAULT_MAX_MATCHES),
    )


# ---------------------------------------------------------------------------------------------
# Loading everything


def file_meaning(path: str, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the text of the state file at `path` says: its incidents (each its fields) and
    its rules (validated specs, by name). Raises StateFileError with its problems."""
    loaded = _load_file(path, text.encode())
    if loaded.data is None:
        raise StateFileError(loaded.problems)
    incidents = {cid: spec or {} for cid, spec in loaded.data.items()}
    return incidents, loaded.rules


def load(paths: Sequence[str | Path] = DEFAULT_PATHS) -> DesiredState:
    """Read every state file under `paths`; raise StateFileError listing every problem."""
    files, problems = discover(paths)
    desired = DesiredState()
    # The digest covers the files' contents, not where the checkout is: the same states give
    # the same inputs_digest from any folder or spelling of the path.
    contents: list[str] = []
    texts: dict[str, str] = {}
    rule_sources: dict[str, str] = {}
    for file in files:
        name = str(file)
        try:
            data = file.read_bytes()
        except OSError as exc:
            problems.append(Problem(name, 0, 0, f"cannot read: {exc.strerror}"))
            continue
        contents.append(hashlib.sha256(data).hexdigest())
        loaded = _load_file(name, data)
        problems.extend(loaded.problems)
        if loaded.data is None:
            continue
        texts[name] = loaded.text
        incidents, sources = desired.incidents, desired.sources
        for cid, spec in loaded.data.items():
            other = sources.get(cid)
            if other is not None:
                problems.append(duplicate_problem(name, other, loaded.text, texts[other], cid))
                continue
            incidents[cid] = spec if spec else {}
            sources[cid] = name
        for rule_name, rule_spec in loaded.rules.items():
            other = rule_sources.get(rule_name)
            if other is not None:
                problems.append(
                    duplicate_problem(
                        name, other, loaded.text, texts[other], rule_name, "rules", "rule"
                    )
                )
                continue
            rule_sources[rule_name] = name
            desired.rules.append(_make_rule(rule_name, name, rule_spec))
        desired.files.append(name)
    if problems:
        raise StateFileError(sorted(set(problems)))
    desired.rules.sort(key=lambda rule: rule.name)
    desired.inputs_digest = _inputs_digest(contents)
    return desired


def _inputs_digest(contents: list[str]) -> str:
    """The digest of state files from their contents' sha256 hex digests."""
    return "sha256:" + hashlib.sha256("\n".join(sorted(contents)).encode()).hexdigest()


def reload(desired: DesiredState, paths: Sequence[str | Path] = DEFAULT_PATHS) -> DesiredState:
    """`load(paths)` again, for a caller that read them before taking a lock: `desired`
    itself when the same files hold the same bytes (hashing them is cheap, parsing is not)."""
    files, problems = discover(paths)
    if problems or [str(f) for f in files] != desired.files:
        return load(paths)
    try:
        contents = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    except OSError:
        return load(paths)  # which reports it
    return desired if _inputs_digest(contents) == desired.inputs_digest else load(paths)
