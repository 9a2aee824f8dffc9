"""State files (docs/state-files.md, Errors): every malformed
input is an exact FILE:LINE:COLUMN message.

Each malformed case is checked twice: through `states.load` (the exact problems, in order)
and through `reconcile validate`, which must exit 1 with those lines on stderr and no
traceback.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import StateFileError
from reconciler.states.loader import load

LONG_ID = "a" * 65
INVALID_ID = "ids are letters and digits, groups joined by single hyphens, at most 64 characters"
FIELDS_HINT = "(valid: status, priority, severity, public_sharing, escalations)"
BOMB = """\
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
incidents: {}
"""


def one(text: str | bytes) -> dict[str, str | bytes]:
    return {"s.yaml": text}


# (files, [(file, line, column, part of the message)]); "{dir}" is the folder of the files.
MALFORMED: dict[str, tuple[dict[str, str | bytes], list[tuple[str, int, int, str]]]] = {
    # YAML syntax
    "syntax-flow": (
        one("incidents:\n  a: {status: [}\n"),
        [("s.yaml", 2, 16, "YAML syntax: did not find expected node content")],
    ),
    "syntax-unclosed-quote": (
        one('incidents:\n  a:\n    status: "acknowledged\n'),
        [("s.yaml", 4, 1, "YAML syntax: found unexpected end of stream")],
    ),
    "syntax-indentation": (
        one("incidents:\n  a:\n    status: triggered\n   priority: p1\n"),
        [("s.yaml", 4, 4, "YAML syntax: did not find expected key")],
    ),
    "syntax-tab": (
        one("incidents:\n\ta: {}\n"),
        [("s.yaml", 2, 1, "YAML syntax: found character that cannot start any token")],
    ),
    "syntax-value-after-value": (
        one("incidents:\n  a: b: c\n"),
        [("s.yaml", 2, 7, "mapping values are not allowed in this context")],
    ),
    "syntax-undefined-alias": (
        one("incidents:\n  a: *nope\n"),
        [("s.yaml", 2, 6, "YAML syntax: found undefined alias")],
    ),
    "syntax-python-tag": (
        one("incidents:\n  a: !!python/object:os.system {}\n"),
        [("s.yaml", 2, 6, "could not determine a constructor for the tag")],
    ),
    "several-documents": (
        one("incidents: {}\n---\nincidents: {}\n"),
        [("s.yaml", 2, 1, "expected a single document in the stream, but found another document")],
    ),
    # unknown keys, at each level, with the nearest valid key
    "unknown-top-key": (
        one("verison: 1\nincidents: {}\n"),
        [
            (
                "s.yaml",
                1,
                1,
                "unknown key 'verison' at the top level; did you mean 'version'? "
                "(valid: version, incidents, rules)",
            )
        ],
    ),
    "unknown-top-key-incident": (
        one("incident:\n  a: {}\n"),
        [("s.yaml", 1, 1, "unknown key 'incident' at the top level; did you mean 'incidents'?")],
    ),
    "unknown-field": (
        one("incidents:\n  pay-1:\n    status: triggered\n    priorty: p1\n"),
        [
            (
                "s.yaml",
                4,
                5,
                f"unknown key 'priorty' in incident pay-1; did you mean 'priority'? {FIELDS_HINT}",
            )
        ],
    ),
    "unknown-field-sharing": (
        one("incidents:\n  a:\n    public_share: true\n"),
        [
            (
                "s.yaml",
                3,
                5,
                "unknown key 'public_share' in incident a; did you mean 'public_sharing'?",
            )
        ],
    ),
    "unknown-field-no-hint": (
        one("incidents:\n  a:\n    owner: bob\n"),
        [("s.yaml", 3, 5, f"unknown key 'owner' in incident a {FIELDS_HINT}")],
    ),
    "unknown-field-numeric": (
        one("incidents:\n  a:\n    1: x\n"),
        [("s.yaml", 3, 5, f"unknown key '1' in incident a {FIELDS_HINT}")],
    ),
    # values outside the enums
    "status-enum": (
        one("incidents:\n  a:\n    status: closed\n"),
        [("s.yaml", 3, 13, "incident a: status must be one of triggered, acknowledged, resolved")],
    ),
    "status-null": (
        one("incidents:\n  a:\n    status: null\n"),
        [("s.yaml", 3, 5, "incident a: status must be one of triggered, acknowledged, resolved")],
    ),
    "status-empty-string": (
        one('incidents:\n  a:\n    status: ""\n'),
        [("s.yaml", 3, 13, "incident a: status must be one of")],
    ),
    "priority-enum": (
        one("incidents:\n  a:\n    priority: P1\n"),
        [("s.yaml", 3, 15, "incident a: priority must be one of p1, p2, p3, p4, p5, null")],
    ),
    "severity-enum": (
        one("incidents:\n  a:\n    severity: sev4\n"),
        [("s.yaml", 3, 15, "incident a: severity must be one of sev1, sev2, sev3, null")],
    ),
    # wrong types
    "sharing-quoted-yes": (
        one('incidents:\n  a:\n    public_sharing: "yes"\n'),
        [("s.yaml", 3, 21, "incident a: public_sharing must be true or false (a YAML boolean)")],
    ),
    "sharing-bare-yes": (  # YAML 1.2: `yes` is a string, not a boolean
        one("incidents:\n  a:\n    public_sharing: yes\n"),
        [("s.yaml", 3, 21, "public_sharing must be true or false")],
    ),
    "sharing-one": (
        one("incidents:\n  a:\n    public_sharing: 1\n"),
        [("s.yaml", 3, 21, "public_sharing must be true or false")],
    ),
    "escalations-negative": (
        one("incidents:\n  a:\n    escalations: -1\n"),
        [("s.yaml", 3, 18, "incident a: escalations must be a whole number from 0 to 100")],
    ),
    "escalations-float": (
        one("incidents:\n  a:\n    escalations: 1.5\n"),
        [("s.yaml", 3, 18, "escalations must be a whole number from 0 to 100")],
    ),
    "escalations-whole-float": (
        one("incidents:\n  a:\n    escalations: 2.0\n"),
        [("s.yaml", 3, 18, "escalations must be a whole number from 0 to 100")],
    ),
    "escalations-string": (
        one('incidents:\n  a:\n    escalations: "3"\n'),
        [("s.yaml", 3, 18, "escalations must be a whole number from 0 to 100")],
    ),
    "escalations-bool": (
        one("incidents:\n  a:\n    escalations: true\n"),
        [("s.yaml", 3, 18, "escalations must be a whole number from 0 to 100")],
    ),
    "version-2": (one("version: 2\nincidents: {}\n"), [("s.yaml", 1, 10, "version must be 1")]),
    "version-true": (
        one("version: true\nincidents: {}\n"),
        [("s.yaml", 1, 10, "version must be 1")],
    ),
    "escalations-huge": (
        one("incidents:\n  a:\n    escalations: 3000000\n"),
        [("s.yaml", 3, 18, "escalations must be a whole number from 0 to 100")],
    ),
    "version-string": (one('version: "1"\n'), [("s.yaml", 1, 10, "version must be 1")]),
    # shapes
    "top-level-list": (
        one("- a\n- b\n"),
        [("s.yaml", 1, 1, "the top level must be a mapping with 'incidents'")],
    ),
    "top-level-scalar": (
        one("hello\n"),
        [("s.yaml", 1, 1, "the top level must be a mapping with 'incidents'")],
    ),
    "incidents-list": (
        one("incidents:\n  - pay-1\n"),
        [("s.yaml", 2, 3, "incidents must be a mapping of id -> fields")],
    ),
    "incidents-scalar": (
        one("incidents: 5\n"),
        [("s.yaml", 1, 12, "incidents must be a mapping of id -> fields")],
    ),
    "incident-list": (
        one("incidents:\n  a: [status]\n"),
        [("s.yaml", 2, 6, "incident a must be a mapping of fields")],
    ),
    "incident-scalar": (
        one("incidents:\n  a: triggered\n"),
        [("s.yaml", 2, 6, "incident a must be a mapping of fields")],
    ),
    # the same id twice
    "duplicate-id-one-file": (
        one("incidents:\n  x:\n    status: resolved\n  ok: {}\n  x:\n    status: triggered\n"),
        [("s.yaml", 5, 3, "duplicate key 'x' (first at line 2)")],
    ),
    "duplicate-field": (
        one("incidents:\n  a:\n    status: triggered\n    status: resolved\n"),
        [("s.yaml", 4, 5, "duplicate key 'status' (first at line 3)")],
    ),
    "duplicate-id-two-files": (
        {
            "a.yaml": "incidents:\n  pay-1: {}\n",
            "b.yaml": "# second\nincidents:\n  other: {}\n  pay-1:\n    status: resolved\n",
        },
        [("b.yaml", 4, 3, "incident pay-1 is also defined at {dir}/a.yaml:2:3")],
    ),
    "duplicate-id-number-and-quoted": (
        one('incidents:\n  116: {}\n  ok: {}\n  "116": {}\n'),
        [
            (
                "s.yaml",
                4,
                3,
                "incident 116 is written twice, once as a number and once quoted (first at line 2)",
            )
        ],
    ),
    # invalid ids
    "id-underscore": (
        one("incidents:\n  pay_122: {}\n"),
        [("s.yaml", 2, 3, f"invalid incident id 'pay_122': {INVALID_ID}")],
    ),
    "id-too-long": (one(f"incidents:\n  {LONG_ID}: {{}}\n"), [("s.yaml", 2, 3, INVALID_ID)]),
    "id-leading-hyphen": (
        one("incidents:\n  -abc: {}\n"),
        [("s.yaml", 2, 3, "invalid incident id '-abc'")],
    ),
    "id-trailing-hyphen": (
        one("incidents:\n  abc-: {}\n"),
        [("s.yaml", 2, 3, "invalid incident id 'abc-'")],
    ),
    "id-double-hyphen": (
        one("incidents:\n  a--b: {}\n"),
        [("s.yaml", 2, 3, "invalid incident id 'a--b'")],
    ),
    "id-space": (one('incidents:\n  "a b": {}\n'), [("s.yaml", 2, 3, "invalid incident id 'a b'")]),
    "id-slash": (one('incidents:\n  "a/b": {}\n'), [("s.yaml", 2, 3, "invalid incident id 'a/b'")]),
    "id-empty": (one('incidents:\n  "": {}\n'), [("s.yaml", 2, 3, "invalid incident id ''")]),
    "id-non-ascii": (
        one("incidents:\n  café: {}\n"),
        [("s.yaml", 2, 3, "invalid incident id 'café'")],
    ),
    # keys whose number reading would change their text
    "key-leading-zero": (
        one("incidents:\n  0116:\n    status: resolved\n"),
        [("s.yaml", 2, 3, "key 0116 is read as int 116; quote it: '0116'")],
    ),
    "key-underscore-number": (
        one("incidents:\n  1_000: {}\n"),
        [("s.yaml", 2, 3, "key 1_000 is read as int 1000; quote it: '1_000'")],
    ),
    "key-exponent": (
        one("incidents:\n  1e3: {}\n"),
        [("s.yaml", 2, 3, "key 1e3 is read as float 1000.0; quote it: '1e3'")],
    ),
    "key-hex": (
        one("incidents:\n  0x1F: {}\n"),
        [("s.yaml", 2, 3, "key 0x1F is read as int 31; quote it: '0x1F'")],
    ),
    "key-true": (
        one("incidents:\n  true: {}\n"),
        [("s.yaml", 2, 3, "key true is read as bool True; quote it: 'true'")],
    ),
    "key-null": (one("incidents:\n  ~: {}\n"), [("s.yaml", 2, 3, "quote it: '~'")]),
    "key-date": (
        one("incidents:\n  2024-01-01: {}\n"),
        [("s.yaml", 2, 3, "key 2024-01-01 is read as date")],
    ),
    "numbers-that-compare-equal-are-not-duplicates": (
        one("incidents:\n  1_000: {}\n  1e3: {}\n  1: {}\n  true: {}\n"),
        [
            ("s.yaml", 2, 3, "key 1_000 is read as int 1000"),
            ("s.yaml", 3, 3, "key 1e3 is read as float"),
            ("s.yaml", 5, 3, "key true is read as bool"),
        ],
    ),
    # explicit tags and complex keys
    "tag-that-does-not-fit": (
        one("incidents:\n  a:\n    escalations: !!int pay-1\n"),
        [("s.yaml", 3, 18, "cannot read 'pay-1' as tag:yaml.org,2002:int")],
    ),
    "binary-tag": (
        one('incidents:\n  a: !!binary "a"\n'),
        [("s.yaml", 2, 6, "YAML syntax: failed to decode base64 data")],
    ),
    "sequence-as-key": (
        one("? [a, {b: c}]\n: 1\nincidents: {}\n"),
        [("s.yaml", 1, 3, "a key must be a name or an id, not a sequence")],
    ),
    "problem-in-a-merged-field": (
        one("base: &b\n  status: closed\nincidents:\n  a:\n    <<: *b\n    priority: p9\n"),
        [
            ("s.yaml", 1, 1, "unknown key 'base' at the top level"),
            ("s.yaml", 5, 5, "incident a: status must be one of"),  # where it is merged in
            ("s.yaml", 6, 15, "incident a: priority must be one of"),
        ],
    ),
    # Texts libyaml reads but ruamel's round-trip loader (which gives positions) cannot:
    # the message stays, the position falls back to 1:1.
    "tab-inside-a-value": (
        one("incidents:\n  a:\n    status: x\t,\n"),
        [("s.yaml", 1, 1, "incident a: status must be one of")],
    ),
    "deep-nesting": (
        one("incidents: " + "[" * 3000 + "]" * 3000 + "\n"),
        [("s.yaml", 1, 61, "YAML nested more than 50 levels deep (a state file needs 3)")],
    ),
    "deep-nesting-with-an-alias": (
        one("x: &x [1]\nincidents:\n  a:\n    owner: [*x, " + "[" * 3000 + "]" * 3000 + "]\n"),
        [("s.yaml", 4, 63, "YAML nested more than 50 levels deep")],
    ),
    "self-merge": (
        one("incidents:\n  a: &a\n    owner: x\n    <<: *a\n"),
        [("s.yaml", 1, 1, "unknown key 'owner' in incident a")],
    ),
    # bytes and bombs
    "billion-laughs": (
        one(BOMB),
        [
            (
                "s.yaml",
                2,
                8,
                "YAML aliases expand to 1234567911 nodes; at most 1000 more than the 31 written",
            )
        ],
    ),
    "not-utf8": (
        one(b"incidents:\n  caf\xe9: {}\n"),
        [("s.yaml", 2, 6, "file is not UTF-8 text")],
    ),
    "utf16": (
        one("incidents:\n  a: {}\n".encode("utf-16")),
        [("s.yaml", 1, 1, "file is not UTF-8 text")],
    ),
}


def write(folder: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def problems_of(folder: Path) -> list[tuple[str, int, int, str]]:
    with pytest.raises(StateFileError) as caught:
        load([folder])
    return [
        (Path(p.path).relative_to(folder).as_posix(), p.line, p.column, p.message)
        for p in caught.value.problems
    ]


def test_there_are_enough_cases() -> None:
    assert len(MALFORMED) >= 25


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_state_file(name: str, tmp_path: Path) -> None:
    files, expected = MALFORMED[name]
    write(tmp_path, files)
    expected = [(f, line, col, part.format(dir=tmp_path)) for f, line, col, part in expected]
    got = problems_of(tmp_path)
    assert [g[:3] for g in got] == [e[:3] for e in expected], got
    for (*_, message), (*_, part) in zip(got, expected, strict=True):
        assert part in message

    result = cli("validate", str(tmp_path))
    assert result.code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert lines[:-1] == [f"{tmp_path / f}:{line}:{col}: {msg}" for f, line, col, msg in got]
    count = len(got)
    assert lines[-1] == f"error: {count} problem{'s' * (count != 1)} in the state files"


def test_an_id_of_64_characters_is_valid(tmp_path: Path) -> None:
    write(tmp_path, one(f"incidents:\n  {'a' * 32}-{'b' * 31}: {{}}\n"))
    assert list(load([tmp_path]).incidents) == [f"{'a' * 32}-{'b' * 31}"]


def test_every_problem_of_a_run_is_reported(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": "incidents:\n  a:\n    status: open\n    priority: p9\n  b_c: {}\n",
            "sub/b.yml": "incidents: [x]\n",
            "c.yaml": "incidents:\n  ok: {status: resolved}\n",
            "d.yaml": "incidents:\n  x: {status: [}\n",
        },
    )
    got = problems_of(tmp_path)
    assert [g[:3] for g in got] == [
        ("a.yaml", 3, 13),
        ("a.yaml", 4, 15),
        ("a.yaml", 5, 3),
        ("d.yaml", 2, 16),
        ("sub/b.yml", 1, 12),
    ]
    result = cli("validate", str(tmp_path))
    assert result.code == 1
    assert result.stderr.splitlines()[-1] == "error: 5 problems in the state files"


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    result = cli("validate", str(tmp_path / "nope"))
    assert result.code == 1
    assert f"{tmp_path / 'nope'}" in result.stderr
    assert "no such file or directory" in result.stderr


# ---------------------------------------------------------------------------------------------
# valid edge cases

VALID: dict[str, tuple[str | bytes, dict[str, dict[str, Any]]]] = {
    "empty-file": ("", {}),
    "only-a-comment": ("# nothing managed yet\n", {}),
    "only-version": ("version: 1\n", {}),
    "incidents-with-nothing": ("version: 1\nincidents:\n", {}),
    "incidents-empty-mapping": ("incidents: {}\n", {}),
    "incident-with-no-fields": ("incidents:\n  a:\n  b: {}\n", {"a": {}, "b": {}}),
    "bare-number-id": (
        "incidents:\n  116:\n    status: resolved\n",
        {"116": {"status": "resolved"}},
    ),
    "quoted-leading-zero-id": ('incidents:\n  "0116": {}\n', {"0116": {}}),
    "empty-value-is-null": (
        "incidents:\n  a:\n    priority:\n    severity: null\n",
        {"a": {"priority": None, "severity": None}},
    ),
    "explicit-str-tag-on-a-key": ("incidents:\n  !!str 0116: {}\n", {"0116": {}}),
    "self-merge": (
        "incidents:\n  a: &a\n    status: triggered\n    <<: *a\n",
        {"a": {"status": "triggered"}},
    ),
    "explicit-document-marker": ("---\nincidents:\n  a: {}\n...\n", {"a": {}}),
    "utf8-bom": ("\ufeffincidents:\n  a: {}\n".encode(), {"a": {}}),
    "every-field": (
        "incidents:\n  pay-122:\n    status: acknowledged\n    priority: p2\n"
        "    severity: sev1\n    public_sharing: false\n    escalations: 0\n",
        {
            "pay-122": {
                "status": "acknowledged",
                "priority": "p2",
                "severity": "sev1",
                "public_sharing": False,
                "escalations": 0,
            }
        },
    ),
    "merge-keys-and-small-aliases": (
        "incidents:\n"
        "  m-1: &base\n"
        "    status: acknowledged\n"
        "    severity: sev1\n"
        "  m-2:\n"
        "    <<: *base\n"
        "    priority: p1\n"
        "  m-3: *base\n",
        {
            "m-1": {"status": "acknowledged", "severity": "sev1"},
            "m-2": {"status": "acknowledged", "severity": "sev1", "priority": "p1"},
            "m-3": {"status": "acknowledged", "severity": "sev1"},
        },
    ),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_state_file(name: str, tmp_path: Path) -> None:
    text, incidents = VALID[name]
    write(tmp_path, one(text))
    desired = load([tmp_path])
    assert desired.incidents == incidents
    assert desired.files == [str(tmp_path / "s.yaml")]
    assert desired.sources == {cid: str(tmp_path / "s.yaml") for cid in incidents}
    result = cli("validate", str(tmp_path))
    assert (result.code, result.stderr) == (0, "")
    noun = "incident" if len(incidents) == 1 else "incidents"
    assert result.stdout == f"1 file, {len(incidents)} {noun}: valid.\n"


def test_a_large_file_with_a_star_in_a_comment_is_not_an_alias_bomb(tmp_path: Path) -> None:
    lines = ["# * = found in the PIR", "incidents:"]
    for n in range(400):
        lines += [f"  i{n}:", "    status: triggered", "    priority: p1"]
    write(tmp_path, one("\n".join(lines) + "\n"))
    assert len(load([tmp_path]).incidents) == 400


def test_files_are_found_recursively_in_sorted_order(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "b.yaml": "incidents: {b: {}}\n",
            "a/z.yml": "incidents: {z: {}}\n",
            "a.yaml": "incidents: {a: {}}\n",
            "a/b/c.yaml": "incidents: {c: {}}\n",
            "B.yml": "incidents: {B: {}}\n",
            "notes.txt": "incidents: [not, yaml, state]\n",
            "plan.json": "{}\n",
            "old.yaml.bak": "- broken\n",
        },
    )
    desired = load([tmp_path])
    assert [Path(f).relative_to(tmp_path).as_posix() for f in desired.files] == [
        "B.yml",
        "a.yaml",
        "a/b/c.yaml",
        "a/z.yml",
        "b.yaml",
    ]
    assert list(desired.incidents) == ["B", "a", "c", "z", "b"]
    assert desired.sources["c"] == str(tmp_path / "a" / "b" / "c.yaml")


def test_paths_may_be_files_and_folders_and_are_read_once(tmp_path: Path) -> None:
    write(tmp_path, {"x/a.yaml": "incidents: {a: {}}\n", "y.yaml": "incidents: {y: {}}\n"})
    desired = load([tmp_path / "y.yaml", tmp_path / "x", tmp_path / "x" / "a.yaml"])
    assert sorted(desired.incidents) == ["a", "y"]
    assert len(desired.files) == 2


def test_inputs_digest_follows_the_content(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": "incidents: {a: {}}\n"})
    first = load([tmp_path]).inputs_digest
    assert first.startswith("sha256:") and first == load([tmp_path]).inputs_digest
    write(tmp_path, {"a.yaml": "incidents: {a: {status: resolved}}\n"})
    assert load([tmp_path]).inputs_digest != first


def test_bundled_states_are_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    desired = load([root / "states"])
    assert len(desired.files) == 4
    assert len(desired.incidents) >= 40
    assert "116" in desired.incidents and "204" in desired.incidents
    values = {
        name: {f.get(name, "-") for f in desired.incidents.values()}
        for name in ("status", "priority", "severity", "public_sharing")
    }
    assert {"triggered", "acknowledged", "resolved"} <= values["status"]
    assert None in values["priority"] and None in values["severity"]
    assert {True, False} <= values["public_sharing"]
    assert any(int(f.get("escalations") or 0) > 0 for f in desired.incidents.values())
    for file in desired.files:
        assert (
            Path(file)
            .read_text()
            .startswith("# yaml-language-server: $schema=../schema/state-file.json\n")
        )


TOKENS = (
    *("incidents:", "version: ", "1", "\n", "  ", "    ", "a:", "116:", "0116:", '"116":'),
    *("status: ", "triggered", "resolved", "priority: ", "p1", "severity: ", "sev2", "null"),
    *("public_sharing: ", "true", "yes", "escalations: ", "-1", "3", "1.5", "owner: "),
    *("- ", "[", "]", "{", "}", ",", ":", " ", "? ", "&a ", "*a", "<<: *a", "!!int ", "!!str "),
    *("!!binary ", "!!timestamp ", "#", "---\n", "...", "'", '"', "|", "\t", "\xe9", "\ufeff"),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_no_text_crashes_the_loader(text: str) -> None:
    """Anything at all is either valid or a list of positioned problems, never a traceback."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "s.yaml").write_text(text, encoding="utf-8")
        try:
            desired = load([folder])
        except StateFileError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert problem.line >= 1 and problem.column >= 1
                assert problem.message and "Keys should be" not in problem.message
        else:
            assert all(isinstance(cid, str) for cid in desired.incidents)


