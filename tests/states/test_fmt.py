"""`reconcile fmt`: one canonical form, meaning unchanged, every comment kept where it was.

The properties run over generated state files with comments in every place the generator
knows (file header, `---` and `...` lines, before and at the end of every key line, commented-out
fields after an incident, the end of `incidents`, the end of the file), several indentation
widths, block and flow styles, quoted and bare ids, every spelling of null and booleans, and
CRLF line ends. Each comment carries a unique tag, so where it lands can be checked.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, examples, plan, plan_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.errors import ReconcileError
from reconciler.model import FIELDS
from reconciler.planfile import atomic_write
from reconciler.states.document import _comments, format_text, quote_id
from reconciler.states.loader import load

Owner = tuple[str, ...]
#: Ids, and whether they may be written bare (a bare 0042 or 2024-01-01 is refused).
IDS = {
    "116": True,
    "7": True,
    "0042": False,
    "2024-01-01": False,
    "1e3": False,
    "true": False,
    "yes": True,
    "9-api": True,
    "prim-122": True,
    "a": True,
    "b-2": True,
    "Z9": True,
}
VALUES: dict[str, list[Any]] = {
    "status": ["triggered", "acknowledged", "resolved"],
    "priority": ["p1", "p3", "p5", None],
    "severity": ["sev1", "sev2", None],
    "public_sharing": [True, False],
    "escalations": [0, 1, 3],
}
# No line breaks of any kind, no '<' or '>' (they delimit the tags), nothing YAML refuses.
COMMENT_TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc", "Cn", "Cf", "Zl", "Zp"),
        blacklist_characters="<>\x85",
    ),
    max_size=12,
)


def _spell(draw: Callable[[Any], Any], value: Any, flow: bool) -> str:
    if value is None:
        return str(draw(st.sampled_from(["null", "~", "Null"] + ([] if flow else [""]))))
    if isinstance(value, bool):
        words = ["true", "True", "TRUE"] if value else ["false", "False", "FALSE"]
        return str(draw(st.sampled_from(words)))
    if isinstance(value, int):
        return str(value)
    return str(draw(st.sampled_from([value, f"'{value}'", f'"{value}"'])))


@st.composite
def state_files(draw: Callable[[Any], Any]) -> tuple[str, list[tuple[str, str, Owner]]]:
    """(text, [(comment, where, owner)]); where: head | lead | eol | trail | end."""
    tags = itertools.count()
    expected: list[tuple[str, str, Owner]] = []

    def comment(where: str, owner: Owner) -> str | None:
        if not draw(st.booleans()):
            return None
        text = f"# <{next(tags)}>{draw(COMMENT_TEXT)}".rstrip(" \t")
        expected.append((text, where, owner))
        return text

    def eol(line: str, owner: Owner) -> str:
        text = comment("eol", owner)
        return f"{line}{' ' * draw(st.integers(1, 3))}{text}" if text else line

    def leads(owner: Owner, columns: list[int]) -> list[str]:
        found = [comment("lead", owner) for _ in range(draw(st.integers(0, 2)))]
        return [" " * draw(st.sampled_from(columns)) + c for c in found if c]

    inner = draw(st.integers(1, 4))  # the column of incident ids
    deeper = inner + draw(st.integers(1, 3))  # the column of fields
    top_keys = draw(st.sampled_from([("version", "incidents"), ("incidents", "version")]))
    if draw(st.booleans()):
        top_keys = ("incidents",)
    lines: list[str] = []
    if draw(st.booleans()):
        marker = comment("head", ())
        lines.append(f"--- {marker}" if marker else "---")
    lines += [c for c in (comment("head", ()), comment("head", ())) if c]
    for n, top in enumerate(top_keys):
        if n:
            lines += leads((top,), [0])
        if top == "version":
            lines.append(eol("version: 1", ("version",)))
            continue
        ids = draw(st.lists(st.sampled_from(sorted(IDS)), unique=True, max_size=5))
        lines.append(eol(draw(st.sampled_from(["incidents:", "incidents: {}"])), ("incidents",)))
        if not ids:
            lines[-1] = lines[-1].replace(" {}", "") if draw(st.booleans()) else lines[-1]
        else:
            lines[-1] = lines[-1].replace(" {}", "")
        for cid in ids:
            lines += _incident(draw, cid, inner, deeper, comment, eol, leads)
        lines += [" " * inner + c for c in (comment("trail", ("incidents",)),) if c]
    if draw(st.booleans()):
        marker = comment("end", ())
        lines.append(f"... {marker}" if marker else "...")
    lines += [c for c in (comment("end", ()),) if c]
    with_blanks: list[str] = []
    for line in lines:
        with_blanks += [""] * draw(st.integers(0, 1)) + [line]
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(with_blanks) + draw(st.sampled_from([end, ""])), expected


def _incident(
    draw: Callable[[Any], Any],
    cid: str,
    inner: int,
    deeper: int,
    comment: Callable[[str, Owner], str | None],
    eol: Callable[[str, Owner], str],
    leads: Callable[[Owner, list[int]], list[str]],
) -> list[str]:
    owner = ("incident", cid)
    quotes = ["'", '"'] + ([""] if IDS[cid] else [])
    quote = draw(st.sampled_from(quotes))
    key = " " * inner + f"{quote}{cid}{quote}:"
    names = draw(st.lists(st.sampled_from(FIELDS), unique=True))
    values = {name: draw(st.sampled_from(VALUES[name])) for name in names}
    style = draw(st.sampled_from(["block", "flow", "flow-lines", "empty"]))
    if not names:
        style = "empty"
    elif style == "flow-lines" and len(names) < 2:
        style = "flow"
    lines = leads(owner, [0, inner])
    if style == "empty":
        lines.append(eol(key + draw(st.sampled_from(["", " {}", " ~"])), owner))
    elif style == "flow":
        pairs = ", ".join(f"{n}: {_spell(draw, values[n], True)}" for n in names)
        lines.append(eol(f"{key} {{{pairs}}}", owner))
        return lines  # a comment after a flow mapping belongs to the next key
    elif style == "flow-lines":
        first, *rest = names
        lines.append(eol(f"{key} {{{first}: {_spell(draw, values[first], True)},", owner))
        for n, name in enumerate(rest):
            close = "}" if n == len(rest) - 1 else ","
            text = " " * deeper + f"{name}: {_spell(draw, values[name], True)}{close}"
            lines.append(eol(text, ("field", cid, name)))
        return lines
    else:
        lines.append(eol(key, owner))
        for name in names:
            lines += leads(("field", cid, name), [deeper])
            text = " " * deeper + f"{name}: {_spell(draw, values[name], False)}".rstrip()
            lines.append(eol(text, ("field", cid, name)))
    lines += [" " * deeper + c for c in (comment("trail", owner),) if c]
    return lines


# ---------------------------------------------------------------------------------------------
# Reading canonical output back


def _owner_of(line: str, incident: str | None) -> Owner | None:
    """What a canonical line is the key line of; None for comments and blank lines."""
    stripped = line.lstrip(" ")
    if not stripped or stripped.startswith("#"):
        return None
    indent = len(line) - len(stripped)
    name = stripped.split(":", 1)[0].strip('"')
    if indent == 0:
        return (name,)
    if indent == 2:
        return ("incident", name)
    assert indent == 4 and incident is not None, line
    return ("field", incident, name)


def _owners(lines: list[str]) -> list[Owner | None]:
    owners: list[Owner | None] = []
    incident = None
    for line in lines:
        owner = _owner_of(line, incident)
        if owner is not None and owner[0] == "incident":
            incident = owner[1]
        owners.append(owner)
    return owners


def _check_placement(out: str, expected: list[tuple[str, str, Owner]]) -> None:
    lines = out.split("\n")
    owners = _owners(lines)
    keyed = [n for n, o in enumerate(owners) if o is not None]
    for text, where, owner in expected:
        [at] = [n for n, line in enumerate(lines) if text in line]
        line = lines[at]
        if where == "eol":
            assert owners[at] == owner and line.endswith("  " + text), (text, owner, out)
            continue
        indent = len(line) - len(line.lstrip(" "))
        assert line.lstrip(" ") == text, (text, out)
        below = next((owners[n] for n in keyed if n > at), None)
        above = next((owners[n] for n in reversed(keyed) if n < at), None)
        if where == "lead":
            assert below == owner, (text, owner, out)
            assert indent == {1: 0, 2: 2, 3: 4}[len(owner)], (text, out)
        elif where == "trail" and owner[0] == "incident":
            assert indent == 4 and above is not None and above[1] == owner[1], (text, out)
        elif where == "trail":
            assert indent == 2 and below is None and above is not None, (text, out)
            assert above[0] in ("incidents", "incident", "field"), (text, out)
        elif where == "head":
            assert indent == 0 and above is None, (text, out)
        else:
            assert indent == 0 and below is None, (text, out)


def _load_text(folder: Path, text: str, name: str = "s.yaml") -> dict[str, Any]:
    path = folder / name
    path.write_bytes(text.encode())
    return load([path]).incidents


JOURNAL = {"116": {"status": "triggered", "priority": "p1"}, "gone": {"status": "acknowledged"}}


def _plan(incidents: dict[str, Any]) -> str:
    made = plan(incidents, JOURNAL, lineage="l", serial=3, inputs_digest="sha256:fixed")
    return plan_json(made, "2026-01-01T00:00:00.000Z")


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state_files())
def test_fmt_is_idempotent_keeps_meaning_and_every_comment_in_place(
    case: tuple[str, list[tuple[str, str, Owner]]],
) -> None:
    text, expected = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        before = _load_text(folder, text)
        once = format_text(text.removeprefix("\ufeff"), before)
        after = _load_text(folder, once)
        assert after == before
        assert _plan(after) == _plan(before)
        assert format_text(once, after) == once
    for comment, _, _ in expected:
        assert comment in once
    _check_placement(once, expected)


# ---------------------------------------------------------------------------------------------
# The canonical form, exactly

MESSY = """\
# yaml-language-server: $schema=../schema/state-file.json
incidents:   # every incident of the checkout team
    # Tax service: closed by the vendor.
    zeta-3: {severity: "sev2", status: resolved}   # flow, on purpose
    # Guest checkout 500s.
    116:
        escalations: 1
        # p1 while customers see it
        priority: p1
        status:   acknowledged
        public_sharing: True
        # severity: sev1   (not yet agreed)
    "0042":
    "2024-01-01": {}
    alpha:
       priority: ~  # no priority

    # retired-9:
    #   status: resolved
