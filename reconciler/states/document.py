"""State files -> one canonical text, every comment kept beside what it was written next to.

The canonical form: the top-level keys `version` then `incidents` (each only if the file has
it), a `rules:` block copied line for line as written, in its place among them (this module
owns the incidents, never the rules: `rewrite` reads the result back to prove it); incidents
sorted by id, by code point (the order of plans); fields in the order status,
priority, severity, public_sharing, escalations; two-space block style; an id that a YAML 1.1
or 1.2 reader would not read as a string ("116", "2024-01-01", "yes") in double quotes;
`null`, `true` and `false` spelled so; an incident or `incidents` without entries as `{}`;
one blank line between two incidents (each reads as a paragraph in a review) and before the
comments that end `incidents`; no other blank lines but one kept between two comments of the
same block; no anchors, aliases, tags, directives or document markers (they are expanded or
dropped, which never changes what the file means); one newline at the end.

Comments are attached by position, the way a reader sees them:

- a comment at the end of a line belongs to the first key on that line (the key above when
  the line has none, e.g. a closing `}`); a second one for the same key goes above it; on a
  `---`, `...` or `%` directive line it counts as a comment on a line of its own;
- a comment on a line of its own belongs to the key below it, unless it is indented deeper
  than that key and sits at the end of a mapping above (a commented-out field after an
  incident's last field): then it stays at the end of that mapping;
- what comes before the first key is the file's header and stays first (a schema line, an
  owner); what follows the last key stays at the end of the file.

This module is pure (text in, text out). Meaning comes from `states.loader.load` (the validated
values are passed in); positions from ruamel.yaml's C composer; comments from the text by
YAML's own rule: `#` at the start of a line or after a space or tab begins a comment, and in
a valid state file no scalar can hold one (no valid id or value contains `#`). ruamel.yaml's
round-trip mode is not used here: it drops comments inside flow mappings, files the comment
above a key under the key before it, and is four times slower than the C composer, which
would make `fmt --check` far slower than the parse it wraps.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import Problem, StateFileError
from ..model import FIELDS, Fields, Value

#: YAML's line breaks (libyaml counts lines, so node marks, by the same ones).
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: Words a YAML 1.1 reader takes for booleans or null (ids are letters, digits and hyphens,
#: so these and ids starting with a digit are the only ones that can read as non-strings).
_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


@dataclass
class Comments:
    """The comments written beside one key.

    `before`: whole-line comments above the key ("" is one blank line kept between two of
    them); `eol`: the comment at the end of the key's line; `after`: for a key whose value is
    a mapping, whole-line comments at the end of that mapping (commented-out entries).
    Each comment is its text from `#`, without trailing whitespace.
    """

    before: list[str] = field(default_factory=list)
    eol: str | None = None
    after: list[str] = field(default_factory=list)


@dataclass
class Entry:
    """One incident: its fields (validated values) and the comments beside it and them."""

    fields: Fields
    comments: Comments = field(default_factory=Comments)
    field_comments: dict[str, Comments] = field(default_factory=dict)


@dataclass
class Document:
    """A state file as fmt sees it: which top-level keys it has, its incidents, comments."""

    top: dict[str, Comments] = field(default_factory=dict)
    incidents: dict[str, Entry] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    #: The `rules:` block exactly as written, from its key's line to its last line (every
    #: comment inside it included): this module owns the incidents, never the rules.
    rules: list[str] = field(default_factory=list)

    @classmethod
    def new(cls) -> Document:
        """The document of a file that does not exist yet: `version: 1`, no incidents."""
        return cls(top={"version": Comments(), "incidents": Comments()})

    def put(self, counter_id: str, fields: Mapping[str, Value]) -> None:
        """Add an incident, or set these fields of one already here (others and every
        comment stay)."""
        entry = self.incidents.get(counter_id)
        if entry is None:
            self.incidents[counter_id] = Entry(dict(fields))
        else:
            entry.fields.update(fields)
        self.top.setdefault("incidents", Comments())

    def render(self) -> str:
        """The canonical text (module docstring); "" for a file with nothing in it."""
        out: list[str] = list(self.header)
        version = self.top.get("version")
        if version is not None:
            _block(out, version.before, "")
            out.append(_line("version: 1", version.eol))
        for key, comments in self.top.items():
            if key == "rules":
                _block(out, comments.before, "")
                out.extend(self.rules)
            elif key == "incidents":
                self._render_incidents(out, comments)
        _block(out, self.after, "")
        return "\n".join(out) + "\n" if out else ""

    def _render_incidents(self, out: list[str], incidents: Comments) -> None:
        _block(out, incidents.before, "")
        bare = self.incidents or incidents.after
        out.append(_line("incidents:" if bare else "incidents: {}", incidents.eol))
        for n, counter_id in enumerate(sorted(self.incidents)):
            if n:
                out.append("")
            _render_entry(out, counter_id, self.incidents[counter_id])
        if self.incidents and incidents.after:
            out.append("")
        _block(out, incidents.after, "  ")


def rewrite(path: str, doc: Document, before: str | None = None) -> str:
    """`doc` rendered, checked to mean what it should before anything is written: the
    incidents of `doc` and, of `before` (the file's text when it exists), exactly its rules.

    A rewrite owns the incidents alone; a text that would drop or change a rule (or hold an
    incident other than asked) raises StateFileError instead of being written.
    """
    from .loader import file_meaning

    text = doc.render()
    rules = file_meaning(path, before)[1] if before is not None else {}
    incidents, written = file_meaning(path, text)
    asked = {cid: entry.fields for cid, entry in doc.incidents.items()}
    if written != rules or incidents != asked:
        what = "its rules" if written != rules else "its incidents"
        raise StateFileError(
            [Problem(path, 0, 0, f"not rewritten: the new text would change {what}")]
        )
    return text


def format_text(text: str, incidents: Mapping[str, Fields]) -> str:
    """The canonical form of a valid state file's `text`, whose validated incidents (from
    `states.loader.load`) are `incidents`."""
    return parse(text, incidents).render()


def parse(text: str, incidents: Mapping[str, Fields], path: str = "<state file>") -> Document:
    """Read a valid state file's structure and comments; values come from `incidents`.

    `text` must be a file `states.loader.load` accepted, decoded, and `incidents` what it read from
    it: this reads positions and comments, never meaning. Its `rules:` block is kept as
    written (`path` names the file in the one problem that can stop that).
    """
    doc = Document(incidents={cid: Entry(dict(f)) for cid, f in incidents.items()})
    keys = _keys(text, doc)
    starts = [(key.line, key.column) for key in keys]
    lines = _LINE_BREAK.split(text)
    kept = _rules_block(path, lines, keys, doc)
    for number, column, comment in _comments(lines):
        if number in kept:
            continue
        head = lines[number][:column].strip(" \t")
        if head:
            at = bisect_left(starts, (number, -1))
            if at < len(keys) and keys[at].line == number:
                _add_eol(keys[at].comments, comment)
                continue
            if at > 0 and not head.startswith(("---", "...", "%")):
                _add_eol(keys[at - 1].comments, comment)
                continue
            # After a document marker or a directive: a whole-line comment at its column.
            column = len(lines[number]) - len(lines[number].lstrip(" \t"))
        blank_before = number > 0 and not lines[number - 1].strip(" \t")
        at = bisect_left(starts, (number, column))
        if at == 0:
            _add(doc.header, comment, blank_before)
            continue
        below = keys[at] if at < len(keys) else None
        _add(_whole_line_target(keys[at - 1], below, column), comment, blank_before)
    return doc


# ---------------------------------------------------------------------------------------------
# Structure and positions


@dataclass(eq=False)
class _Map:
    """A mapping as written: where comments at its end go, and how deep they must be."""

    threshold: int  # the column of its keys (for an empty one: deeper than its own key)
    after: list[str]
    parent: _Map | None


@dataclass(eq=False)
class _Key:
    """A key as written: its position, its comments, the mapping it is in and its value's."""

    line: int
    column: int
    comments: Comments
    container: _Map
    child: _Map | None