def test_a_file_named_twice_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path, {"states/a.yaml": "incidents: {a: {}}\n", "states/b.yaml": "incidents: {b: {}}\n"}
    )
    monkeypatch.chdir(tmp_path)
    desired = load(["states", tmp_path / "states" / "a.yaml", "./states/b.yaml"])
    # The spelling kept is the first in sorted order.
    assert desired.files == [str(tmp_path / "states" / "a.yaml"), "states/b.yaml"]
    assert sorted(desired.incidents) == ["a", "b"]


def test_a_copied_file_reports_every_duplicate_quickly(tmp_path: Path) -> None:
    text = "incidents:\n" + "".join(f"  i{n}:\n    status: triggered\n" for n in range(1000))
    write(tmp_path, {"a.yaml": text, "b.yaml": text})
    started = time.monotonic()
    got = problems_of(tmp_path)
    # Re-parsing both files per duplicate took minutes here; linear work takes well under 1 s.
    assert time.monotonic() - started < 15
    assert len(got) == 1000
    assert got[-1] == (
        "b.yaml",
        2000,
        3,
        f"incident i999 is also defined at {tmp_path}/a.yaml:2000:3",
    )


@pytest.mark.parametrize("version", ["[null]", "{a: 1}"])
def test_a_version_that_is_a_list_or_a_mapping_is_a_problem_at_its_place(
    version: str, tmp_path: Path
) -> None:
    # A cached version check hashed its value: a list raised TypeError, a traceback.
    (tmp_path / "a.yaml").write_text(f"version: {version}\nincidents: {{}}\n")
    code, out, err = cli("validate", str(tmp_path / "a.yaml"))
    assert (code, out) == (1, "")
    assert (
        err
        == f"{tmp_path / 'a.yaml'}:1:10: version must be 1\nerror: 1 problem in the state files\n"
    )