version: 1    # the only version
# end of file
"""
CANONICAL = """\
# yaml-language-server: $schema=../schema/state-file.json
version: 1  # the only version
incidents:  # every incident of the checkout team
  "0042": {}

  # Guest checkout 500s.
  "116":
    status: acknowledged
    # p1 while customers see it
    priority: p1
    public_sharing: true
    escalations: 1
    # severity: sev1   (not yet agreed)

  "2024-01-01": {}

  alpha:
    priority: null  # no priority

  # Tax service: closed by the vendor.
  zeta-3:  # flow, on purpose
    status: resolved
    severity: sev2

  # retired-9:
  #   status: resolved
# end of file
"""


def test_the_canonical_form(tmp_path: Path) -> None:
    out = format_text(MESSY, _load_text(tmp_path, MESSY))
    assert out == CANONICAL
    assert format_text(out, _load_text(tmp_path, out)) == out


def test_a_comment_above_an_incident_moves_with_it_not_with_the_one_before(
    tmp_path: Path,
) -> None:
    text = "incidents:\n  b:\n    status: resolved  # b's status\n  # about a\n  a: {}\n"
    out = format_text(text, _load_text(tmp_path, text))
    assert out == ("incidents:\n  # about a\n  a: {}\n\n  b:\n    status: resolved  # b's status\n")


def test_comments_inside_flow_mappings_are_kept(tmp_path: Path) -> None:
    text = "incidents:\n  a: {status: triggered,  # one\n      priority: p2}  # two\n"
    out = format_text(text, _load_text(tmp_path, text))
    assert out == "incidents:\n  a:  # one\n    status: triggered\n    priority: p2  # two\n"
    # A line without a key: its comment goes to the key before; a second one above that key.
    text = "incidents:\n  a: {status: triggered,  # one\n    priority: p2,  # two\n    }  # 3\n"
    out = format_text(text, _load_text(tmp_path, text))
    assert out == (
        "incidents:\n  a:  # one\n    status: triggered\n    # 3\n    priority: p2  # two\n"
    )


def test_a_comment_starts_at_a_hash_after_a_space_or_at_the_line_start() -> None:
    lines = ["a#b: c  # one # two", "# three", "\tx\t#four  ", "no#comment"]
    assert list(_comments(lines)) == [(0, 8, "# one # two"), (1, 0, "# three"), (2, 3, "#four")]


def test_anchors_and_merges_are_expanded(tmp_path: Path) -> None:
    text = (
        "incidents:\n  a: &base\n    status: resolved\n  b: *base\n"
        "  c:\n    <<: *base\n    priority: p1  # own\n"
    )
    out = format_text(text, _load_text(tmp_path, text))
    assert out == (
        "incidents:\n  a:\n    status: resolved\n\n  b:\n    status: resolved\n\n"
        "  c:\n    status: resolved\n    priority: p1  # own\n"
    )


@pytest.mark.parametrize(
    "text",
    ["", "# only a comment\n", "version: 1\n", "incidents: {}\n", "incidents:\n  # none yet\n"],
)
def test_files_without_incidents_stay_as_they_are(tmp_path: Path, text: str) -> None:
    assert format_text(text, _load_text(tmp_path, text)) == text


def test_ids_are_quoted_exactly_when_a_yaml_reader_would_not_read_a_string() -> None:
    quoted = ["116", "0042", "1e3", "2024-01-01", "0x1F", "true", "NULL", "yes", "Off", "y"]
    bare = ["prim-122", "9-api", "1-2", "a", "Z9", "0o17x", "yesterday"]
    assert [quote_id(i) for i in quoted] == [f'"{i}"' for i in quoted]
    assert [quote_id(i) for i in bare] == bare


# ---------------------------------------------------------------------------------------------
# The command


UNFORMATTED = "incidents:\n  b: {status: resolved}\n  a:\n      status: triggered  # why\n"
FORMATTED = "incidents:\n  a:\n    status: triggered  # why\n\n  b:\n    status: resolved\n"


def test_check_names_each_file_that_would_change_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    messy, clean = tmp_path / "team" / "messy.yaml", tmp_path / "clean.yaml"
    messy.write_text(UNFORMATTED)
    clean.write_text(FORMATTED)
    code, out, err = cli("fmt", str(tmp_path), "--check")
    assert (code, out) == (1, f"{messy}\n")
    assert err == "error: 1 file not formatted; run `reconcile fmt` to fix\n"
    assert messy.read_text() == UNFORMATTED
    assert cli("fmt", str(clean), "--check") == (0, "", "")


def test_diff_shows_the_change_and_fmt_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(UNFORMATTED)
    code, out, _ = cli("fmt", str(path), "--check", "--diff")
    assert code == 1
    assert path.read_text() == UNFORMATTED
    assert out.splitlines()[:3] == [
        str(path),
        f"--- {path}\t(original)",
        f"+++ {path}\t(formatted)",
    ]
    assert "-  b: {status: resolved}" in out.splitlines()
    assert "+    status: triggered  # why" in out.splitlines()
    code, again, _ = cli("fmt", str(path), "--diff")
    assert (code, again) == (0, out)
    assert path.read_text() == FORMATTED
    assert cli("fmt", str(path), "--diff") == (0, "", "")


def test_a_file_with_errors_is_reported_as_validate_does_and_left_untouched(
    tmp_path: Path,
) -> None:
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad_text = "incidents:\n  z: {status: triggered}\n  a:\n    priorty: p1\n"
    bad.write_text(bad_text)
    good.write_text(UNFORMATTED)
    code, out, err = cli("fmt", str(tmp_path), "--check")
    assert (code, out) == (1, f"{good}\n")
    assert err.startswith("error: 1 file not formatted; run `reconcile fmt` to fix\n")
    assert "bad.yaml:4:5: unknown key 'priorty'" in err
    assert good.read_text() == UNFORMATTED
    code, out, err = cli("fmt", str(tmp_path))
    _, _, validate_err = cli("validate", str(bad))
    assert code == 1
    assert out == f"{good}\n"
    assert err == validate_err
    assert "bad.yaml:4:5: unknown key 'priorty' in incident a; did you mean 'priority'?" in err
    assert bad.read_text() == bad_text
    assert good.read_text() == FORMATTED


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    code, _, err = cli("fmt", str(tmp_path / "nope"))
    assert code == 1
    assert "nope: no such file or directory" in err
    assert err == cli("validate", str(tmp_path / "nope"))[2]


def test_writes_replace_the_file_whole_keeping_its_mode_and_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text(UNFORMATTED)
    real.chmod(0o640)
    inode = real.stat().st_ino
    link = tmp_path / "states" / "link.yaml"
    link.parent.mkdir()
    link.symlink_to(real)
    code, out, _ = cli("fmt", str(link.parent))
    assert (code, out) == (0, f"{link}\n")
    assert link.is_symlink() and real.read_text() == FORMATTED
    assert real.stat().st_ino != inode  # a new file renamed over the old one
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["real.yaml", "states"]


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(UNFORMATTED)

    def half_then_interrupted(write: Callable[[str], object]) -> None:
        write(FORMATTED[:20])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_interrupted)
    assert path.read_text() == UNFORMATTED
    assert os.listdir(tmp_path) == ["s.yaml"]

    def disk_full(write: Callable[[str], object]) -> None:
        write(FORMATTED[:20])
        raise OSError(28, "No space left on device")

    with pytest.raises(ReconcileError, match=r"s\.yaml: cannot write: No space left on device"):
        atomic_write(path, disk_full)
    assert path.read_text() == UNFORMATTED
    assert os.listdir(tmp_path) == ["s.yaml"]


def test_the_pre_commit_hook_rewrites_the_staged_files(tmp_path: Path) -> None:
    """As pre-commit runs it: the entry plus the staged files that match, at the repo root."""
    root = Path(__file__).resolve().parents[2]
    hooks = YAML(typ="safe").load((root / ".pre-commit-hooks.yaml").read_text())
    [hook] = [h for h in hooks if h["id"] == "reconcile-fmt"]
    (tmp_path / "states").mkdir()
    (tmp_path / "states" / "a.yaml").write_text(UNFORMATTED)
    (tmp_path / "states" / "b.yaml").write_text(UNFORMATTED)
    staged = [f for f in ["states/a.yaml", "README.md"] if re.search(hook["files"], f)]
    assert staged == ["states/a.yaml"] and hook.get("pass_filenames", True)
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [*shlex.split(hook["entry"]), *staged],
        cwd=tmp_path,
        env=dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "states/a.yaml\n"), done.stderr
    assert (tmp_path / "states" / "a.yaml").read_text() == FORMATTED
    assert (tmp_path / "states" / "b.yaml").read_text() == UNFORMATTED  # not staged


def test_the_bundled_example_states_are_canonical() -> None:
    """The README's examples should look like what `reconcile fmt` makes."""
    states = Path(__file__).resolve().parents[2] / "states"
    code, out, err = cli("fmt", "--check", str(states))
    assert code == 0, out + err