_COMPOSER: Any = None


def _compose(text: str) -> Any:
    global _COMPOSER
    from .reading import nesting_problem

    # libyaml's composer recurses once per level: a text too deep for it crashes the process.
    problem = nesting_problem("<state file>", text)
    if problem is not None:
        raise StateFileError([problem])
    if _COMPOSER is None:
        from ruamel.yaml import YAML

        _COMPOSER = YAML(typ="safe", pure=False)
    return _COMPOSER.compose(text)


def _pairs(node: Any) -> Iterator[tuple[Any, Any]]:
    """A mapping node's (key, value) nodes as written, without merge keys (`<<: *base`):
    the entries they bring are written elsewhere."""
    for key, value in node.value:
        if key.value == "<<" and str(key.tag) == _MERGE_TAG:
            continue
        yield key, value


def _child(value: Any, key: Any, parent: _Map, after: list[str]) -> _Map:
    written = value.id == "mapping" and value.value
    threshold = value.value[0][0].start_mark.column if written else key.start_mark.column + 1
    return _Map(threshold, after, parent)


def _keys(text: str, doc: Document) -> list[_Key]:
    """Every key written in the file (top-level keys, incident ids, fields), in order, with
    the Comments objects of `doc` they own. Sets `doc.top` to the top-level keys written."""
    root = _compose(text)
    keys: list[_Key] = []
    if root is None or root.id != "mapping":
        return keys
    top = _Map(0, doc.after, None)
    seen: set[int] = {id(root)}
    for key, value in _pairs(root):
        comments = doc.top.setdefault(key.value, Comments())
        child = None
        if key.value == "incidents":
            child = _child(value, key, top, comments.after)
            if value.id == "mapping" and id(value) not in seen:
                seen.add(id(value))
                _incident_keys(value, child, doc, seen, keys)
        mark = key.start_mark
        keys.append(_Key(mark.line, mark.column, comments, top, child))
    keys.sort(key=lambda k: (k.line, k.column))
    return keys


