"""A misbehaving GitHub, over real loopback HTTP (tests/github_fake.py's faults): an answer
dripped a byte at a time, a body of 100 MB, listings that shift between pages, a close that
fails across reruns, rate limits and 5xx answers retried or, for a create, not.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from github_fake import DRIFT_MARK, FAST, MARK, REPO, TOKEN, FakeGitHub, Fault, serve_fake_github
from helpers import one_team

from reconciler.errors import GitHubError
from reconciler.github import GitHubClient, GitHubConfig
from reconciler.planfile import write_plan
from reconciler.render import drift_json, drift_markdown, plan_markdown
from reconciler.usecases.comment import CommentRequest, post_plan_comment
from reconciler.usecases.drift import DriftEntry, DriftReport
from reconciler.usecases.issue import IssueRequest, run_issue
from reconciler.usecases.plan import PlanRequest, make_plan

T = TypeVar("T")
COMMENTS = r"/repos/octo/states/issues/7/comments"
BOT = "github-actions[bot]"
DRIFT = DriftEntry("pay-101", "status", "acknowledged", "acknowledged", "triggered", "outside")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_fake_github() as fake:
        yield fake


@pytest.fixture
def plan_file(tmp_path: Path) -> str:
    states = tmp_path / "states"
    states.mkdir()
    (states / "s.yaml").write_text(json.dumps({"incidents": {"a-1": {"severity": "sev1"}}}))
    out = str(tmp_path / "plan.json")
    write_plan(
        one_team(make_plan(PlanRequest([str(states)], str(tmp_path / "journal.jsonl"), 100))), out
    )
    return out


def comment(fake: FakeGitHub, plan_file: str, retry: Any = FAST) -> str:
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake.url}
    request = CommentRequest(plan_file, REPO, 7, markdown=plan_markdown, env=env, retry=retry)
    return post_plan_comment(request).action


def issue(fake: FakeGitHub, tmp_path: Path, report: DriftReport) -> str:
    drift = tmp_path / "drift.json"
    drift.write_text(drift_json(report))
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake.url}
    request = IssueRequest(str(drift), REPO, markdown=drift_markdown, env=env, retry=FAST)
    return run_issue(request).action


def with_client(
    fake: FakeGitHub, call: Callable[[GitHubClient], Awaitable[T]], retry: Any = FAST
) -> tuple[T, list[float]]:
    """`call` on a client of the fake, and the waits it slept before retries."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> T:
        config = GitHubConfig(fake.url, REPO, TOKEN)
        async with GitHubClient(config, retry=retry, sleep=sleep) as client:
            return await call(client)

    return asyncio.run(main()), waits


def paths(fake: FakeGitHub) -> list[tuple[str, str]]:
    return [(m, p.split("?")[0]) for m, p, _ in fake.requests]


# ---------------------------------------------------------------------------------------------
# Bounds: the whole command's time, one answer's size


def test_a_dripping_answer_cannot_hold_the_command_past_its_budget(
    github: FakeGitHub, plan_file: str
) -> None:
    # 200 bytes, one every 50 ms: 10 s of answer. The budget is 1 s, a request 0.4 s.
    github.faults.append(Fault("GET", COMMENTS, drip=0.05, times=None))
    started = time.monotonic()
    with pytest.raises(GitHubError) as raised:
        comment(github, plan_file, replace(FAST, total=1.0, deadline=0.4))
    assert time.monotonic() - started < 2.5
    assert str(raised.value).startswith("cannot list the comments of #7: ")
    assert "no complete answer within" in str(raised.value)
    assert github.writes() == []
    assert TOKEN not in str(raised.value)


def test_a_huge_answer_is_refused_at_the_cap_without_reading_it_whole(
    github: FakeGitHub, plan_file: str
) -> None:
    github.faults.append(Fault("GET", COMMENTS, huge=100 << 20))
    with pytest.raises(GitHubError) as raised:
        comment(github, plan_file, replace(FAST, max_body=64 << 10))
    assert str(raised.value) == (
        "listing the comments of #7: GitHub's answer is larger than 65536 bytes; not read further"
    )
    # What the server got rid of before the client hung up: socket buffers, not 100 MB.
    assert github.sent < 16 << 20
    assert github.writes() == []


# ---------------------------------------------------------------------------------------------
# One comment, one issue, when the listing shifts between pages


def test_a_comment_deleted_during_the_listing_makes_no_second_plan_comment(
    github: FakeGitHub, plan_file: str
) -> None:
    github.per_page_max = 2
    first = github.add(7, "LGTM")
    github.add(7, "ship it")
    ours = github.add(7, f"{MARK}\nan older plan", login=BOT)
    github.add(7, "one more")
    deleted: list[int] = []

    def on_page(page: int) -> None:
        # Someone deletes the first comment while page 1 is read: ours moves onto page 1.
        if page == 2 and not deleted:
            github.comments[7] = [c for c in github.comments[7] if c["id"] != first]
            deleted.append(first)

    github.on_page = on_page
    assert comment(github, plan_file) == "updated"
    assert [c["id"] for c in github.ours(7)] == [ours]
    assert [(m, p) for m, p in paths(github) if m != "GET"] == [
        ("PATCH", f"/repos/octo/states/issues/comments/{ours}")
    ]


