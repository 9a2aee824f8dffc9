"""The workflows: this project's CI and the examples for states repositories.

Structure and security are checked in .ci/run by check-jsonschema and zizmor; these tests pin
what those tools cannot know: the least permissions each job was meant to have, the apply
concurrency group (which drift.yml's self-heal shares), and the scripts that matter (the
journal's bot commit, drift.yml's exit-code handling and its accept pull request), run for
real against a local git remote with fake `reconcile` and `gh` commands.
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
    assert jobs["approvals"]["permissions"] == {"pull-requests": "read"}
    assert jobs["approvals"]["needs"] == "plan"
    [check] = [s for s in jobs["approvals"]["steps"] if s.get("with", {}).get("command")]
    assert check["with"]["command"] == "approvals"
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
    # The plan names the team it is for; apply refuses it for another (docs/trust.md).
    assert plan["env"] == {"SPIKE_TEAM_ID": "${{ secrets.SPIKE_TEAM_ID }}"}
    [apply] = [s for s in steps(workflow) if s.get("with", {}).get("command") == "apply"]
    assert apply["with"]["plan-file"] == "${{ steps.plan.outputs.plan-file }}"
    assert apply["env"] == {
        "SPIKE_API_KEY": "${{ secrets.SPIKE_API_KEY }}",
        "SPIKE_TEAM_ID": "${{ secrets.SPIKE_TEAM_ID }}",
    }
    # Apply checks the approvals again on the merged pull request (docs/approvals.md): with
    # the job's token, which may read pull requests, whichever journal the workflow keeps.
    assert apply["with"]["github-token"] == "${{ github.token }}"
    assert workflow["jobs"]["apply"]["permissions"]["pull-requests"] == "read"


def test_only_the_file_journal_apply_may_write_to_the_repository() -> None:
    assert load(EXAMPLES / "apply.yml")["jobs"]["apply"]["permissions"] == {
        "contents": "write",
        "pull-requests": "read",
    }
    postgres = load(EXAMPLES / "apply-postgres.yml")
    assert postgres["jobs"]["apply"]["permissions"] == {
        "contents": "read",
        "pull-requests": "read",
    }
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


# ---------------------------------------------------------------------------------------------
# drift.yml: the scheduled drift check, the drift issue, self-heal and the accept pull request


def drift_jobs() -> dict[str, Any]:
    return dict(load(EXAMPLES / "drift.yml")["jobs"])


def test_drift_runs_every_30_minutes_and_by_hand() -> None:
    on = load(EXAMPLES / "drift.yml")["on"]
    assert on == {"schedule": [{"cron": "*/30 * * * *"}], "workflow_dispatch": None}


def test_each_drift_job_has_the_least_permissions_and_only_readers_of_spike_get_secrets() -> None:
    jobs = drift_jobs()
    assert {name: job["permissions"] for name, job in jobs.items()} == {
        "drift": {"contents": "read"},
        "issue": {"issues": "write"},
        "self-heal": {"contents": "write", "pull-requests": "read"},
        "accept": {"contents": "write", "pull-requests": "write"},
    }
    assert {name for name, job in jobs.items() if job.get("environment") == "spike"} == {
        "drift",
        "self-heal",
        "accept",
    }
    assert "secrets." not in str(jobs["issue"])
    assert all(jobs[name]["needs"] == "drift" for name in ("issue", "self-heal", "accept"))
    [keep] = [s for s in jobs["issue"]["steps"] if "reconcile issue" in s.get("run", "")]
    assert keep["env"]["GITHUB_TOKEN"] == "${{ github.token }}"


def test_self_heal_and_accept_are_off_unless_a_variable_says_so() -> None:
    jobs = drift_jobs()
    assert jobs["self-heal"]["if"] == (
        "needs.drift.outputs.drift == 'true' && vars.RECONCILE_SELF_HEAL == 'true'"
    )
    assert jobs["accept"]["if"] == (
        "needs.drift.outputs.drift == 'true' && vars.RECONCILE_ACCEPT_PR == 'true'"
    )
    runs = [s.get("run", "") for s in jobs["self-heal"]["steps"]]
    assert any("reconcile apply --refresh --auto-approve" in run for run in runs)
    assert any("reconcile accept" in s.get("run", "") for s in jobs["accept"]["steps"])


def test_self_heal_never_overlaps_an_apply() -> None:
    apply_group = load(EXAMPLES / "apply.yml")["concurrency"]
    assert drift_jobs()["self-heal"]["concurrency"] == apply_group
    assert apply_group["cancel-in-progress"] is False


def test_self_heal_commits_the_journal_as_apply_does() -> None:
    [apply] = [
        s for s in steps(load(EXAMPLES / "apply.yml")) if s.get("name") == "Commit the journal"
    ]
    [heal] = [
        s for s in drift_jobs()["self-heal"]["steps"] if s.get("name") == "Commit the journal"
    ]
    assert heal["if"] == apply["if"]
    message = (
        'git commit --quiet -m "reconcile: journal after self-heal run $GITHUB_RUN_ID [skip ci]"'
    )
    assert heal["run"].replace(message, "COMMIT") == apply["run"].replace(
        'git commit --quiet -m "reconcile: journal after applying $GITHUB_SHA [skip ci]"', "COMMIT"
    )


def run_script(
    script: str, cwd: Path, bin_dir: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """A `run:` script as the runner runs it, with `bin_dir` first on PATH."""
    full = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "RUNNER_TEMP": str(cwd / "runner-temp"),
        **env,
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fake_command(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!/bin/bash\n{script}\n")
    path.chmod(0o755)


@pytest.mark.parametrize(("code", "drift"), [(0, "false"), (2, "true"), (1, None), (3, None)])
def test_the_drift_step_turns_exit_2_into_an_output(
    tmp_path: Path, code: int, drift: str | None
) -> None:
    [step] = [s for s in drift_jobs()["drift"]["steps"] if s.get("id") == "drift"]
    bin_dir = tmp_path / "bin"
    fake_command(bin_dir, "reconcile", f'echo "$@" > args; exit {code}')
    output = tmp_path / "github-output"
    output.touch()
    done = run_script(step["run"], tmp_path, bin_dir, GITHUB_OUTPUT=str(output))
    assert (tmp_path / "args").read_text() == (
        "drift --format json --out drift.json --detailed-exitcode --no-color\n"
    )
    if drift is None:
        assert done.returncode == code
        assert output.read_text() == ""
    else:
        assert done.returncode == 0, done.stderr
        assert output.read_text() == f"drift={drift}\n"


def test_the_accept_step_pushes_one_branch_and_opens_or_updates_one_pull_request(
    clones: tuple[Path, Path, Path],
) -> None:
    remote, runner, _ = clones
    [step] = [
        s
        for s in drift_jobs()["accept"]["steps"]
        if s.get("name") == "Open or update the pull request"
    ]
    bin_dir = runner.parent / "bin"
    log = runner.parent / "gh.log"
    # A fake gh: `pr list` answers the number in gh-pr (empty: no open pull request).
    fake_command(
        bin_dir,
        "gh",
        f'echo "$@" >> {log}\nif [ "$1 $2" = "pr list" ]; then cat {runner.parent}/gh-pr; fi',
    )
    (runner.parent / "gh-pr").write_text("")
    env = {"BRANCH": step["env"]["BRANCH"], "GH_TOKEN": "t"}

    # accept changed nothing (only the journal, which is never committed): no push, no gh.
    with (runner / ".reconcile" / "journal.jsonl").open("a") as journal:
        journal.write('{"kind": "op"}\n')
    done = run_script(step["run"], runner, bin_dir, **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "reconcile accept changed no state file.\n"
    assert not log.exists()

    # A state file changed: one commit on main's tip, pushed to the branch, a pull request.
    (runner / "states" / "a.yaml").write_text("incidents: {a-1: {status: triggered}}\n")
    done = run_script(step["run"], runner, bin_dir, **env)
    assert done.returncode == 0, done.stderr
    files = git(remote, "show", "--name-only", "--format=%an|%s", "reconcile/accept-drift")
    assert files.split() == [
        "github-actions[bot]|reconcile:",
        "accept",
        "the",
        "live",
        "values",
        "of",
        "drifted",
        "fields",
        "states/a.yaml",
    ]
    calls = log.read_text().splitlines()
    assert calls[0].startswith("pr list --head reconcile/accept-drift --base main --state open")
    assert calls[1].startswith("pr create --head reconcile/accept-drift --base main --title")

    # The next run rewrites the branch and finds the open pull request: no second one.
    log.unlink()
    (runner.parent / "gh-pr").write_text("12\n")
    git(runner, "reset", "--quiet", "--hard", "origin/main")  # each run checks out main afresh
    (runner / "states" / "a.yaml").write_text("incidents: {a-1: {status: resolved}}\n")
    done = run_script(step["run"], runner, bin_dir, **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Updated pull request #12.\n"
    assert [c.split()[:2] for c in log.read_text().splitlines()] == [["pr", "list"]]
    assert "resolved" in git(remote, "show", "reconcile/accept-drift:states/a.yaml")
    assert git(remote, "rev-list", "--count", "main..reconcile/accept-drift") == "1\n"


def test_self_heal_waits_while_an_accept_pull_request_is_open(tmp_path: Path) -> None:
    [guard] = [s for s in drift_jobs()["self-heal"]["steps"] if s.get("id") == "guard"]
    [heal] = [s for s in drift_jobs()["self-heal"]["steps"] if s.get("id") == "apply"]
    assert heal["if"] == "steps.guard.outputs.skip != 'true'"
    bin_dir = tmp_path / "bin"
    for open_pr, skipped in (("7\n", True), ("", False)):
        fake_command(bin_dir, "gh", f"printf '{open_pr}'")
        output = tmp_path / "github-output"
        output.write_text("")
        env = {"GITHUB_OUTPUT": str(output), **guard["env"], "GH_TOKEN": "t"}
        done = run_script(guard["run"], tmp_path, bin_dir, **env)
        assert done.returncode == 0, done.stderr
        assert (output.read_text() == "skip=true\n") is skipped


def test_accept_continues_the_open_pull_requests_branch(
    clones: tuple[Path, Path, Path],
) -> None:
    remote, runner, _ = clones
    steps = drift_jobs()["accept"]["steps"]
    [start] = [s for s in steps if s.get("name") == "Start from the open accept pull request"]
    [push] = [s for s in steps if s.get("name") == "Open or update the pull request"]
    bin_dir = runner.parent / "bin"
    answer = runner.parent / "gh-pr"
    fake_command(bin_dir, "gh", f'if [ "$1 $2" = "pr list" ]; then cat {answer}; fi')
    env = {"BRANCH": push["env"]["BRANCH"], "GH_TOKEN": "t"}
    answer.write_text("")
    (runner / "states" / "a.yaml").write_text("incidents: {a-1: {severity: sev3}}\n")
    assert run_script(push["run"], runner, bin_dir, **env).returncode == 0  # opens the branch
    git(runner, "checkout", "--quiet", "main")
    git(runner, "reset", "--quiet", "--hard", "origin/main")  # the next run starts on main
    answer.write_text("12\n")
    done = run_script(start["run"], runner, bin_dir, **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Continuing pull request #12.\n"
    # The value the first run accepted is still there for this run to build on.
    assert "sev3" in (runner / "states" / "a.yaml").read_text()
    (runner / "states" / "b.yaml").write_text("incidents: {b-1: {priority: p4}}\n")
    done = run_script(push["run"], runner, bin_dir, **env)
    assert done.returncode == 0, done.stderr
    assert "sev3" in git(remote, "show", "reconcile/accept-drift:states/a.yaml")
    assert "p4" in git(remote, "show", "reconcile/accept-drift:states/b.yaml")
    assert git(remote, "rev-list", "--count", "main..reconcile/accept-drift") == "2\n"


def test_only_the_publish_job_gets_an_oidc_token_and_only_after_the_checks() -> None:
    release = load(ROOT / ".github" / "workflows" / "release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    jobs = release["jobs"]
    assert {name: job["permissions"] for name, job in jobs.items()} == {
        "build": {"contents": "read"},
        "publish": {"id-token": "write"},
    }
    assert jobs["publish"]["needs"] == "build"
    assert jobs["publish"]["environment"]["name"] == "pypi"
    publish = [s["uses"].split("@")[0] for s in jobs["publish"]["steps"]]
    assert publish == ["actions/download-artifact", "pypa/gh-action-pypi-publish"]
    assert "with" not in jobs["publish"]["steps"][-1], "trusted publishing: no password, no token"
    build = "\n".join(s.get("run", "") for s in jobs["build"]["steps"])
    for check in ("python -m build", "twine check --strict", '"$GITHUB_REF_NAME" = "v$version"'):
        assert check in build
