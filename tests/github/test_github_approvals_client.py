"""The GitHub calls of the approvals check (reconciler.github; docs/approvals.md), against the
fake GitHub over loopback HTTP: a pull request's head and author, its reviews over several
pages, team memberships (a member, not one, a token that cannot read teams) and the pull
request of a merge commit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from github_fake import FAST, REPO, TOKEN, FakeGitHub, serve_fake_github

from reconciler.approvals import Review
from reconciler.errors import GitHubError
from reconciler.github import GitHubClient, GitHubConfig, PullRequest

T = TypeVar("T")
HEAD, OLD = "b" * 40, "a" * 40


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_fake_github() as fake:
        yield fake


def run(fake: FakeGitHub, call: Callable[[GitHubClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with GitHubClient(GitHubConfig(fake.url, REPO, TOKEN), retry=FAST) as client:
            return await call(client)

    return asyncio.run(main())


def test_a_pull_request_and_its_reviews_over_several_pages(github: FakeGitHub) -> None:
    github.per_page_max = 2
    github.add_pull(7, "erin", OLD)
    first = github.review(7, "ana", "APPROVED")
    github.push(7, HEAD)
    github.review(7, "bob", "COMMENTED")
    github.review(7, "cy", "CHANGES_REQUESTED")
    github.review(7, "dana", "APPROVED")
    github.dismiss(7, first)
    pull = run(github, lambda c: c.pull_request(7))
    reviews = run(github, lambda c: c.list_reviews(7))
    assert pull == PullRequest(7, HEAD, "erin", f"https://github.example/{REPO}/pull/7")
    assert reviews == [
        Review("ana", "DISMISSED", OLD, "2030-01-01T10:00:00Z"),
        Review("bob", "COMMENTED", HEAD, "2030-01-01T10:00:01Z"),
        Review("cy", "CHANGES_REQUESTED", HEAD, "2030-01-01T10:00:02Z"),
        Review("dana", "APPROVED", HEAD, "2030-01-01T10:00:03Z"),
    ]
    assert [path for _, path, _ in github.requests] == [
        "/repos/octo/states/pulls/7",
        "/repos/octo/states/pulls/7/reviews?per_page=100",
        "/repositories/42/pulls/7/reviews?per_page=2&page=2",
    ]


def test_team_membership_member_not_a_member_and_a_token_that_cannot_read_teams(
    github: FakeGitHub,
) -> None:
    github.teams[("acme", "comms")] = {"Cy"}
    assert run(github, lambda c: c.team_member("acme", "comms", "cy")) is True
    assert run(github, lambda c: c.team_member("acme", "comms", "ana")) is None
    assert github.requests[-1][1] == "/orgs/acme/teams/comms/memberships/ana"
    github.team_status = 403
    with pytest.raises(GitHubError) as caught:
        run(github, lambda c: c.team_member("acme", "comms", "cy"))
    assert str(caught.value) == (
        "cannot read whether cy is a member of @acme/comms: GitHub answered 403: the token "
        "cannot read the organisation's team membership. The Actions GITHUB_TOKEN never can: "
        'give this step a fine-grained token with the organisation permission "Members: read" '
        "(or a classic token with read:org) as GITHUB_TOKEN, or name users instead of teams "
        "in approvers"
    )


def test_the_pull_request_of_a_merge_commit(github: FakeGitHub) -> None:
    github.add_pull(3, "erin", HEAD)
    github.add_pull(4, "ana", OLD)
    github.merge(4, "c" * 40)
    assert run(github, lambda c: c.pulls_of_commit("c" * 40)) == [
        PullRequest(4, OLD, "ana", f"https://github.example/{REPO}/pull/4")
    ]
    assert run(github, lambda c: c.pulls_of_commit("d" * 40)) == []
    assert github.requests[-1][1] == f"/repos/octo/states/commits/{'d' * 40}/pulls"


def test_a_pull_request_that_is_not_there_says_which_permission(github: FakeGitHub) -> None:
    with pytest.raises(GitHubError) as caught:
        run(github, lambda c: c.pull_request(9))
    assert str(caught.value) == (
        "cannot read pull request #9: GitHub answered 404: Not Found (no such repository or "
        "pull request, or the token cannot see it)"
    )
