"""The pull-request plan comment (reconciler.github, `reconcile comment`), against a local fake
of the two GitHub endpoints it uses: an issue's comments (list, with Link pagination, and
create) and one comment (edit). The fake is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from github_fake import MARK, REPO, TOKEN, FakeGitHub, serve_fake_github
from helpers import RECONCILE, cli, one_team, plan_to_json

from reconciler.errors import GitHubError, InvalidPlanError, ReconcileError
from reconciler.github import GitHubClient, GitHubConfig
from reconciler.planfile import digest, read_saved_plan, section_plan, write_plan
from reconciler.render import plan_markdown, section_markdown
from reconciler.usecases.comment import CommentRequest, decide, marker, post_plan_comment
from reconciler.usecases.plan import PlanRequest, make_plan


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_fake_github() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("RECONCILE_JOURNAL", "GITHUB_SERVER_URL", "GITHUB_RUN_ID", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)


def env_for(fake: FakeGitHub, **extra: str) -> dict[str, str]:
    return {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake.url, **extra}


def saved_plan(tmp_path: Path, incidents: dict[str, Any], name: str = "plan.json") -> str:
    """A plan file for these desired incidents against an empty journal."""
    states = tmp_path / f"states-{name}"
    states.mkdir()
    (states / "s.yaml").write_text(json.dumps({"incidents": incidents}))
    made = make_plan(PlanRequest([str(states)], str(tmp_path / "journal.jsonl"), 100))
    out = str(tmp_path / name)
    write_plan(one_team(made), out)
    return out


def post(fake: FakeGitHub, plan_file: str, pr: int = 7, **kw: Any) -> str:
    request = CommentRequest(plan_file, REPO, pr, **kw, markdown=plan_markdown, env=env_for(fake))
    return post_plan_comment(request).action


# ---------------------------------------------------------------------------------------------
# The policy


def test_the_policy_creates_only_for_changes_and_edits_only_when_the_body_differs() -> None:
    from reconciler.github import Comment

    mine = Comment(1, "old body")
    assert decide(None, "b", has_changes=True) == "created"
    assert decide(None, "b", has_changes=False) == "skipped"
    assert decide(mine, "new body", has_changes=False) == "updated"
    assert decide(mine, "new body", has_changes=True) == "updated"
    assert decide(mine, "old body", has_changes=True) == "unchanged"


# ---------------------------------------------------------------------------------------------
# Against the fake server


def test_one_comment_updated_in_place_across_pushes(tmp_path: Path, github: FakeGitHub) -> None:
    github.add(7, "LGTM")
    first = saved_plan(tmp_path, {"a-1": {"status": "acknowledged"}}, "first.json")
    second = saved_plan(tmp_path, {"a-1": {"status": "resolved", "priority": "p2"}}, "second.json")

    assert post(github, first, commit="a" * 40) == "created"
    [created] = github.ours(7)
    assert "| `a-1` | status | (unknown) | acknowledged |" in created["body"]
    assert "commit `aaaaaaaaaaaa`" in created["body"]

    assert post(github, second, commit="b" * 40) == "updated"
    assert post(github, second, commit="b" * 40) == "unchanged"  # the same plan: no edit

    [updated] = github.ours(7)
    assert updated["id"] == created["id"]
    assert updated["body"].startswith(MARK + "\n### spike-reconcile plan")
    assert "| `a-1` | status | (unknown) | resolved |" in updated["body"]
    assert "| `a-1` | priority | (unknown) | p2 |" in updated["body"]
    assert "acknowledged" not in updated["body"]
    assert "commit `bbbbbbbbbbbb`" in updated["body"]
    assert len(github.comments[7]) == 2  # the reviewer's comment and ours, nothing else
    assert [(m, p) for m, p, _ in github.calls("POST")] == [
        ("POST", "/repos/octo/states/issues/7/comments")
    ]
    assert [(m, p) for m, p, _ in github.calls("PATCH")] == [
        ("PATCH", f"/repos/octo/states/issues/comments/{created['id']}")
    ]


def test_no_changes_and_no_comment_posts_nothing(tmp_path: Path, github: FakeGitHub) -> None:
    empty = saved_plan(tmp_path, {})
    assert post(github, empty) == "skipped"
    assert github.comments == {}
    assert [m for m, _, _ in github.requests] == ["GET"]  # looked, then stayed silent


def test_a_plan_that_became_empty_turns_the_comment_into_no_changes(
    tmp_path: Path, github: FakeGitHub
) -> None:
    assert post(github, saved_plan(tmp_path, {"a-1": {"priority": "p1"}}, "one.json")) == "created"
    assert post(github, saved_plan(tmp_path, {}, "two.json")) == "updated"
    [comment] = github.ours(7)
    assert "**No changes. 0 incidents match the journal.**" in comment["body"]
    assert "p1" not in comment["body"]


def test_the_comment_is_found_on_a_later_page(tmp_path: Path, github: FakeGitHub) -> None:
    github.per_page_max = 3
    for n in range(7):
        github.add(7, f"discussion {n}")
    ours = github.add(7, f"{MARK}\nan old plan", login="github-actions[bot]")
    github.add(7, "one more")

    assert post(github, saved_plan(tmp_path, {"x": {"severity": "sev2"}})) == "updated"

    gets = [path for method, path, _ in github.requests if method == "GET"]
    assert gets == [
        "/repos/octo/states/issues/7/comments?per_page=100",
        "/repositories/42/issues/7/comments?per_page=3&page=2",
        "/repositories/42/issues/7/comments?per_page=3&page=3",
        "/user",  # whose is the marked comment: the token's own account?
    ]
    assert [c["id"] for c in github.ours(7)] == [ours]
    assert "| `x` | severity | (unknown) | sev2 |" in github.ours(7)[0]["body"]
    assert github.calls("POST") == []


def test_quotes_of_the_marker_and_other_markers_are_not_our_comment(
    tmp_path: Path, github: FakeGitHub
) -> None:
    github.add(7, f"> {MARK}\n> quoted by a reviewer")
    github.add(7, "<!-- spike-reconcile:plan:prod -->\nthe prod plan", login=github.author)
    plan_file = saved_plan(tmp_path, {"x": {"status": "resolved"}})

    assert post(github, plan_file) == "created"
    assert post(github, plan_file, marker_name="prod") == "updated"
    bodies = [c["body"] for c in github.comments[7]]
    assert bodies[0] == f"> {MARK}\n> quoted by a reviewer"
    assert bodies[1].startswith("<!-- spike-reconcile:plan:prod -->\n### spike-reconcile plan")
    assert bodies[2].startswith(MARK + "\n### spike-reconcile plan")


def test_the_comment_is_the_plan_markdown_of_the_saved_plan(tmp_path: Path) -> None:
    """No second renderer: the saved plan renders exactly as the plan it was made from."""
    states = tmp_path / "states"
    states.mkdir()
    incidents = {f"i-{n}": {"status": "acknowledged", "escalations": n % 3} for n in range(30)}
    (states / "s.yaml").write_text(json.dumps({"incidents": incidents}))
    made = make_plan(PlanRequest([str(states)], str(tmp_path / "j.jsonl"), 7))
    write_plan(one_team(made), str(tmp_path / "p.json"))

    again = section_plan(read_saved_plan(str(tmp_path / "p.json")))
    assert section_markdown(again) == section_markdown(made.plan)
    assert again.has_changes and plan_to_json(again) == plan_to_json(made.plan)


@pytest.mark.parametrize(
    "change",
    [
        {"incident": "a", "field": "status", "before": None, "after": "<img src=x>"},
        {"incident": "a b", "field": "status", "before": None, "after": "resolved"},
        {"incident": "a", "field": "mood", "before": None, "after": "resolved"},
        {"incident": "a", "field": "status", "after": "resolved"},
        {"incident": "a", "field": "status", "before": [], "after": "resolved"},
    ],
)
def test_a_forged_change_never_reaches_a_comment(tmp_path: Path, change: dict[str, Any]) -> None:
    """A plan file is untrusted input: re-digested after an edit, it is still refused."""
    plan_file = saved_plan(tmp_path, {"a": {"status": "resolved"}})
    body = json.loads(Path(plan_file).read_text())
    body["changes"] = [change]
    body["plan_digest"] = digest(body)
    Path(plan_file).write_text(json.dumps(body))
    with pytest.raises(InvalidPlanError, match=r"changes\[0\] is malformed"):
        section_plan(read_saved_plan(plan_file))


# ---------------------------------------------------------------------------------------------
# The token


def test_the_cli_reports_what_it_did_and_never_shows_the_token(
    tmp_path: Path, github: FakeGitHub
) -> None:
    plan_file = saved_plan(tmp_path, {"a-1": {"public_sharing": True}})
    env = env_for(
        github,
        GITHUB_REPOSITORY=REPO,
        GITHUB_SERVER_URL="https://github.example",
        GITHUB_RUN_ID="99",
    )
    run = cli("comment", "--plan", plan_file, "--pr", "7", "-v", env=env)
    assert run.code == 0, run.stderr
    [comment] = github.ours(7)
    assert run.stdout == f"Created the plan comment on #7: {comment['html_url']}\n"
    assert "[workflow run](https://github.example/octo/states/actions/runs/99)" in comment["body"]

    again = cli("comment", "--plan", plan_file, "--pr", "7", env=env)
    assert again.stdout.startswith("The plan comment already shows this plan on #7: https://")

    wrong = cli("comment", "--plan", plan_file, "--pr", "7", env=env | {"GITHUB_TOKEN": "x"})
    assert wrong.code == 1
    assert wrong.stderr.startswith(
        "error: cannot list the comments of #7: GitHub answered 401: Bad credentials"
    )
    for out in (run.stdout, run.stderr, again.stdout, again.stderr, wrong.stdout, wrong.stderr):
        assert TOKEN not in out
    assert TOKEN not in repr(GitHubConfig(github.url, REPO, TOKEN))
    assert TOKEN not in repr(GitHubClient(GitHubConfig(github.url, REPO, TOKEN)))


def test_the_installed_command_end_to_end(tmp_path: Path, github: FakeGitHub) -> None:
    plan_file = saved_plan(tmp_path, {"a-1": {"severity": None}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env |= env_for(github)
    args = [str(RECONCILE), "comment", "--plan", plan_file, "--repo", REPO, "--pr", "3"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Created the plan comment on #3: https://github.example/")
    assert TOKEN not in done.stdout + done.stderr
    assert "| `a-1` | severity | (unknown) | none |" in github.ours(3)[0]["body"]


def test_a_next_page_on_another_host_is_not_followed_with_the_token() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        link = '<https://elsewhere.example/page2>; rel="next"'
        return httpx.Response(200, json=[], headers={"Link": link})

    async def main() -> None:
        config = GitHubConfig("https://api.github.com", REPO, TOKEN)
        async with GitHubClient(config, httpx.MockTransport(handler)) as client:
            await client.list_comments(5)

    with pytest.raises(GitHubError, match="next page is on another host") as caught:
        asyncio.run(main())
    assert seen == ["https://api.github.com/repos/octo/states/issues/5/comments?per_page=100"]
    assert TOKEN not in str(caught.value)


def test_a_fork_pull_request_gets_a_clear_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=[])
        return httpx.Response(403, json={"message": "Resource not accessible by integration"})

    async def main() -> None:
        config = GitHubConfig("https://api.github.com", REPO, TOKEN)
        async with GitHubClient(config, httpx.MockTransport(handler)) as client:
            await client.create_comment(5, "x")

    with pytest.raises(GitHubError) as caught:
        asyncio.run(main())
    assert str(caught.value) == (
        "cannot comment on #5: GitHub answered 403: Resource not accessible by integration "
        "(the token needs pull-requests: write; a pull request from a fork gets a read-only "
        "token, so its plan is only in the job summary)"
    )


@pytest.mark.parametrize(
    ("env", "repo", "message"),
    [
        ({}, REPO, "GITHUB_TOKEN must be set"),
        ({"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": "http://api.example"}, REPO, "only https://"),
        ({"GITHUB_TOKEN": TOKEN}, "octo/../admin", "is not OWNER/NAME"),
        ({"GITHUB_TOKEN": TOKEN}, "octo", "is not OWNER/NAME"),
    ],
)
def test_configuration_is_checked_before_any_call(
    env: dict[str, str], repo: str, message: str
) -> None:
    with pytest.raises(ReconcileError, match=re.escape(message)):
        GitHubConfig.from_env(repo, env)


def test_a_bad_marker_or_commit_is_refused(tmp_path: Path, github: FakeGitHub) -> None:
    with pytest.raises(ReconcileError, match="--marker"):
        marker("no spaces -->")
    plan_file = saved_plan(tmp_path, {})
    with pytest.raises(ReconcileError, match="--commit"):
        post(github, plan_file, commit="$(rm -rf)")
    assert github.requests == []
