"""`reconcile issue`: one GitHub issue per drift report (docs/drift.md, "Scheduled drift and the
drift issue"), against the GitHub fake over real HTTP, and its pure policy on its own."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from github_fake import DRIFT_MARK, FAST, REPO, TOKEN, FakeGitHub, serve_fake_github
from helpers import KEY, RECONCILE, TEAM, cli, env, write_states

from reconciler.errors import GitHubError, ReconcileError
from reconciler.github import COMMENT_LIMIT, Issue
from reconciler.render import drift_json, drift_markdown
from reconciler.sandbox import SandboxServer
from reconciler.usecases.comment import marker
from reconciler.usecases.drift import DriftEntry, DriftReport
from reconciler.usecases.issue import IssueRequest, plan_issue, read_drift_report, run_issue

T1 = "2026-11-30T15:00:00.000Z"
T2 = "2026-11-30T15:30:00.000Z"
T3 = "2026-11-30T16:00:00.000Z"
STATUS = DriftEntry("pay-101", "status", "acknowledged", "acknowledged", "triggered", "outside")
PRIORITY = DriftEntry("pay-102", "priority", "p1", "p1", "p3", "outside")
GONE = DriftEntry("pay-103", None, None, None, None, "missing", False)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_fake_github() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_SERVER_URL", "GITHUB_RUN_ID", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)


def report_file(checked_at: str, *entries: DriftEntry, name: str = "drift.json") -> str:
    Path(name).write_text(drift_json(DriftReport(checked_at, list(entries), 40)))
    return name


def issue(fake: FakeGitHub, drift: str, *extra: str, **env: str) -> tuple[int, str, str]:
    result = cli(
        "issue",
        "--drift",
        drift,
        "--repo",
        REPO,
        *extra,
        env={"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake.url, **env},
    )
    return result.code, result.stdout, result.stderr


def paths(requests: list[tuple[str, str, Any]]) -> list[tuple[str, str]]:
    return [(method, path.split("?")[0]) for method, path, _ in requests]


# ---------------------------------------------------------------------------------------------
# The lifecycle, against the fake


def test_drift_opens_one_issue_then_edits_it_keeping_since_then_closes_it(
    github: FakeGitHub,
) -> None:
    code, out, err = issue(github, report_file(T1, STATUS, GONE))
    assert (code, err) == (0, "")
    assert out == f"Created drift issue #1: https://github.example/{REPO}/issues/1\n"
    [(method, path, sent)] = github.writes()
    assert (method, path) == ("POST", "/repos/octo/states/issues")
    assert sent["title"] == "Spike drift: 2 incidents (1 field, 1 missing)"
    body = github.issues[1]["body"]
    assert body.startswith(f"{DRIFT_MARK}\n<!-- spike-reconcile:drift-since:{T1} -->\n")
    assert f"> Drifting since {T1}: live values in Spike differ from the state files." in body
    assert (
        "| `pay-101` | status | acknowledged | acknowledged | triggered | outside | revert |"
        in (body)
    )
    assert f"Checked at {T1}." in body

    # Drift persists, and changes: the one issue is edited; "since" stays the first sighting.
    github.requests.clear()
    code, out, err = issue(github, report_file(T2, STATUS, PRIORITY))
    assert (code, err) == (0, "")
    assert out == f"Updated drift issue #1: https://github.example/{REPO}/issues/1\n"
    assert paths(github.writes()) == [("PATCH", "/repos/octo/states/issues/1")]
    body = github.issues[1]["body"]
    assert f"> Drifting since {T1}:" in body and f"Checked at {T2}." in body
    assert "pay-102" in body and "pay-103" not in body
    assert github.issues[1]["title"] == "Spike drift: 2 incidents (2 fields)"
    assert len(github.issues) == 1

    # The same report again: the issue already shows it, nothing is written.
    github.requests.clear()
    code, out, _ = issue(github, "drift.json")
    assert code == 0
    assert (
        out == f"Drift issue #1 already shows this report: https://github.example/{REPO}/issues/1\n"
    )
    assert github.writes() == []

    # Drift is gone: one comment saying when, then the issue is closed.
    github.requests.clear()
    code, out, err = issue(github, report_file(T3))
    assert (code, err) == (0, "")
    assert out == (
        f"Closed drift issue #1: the drift is resolved: https://github.example/{REPO}/issues/1\n"
    )
    # Closed first, then said (a close that fails says nothing: see the close tests below).
    assert [(m, p, b) for m, p, b in github.writes()] == [
        ("PATCH", "/repos/octo/states/issues/1", {"state": "closed", "state_reason": "completed"}),
        (
            "POST",
            "/repos/octo/states/issues/1/comments",
            {
                "body": f"Drift resolved at {T3}: 40 incidents checked, all match the state "
                "files. Closing this issue; a new one opens if drift comes back."
            },
        ),
    ]
    assert github.issues[1]["state"] == "closed"

    # A clean report with no open issue: nothing to do, and nothing written.
    github.requests.clear()
    code, out, _ = issue(github, report_file(T3))
    assert (code, out) == (0, "No drift and no open drift issue: nothing to do.\n")
    assert paths(github.requests) == [("GET", "/repos/octo/states/issues")]

    # New drift after a closed issue opens a new one.
    code, out, _ = issue(github, report_file(T3, PRIORITY))
    assert out.startswith("Created drift issue #2")
    assert github.issues[1]["state"] == "closed"


def test_a_clean_report_sends_no_write_and_asks_no_login(github: FakeGitHub) -> None:
    github.add_issue("an unrelated bug", login="someone")
    code, out, _ = issue(github, report_file(T1))
    assert (code, out) == (0, "No drift and no open drift issue: nothing to do.\n")
    assert paths(github.requests) == [("GET", "/repos/octo/states/issues")]


def test_the_issue_list_is_followed_across_pages_to_our_issue(github: FakeGitHub) -> None:
    github.per_page_max = 2
    for n in range(3):
        github.add_issue(f"bug {n}")
    ours = github.add_issue(f"{DRIFT_MARK}\nold", login="github-actions[bot]", title="old")
    github.add_issue("bug 5")
    code, out, err = issue(github, report_file(T2, STATUS))
    assert (code, err) == (0, "")
    assert out.startswith(f"Updated drift issue #{ours}")
    listed = [p for m, p, _ in github.requests if m == "GET" and "/issues" in p]
    assert len(listed) == 3
    assert listed[0].startswith("/repos/octo/states/issues?state=open&")
    assert all(p.startswith("/repositories/42/issues?") for p in listed[1:])
    assert "page=2" in listed[1] and "page=3" in listed[2]
    assert paths(github.writes()) == [("PATCH", f"/repos/octo/states/issues/{ours}")]
    # The body it had held no "since" field: the time the issue was opened stands in.
    assert "> Drifting since 2026-11-05T08:00:00Z:" in github.issues[ours]["body"]


def test_another_accounts_issue_with_the_marker_is_left_alone(github: FakeGitHub) -> None:
    theirs = github.add_issue(f"{DRIFT_MARK}\nclose me", login="mallory", title="mallory's")
    before = dict(github.issues[theirs])
    code, out, _ = issue(github, report_file(T1, STATUS))
    assert code == 0 and out.startswith("Created drift issue #2")
    assert github.issues[theirs] == before
    # A clean report closes ours, never theirs.
    code, out, _ = issue(github, report_file(T2))
    assert out.startswith("Closed drift issue #2")
    assert github.issues[theirs] == before
    assert ("GET", "/user", None) in github.requests


def test_a_pull_request_carrying_the_marker_is_not_the_issue(github: FakeGitHub) -> None:
    pr = github.add_issue(f"{DRIFT_MARK}\na PR", login="github-actions[bot]", pull_request=True)
    code, out, _ = issue(github, report_file(T1))
    assert (code, out) == (0, "No drift and no open drift issue: nothing to do.\n")
    code, out, _ = issue(github, report_file(T1, STATUS))
    assert out.startswith("Created drift issue #2")
    assert github.issues[pr]["body"] == f"{DRIFT_MARK}\na PR"
    assert github.issues[pr]["state"] == "open"


def test_a_token_that_reads_its_login_owns_only_that_accounts_issue(github: FakeGitHub) -> None:
    github.login = "deploy-bot"
    actions = github.add_issue(f"{DRIFT_MARK}\nold", login="github-actions[bot]")
    mine = github.add_issue(f"{DRIFT_MARK}\nold", login="deploy-bot")
    code, out, _ = issue(github, report_file(T1, STATUS))
    assert code == 0 and out.startswith(f"Updated drift issue #{mine}")
    assert github.issues[actions]["body"] == f"{DRIFT_MARK}\nold"


def test_author_names_the_account_when_get_user_answers_403(github: FakeGitHub) -> None:
    app = github.add_issue(f"{DRIFT_MARK}\nold", login="my-app[bot]")
    bot = github.add_issue(f"{DRIFT_MARK}\nold", login="github-actions[bot]")
    code, out, _ = issue(github, report_file(T1, STATUS), "--author", "my-app[bot]")
    assert code == 0 and out.startswith(f"Updated drift issue #{app}")
    assert ("GET", "/user", None) in github.requests
    assert github.issues[bot]["body"] == f"{DRIFT_MARK}\nold"
    # Without --author, the Actions token's account.
    github.requests.clear()
    code, out, _ = issue(github, "drift.json")
    assert out.startswith(f"Updated drift issue #{bot}")


def test_markers_keep_separate_issues(github: FakeGitHub) -> None:
    assert issue(github, report_file(T1, STATUS))[1].startswith("Created drift issue #1")
    code, out, _ = issue(github, "drift.json", "--marker", "prod")
    assert out.startswith("Created drift issue #2")
    assert github.issues[2]["body"].startswith("<!-- spike-reconcile:drift:prod -->\n")
    assert github.issues[2]["title"] == "Spike drift [prod]: 1 incident (1 field)"
    code, _, err = issue(github, "drift.json", "--marker", "a -->")
    assert code == 1 and err.startswith("error: --marker: 'a -->' must be")


def test_json_output_and_the_run_link(github: FakeGitHub) -> None:
    run = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": REPO}
    code, out, _ = issue(
        github, report_file(T1, STATUS), "--format", "json", **run, GITHUB_RUN_ID="99"
    )
    assert code == 0
    assert json.loads(out) == {
        "action": "created",
        "issue": {"number": 1, "url": f"https://github.example/{REPO}/issues/1"},
        "checked_at": T1,
        "summary": {"incidents": 40, "drifted_incidents": 1, "fields": 1},
    }
    assert github.issues[1]["body"].endswith(
        f"\n[Workflow run](https://github.com/{REPO}/actions/runs/99)\n"
    )
    code, out, _ = issue(github, report_file(T2), "--format", "json")
    assert json.loads(out)["action"] == "closed"
    code, out, _ = issue(github, "drift.json", "--format", "json")
    assert json.loads(out) == {
        "action": "nothing",
        "issue": None,
        "checked_at": T2,
        "summary": {"incidents": 40, "drifted_incidents": 0, "fields": 0},
    }


# ---------------------------------------------------------------------------------------------
# Errors: one line, exit 1, the token never shown


def test_a_token_without_issues_write_is_told_so(github: FakeGitHub) -> None:
    github.failure = (403, {"message": "Resource not accessible by integration"})
    code, out, err = issue(github, report_file(T1, STATUS))
    assert (code, out) == (1, "")
    assert err == (
        "error: cannot list the open issues of octo/states: GitHub answered 403: Resource not "
        "accessible by integration (the token needs issues: write)\n"
    )


def test_issues_turned_off_is_told_so(github: FakeGitHub) -> None:
    github.failure = (410, {"message": "Issues are disabled for this repo"})
    code, _, err = issue(github, report_file(T1, STATUS))
    assert code == 1
    assert err.endswith("(issues are turned off in this repository)\n")


def test_no_token_is_refused_before_any_call(github: FakeGitHub) -> None:
    code, _, err = issue(github, report_file(T1, STATUS), GITHUB_TOKEN="")
    assert code == 1
    assert err == (
        "error: GITHUB_TOKEN must be set to keep the drift issue (a token with issues: write)\n"
    )
    assert github.requests == []


def test_a_token_echoed_by_github_is_masked(github: FakeGitHub) -> None:
    github.failure = (422, {"message": f"Validation failed: Bearer {TOKEN}"})
    code, out, err = issue(github, report_file(T1, STATUS), "-v")
    assert code == 1
    assert TOKEN not in out + err
    assert err == (
        "error: cannot list the open issues of octo/states: GitHub answered 422: Validation "
        "failed: Bearer ***\n"
    )


def test_the_installed_command_never_prints_the_token(github: FakeGitHub) -> None:
    drift = report_file(T1, STATUS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env |= {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.url}
    args = [str(RECONCILE), "issue", "--drift", drift, "--repo", REPO, "--format", "json"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["action"] == "created"
    # 400: not retried (a 500 would be, for seconds).
    github.failure = (400, {"message": f"upstream said: token={TOKEN}"})
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert TOKEN not in done.stdout + done.stderr
    assert done.stderr.endswith("GitHub answered 400: upstream said: token=***\n")


def entry(**change: Any) -> dict[str, Any]:
    return {
        "team": None,
        "incident": "pay-101",
        "field": "status",
        "desired": "acknowledged",
        "journaled": "acknowledged",
        "live": "triggered",
        "policy": "revert",
        "kind": "outside",
    } | change


def report(*entries: dict[str, Any], **change: Any) -> dict[str, Any]:
    summary = {"incidents": 1, "drifted_incidents": len(entries), "fields": len(entries)}
    return {
        "format_version": 1,
        "checked_at": T1,
        "drift": list(entries),
        "summary": summary,
    } | change


HOSTILE: list[tuple[str, bytes, str]] = [
    ("not-json", b"{", "not a drift report (invalid JSON: Expecting property name"),
    ("deep", b"[" * 100_000 + b"]" * 100_000, "(invalid JSON: nested too deeply)"),
    ("binary", b"\xff\xfe\x00garbage", "not a drift report (invalid JSON"),
    ("list", b"[]", "not a drift report of format_version 1"),
    ("plan", json.dumps({"format_version": 2}).encode(), "not a drift report of format_version"),
    ("time", json.dumps(report(checked_at="now")).encode(), "checked_at must be an ISO-8601"),
    (
        "bad-date",
        json.dumps(report(checked_at="2026-13-45T00:00:00Z")).encode(),
        "checked_at must be an ISO-8601",
    ),
    ("summary", json.dumps(report(summary={"incidents": -1})).encode(), "summary must hold"),
    ("drift", json.dumps(report(drift={})).encode(), "drift must be a list"),
    ("entry", json.dumps(report(7)).encode(), "drift[0] must be an object"),
    ("key", json.dumps(report({"incident": "a"})).encode(), "drift[0]: team is missing"),
    (
        "html-id",
        json.dumps(report(entry(incident="<img src=x onerror=alert(1)>"))).encode(),
        "drift[0]: incident must be a counter id",
    ),
    (
        "pipe-value",
        json.dumps(report(entry(live="triggered | injected"))).encode(),
        "drift[0]: live is not a status value",
    ),
    ("field", json.dumps(report(entry(field="title"))).encode(), "drift[0]: field must be one"),
    ("team", json.dumps(report(entry(team="Pay Ments"))).encode(), "team must be null or a"),
    ("policy", json.dumps(report(entry(policy="ignore"))).encode(), "policy must be one of"),
    ("kind", json.dumps(report(entry(kind="weird"))).encode(), "kind must be one of"),
    (
        "missing-with-values",
        json.dumps(report(entry(kind="missing"))).encode(),
        "a missing incident has null field",
    ),
    (
        "journaled",
        json.dumps(report(entry(journaled=True))).encode(),
        "journaled is not a status value",
    ),
    ("nan", b'{"format_version": 1, "checked_at": NaN}', "checked_at must be an ISO-8601"),
]


@pytest.mark.parametrize(("name", "data", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_malformed_or_hostile_report_is_one_line_and_sends_nothing(
    github: FakeGitHub, name: str, data: bytes, message: str
) -> None:
    Path(name).write_bytes(data)
    code, out, err = issue(github, name)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {name}: ") and err.count("\n") == 1
    assert message in err
    assert github.requests == []


def test_an_unreadable_or_huge_report_is_refused(github: FakeGitHub) -> None:
    code, _, err = issue(github, "absent.json")
    assert code == 1 and err == (
        "error: absent.json: cannot read the drift report: No such file or directory\n"
    )
    assert github.requests == []
    Path("big.json").write_text(json.dumps(report(*[entry()] * 10)))
    with pytest.raises(ReconcileError, match=r"^big.json: not a drift report \(larger than 100 "):
        read_drift_report("big.json", limit=100)


def test_a_report_file_name_cannot_forge_a_log_line(github: FakeGitHub) -> None:
    name = "x\n::error::forged.json"
    Path(name).write_text("{")
    code, _, err = issue(github, name)
    assert code == 1
    assert err.startswith("error: x\\n::error::forged.json: not a drift report")


# ---------------------------------------------------------------------------------------------
# From `reconcile drift --out` to the issue, as drift.yml runs them


def test_the_report_reconcile_drift_saves_becomes_the_issue(
    github: FakeGitHub, tmp_path: Path
) -> None:
    states, journal = tmp_path / "states", tmp_path / "journal.jsonl"
    write_states(states, {"web-1": {"status": "acknowledged", "priority": "p2"}, "db-2": {}})
    drift = ["drift", str(states), "--journal", str(journal), "--format", "json"]
    with (
        SandboxServer({"web-1": {}, "db-2": {}}, api_key=KEY, team_id=TEAM) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        assert cli("apply", str(states), "--auto-approve", "--journal", str(journal)).code == 0
        server.set_incidents({"web-1": {"priority": "p4"}, "db-2": None})
        assert cli(*drift, "--out", "drift.json", "--detailed-exitcode").code == 2
        code, out, err = issue(github, "drift.json")
        assert (code, err) == (0, "")
        assert out.startswith("Created drift issue #1")
        assert github.issues[1]["title"] == "Spike drift: 2 incidents (1 field, 1 missing)"
        body = github.issues[1]["body"]
        assert "| `web-1` | priority | p2 | p2 | p4 | outside | revert |" in body
        assert "| `db-2` | _missing_ |" in body

        server.set_incidents({"web-1": {"priority": "p2"}, "db-2": {}})
        assert cli(*drift, "--out", "drift.json", "--detailed-exitcode").code == 0
        code, out, _ = issue(github, "drift.json")
        assert out.startswith("Closed drift issue #1")


# ---------------------------------------------------------------------------------------------
# The report read back, and the pure policy


def test_the_json_report_reads_back_as_the_report() -> None:
    teams = DriftEntry("pay-104", "severity", None, None, "sev2", "pending", False, "warn", "pay")
    original = DriftReport(T1, [STATUS, PRIORITY, GONE, teams], 40)
    Path("r.json").write_text(drift_json(original))
    assert read_drift_report("r.json") == original


def test_the_policy() -> None:
    mark = marker("default", kind="drift")
    assert mark == DRIFT_MARK
    drift = DriftReport(T2, [STATUS], 3)
    clean = DriftReport(T3, [], 3)
    body = f"{mark}\n<!-- spike-reconcile:drift-since:{T1} -->\n"
    ours = Issue(5, "Spike drift: 1 incident (1 field)", body, created_at=T2)

    assert plan_issue(None, clean, "default", drift_markdown).action == "nothing"
    closed = plan_issue(ours, clean, "default", drift_markdown, "https://ci/run/1")
    assert closed.action == "closed"
    assert closed.comment.startswith(f"Drift resolved at {T3}: 3 incidents checked")
    assert closed.comment.endswith("\n[Workflow run](https://ci/run/1)\n")

    created = plan_issue(None, drift, "default", drift_markdown)
    assert created.action == "created"
    assert f"Drifting since {T2}" in created.body
    updated = plan_issue(ours, drift, "default", drift_markdown)
    assert updated.action == "updated"
    assert f"Drifting since {T1}" in updated.body
    current = Issue(5, updated.title, updated.body)
    assert plan_issue(current, drift, "default", drift_markdown).action == "unchanged"
    retitled = Issue(5, "renamed by a person", updated.body)
    assert plan_issue(retitled, drift, "default", drift_markdown).action == "updated"
    # Edited in the browser (CRLF line ends), the field is still read.
    crlf = Issue(5, "t", body.replace("\n", "\r\n") + "a note\r\n", created_at=T2)
    assert f"Drifting since {T1}" in plan_issue(crlf, drift, "default", drift_markdown).body
    # A body edited by hand loses the field: the time the issue was opened stands in.
    edited = Issue(5, "t", f"{mark}\nedited", created_at=T1)
    assert f"Drifting since {T1}" in plan_issue(edited, drift, "default", drift_markdown).body
    forged = Issue(5, "t", f"{mark}\n<!-- spike-reconcile:drift-since:<b>x</b> -->", "", "", "")
    assert f"Drifting since {T2}" in plan_issue(forged, drift, "default", drift_markdown).body


def test_the_title_names_teams_and_the_marker_and_stays_short() -> None:
    entries = [
        DriftEntry(f"i-{n}", "status", "resolved", "resolved", "triggered", "outside", team=team)
        for n, team in enumerate(["zeta", "alpha", "beta", "gamma", "alpha"])
    ]
    change = plan_issue(None, DriftReport(T1, entries, 9), "prod", drift_markdown)
    assert (
        change.title
        == "Spike drift [prod] in alpha, beta, gamma and 1 more: 5 incidents (5 fields)"
    )


def test_a_huge_report_fits_githubs_limit() -> None:
    entries = [
        DriftEntry(f"incident-{n:05}", "status", "resolved", "resolved", "triggered", "outside")
        for n in range(5_000)
    ]
    change = plan_issue(
        None, DriftReport(T1, entries, 5_000), "default", drift_markdown, "https://x"
    )
    assert len(change.body) <= COMMENT_LIMIT
    assert "more rows not shown" in change.body
    assert change.body.endswith("\n[Workflow run](https://x)\n")


@pytest.mark.parametrize(
    ("status", "content", "message"),
    [
        (200, b"<html>", "listing the open issues of octo/states: GitHub answered something"),
        (200, b"{}", "listing the open issues of octo/states: expected a JSON list"),
        (200, b'[{"number": "1"}]', "GitHub answered an issue without an integer number"),
        (404, b'{"message": "Not Found"}', "(no such repository or issue, or the token cannot"),
    ],
)
def test_a_strange_answer_from_github_is_one_clean_error(
    status: int, content: bytes, message: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content)

    Path("drift.json").write_text(drift_json(DriftReport(T1, [STATUS], 1)))
    request = IssueRequest(
        "drift.json",
        REPO,
        markdown=drift_markdown,
        env={"GITHUB_TOKEN": TOKEN},
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(GitHubError) as raised:
        run_issue(request)
    assert message in str(raised.value)


def test_a_report_older_than_the_issue_is_refused_and_changes_nothing() -> None:
    since = "<!-- spike-reconcile:drift-since:2026-11-30T10:00:00Z -->"
    existing = Issue(7, "Spike drift", f"<!-- spike-reconcile:drift:default -->\n{since}\n")
    old = DriftReport("2026-11-30T09:00:00.5Z", [], 3)
    with pytest.raises(ReconcileError, match="older than the issue; nothing done"):
        plan_issue(existing, old, "default", lambda _report, _size: "")
    newer = DriftReport("2026-11-30T11:00:00Z", [], 3)
    assert plan_issue(existing, newer, "default", lambda _report, _size: "").action == "closed"


@pytest.mark.parametrize(
    ("error", "unknown"), [(httpx.ReadTimeout, True), (httpx.ConnectError, False)]
)
def test_a_create_that_may_have_reached_github_says_the_outcome_is_unknown(
    error: type[httpx.TransportError], unknown: bool
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/issues"):
            return httpx.Response(200, json=[])
        if request.method == "GET":
            return httpx.Response(200, json={"login": "github-actions[bot]"})
        raise error("no answer", request=request)

    Path("drift.json").write_text(drift_json(DriftReport(T1, [STATUS], 1)))
    request = IssueRequest(
        "drift.json",
        REPO,
        markdown=drift_markdown,
        env={"GITHUB_TOKEN": TOKEN},
        transport=httpx.MockTransport(handler),
        retry=FAST,
    )
    with pytest.raises(GitHubError) as raised:
        run_issue(request)
    assert ("whether GitHub did it is unknown" in str(raised.value)) is unknown
    assert TOKEN not in str(raised.value)
