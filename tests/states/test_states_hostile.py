"""State files written to crash the loader: nesting far past what a parser's recursion can
take, and characters YAML forbids. Each is refused with one FILE:LINE:COLUMN message, by every
command that reads state files, as a real process (a segfault is no exception to catch)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import command, examples
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import StateFileError
from reconciler.states import reading as states
from reconciler.states.loader import load

DEEP = 30_000
NESTED = "YAML nested more than 50 levels deep (a state file needs 3)"

# name -> (text, line, column of the first collection past 50 levels)
HOSTILE: dict[str, tuple[str, int, int]] = {
    "flow-sequences": ("[" * DEEP + "]" * DEEP + "\n", 1, 51),
    "flow-mappings": ("{a: " * DEEP + "b" + "}" * DEEP + "\n", 1, 201),
    "flow-in-incidents": (
        "incidents: {a: " + "{a: " * DEEP + "}" * DEEP + "}\n",
        1,
        # The file is level 1, `incidents: {` level 2, then each `{a: ` one more.
        16 + 4 * 48,
    ),
    # Block mappings cost the square of their depth in indentation: 3,000 is 4.5 MB.
    "block-mappings": ("".join(" " * n + "a:\n" for n in range(3000)), 51, 51),
    "compact-sequences": ("- " * DEEP + "x\n", 1, 101),
    "block-then-flow": (
        "incidents:\n  a:\n"
        + "".join("    " + "  " * n + "- x:\n" for n in range(20))
        + "    "
        + "  " * 20
        + "- "
        + "[" * DEEP
        + "]" * DEEP
        + "\n",
        23,
        54,
    ),
    "after-a-valid-incident": (
        "incidents:\n  ok-1: {status: resolved}\n  a: " + "[" * DEEP + "]" * DEEP + "\n",
        3,
        54,
    ),
}


def reconcile(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SPIKE_API_KEY": "k",
        "SPIKE_TEAM_ID": "t",
        "SPIKE_API_URL": "http://127.0.0.1:9",  # nothing listens: no call may be made anyway
    }
    return subprocess.run(
        command(*args),
        capture_output=True,
        text=True,
        cwd=tmp,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("name", HOSTILE)
def test_deep_nesting_is_refused_at_its_place(tmp_path: Path, name: str) -> None:
    text, line, column = HOSTILE[name]
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(StateFileError) as caught:
        load([tmp_path])
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 's.yaml'}:{line}:{column}: {NESTED}"
    ]


COMMANDS = {
    "validate": ("validate", "states"),
    "plan": ("plan", "states", "--journal", "j.jsonl"),
    "plan-json": ("plan", "states", "--format", "json", "--journal", "j.jsonl"),
    "fmt": ("fmt", "states"),
    "apply": ("apply", "states", "--auto-approve", "--journal", "j.jsonl"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", ["flow-mappings", "compact-sequences", "after-a-valid-incident"])
def test_every_command_refuses_deep_nesting_without_crashing(
    tmp_path: Path, command: str, name: str
) -> None:
    text, line, column = HOSTILE[name]
    (tmp_path / "states").mkdir()
    (tmp_path / "states" / "s.yaml").write_text(text)
    done = reconcile(tmp_path, *COMMANDS[command])
    assert done.returncode == 1, (done.returncode, done.stderr[-500:])
    assert f"states/s.yaml:{line}:{column}: {NESTED}" in done.stderr.splitlines()
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "j.jsonl").exists()  # the journal is untouched
    assert (tmp_path / "states" / "s.yaml").read_text() == text  # fmt wrote nothing


@pytest.mark.parametrize(
    ("data", "line", "column", "code"),
    [
        (b"incidents:\n  a:\n    status: ack\x00nowledged\n", 3, 16, "0000"),
        (b"\x00", 1, 1, "0000"),
        ("incidents:\n  \u00e9t\u00e9-1: {}\n  b: x\x01\n".encode(), 3, 7, "0001"),
    ],
)
def test_a_forbidden_character_is_reported_where_it_is(
    tmp_path: Path, data: bytes, line: int, column: int, code: str
) -> None:
    (tmp_path / "states").mkdir()
    (tmp_path / "states" / "s.yaml").write_bytes(data)
    done = reconcile(tmp_path, "validate", "states")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"states/s.yaml:{line}:{column}: YAML: unacceptable character #x{code}: "
        "control characters are not allowed",
        "error: 1 problem in the state files",
    ]


# The scan that decides whether a text needs the exact (event by event) depth check must
# never say "shallow" for a text libyaml reads as deeper: checked with a tiny limit, on texts
# made of the pieces YAML nesting and quoting are made of.
PIECES = st.sampled_from(
    [
        "[", "]", "{", "}", ",", ":", ": ", "- ", "? ", "\n", " ", "  ", "a", "b", "#", " #",
        "'", '"', "''", "\\", "|", ">", "&x ", "*x", "!!str ", "---", "\t", "\r",
    ]
)  # fmt: skip


@settings(max_examples=examples(3000), deadline=None)
@given(st.lists(PIECES, max_size=40).map("".join), st.integers(1, 8))
def test_the_shallow_verdict_is_never_wrong(text: str, limit: int) -> None:
    if not states._may_nest_too_deep(text, limit):
        assert states._first_too_deep(text, limit) is None


def test_state_files_in_their_usual_shapes_skip_the_exact_check() -> None:
    bundled = Path(__file__).parents[2] / "states"
    for file in bundled.rglob("*.yaml"):
        assert not states._may_nest_too_deep(file.read_text())
    flow = "version: 1\nincidents:\n" + "".join(
        f"  svc-{n}: {{status: acknowledged, priority: p3}}\n" for n in range(100)
    )
    assert not states._may_nest_too_deep(flow)


def test_a_boolean_tag_on_a_word_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("incidents:\n  a:\n    public_sharing: !!bool maybe\n")
    with pytest.raises(StateFileError) as caught:
        load([tmp_path])
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 's.yaml'}:3:21: YAML syntax: cannot read 'maybe' as tag:yaml.org,2002:bool"
    ]


def test_an_id_merged_in_and_written_as_a_number_is_a_message(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("incidents:\n  116: {}\n  <<: {'116': resolved}\n")
    with pytest.raises(StateFileError) as caught:
        load([tmp_path])
    assert [p.message for p in caught.value.problems] == [
        "incident 116 is written twice, once as a number and once quoted (first at line 2)"
    ]