def _incident_keys(
    node: Any, container: _Map, doc: Document, seen: set[int], keys: list[_Key]
) -> None:
    for key, value in _pairs(node):
        entry = doc.incidents.get(key.value)
        if entry is None:  # pragma: no cover - a valid file's ids are all in `incidents`
            continue
        child = _child(value, key, container, entry.comments.after)
        mark = key.start_mark
        keys.append(_Key(mark.line, mark.column, entry.comments, container, child))
        if value.id != "mapping" or id(value) in seen:
            continue  # null, or an alias of a mapping written (and walked) elsewhere
        seen.add(id(value))
        for name_node, _ in _pairs(value):
            name = name_node.value
            comments = entry.field_comments.setdefault(name, Comments())
            mark = name_node.start_mark
            keys.append(_Key(mark.line, mark.column, comments, child, None))


def _rules_block(path: str, lines: list[str], keys: list[_Key], doc: Document) -> range:
    """Copy the `rules:` block into `doc.rules`, as written, and return its lines.

    It runs from the `rules:` line to the line before the next top-level key (or the end),
    less what ends it and belongs elsewhere by the rules of the module docstring: blank lines,
    comments at column 0 (the next key's, or the file's end) and a document end marker.
    """
    comments = doc.top.get("rules")
    if comments is None:
        return range(0)
    at = next(n for n, key in enumerate(keys) if key.comments is comments)
    start = keys[at].line
    stop = keys[at + 1].line if at + 1 < len(keys) else len(lines)
    if keys[at].column != 0 or stop == start:
        # A flow or indented top level: no line of its own to copy it by.
        line, column = start + 1, keys[at].column + 1
        raise StateFileError(
            [
                Problem(
                    path,
                    line,
                    column,
                    "rules: must be a top-level key at the start of its own line for this "
                    "file to be rewritten (its rules are copied as written)",
                )
            ]
        )
    while stop > start + 1:
        last = lines[stop - 1]
        bare = last.strip(" \t")
        if bare and last[0] in " \t":
            break
        if bare and not bare.startswith("#") and not bare.startswith("..."):
            break
        stop -= 1
    doc.rules = lines[start:stop]
    return range(start, stop)


