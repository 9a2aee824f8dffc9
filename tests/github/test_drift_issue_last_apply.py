"""The drift report names each team's last apply (`last_apply`: when, commit, repository, pull
request, CI run, from the journal's last apply-start `audit`), and the drift issue shows it as
escaped text (docs/drift.md, JSON; docs/approvals.md, The audit trail): end to end against
the sandbox and the GitHub fake over real HTTP, and the report's checks on their own."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from github_fake import REPO, TOKEN, FakeGitHub, serve_fake_github
from helpers import KEY, TEAM, cli, write_states

from reconciler.errors import ReconcileError
from reconciler.journal import open_journal
from reconciler.render import drift_issue_markdown, drift_json
from reconciler.sandbox import SandboxServer
from reconciler.usecases.drift import DriftEntry, DriftReport, LastApply
from reconciler.usecases.issue import read_drift_report

SHA = "3f" * 20
RUN = f"https://github.example/{REPO}/actions/runs/77"
T1 = "2026-11-30T15:00:00.000Z"
STATUS = DriftEntry("pay-101", "status", "acknowledged", "acknowledged", "triggered", "outside")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_fake_github() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_SERVER_URL", "GITHUB_RUN_ID", "GITHUB_REPOSITORY", "GITHUB_SHA"):
        monkeypatch.delenv(name, raising=False)


def issue(fake: FakeGitHub, drift: str) -> tuple[int, str, str]:
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake.url}
    result = cli("issue", "--drift", drift, "--repo", REPO, env=env)
    return result.code, result.stdout, result.stderr


def test_the_drift_issue_names_the_last_apply_the_journal_recorded(
    github: FakeGitHub, tmp_path: Path
) -> None:
    write_states(tmp_path / "states", {"web-1": {"status": "acknowledged"}})
    with SandboxServer({"web-1": {}}, api_key=KEY, team_id=TEAM) as server:
        spike = {"SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY, "SPIKE_TEAM_ID": TEAM}
        ci = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SHA": SHA,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_SERVER_URL": "https://github.example",
            "GITHUB_RUN_ID": "77",
        }
        code, out, err = cli("apply", "states", "--auto-approve", env={**spike, **ci})
        assert code == 0, out + err
        server.set_incidents({"web-1": {"status": "NACK"}})  # someone, in the dashboard
        code, out, err = cli("drift", "states", "--out", "drift.json", env=spike)
        assert code == 0, out + err
    [at] = [r["at"] for r in open_journal().records() if r["kind"] == "apply-start"]
    report = json.loads(Path("drift.json").read_text())
    assert report["last_apply"] == [
        {
            "team": None,
            "at": at,
            "commit": SHA,
            "repository": REPO,
            "pull_request": None,
            "run_url": RUN,
        }
    ]

    code, out, err = issue(github, "drift.json")
    assert (code, err) == (0, ""), out + err
    body = github.issues[1]["body"]
    assert (
        f"\n- Last apply: at {at}, commit {SHA}, of {REPO}, run "
        f"https:\u200b//github.example/{REPO}/actions/runs/77\n"
    ) in body
    assert "| `web-1` | status | acknowledged | acknowledged | triggered | outside |" in body


def test_a_journal_with_no_apply_gives_no_last_apply(tmp_path: Path) -> None:
    write_states(tmp_path / "states", {"web-1": {"status": "acknowledged"}})
    with SandboxServer({"web-1": {}}, api_key=KEY, team_id=TEAM) as server:
        spike = {"SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY, "SPIKE_TEAM_ID": TEAM}
        code, out, err = cli("drift", "states", "--format", "json", env=spike)
    assert code == 0, err
    assert json.loads(out)["last_apply"] == []


def test_each_team_s_last_apply_is_shown_escaped() -> None:
    report = DriftReport(
        T1,
        [STATUS],
        40,
        [
            LastApply("payments", T1, SHA, REPO, 12, RUN),
            LastApply("platform", T1),
        ],
    )
    text = drift_issue_markdown(report)
    assert text.endswith(
        f"\n\n- Last apply of team payments: at {T1}, commit {SHA}, of {REPO}, pull request "
        f"\\#\u200b12, run https:\u200b//github.example/{REPO}/actions/runs/77\n"
        f"- Last apply of team platform: at {T1}\n"
    )
    # The report file says them: read back, and nothing in them becomes markup.
    Path("drift.json").write_text(drift_json(report))
    assert read_drift_report("drift.json").last_apply == report.last_apply
    forged = DriftReport(
        T1, [STATUS], 40, [LastApply(None, T1, run_url="https://x/)[a](https://e)")]
    )
    shown = drift_issue_markdown(forged)
    assert "run https:\u200b//x/\\)\\[a\\]\\(https:\u200b//e\\)" in shown
    assert "[a](" not in shown


def test_a_report_without_last_apply_reads_as_none() -> None:
    body = json.loads(drift_json(DriftReport(T1, [STATUS], 40)))
    del body["last_apply"]  # a report written before it
    Path("drift.json").write_text(json.dumps(body))
    assert read_drift_report("drift.json").last_apply == []
    assert "Last apply" not in drift_issue_markdown(read_drift_report("drift.json"))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("pull_request", "12", "pull_request must be null or a pull request number"),
        ("pull_request", 0, "pull_request must be null or a pull request number"),
        ("commit", "main; rm", "commit must be null or a commit's hex id"),
        ("repository", "<b>x</b>", "repository must be null or OWNER/NAME"),
        ("run_url", "javascript:alert(1)", "run_url must be null or an http(s) URL"),
        ("at", "yesterday", "at must be an ISO-8601 time"),
        ("team", "No Such Team!", "team must be null or a team name"),
    ],
)
def test_a_forged_last_apply_is_refused_before_any_call(
    github: FakeGitHub, key: str, value: object, message: str
) -> None:
    body = json.loads(drift_json(DriftReport(T1, [STATUS], 40, [LastApply(None, T1)])))
    body["last_apply"][0][key] = value
    Path("drift.json").write_text(json.dumps(body))
    with pytest.raises(ReconcileError, match=re.escape(f"drift.json: last_apply[0]: {message}")):
        read_drift_report("drift.json")
    code, out, err = issue(github, "drift.json")
    assert (code, out) == (1, "")
    assert err == f"error: drift.json: last_apply[0]: {message}\n"
    assert github.requests == []