RULES_LAST = """\
version: 1
incidents:
  b-2: {status: resolved}
  a-1:
    priority: p2  # why
rules:
  # first
  close-low:  # eol
    match:
      status: [triggered]

# a comment at column 0 between two rules stays inside
      priority: [p5]
    set:
      status: resolved
  # commented-out rule at the end of rules
# the file's end
...
"""


def rewritten(text: str, path: str = "f.yaml") -> str:
    from reconciler.states.document import parse, rewrite
    from reconciler.states.loader import file_meaning

    return rewrite(path, parse(text, file_meaning(path, text)[0], path), text)


def test_a_rewrite_copies_the_rules_block_as_written_where_it_was_written() -> None:
    rules = RULES_LAST.split("rules:\n", 1)[1].split("# the file's end")[0]
    assert rewritten(RULES_LAST) == (
        "version: 1\n"
        "incidents:\n"
        "  a-1:\n"
        "    priority: p2  # why\n"
        "\n"
        "  b-2:\n"
        "    status: resolved\n"
        "rules:\n" + rules + "# the file's end\n"
    )
    # A file whose rules come first keeps them first; the text is stable.
    first = "version: 1\nrules:\n" + rules + "incidents:\n  a-1: {}\n"
    assert rewritten(first) == first
    assert rewritten(rewritten(RULES_LAST)) == rewritten(RULES_LAST)


def test_a_rules_block_that_cannot_be_copied_by_lines_stops_the_rewrite() -> None:
    flow = "{rules: {r-1: {match: {status: [triggered]}, set: {status: resolved}}}}\n"
    with pytest.raises(ReconcileError, match=r"f\.yaml:1:2: rules: must be a top-level key"):
        rewritten(flow)


def test_a_rewrite_that_would_change_the_rules_is_refused() -> None:
    from reconciler.states.document import parse, rewrite

    text = "rules:\n  r-1:\n    match: {status: [triggered]}\n    set: {status: resolved}\n"
    doc = parse(text, {}, "f.yaml")
    doc.rules[-1] = "    set: {status: acknowledged}"
    with pytest.raises(ReconcileError, match=r"f\.yaml: not rewritten: .* change its rules"):
        rewrite("f.yaml", doc, text)


def test_fmt_leaves_a_file_with_rules_as_written(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES_LAST)
    assert cli("fmt", "--check", str(tmp_path))[:2] == (0, "")
    assert cli("fmt", str(tmp_path))[:2] == (0, "")
    assert (tmp_path / "rules.yaml").read_text() == RULES_LAST
