"""Approvals end to end (docs/approvals.md), over real loopback HTTP against the Spike
sandbox and the GitHub fake: a pull request turning a page public is not met by an approval
from outside comms, is met once a comms member approves, and is unmet again after a new
commit; an apply after an admin merge without the approval makes no call and exits 1;
--force-approvals applies, and `reconcile log` shows the reason and the commit."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from github_fake import REPO, TOKEN, FakeGitHub, serve_fake_github
from helpers import KEY, cli, write_states

from reconciler.sandbox import SandboxServer

TEAM = "team-a-0001"
HEAD, NEXT, MERGE = "1" * 40, "2" * 40, "3" * 40
PROJECT = """\
version: 1
approvals:
  public-pages:
    when: {field: public_sharing, after: true}
    approvers: ["@acme/comms", "dana"]
"""


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(teams={TEAM: {"42": {"status": "NACK"}}}, api_key=KEY) as server:
        yield server


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_fake_github() as fake:
        fake.teams[("acme", "comms")] = {"cy"}
        fake.add_pull(7, "erin", HEAD)
        yield fake


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("RECONCILE_JOURNAL", "RECONCILE_CONFIG", "RECONCILE_PLAN_KEY", "GITHUB_SHA"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "reconcile.yaml").write_text(PROJECT)
    write_states(tmp_path / "states", {"42": {"public_sharing": True}})
    return tmp_path


def env(server: SandboxServer, fake: FakeGitHub, summary: Path | None = None) -> dict[str, str]:
    out = {
        "SPIKE_API_URL": server.url,
        "SPIKE_API_KEY": KEY,
        "SPIKE_TEAM_ID": TEAM,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": fake.url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_STEP_SUMMARY": str(summary or ""),
    }
    return out


def test_review_then_merge_then_apply(
    work: Path, sandbox: SandboxServer, github: FakeGitHub
) -> None:
    summary = work / "summary.md"
    the_env = env(sandbox, github, summary)
    code, out, err = cli("plan", "states", "--out", "plan.json", env=the_env)
    assert code == 0, out + err
    check = ("approvals", "--plan", "plan.json", "--repo", REPO, "--pr", "7")

    # An approval from outside comms, and one of the author, count for nothing.
    github.review(7, "ana", "APPROVED")
    github.review(7, "erin", "APPROVED")
    code, out, err = cli(*check, env=the_env)
    assert (code, err) == (1, "")
    assert out == (
        f"Pull request #7 by erin, head {HEAD[:12]}:\n"
        "  public-pages: not met: 0 of 1 approval on the head commit; 1 more from: "
        "@acme/comms, dana (not erin, the author)\n"
        "Note: GitHub answered 404 for the membership of @acme/comms: not a member, or a team "
        "the token cannot see (the Actions GITHUB_TOKEN cannot read team membership; a token "
        "with read:org or Members: read can)\n"
        "Approvals: 0 of 1 rules met.\n"
    )
    assert "**not met**" in summary.read_text()
    # Only ana's membership was read: erin is the author, and no user approver matched.
    reads = [path for _, path, _ in github.requests if "/memberships/" in path]
    assert reads == ["/orgs/acme/teams/comms/memberships/ana"]

    github.review(7, "cy", "APPROVED")
    code, out, _ = cli(*check, env=the_env)
    assert code == 0
    assert "  public-pages: met, approved by cy (2030-01-01T10:00:02Z)\n" in out

    # A new commit: the approval was of the old head.
    github.push(7, NEXT)
    code, out, _ = cli(*check, env=the_env)
    assert code == 1
    assert "public-pages: not met: 0 of 1 approval on the head commit" in out

    # An admin merges anyway; apply on the merge commit finds the pull request and refuses.
    github.merge(7, MERGE)
    before = len(sandbox.calls)
    journal = work / ".reconcile" / "journal.jsonl"
    code, out, err = cli("apply", "plan.json", env=the_env | {"GITHUB_SHA": MERGE})
    assert code == 1
    assert "the plan's approvals are not met on pull request #7: public-pages: not met" in err
    assert "--force-approvals REASON" in err
    assert len(sandbox.calls) == before
    assert f"/repos/octo/states/commits/{MERGE}/pulls" in [p for _, p, _ in github.requests]
    assert not journal.exists() or "apply-start" not in journal.read_text()

    # Forced: applied, and the journal says who and why.
    forced = "incident INC-9: comms approved on the call"
    code, out, err = cli(
        "apply", "plan.json", "--force-approvals", forced,
        env=the_env | {"GITHUB_SHA": MERGE, "GITHUB_SERVER_URL": "https://github.example",
                       "GITHUB_RUN_ID": "99"},
    )  # fmt: skip
    assert code == 0, out + err
    assert len(sandbox.calls) == before + 1
    code, log, _ = cli("log", env=the_env)
    assert f"    commit {MERGE} of {REPO}\n" in log
    assert f"    run https://github.example/{REPO}/actions/runs/99\n" in log
    assert f"    approvals forced: {forced}\n" in log
    code, log_json, _ = cli("log", "--format", "json", env=the_env)
    (applied,) = [e for e in json.loads(log_json) if e["kind"] == "apply"]
    assert applied["audit"] == {
        "commit": MERGE,
        "repository": REPO,
        "run_url": f"https://github.example/{REPO}/actions/runs/99",
        "force_approvals": forced,
    }
    assert TOKEN not in log + log_json + journal.read_text()


def test_apply_with_met_approvals_records_them_and_without_rules_calls_no_github(
    work: Path, sandbox: SandboxServer, github: FakeGitHub
) -> None:
    the_env = env(sandbox, github)
    github.review(7, "dana", "APPROVED")
    code, out, err = cli("apply", "states", "--auto-approve", "--pr", "7", env=the_env)
    assert code == 0, out + err
    _, log_json, _ = cli("log", "--format", "json", env=the_env)
    (applied,) = [e for e in json.loads(log_json) if e["kind"] == "apply"]
    assert applied["audit"]["pull_request"] == 7
    assert applied["audit"]["author"] == "erin"
    assert applied["audit"]["approvals"] == [{"login": "dana", "at": "2030-01-01T10:00:00Z"}]
    assert applied["audit"]["user"] == getpass.getuser()  # outside CI: the local user

    (work / "reconcile.yaml").write_text("version: 1\n")
    write_states(work / "states", {"42": {"public_sharing": False}})
    github.requests.clear()
    code, out, err = cli("apply", "states", "--auto-approve", env=the_env)
    assert code == 0, out + err
    assert github.requests == []


def test_a_token_that_cannot_read_teams_is_told_which_can(
    work: Path, sandbox: SandboxServer, github: FakeGitHub
) -> None:
    the_env = env(sandbox, github)
    cli("plan", "states", "--out", "plan.json", env=the_env)
    github.team_status = 403
    github.review(7, "cy", "APPROVED")
    code, out, err = cli("approvals", "--plan", "plan.json", "--pr", "7", env=the_env)
    assert out == ""
    assert code == 1
    assert "The Actions GITHUB_TOKEN never can" in err and "read:org" in err
    assert "Traceback" not in err
