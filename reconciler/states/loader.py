"""State files -> desired states, with FILE:LINE:COLUMN errors. Reads files, nothing else.

The fast path parses with ruamel.yaml's C-backed safe loader and checks each file's data with
the value predicates of model.py; a file that is not plainly valid goes to the pydantic model
(imported only then), which words its problems. Positions cost time, so they are only computed
for a file that has a problem: it is read again in round-trip mode, whose nodes carry line and
column. A text nested too deep for the parser's recursion is refused before it is parsed.

`read_yaml` (the reading, with every refusal) serves the project file's loader too
(config/loader.py). This module finds the problems; problems.py words them (positions, messages,
suggestions).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import Problem, StateFileError
from ..model import (
    FIELDS,
    PRIORITIES,
    SEVERITIES,
    IncidentMap,
    is_counter_id,
    is_desired_value,
    is_field_value,
)
from ..rules import (
    AGE_PATTERN,
    DEFAULT_MAX_MATCHES,
    MAX_MATCHES_LIMIT,
    OPEN_STATUSES,
    Rule,
    age_seconds,
    is_rule_name,
)
from . import DEFAULT_PATHS, SUFFIXES
from .problems import (
    NOT_A_MAPPING,
    duplicate_problem,
    locate,
    rt_positions,
    rule_problems,
    short,
)
from .schema import models

#: Aliases may repeat a node, not multiply the document: beyond this many nodes more than the
#: file spells out, the file is refused (no billion laughs).
ALIAS_EXPANSION_LIMIT = 1000
#: An escalation policy has a handful of levels; a larger count is a typo, and planning it
#: would mean that many calls.
#: A state file nests three levels (file, incidents, incident). Far deeper nesting is refused
#: before the position pass: ruamel's pure-Python parser takes seconds to give up on it.
NESTING_LIMIT = 50
_STATE_FILE_NEEDS = "a state file needs 3"


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


def _make_loader() -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import ConstructorError, SafeConstructor
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
    from ruamel.yaml.resolver import VersionedResolver, implicit_resolvers

    tag = "tag:yaml.org,2002:"
    plain_kinds = {f"{tag}int", f"{tag}bool", f"{tag}null"}

    class Constructor(SafeConstructor):
        """The safe constructor, noting keys that need quotes and duplicate keys with both
        places, instead of stopping at the first."""

        #: Where this load's problems go; set before each load (loads are not concurrent).
        problems: ClassVar[list[tuple[Any, str]]] = []
        #: Whether this load's text may take the plain path (it has no aliases).
        plain: ClassVar[bool] = False

        def construct_document(self, node: Any) -> Any:
            if self.plain:
                data = self._plain(node, {}, {})
                # What the scalars' construction left behind (also after a failure).
                self.constructed_objects, self.recursive_objects = {}, {}
                if data is not _DEFER:
                    return data
            return super().construct_document(node)

        def _plain(self, node: Any, kinds: dict[int, str], memo: dict[Any, Any]) -> Any:
            """The document as the safe constructor builds it, for a document of mappings
            with string or integer keys (each once), sequences, and strings, integers,
            booleans and nulls without explicit tags; _DEFER for anything else.

            Several times faster than the generic path: no per-node bookkeeping for aliases
            and recursion (a text without `*` has no aliases), and each distinct scalar is
            read once. Recursive: the text passed the nesting limit."""
            ctag = node.ctag
            kind = kinds.get(id(ctag))
            if kind is None:
                kind = kinds[id(ctag)] = str(ctag)
            cls = type(node)
            if cls is ScalarNode:
                if kind == f"{tag}str":
                    return node.value
                if kind not in plain_kinds:
                    return _DEFER
                key = (kind, node.value)
                if key not in memo:
                    try:
                        memo[key] = self.construct_object(node)
                    except ConstructorError:  # an explicit tag that does not fit its value:
                        return _DEFER  # the generic path says which one first
                return memo[key]
            if cls is MappingNode and kind == f"{tag}map":
                out: dict[Any, Any] = {}
                for key_node, value_node in node.value:
                    if type(key_node) is not ScalarNode:
                        return _DEFER
                    key = self._plain(key_node, kinds, memo)
                    # Only keys the generic path takes without a remark (see check_mapping_key).
                    if type(key) is not str and not (
                        type(key) is int and str(key) == key_node.value
                    ):
                        return _DEFER
                    value = self._plain(value_node, kinds, memo)
                    if value is _DEFER:
                        return _DEFER
                    out[key] = value
                return out if len(out) == len(node.value) else _DEFER  # a duplicate key
            if cls is SequenceNode and kind == f"{tag}seq":
                items = []
                for child in node.value:
                    value = self._plain(child, kinds, memo)
                    if value is _DEFER:
                        return _DEFER
                    items.append(value)
                return items
            return _DEFER

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            except (ValueError, TypeError, LookupError, OverflowError):
                # An explicit tag the value does not fit (`!!int pay-1`, `!!binary x`): ruamel
                # raises these unmarked; give them the node's position like any YAML error.
                raise ConstructorError(
                    None, None, f"cannot read {short(node.value)} as {node.tag}", node.start_mark
                ) from None

        def check_mapping_key(
            self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any
        ) -> bool:
            if isinstance(key, tuple):  # `? [a, b]`: ruamel makes a tuple, maybe unhashable
                raise ConstructorError(
                    None, None, "a key must be a name or an id, not a sequence", key_node.start_mark
                )
            if type(key) is not str and not (type(key) is int and str(key) == key_node.value):
                self.problems.append(
                    (
                        key_node.start_mark,
                        f"key {key_node.value} is read as {type(key).__name__} "
                        f"{short(key)}; quote it: '{key_node.value}'",
                    )
                )
            # 1 == True == 1.0 in Python, but `1:` and `true:` are different YAML keys.
            first = (
                next(
                    (
                        kn
                        for kn, _ in node.value
                        if kn is not key_node
                        and type(other := self.construct_object(kn)) is type(key)
                        and other == key
                    ),
                    None,
                )
                if key in mapping
                else None
            )
            if first is not None:
                self.problems.append(
                    (
                        key_node.start_mark,
                        f"duplicate key {key_node.value!r} "
                        f"(first at line {first.start_mark.line + 1})",
                    )
                )
                return False
            return True

    class Resolver(VersionedResolver):
        """ruamel's resolver, remembering each plain scalar's tag within one file.

        State files repeat a handful of values (field names, statuses, p1..p5), and
        ruamel re-derives the YAML version and runs its regexes for every one of them.
        A scalar's tag depends only on its text and the file's YAML version, so the memo
        lives on the per-file resolver.
        """

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            # Called only for nodes without an explicit tag, and no path resolvers are set:
            # a collection gets its kind's default tag.
            if kind is MappingNode:
                return self.DEFAULT_MAPPING_TAG
            if kind is SequenceNode:
                return self.DEFAULT_SEQUENCE_TAG
            if not implicit[0]:
                return super().resolve(kind, value, implicit)
            if first_chars is not None and value and value[0] not in first_chars:
                # No implicit type (int, bool, null, ...) starts with this character.
                return self.DEFAULT_SCALAR_TAG
            memo: dict[str, Any] = self.__dict__.setdefault("_tag_memo", {})
            tag = memo.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(memo) < 1024:
                    memo[value] = tag
            return tag

    # The first characters of every implicit type, in every YAML version (None when some
    # type may start with anything).
    first_chars = (
        {c for *_, starts in implicit_resolvers for c in starts}
        if all(starts is not None for *_, starts in implicit_resolvers)
        else None
    )

    yaml = YAML(typ="safe")
    yaml.Constructor = Constructor
    yaml.Resolver = Resolver
    return yaml


_LOADER: Any = None
_DEFER = object()


def _char_position(text: str, offset: int) -> tuple[int, int]:
    """Line and column (1-based) of the character at UTF-8 byte `offset` of `text` (libyaml
    counts bytes)."""
    before = text.encode("utf-8")[:offset].decode("utf-8", "replace")
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _decode(path: str, data: bytes) -> tuple[str | None, Problem | None]:
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        return None, Problem(path, line, column, "file is not UTF-8 text")


def _expanded_size(root: Any) -> tuple[int, int]:
    """(nodes as written, nodes after expanding aliases), in linear time.

    Iterative, not recursive: a deeply nested document must get a message, not a
    RecursionError.
    """
    sizes: dict[int, int] = {}
    written = 0
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        obj, children_done = stack.pop()
        if not isinstance(obj, dict | list):
            continue
        children = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else obj
        if children_done:
            sizes[id(obj)] = 1 + sum(
                sizes[id(c)] if isinstance(c, dict | list) else 1 for c in children
            )
        elif id(obj) not in sizes:
            sizes[id(obj)] = 1  # a cycle counts once
            # A container shared through aliases is written once: itself and its scalars here,
            # its containers on their own first visit.
            written += 1 + sum(not isinstance(c, dict | list) for c in children)
            stack.append((obj, True))
            stack.extend((c, False) for c in children if isinstance(c, dict | list))
    return written, sizes.get(id(root), 1)


@dataclass
class _Loaded:
    path: str
    text: str
    data: dict[str, Any] | None  # the validated incidents, or None when the file has problems
    problems: list[Problem]
    #: The file's rules (raw validated specs, by name), when it has any and no problems.
    rules: dict[str, Any] = field(default_factory=dict)


@dataclass
class YamlText:
    """One YAML file as read: its text, its document, and the problems reading it found.

    `stopped`: the problems stopped the reading (not UTF-8, nested too deep, YAML syntax, an
    alias bomb) and `doc` is None; otherwise `problems` are those the constructor noted
    (keys that need quotes, duplicate keys) and `doc` is the document (None when empty)."""

    text: str
    doc: Any
    problems: list[Problem]
    stopped: bool = False


def read_yaml(
    path: str, data: bytes, fast: bool = True, needs: str = _STATE_FILE_NEEDS
) -> YamlText:
    """`data` (the bytes of the file at `path`) read as YAML by the one loader of this tool,
    with every refusal a state file gets: not UTF-8, nesting deeper than NESTING_LIMIT (the
    message says what the file `needs`), syntax errors, aliases that multiply the document.
    `fast=False` keeps to ruamel's generic constructor."""
    global _LOADER
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    text, problem = _decode(path, data)
    if text is None:
        assert problem is not None
        return YamlText("", None, [problem], stopped=True)
    problem = nesting_problem(path, text, needs)
    if problem is not None:
        return YamlText(text, None, [problem], stopped=True)
    if _LOADER is None:
        _LOADER = _make_loader()
    loader = _LOADER
    constructor_problems: list[tuple[Any, str]] = []
    loader.Constructor.problems = constructor_problems
    loader.Constructor.plain = fast and "*" not in text
    try:
        doc = loader.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and message.startswith("but "):
            # "but found another document" only makes sense after its context.
            message = f"{exc.context}, {message}"
        problem = Problem(path, line, column, f"YAML syntax: {message}")
        return YamlText(text, None, [problem], stopped=True)
    except ReaderError as exc:  # a character YAML forbids (NUL, other controls)
        line, column = _char_position(text, exc.position)
        message = f"YAML: unacceptable character #x{exc.character:04x}: {exc.reason}"
        return YamlText(text, None, [Problem(path, line, column, message)], stopped=True)
    except YAMLError as exc:  # unmarked parser errors (e.g. several documents)
        return YamlText(text, None, [Problem(path, 1, 1, f"YAML: {exc}")], stopped=True)
    problems = [Problem(path, m.line + 1, m.column + 1, msg) for m, msg in constructor_problems]
    if "*" in text:
        written, expanded = _expanded_size(doc)
        if expanded - written > ALIAS_EXPANSION_LIMIT:
            # Validating (or even printing) such a document could take forever: stop here.
            line, column = _first_alias(text)
            message = (
                f"YAML aliases expand to {expanded} nodes; at most {ALIAS_EXPANSION_LIMIT} "
                f"more than the {written} written are allowed"
            )
            return YamlText(text, None, [Problem(path, line, column, message)], stopped=True)
    return YamlText(text, doc, problems)


