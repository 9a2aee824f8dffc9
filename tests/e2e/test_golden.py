"""The one-team outputs, byte for byte: the bundled states/ planned (text, JSON format 1,
markdown), applied, shown and logged compare equal to tests/golden/, which the code wrote
before the one-team and the teams paths became one (issue 20): at commit 310f6f5 (release
0.1.0 with that round's Unreleased changes), the apply results again at main's de46466
(tests/golden/README.md). A plan file saved by 310f6f5 (tests/golden/plan-format1.json)
still applies.

What changes from run to run is masked, on its own line, so the layout stays compared: a
plan's created_at, plan_id and plan_digest (the digest covers the plan id), and an apply's
seconds. tests/golden/journal.jsonl is the journal of an apply of a variant of states/ (an
incident old-9 since removed, pay-102 at p3/sev3, 116 with a severity), so that the plan
against it has befores, a forget and an unmanaged field; tests/golden/sandbox.json is Spike
after that apply.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli, serve_sandbox

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
#: The environment of every run: no project file, no key, one team id.
ENV: dict[str, str | None] = {
    "SPIKE_TEAM_ID": "dev",
    "SPIKE_API_KEY": "dev",
    "RECONCILE_CONFIG": None,
    "RECONCILE_JOURNAL": None,
    "RECONCILE_PLAN_KEY": None,
    "NO_COLOR": None,
}
_MASKED = re.compile(r'^(\s*"(?:created_at|plan_id|plan_digest|seconds)": )[^,\n]*', re.M)


def masked(text: str) -> str:
    return _MASKED.sub(r'\1"*"', text)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the bundled states/ and of the golden journal, the working directory."""
    shutil.copytree(REPO / "states", tmp_path / "states")
    shutil.copy(GOLDEN / "journal.jsonl", tmp_path / "journal.jsonl")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def golden(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8")


#: (golden file, the command's arguments): plans, against no journal and the golden one.
PLANS = [
    ("plan-empty.txt", ["plan", "--journal", "none.jsonl"]),
    ("plan-empty.json", ["plan", "--journal", "none.jsonl", "--format", "json"]),
    ("plan-empty.md", ["plan", "--journal", "none.jsonl", "--format", "markdown"]),
    ("plan.txt", ["plan", "--journal", "journal.jsonl"]),
    ("plan.json", ["plan", "--journal", "journal.jsonl", "--format", "json"]),
    ("plan.md", ["plan", "states", "--journal", "journal.jsonl", "--format", "markdown"]),
    ("show.txt", ["show", "--journal", "journal.jsonl"]),
    ("show.json", ["show", "--journal", "journal.jsonl", "--format", "json"]),
    ("log.json", ["log", "--journal", "journal.jsonl", "--format", "json"]),
]


@pytest.mark.parametrize(("name", "args"), PLANS, ids=[name for name, _ in PLANS])
def test_one_team_output_is_the_previous_releases(repo: Path, name: str, args: list[str]) -> None:
    code, out, err = cli(*args, env=ENV)
    assert (code, err) == (0, "")
    assert masked(out) == golden(name)


def in_order(result: dict[str, object]) -> dict[str, object]:
    """An apply's JSON result with its applied calls sorted."""
    applied = result["applied"]
    assert isinstance(applied, list)
    return {**result, "applied": sorted(applied, key=json.dumps)}


def sandbox() -> dict[str, dict[str, object]]:
    incidents: dict[str, dict[str, object]] = json.loads(golden("sandbox.json"))["incidents"]
    return incidents


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_format_1_plan_of_the_previous_release_applies(repo: Path, fmt: str) -> None:
    """The saved plan is bound to team dev and journal.jsonl; applied, it makes its two calls
    and journals its forget and unmanaged field, and says so as that release did."""
    with serve_sandbox(sandbox()) as (server, _client):
        env = {**ENV, "SPIKE_API_URL": server.url}
        code, out, err = cli(
            "apply",
            str(GOLDEN / "plan-format1.json"),
            "--journal",
            "journal.jsonl",
            "--format",
            fmt,
            env=env,
        )
        assert (code, err) == (0, "")
        expected = golden(f"apply-saved.{'json' if fmt == 'json' else 'txt'}")
        if fmt == "json":  # the two calls run concurrently: applied lists them as they end
            assert sorted(masked(out).splitlines()) == sorted(expected.splitlines())
            assert in_order(json.loads(masked(out))) == in_order(json.loads(expected))
        else:
            assert masked(out) == expected
        assert server.incidents()["pay-102"]["priority"] == "p2"
        assert server.incidents()["pay-102"]["severity"] == "sev2"
    code, out, _ = cli("plan", "--journal", "journal.jsonl", "--format", "json", env=ENV)
    assert code == 0
    assert json.loads(out)["summary"]["changes"] == 0


def test_apply_of_the_state_files_says_what_that_release_said(repo: Path) -> None:
    with serve_sandbox(sandbox()) as (server, _client):
        env = {**ENV, "SPIKE_API_URL": server.url}
        code, out, err = cli("apply", "--journal", "journal.jsonl", "--auto-approve", env=env)
        assert (code, err) == (0, "")
        assert masked(out) == golden("apply.txt")


PROJECT = """\
version: 1
teams:
  payments:
    team_id: team-pay
    drift: {status: warn}
  platform:
    team_id: team-plat
"""
#: The same files as two teams of reconcile.yaml (each its own journal, none yet).
TEAMS = [
    ("teams-plan.txt", ["plan"]),
    ("teams-plan.json", ["plan", "--format", "json"]),
    ("teams-plan.md", ["plan", "--format", "markdown"]),
]


@pytest.fixture
def teams_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for team, files in {
        "payments": ["payments", "checkout"],
        "platform": ["platform", "search"],
    }.items():
        (tmp_path / "teams" / team).mkdir(parents=True)
        for file in files:
            shutil.copy(REPO / "states" / f"{file}.yaml", tmp_path / "teams" / team)
    (tmp_path / "reconcile.yaml").write_text(PROJECT)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.mark.parametrize(("name", "args"), TEAMS, ids=[name for name, _ in TEAMS])
def test_a_plan_of_teams_is_the_previous_releases(
    teams_repo: Path, name: str, args: list[str]
) -> None:
    code, out, err = cli(*args, env={**ENV, "SPIKE_TEAM_ID": None})
    assert (code, err) == (0, "")
    assert masked(out) == golden(name)


def test_an_apply_of_one_team_that_makes_calls_shows_the_journals_warnings(repo: Path) -> None:
    """As an apply of teams always did (the one-team twin showed them only when there was
    nothing to apply): a torn last line is ignored, and said so."""
    with (repo / "journal.jsonl").open("a") as journal:
        journal.write('{"kind":"op","ser')
    with serve_sandbox(sandbox()) as (server, _client):
        env = {**ENV, "SPIKE_API_URL": server.url}
        code, out, err = cli("apply", "--journal", "journal.jsonl", "--auto-approve", env=env)
        assert code == 0, err
        assert masked(out) == golden("apply.txt")
        assert err.startswith("warning: journal.jsonl:43: ignoring a torn last line")
