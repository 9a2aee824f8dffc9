"""The workflows: this project's CI and the examples for states repositories.

Structure and security are checked in .ci/run by check-jsonschema and zizmor; these tests pin
what those tools cannot know: the least permissions each job was meant to have, the apply
concurrency group, and the bot commit of the journal, run for real against a local git remote.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "github"
WORKFLOWS = [
    *sorted((ROOT / ".github" / "workflows").glob("*.yml")),
    *sorted(EXAMPLES.glob("*.yml")),
]
PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")
#: What a change to the states may touch: states/ (one team), the teams' default paths and
#: the project file (docs/teams.md).
STATE_FILES = ["states/**", "teams/**", "reconcile.yaml"]


def load(path: Path) -> dict[str, Any]:
    return dict(YAML(typ="safe").load(path.read_text()))


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_pinned_and_no_expression_in_a_script(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}, "the default token grants nothing"
    for job in workflow["jobs"].values():
        assert "permissions" in job, "each job says what it needs"
    for step in steps(workflow):
        uses = step.get("uses")
        assert uses is None or uses == "./" or PINNED.fullmatch(uses), uses
        assert "${{" not in step.get("run", "")


def test_the_plan_job_cannot_write_and_only_the_comment_job_comments() -> None:
    jobs = load(EXAMPLES / "plan.yml")["jobs"]
    assert jobs["plan"]["permissions"] == {"contents": "read"}
    assert jobs["comment"]["permissions"] == {"pull-requests": "write"}
    assert jobs["comment"]["needs"] == "plan"
    [comment] = [s for s in jobs["comment"]["steps"] if s.get("with", {}).get("command")]
    assert comment["with"]["command"] == "comment"
    assert comment["with"]["github-token"] == "${{ github.token }}"
    [plan] = [s for s in jobs["plan"]["steps"] if s.get("with", {}).get("command")]
    assert "github-token" not in plan["with"]
    assert load(EXAMPLES / "plan.yml")["on"]["pull_request"]["paths"] == STATE_FILES


@pytest.mark.parametrize("name", ["apply.yml", "apply-postgres.yml"])
def test_applies_never_overlap_and_apply_the_plan_they_show(name: str) -> None:
    workflow = load(EXAMPLES / name)
    assert workflow["concurrency"] == {"group": "reconcile-apply", "cancel-in-progress": False}
    assert workflow["on"]["push"] == {"branches": ["main"], "paths": STATE_FILES}
    commands = [
        s["with"]["command"] for s in steps(workflow) if "with" in s and "command" in s["with"]
    ]
    assert commands == ["plan", "apply"]
    [plan] = [s for s in steps(workflow) if s.get("with", {}).get("command") == "plan"]
    # The action's default: states/, or every team of a reconcile.yaml (docs/teams.md).
    assert "paths" not in plan["with"]
    [apply] = [s for s in steps(workflow) if s.get("with", {}).get("command") == "apply"]
    assert apply["with"]["plan-file"] == "${{ steps.plan.outputs.plan-file }}"
    assert apply["env"] == {
        "SPIKE_API_KEY": "${{ secrets.SPIKE_API_KEY }}",
        "SPIKE_TEAM_ID": "${{ secrets.SPIKE_TEAM_ID }}",
    }


def test_only_the_file_journal_apply_may_write_to_the_repository() -> None:
    assert load(EXAMPLES / "apply.yml")["jobs"]["apply"]["permissions"] == {"contents": "write"}
    postgres = load(EXAMPLES / "apply-postgres.yml")
    assert postgres["jobs"]["apply"]["permissions"] == {"contents": "read"}
    journals = {
        s["with"].get("journal") for s in steps(postgres) if "with" in s and "command" in s["with"]
    }
    assert journals == {"${{ secrets.RECONCILE_JOURNAL_URL }}"}


# ---------------------------------------------------------------------------------------------
# The journal's bot commit, against a local remote


def git(cwd: Path, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


@pytest.fixture
def clones(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A remote with main, the runner's clone, and a developer's clone."""
    remote, runner, developer = tmp_path / "remote.git", tmp_path / "runner", tmp_path / "dev"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    git(tmp_path, "clone", "--quiet", str(remote), str(developer))
    (developer / "states").mkdir()
    (developer / "states" / "a.yaml").write_text("incidents: {}\n")
    (developer / ".reconcile").mkdir()
    (developer / ".reconcile" / "journal.jsonl").write_text('{"kind": "lineage"}\n')
    git(developer, "add", ".")
    git(developer, "commit", "--quiet", "-m", "start")
    git(developer, "push", "--quiet", "origin", "HEAD:main")
    git(tmp_path, "clone", "--quiet", str(remote), str(runner))
    return remote, runner, developer


def commit_step(runner: Path) -> subprocess.CompletedProcess[str]:
    [step] = [
        s for s in steps(load(EXAMPLES / "apply.yml")) if s.get("name") == "Commit the journal"
    ]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(runner),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GITHUB_SHA": "f" * 40,
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=runner,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_unchanged_journal_makes_no_commit(clones: tuple[Path, Path, Path]) -> None:
    remote, runner, _ = clones
    before = git(remote, "rev-parse", "main")
    done = commit_step(runner)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "The journal did not change.\n"
    assert git(remote, "rev-parse", "main") == before


def test_the_journal_is_pushed_as_a_bot_commit_even_when_main_moved(
    clones: tuple[Path, Path, Path],
) -> None:
    remote, runner, developer = clones
    # While the runner applied, a pull request was merged.
    (developer / "states" / "b.yaml").write_text("incidents: {}\n")
    git(developer, "add", "states/b.yaml")
    git(developer, "commit", "--quiet", "-m", "merge a pull request")
    git(developer, "push", "--quiet", "origin", "HEAD:main")
    with (runner / ".reconcile" / "journal.jsonl").open("a") as journal:
        journal.write('{"kind": "op"}\n')
    (runner / ".reconcile" / "journal.jsonl.lock").write_text("")  # never committed

    done = commit_step(runner)
    assert done.returncode == 0, done.stderr

    log = git(remote, "log", "--format=%an <%ae>|%s", "main").splitlines()
    assert log == [
        "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>|"
        f"reconcile: journal after applying {'f' * 40} [skip ci]",
        "dev <dev@example.com>|merge a pull request",
        "dev <dev@example.com>|start",
    ]
    files = git(remote, "show", "--name-only", "--format=", "main").split()
    assert files == [".reconcile/journal.jsonl"]
    assert git(remote, "show", "main:.reconcile/journal.jsonl").endswith('{"kind": "op"}\n')


def test_every_teams_journal_is_committed_and_no_lock(clones: tuple[Path, Path, Path]) -> None:
    remote, runner, _ = clones
    (runner / ".reconcile" / "payments.jsonl").write_text('{"kind": "lineage"}\n')
    (runner / ".reconcile" / "payments.jsonl.lock").write_text("")
    (runner / ".reconcile" / "search.jsonl").write_text('{"kind": "lineage"}\n')
    done = commit_step(runner)
    assert done.returncode == 0, done.stderr
    files = git(remote, "show", "--name-only", "--format=", "main").split()
    assert files == [".reconcile/payments.jsonl", ".reconcile/search.jsonl"]