def too_deep_problem(
    path: str, text: str, doc: Any, needs: str = _STATE_FILE_NEEDS
) -> Problem | None:
    """The nesting problem of a document nested too deep only through aliases (each part
    written shallow, so `read_yaml` let it through), or None."""
    if not _too_deep(doc):
        return None
    line, column = _first_too_deep(text) or (1, 1)
    return Problem(path, line, column, _nesting_message(needs))


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


def _too_deep(root: Any) -> bool:
    """True when containers nest deeper than NESTING_LIMIT (each shared one walked once)."""
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        obj, depth = stack.pop()
        if depth > NESTING_LIMIT:
            return True
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        children = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else obj
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _first_too_deep(text: str, limit: int = NESTING_LIMIT) -> tuple[int, int] | None:
    """Where nesting first goes past `limit`, from libyaml's events, or None when it
    does not before the end or the first YAML error.

    libyaml's parser keeps its own stack, so this cannot crash however deep the text; its
    composer, and every constructor after it, recurse once per level (a 30,000-deep text
    overflows the C stack: a segfault, not an exception)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    depth = 0
    with suppress(YAMLError):
        for event in YAML(typ="safe").parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > limit:
                    return event.start_mark.line + 1, event.start_mark.column + 1
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    return None


def _nesting_message(needs: str) -> str:
    return f"YAML nested more than {NESTING_LIMIT} levels deep ({needs})"


#: One line in block context: indentation, compact `- ` / `? ` indicators, then the content.
_BLOCK_LINE = re.compile(r"( *)((?:[-?](?: +|(?=\n)|$))*)([^\n]*)")
#: What matters inside a flow collection: brackets, line ends, and what could hide brackets.
_FLOW_CHAR = re.compile(r"[\[\]{}\n'\"#]")
_QUOTED = {"'": re.compile(r"'(?:[^'\n]|'')*'"), '"': re.compile(r'"(?:[^"\\\n]|\\.)*"')}
#: Where a plain key ends (`: `) or a comment starts (` #`) on a block line.
_KEY_OR_COMMENT = re.compile(r":(?: |$)|\s#")
#: What the scan leaves to the real parser: tabs, line breaks other than \n, and several
#: documents.
_UNUSUAL = ("\t", "\r", "\x85", "\u2028", "\u2029", "\n---", "\n...")
#: Tokens that start with these (tags, anchors, aliases, directives, reserved) are left to
#: the real parser too.
_UNUSUAL_START = tuple("!&*%@`")


def nesting_problem(path: str, text: str, needs: str = _STATE_FILE_NEEDS) -> Problem | None:
    """A problem when `text` nests collections deeper than NESTING_LIMIT, found without
    building anything, so that the recursive parts of ruamel.yaml never see such a text.

    A linear scan bounds the depth from above in the shapes state files are written in
    (block mappings and sequences, quoted keys and values on one line, flow collections of
    plain scalars); only a text whose bound passes the limit, or that uses anything the scan
    does not model (quotes or comments inside a flow collection, tags, anchors, tabs, ...),
    is walked exactly with libyaml's events, which stop at the first YAML error as the
    loader does."""
    if not _may_nest_too_deep(text):
        return None
    place = _first_too_deep(text)
    return None if place is None else Problem(path, *place, _nesting_message(needs))


#: A flow collection that closes on its own line, with nothing in between that could hide a
#: bracket (another opener, a quote, a comment).
_CLOSED_FLOW = re.compile(r"[\[{][^\[\]{}'\"#\n]*[\]}]")


@functools.lru_cache(maxsize=8)
def _wide_prefix(width: int) -> re.Pattern[str]:
    """Indentation and block indicators `width` or more characters wide, after a line break."""
    return re.compile(rf"\n[ ?:-]{{{width}}}")


def _unusual(text: str) -> bool:
    return text.startswith(("---", "...")) or any(part in text for part in _UNUSUAL)


def _may_nest_too_deep(text: str, limit: int = NESTING_LIMIT) -> bool:
    """False only when the text surely nests at most `limit` levels."""
    if _unusual(text):
        return True
    # The usual shapes, at the speed of the regex engine: when every flow collection closes
    # on its own line, each line starts outside any and holds at most one level of them; a
    # line's block collections all start at or left of its content's column, at most two at
    # one column (a mapping, and a block sequence as one of its values).
    width = (limit - 1) // 2
    if (
        width > 0
        and not _wide_prefix(width).search("\n" + text[:width])
        and not _wide_prefix(width).search(text)
        and text.count("[") + text.count("{") == len(_CLOSED_FLOW.findall(text))
    ):
        return False
    # Every open block collection starts at a column on this stack (its line's indentation
    # or a compact indicator's); a block sequence may share its parent mapping's column,
    # hence two levels per column. Open flow collections add one level each.
    columns: list[int] = []
    flow = 0
    pos, end = 0, len(text)
    while pos < end:
        if flow:
            match = _FLOW_CHAR.search(text, pos)
            if match is None:
                return False  # the parser refuses the unclosed collection
            char, pos = match.group(), match.end()
            if char in "[{":
                flow += 1
                if 2 * len(columns) + flow > limit:
                    return True
            elif char in "]}":
                flow -= 1
                if not flow:
                    eol = text.find("\n", pos)
                    eol = end if eol < 0 else eol
                    rest = text[pos:eol].strip()
                    if rest and not rest.startswith("#"):
                        return True  # a flow key (`[a]: b`) or more after the collection
                    pos = eol
            elif char != "\n":
                return True  # a quote or a comment inside a flow collection
            continue
        line = _BLOCK_LINE.match(text, pos)
        assert line is not None  # every part of the pattern may be empty
        pos = line.end() + 1
        column, compact, content = len(line.group(1)), line.group(2), line.group(3)
        if not compact and (not content or content.startswith("#")):
            continue  # blank lines and comments do not end collections
        while columns and columns[-1] > column:
            columns.pop()
        starts = [column + i for i, char in enumerate(compact) if char in "-?"]
        for start in [column, *starts, column + len(compact)]:
            if not columns or columns[-1] < start:
                columns.append(start)
        if 2 * len(columns) > limit:
            return True
        value = _block_value(content)
        if value is None:
            return True
        if value[:1] in ("[", "{"):
            flow, pos = 1, line.end() - len(value) + 1
            if 2 * len(columns) + flow > limit:
                return True
    return False


def _block_value(content: str) -> str | None:
    """What may hold a flow collection on a block line (`[...` / `{...`, or ""), or None
    when the line is not in a shape the scan models."""
    if content.startswith(_UNUSUAL_START):
        return None
    if content[:1] in ("'", '"'):  # a quoted key or scalar, on this line
        quoted = _QUOTED[content[0]].match(content)
        if quoted is None:
            return None
        after = content[quoted.end() :].lstrip()
        if after[:1] == ":" and after[1:2] in ("", " "):
            content = after[1:].lstrip()
        elif after and not after.startswith("#"):
            return None
        else:
            return ""
    elif content[:1] not in ("[", "{"):  # a plain key or scalar: brackets in it are text
        stop = _KEY_OR_COMMENT.search(content)
        if stop is None or not stop.group().startswith(":"):
            return ""
        content = content[stop.end() :].lstrip()
    if content.startswith(_UNUSUAL_START):
        return None
    if content[:1] in ("'", '"'):
        quoted = _QUOTED[content[0]].match(content)
        after = "" if quoted is None else content[quoted.end() :].strip()
        return "" if quoted is not None and (not after or after.startswith("#")) else None
    return content if content[:1] in ("[", "{") else ""


def _first_alias(text: str) -> tuple[int, int]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import AliasEvent

    with suppress(YAMLError):  # the pure-Python parser may refuse what libyaml accepted
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, AliasEvent):
                return event.start_mark.line + 1, event.start_mark.column + 1
    return 1, 1


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