def test_an_issue_closing_between_pages_makes_no_second_drift_issue(
    github: FakeGitHub, tmp_path: Path
) -> None:
    github.per_page_max = 2
    unrelated = github.add_issue("a bug")
    github.add_issue("a feature request")
    ours = github.add_issue(f"{DRIFT_MARK}\nold report", login=BOT, title="Spike drift")

    def on_page(page: int) -> None:
        # An unrelated issue is closed while page 1 is read: ours moves onto page 1.
        if page == 2:
            github.issues[unrelated]["state"] = "closed"

    github.on_page = on_page
    assert issue(github, tmp_path, DriftReport("2026-12-01T10:00:00Z", [DRIFT], 1)) == "updated"
    marked = [n for n, i in github.issues.items() if i["body"].startswith(DRIFT_MARK)]
    assert marked == [ours]
    assert [(m, p) for m, p in paths(github) if m != "GET"] == [
        ("PATCH", f"/repos/octo/states/issues/{ours}")
    ]


# ---------------------------------------------------------------------------------------------
# Closing the drift issue says so once, whatever the close answers


def test_a_close_answered_502_says_drift_resolved_once_across_reruns(
    github: FakeGitHub, tmp_path: Path
) -> None:
    number = github.add_issue(f"{DRIFT_MARK}\nold report", login=BOT, title="Spike drift")
    close = Fault("PATCH", rf"/repos/octo/states/issues/{number}", status=502, times=None)
    github.faults.append(close)
    clean = DriftReport("2026-12-01T10:00:00Z", [], 3)
    for _run in range(2):
        with pytest.raises(GitHubError) as raised:
            issue(github, tmp_path, clean)
        assert str(raised.value) == (
            f"cannot edit issue #{number}: gave up after 3 attempts; last: GitHub answered "
            "502: misbehaving"
        )
    github.faults.clear()
    assert issue(github, tmp_path, clean) == "closed"
    said = [r for r in github.calls("POST") if r[1].endswith(f"/issues/{number}/comments")]
    assert len(said) == 1
    assert said[0][2]["body"].startswith("Drift resolved at 2026-12-01T10:00:00Z")
    assert github.issues[number]["state"] == "closed"
    # The close was retried (three tries a run, two runs), then made once.
    assert len(github.calls("PATCH")) == 7


# ---------------------------------------------------------------------------------------------
# Retries: idempotent reads and edits, and a create only when GitHub surely did not act


def test_a_429_is_retried_after_its_retry_after(github: FakeGitHub) -> None:
    github.faults.append(Fault("GET", COMMENTS, status=429, headers={"Retry-After": "7"}))
    github.add(7, "LGTM")
    comments, waits = with_client(github, lambda c: c.list_comments(7), replace(FAST, total=30))
    assert [c.body for c in comments] == ["LGTM"]
    assert waits == [7.0]
    assert paths(github) == [("GET", COMMENTS), ("GET", COMMENTS)]


def test_a_secondary_rate_limit_is_retried_after_the_reset(github: FakeGitHub) -> None:
    reset = str(int(time.time()) + 20)
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
    github.faults.append(Fault("GET", "/user", status=403, headers=headers))
    github.login = "octocat"
    login, [wait] = with_client(github, lambda c: c.login(BOT), replace(FAST, total=60))
    assert login == "octocat"
    assert 18.0 <= wait <= 20.0
    assert paths(github) == [("GET", "/user"), ("GET", "/user")]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_an_edit_answered_5xx_is_retried(github: FakeGitHub, status: int) -> None:
    ours = github.add(7, "old")
    edit = rf"/repos/octo/states/issues/comments/{ours}"
    github.faults.append(Fault("PATCH", edit, status=status))
    edited, waits = with_client(github, lambda c: c.update_comment(ours, "new"))
    assert edited.body == "new"
    assert len(waits) == 1
    assert paths(github) == [("PATCH", edit), ("PATCH", edit)]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_create_answered_5xx_is_not_retried_and_the_outcome_is_unknown(
    github: FakeGitHub, status: int
) -> None:
    github.faults.append(Fault("POST", COMMENTS, status=status))
    with pytest.raises(GitHubError) as raised:
        with_client(github, lambda c: c.create_comment(7, "plan"))
    assert str(raised.value) == (
        f"cannot comment on #7: GitHub answered {status}: misbehaving; the request was sent, "
        "so whether GitHub did it is unknown: look at the repository before running again"
    )
    assert paths(github) == [("POST", COMMENTS)]


@pytest.mark.parametrize(
    ("status", "headers"),
    [(429, {"Retry-After": "1"}), (503, {}), (403, {"Retry-After": "1"})],
)
def test_a_create_github_surely_did_not_act_on_is_sent_again(
    github: FakeGitHub, status: int, headers: dict[str, str]
) -> None:
    github.faults.append(Fault("POST", COMMENTS, status=status, headers=headers))
    created, waits = with_client(github, lambda c: c.create_comment(7, "plan"))
    assert created.body == "plan"
    assert len(waits) == 1
    assert paths(github) == [("POST", COMMENTS), ("POST", COMMENTS)]
    assert [c["body"] for c in github.comments[7]] == ["plan"]


def test_a_wait_past_the_budget_gives_up_at_once(github: FakeGitHub) -> None:
    github.faults.append(Fault("GET", COMMENTS, status=429, headers={"Retry-After": "3600"}))
    with pytest.raises(GitHubError) as raised:
        with_client(github, lambda c: c.list_comments(7))
    assert str(raised.value) == (
        "cannot list the comments of #7: gave up after 1 attempts; last: GitHub answered 429: "
        "misbehaving"
    )
    assert paths(github) == [("GET", COMMENTS)]