# ---------------------------------------------------------------------------------------------
# Comments


def _comments(lines: list[str]) -> Iterator[tuple[int, int, str]]:
    """(line, column, text) of every comment, in order."""
    for number, line in enumerate(lines):
        at = line.find("#")
        while at > 0 and line[at - 1] not in " \t":
            at = line.find("#", at + 1)
        if at >= 0:
            yield number, at, line[at:].rstrip(" \t")


def _whole_line_target(above: _Key, below: _Key | None, column: int) -> list[str]:
    """Where a whole-line comment after a key goes.

    At the end of a mapping when it ends one: the deepest mapping that the key above is in
    (or opens) and the key below is not, whose keys are at most as deep as the comment (the
    root, at column 0, when nothing follows). Otherwise above the key below.
    """
    stop = below.container if below is not None else None
    mapping: _Map | None = above.child if above.child is not None else above.container
    while mapping is not None and mapping is not stop:
        if mapping.threshold <= column:
            return mapping.after
        mapping = mapping.parent
    assert below is not None  # with nothing below, the walk reached the root
    return below.comments.before


def _add(lines: list[str], comment: str, blank_before: bool) -> None:
    if blank_before and lines and lines[-1]:
        lines.append("")
    lines.append(comment)


def _add_eol(comments: Comments, comment: str) -> None:
    if comments.eol is None:
        comments.eol = comment
    else:  # a key can carry one end-of-line comment; the others go above it
        comments.before.append(comment)


# ---------------------------------------------------------------------------------------------
# Writing


def _render_entry(out: list[str], counter_id: str, entry: Entry) -> None:
    _block(out, entry.comments.before, "  ")
    names = [name for name in FIELDS if name in entry.fields]
    bare = names or entry.comments.after
    key = f"  {quote_id(counter_id)}:"
    out.append(_line(key if bare else key + " {}", entry.comments.eol))
    for name in names:
        comments = entry.field_comments.get(name)
        if comments is not None:
            _block(out, comments.before, "    ")
        text = f"    {name}: {_value(entry.fields[name])}"
        out.append(_line(text, comments.eol if comments is not None else None))
    _block(out, entry.comments.after, "    ")


def _block(out: list[str], comments: list[str], indent: str) -> None:
    out.extend(indent + c if c else "" for c in comments)


def _line(text: str, eol: str | None) -> str:
    return f"{text}  {eol}" if eol is not None else text


def _value(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_RESOLVERS: list[Any] = []


def quote_id(counter_id: str) -> str:
    """The id as a key: double-quoted when a YAML 1.1 or 1.2 reader would not read it, plain,
    as a string (an int, a float, a date, a boolean, null)."""
    if counter_id.lower() in _WORDS or counter_id.isdigit():
        return f'"{counter_id}"'
    if not counter_id[0].isdigit():
        return counter_id
    if not _RESOLVERS:
        from ruamel.yaml.resolver import VersionedResolver

        _RESOLVERS.extend(VersionedResolver(version=v) for v in ((1, 1), (1, 2)))
    from ruamel.yaml.nodes import ScalarNode

    for resolver in _RESOLVERS:
        if str(resolver.resolve(ScalarNode, counter_id, (True, False))) != _STR_TAG:
            return f'"{counter_id}"'
    return counter_id
