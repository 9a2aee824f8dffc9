"""`reconcile comment` edits only a comment its own account wrote, and refuses a broken
GITHUB_API_URL or masks an echoed token cleanly. Against the GitHub fake over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from github_fake import MARK, REPO, TOKEN, FakeGitHub, serve_fake_github
from helpers import RECONCILE, cli, one_team

from reconciler.errors import GitHubError
from reconciler.github import GitHubClient, GitHubConfig
from reconciler.planfile import write_plan
from reconciler.usecases.plan import PlanRequest, make_plan


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_fake_github() as fake:
        yield fake


@pytest.fixture
def plan_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    for name in ("RECONCILE_JOURNAL", "GITHUB_SERVER_URL", "GITHUB_RUN_ID", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "states").mkdir()
    (tmp_path / "states" / "s.yaml").write_text(
        json.dumps({"incidents": {"a-1": {"priority": "p2"}}})
    )
    made = make_plan(PlanRequest(["states"], str(tmp_path / "journal.jsonl"), 100))
    write_plan(one_team(made), "plan.json")
    return "plan.json"


def comment(fake: FakeGitHub, plan_file: str, *extra: str, **env: str) -> tuple[int, str, str]:
    result = cli(
        "comment",
        "--plan",
        plan_file,
        "--repo",
        REPO,
        "--pr",
        "7",
        *extra,
        env={"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake.url, **env},
    )
    return result.code, result.stdout, result.stderr


def test_a_marked_comment_of_another_account_is_left_alone(
    github: FakeGitHub, plan_file: str
) -> None:
    # Anyone can paste the marker; the Actions token (GET /user: 403) owns github-actions[bot]'s.
    theirs = github.add(7, f"{MARK}\nplease edit me", login="mallory")
    code, out, err = comment(github, plan_file)
    assert code == 0, err
    assert out.startswith("Created the plan comment on #7")
    assert github.comments[7][0] == {
        "id": theirs,
        "body": f"{MARK}\nplease edit me",
        "user": {"login": "mallory"},
        "html_url": f"https://github.example/{REPO}/pull/7#issuecomment-{theirs}",
    }
    ours = github.comments[7][1]
    assert ours["user"]["login"] == "github-actions[bot]"
    assert ours["body"].startswith(MARK + "\n### spike-reconcile plan")
    assert github.calls("PATCH") == []

    # The next run finds its own comment (after mallory's) and edits that one.
    github.comments[7][1]["body"] = f"{MARK}\nan older plan"
    code, out, _ = comment(github, plan_file)
    assert code == 0 and out.startswith("Updated the plan comment on #7")
    assert [p for _, p, _ in github.calls("PATCH")] == [
        f"/repos/octo/states/issues/comments/{ours['id']}"
    ]
    assert github.comments[7][0]["body"] == f"{MARK}\nplease edit me"


def test_a_token_that_reads_its_login_edits_only_that_accounts_comment(
    github: FakeGitHub, plan_file: str
) -> None:
    github.login = "deploy-bot"
    actions = github.add(7, f"{MARK}\nold", login="github-actions[bot]")
    mine = github.add(7, f"{MARK}\nold", login="deploy-bot")
    code, out, err = comment(github, plan_file)
    assert code == 0, err
    assert out.startswith("Updated the plan comment on #7")
    assert [p for _, p, _ in github.calls("PATCH")] == [
        f"/repos/octo/states/issues/comments/{mine}"
    ]
    assert next(c for c in github.comments[7] if c["id"] == actions)["body"] == f"{MARK}\nold"


def test_author_names_the_account_when_the_token_cannot_read_its_login(
    github: FakeGitHub, plan_file: str
) -> None:
    app = github.add(7, f"{MARK}\nold", login="my-app[bot]")
    code, out, err = comment(github, plan_file, "--author", "my-app[bot]")
    assert code == 0, err
    assert out.startswith("Updated the plan comment on #7")
    assert [p for _, p, _ in github.calls("PATCH")] == [f"/repos/octo/states/issues/comments/{app}"]
    assert ("GET", "/user", None) in github.requests


def test_no_marked_comment_means_no_login_lookup(github: FakeGitHub, plan_file: str) -> None:
    github.add(7, "LGTM", login="someone")
    assert comment(github, plan_file)[0] == 0
    assert [(m, p.split("?")[0]) for m, p, _ in github.requests] == [
        ("GET", "/repos/octo/states/issues/7/comments"),
        ("GET", "/repos/octo/states/issues/7/comments"),
        ("POST", "/repos/octo/states/issues/7/comments"),
    ]


# ---------------------------------------------------------------------------------------------
# Broken configuration and hostile answers


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        ("\n", "holds whitespace or non-ASCII characters (a trailing newline?)"),
        (":99999", "is not a valid URL (an https:// URL, a port from 0 to 65535)"),
        ("[", "is not a valid URL (an https:// URL, a port from 0 to 65535)"),
    ],
)
def test_a_broken_github_api_url_is_one_line(
    github: FakeGitHub, plan_file: str, suffix: str, message: str
) -> None:
    url = "https://api.github.example" + suffix
    code, _, err = comment(github, plan_file, GITHUB_API_URL=url)
    assert code == 1
    assert err == f"error: GITHUB_API_URL {url!r} {message}\n"
    assert github.requests == []


def test_a_next_link_with_a_bad_port_is_a_clean_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        link = '<https://api.github.com:99999/page2>; rel="next"'
        return httpx.Response(200, json=[], headers={"Link": link})

    async def main() -> None:
        config = GitHubConfig("https://api.github.com", REPO, TOKEN)
        async with GitHubClient(config, httpx.MockTransport(handler)) as client:
            await client.list_comments(5)

    with pytest.raises(GitHubError, match="GitHub answered a link that is not a valid URL"):
        asyncio.run(main())


def test_a_token_echoed_by_github_is_masked_in_process(github: FakeGitHub, plan_file: str) -> None:
    github.failure = (
        422,
        {"message": f"Validation failed; you sent Authorization: Bearer {TOKEN}"},
    )
    code, _, err = comment(github, plan_file)
    assert code == 1
    assert err == (
        "error: cannot list the comments of #7: GitHub answered 422: Validation failed; you "
        "sent Authorization: Bearer ***\n"
    )


def test_a_token_echoed_by_github_is_masked_by_the_installed_command(
    github: FakeGitHub, plan_file: str
) -> None:
    # 400: not retried (a 500 would be, for seconds).
    github.failure = (400, {"message": f"upstream said: token={TOKEN}"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env |= {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.url}
    args = [str(RECONCILE), "comment", "--plan", plan_file, "--repo", REPO, "--pr", "7"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr == (
        "error: cannot list the comments of #7: GitHub answered 400: upstream said: token=***\n"
    )
    assert TOKEN not in done.stdout
