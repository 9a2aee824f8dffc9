"""YAML text -> a document, with every refusal a state file gets and FILE:LINE:COLUMN for each.

The one YAML loader of this tool: ruamel.yaml's C-backed safe loader (with a constructor
that notes keys needing quotes and duplicate keys, and builds plain documents fast), the
decoding (UTF-8 only), a nesting bound checked before parsing (a text nested too deep for
the parser's recursion is refused before it is parsed) and the alias-expansion bound (no
billion laughs). State files (loader.py) and the project file (config/loader.py) are read
with `read_yaml`.
"""

from __future__ import annotations

import functools
import re
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import Problem
from .problems import short

#: Aliases may repeat a node, not multiply the document: beyond this many nodes more than the
#: file spells out, the file is refused (no billion laughs).
ALIAS_EXPANSION_LIMIT = 1000
#: An escalation policy has a handful of levels; a larger count is a typo, and planning it
#: would mean that many calls.
#: A state file nests three levels (file, incidents, incident). Far deeper nesting is refused
#: before the position pass: ruamel's pure-Python parser takes seconds to give up on it.
NESTING_LIMIT = 50
_STATE_FILE_NEEDS = "a state file needs 3"


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
