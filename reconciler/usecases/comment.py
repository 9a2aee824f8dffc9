"""Post a saved plan to its pull request: the one plan comment, created, edited or left alone.

Atlantis and tfcmt post a new comment per push; reviewers then scroll past stale plans. Here the
comment carries a hidden HTML marker on its first line, and every later plan edits that comment
in place. A plan with no changes posts nothing when no comment exists yet (a quiet pull request
stays quiet), and turns an existing comment into "No changes" (so it never shows a stale plan).

Only a comment the token's own account wrote is edited: anyone can paste the marker into a
comment (find_marked).

One comment even when the listing shifts: the comments are listed page by page while others
change the pull request, and a comment deleted above the page being read moves ours onto a
page already read. So a comment is created only when a second listing, made right before the
create, finds none either.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from ..errors import ReconcileError

if TYPE_CHECKING:
    from ..github import Transport
    from ..httpcall import RetryPolicy

from ..github import (
    ACTIONS_LOGIN,
    COMMENT_LIMIT,
    DEFAULT_RETRY,
    Comment,
    GitHubClient,
    GitHubConfig,
    Issue,
    run_url_from_env,
)
from ..planfile import read_plan_file
from .plan import ProjectPlan, plan_from_saved

_MARKER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")

Action = Literal["created", "updated", "unchanged", "skipped"]
#: What carries a marker: a comment, or an issue (its body).
Marked = TypeVar("Marked", Comment, Issue)


def marker(name: str = "default", kind: Literal["plan", "drift"] = "plan") -> str:
    """The hidden first line that identifies this tool's comment (one per name per PR), or
    its drift issue (kind "drift": one open per name per repository, usecases/issue.py)."""
    if not _MARKER_NAME.fullmatch(name):
        raise ReconcileError(f"--marker: {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return f"<!-- spike-reconcile:{kind}:{name} -->"


def decide(existing: Comment | None, body: str, has_changes: bool) -> Action:
    """What to do with the plan comment. Pure: the whole policy of this module.

    No comment yet: create one only when the plan changes something. A comment exists: make it
    show this plan (even "No changes"), unless it already does.
    """
    if existing is None:
        return "created" if has_changes else "skipped"
    return "unchanged" if existing.body == body else "updated"


async def find_marked(
    listing: Callable[[], Awaitable[Sequence[Marked]]],
    mark: str,
    author: Callable[[], Awaitable[str]],
) -> Marked | None:
    """The first comment (or issue) `listing` gives whose first line is the marker (quotes of
    it start with '>') and that the token's own account wrote: anyone can paste the marker into
    a comment of their own, and editing theirs would put our plan under their name (or fail).

    `author` gives that account's login; it is asked only when a comment carries the marker.
    """
    marked = [c for c in await listing() if c.body.startswith(mark)]
    if not marked:
        return None
    login = await author()
    return next((c for c in marked if c.author == login), None)


def login_once(client: GitHubClient, fallback: str) -> Callable[[], Awaitable[str]]:
    """The token's login (GitHubClient.login), asked of GitHub at most once."""
    known: list[str] = []

    async def author() -> str:
        if not known:
            known.append(await client.login(fallback))
        return known[0]

    return author


def comment_body(markdown: str, mark: str, commit: str | None, run_url: str | None) -> str:
    """The marker, the plan's markdown, and a footer naming the commit and the run."""
    footer = []
    if commit:
        footer.append(f"commit `{commit[:12]}`")
    if run_url:
        footer.append(f"[workflow run]({run_url})")
    tail = f"\n<sub>Plan for {' · '.join(footer)}</sub>\n" if footer else ""
    body = f"{mark}\n{markdown}{tail}"
    if len(body) > COMMENT_LIMIT:  # plan_markdown keeps 2,000 characters spare; a guard only
        raise ReconcileError(
            f"the plan comment would be {len(body)} characters; GitHub's limit is {COMMENT_LIMIT}"
        )
    return body


@dataclass(frozen=True)
class GitHubOptions:
    """How a use case reaches GitHub (a CommentRequest, an IssueRequest)."""

    #: Where GITHUB_TOKEN and GITHUB_API_URL are read (None: os.environ).
    env: Mapping[str, str] | None = field(default=None, kw_only=True)
    #: For tests: an httpx transport instead of the network.
    transport: Transport | None = field(default=None, kw_only=True)
    #: For tests: other bounds than the GitHub client's (github.DEFAULT_RETRY).
    retry: RetryPolicy | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class CommentRequest(GitHubOptions):
    plan_file: str
    repo: str
    pr: int
    marker_name: str = "default"
    commit: str | None = None
    run_url: str | None = None
    #: Whose comment to edit when the token cannot read its own login (see GitHubClient.login).
    author: str = ACTIONS_LOGIN
    #: The comment's view of the plan (render.plan_markdown: views live above the use cases).
    markdown: Callable[[ProjectPlan], str] = field(kw_only=True)


@dataclass(frozen=True)
class CommentResult:
    action: Action
    comment: Comment | None


def post_plan_comment(request: CommentRequest) -> CommentResult:
    """Create, update or leave alone the pull request's one plan comment (see `decide`)."""
    env = request.env
    if request.commit and not _SHA.fullmatch(request.commit):
        raise ReconcileError(f"--commit: {request.commit!r} is not a commit SHA")
    plan = plan_from_saved(read_plan_file(request.plan_file))
    markdown, has_changes = request.markdown(plan), plan.has_changes
    config = GitHubConfig.from_env(request.repo, env)
    mark = marker(request.marker_name)
    run_url = request.run_url or run_url_from_env(env)
    body = comment_body(markdown, mark, request.commit or None, run_url)
    return asyncio.run(_post(request, config, mark, body, has_changes))


async def _post(
    request: CommentRequest, config: GitHubConfig, mark: str, body: str, has_changes: bool
) -> CommentResult:
    retry = request.retry or DEFAULT_RETRY
    async with GitHubClient(config, request.transport, retry=retry) as client:
        author = login_once(client, request.author)

        async def listing() -> list[Comment]:
            return await client.list_comments(request.pr)

        existing = await find_marked(listing, mark, author)
        action = decide(existing, body, has_changes)
        if action == "created":
            # Right before the create: the first listing may have shifted under it.
            existing = await find_marked(listing, mark, author)
            action = decide(existing, body, has_changes)
        if action == "created":
            return CommentResult(action, await client.create_comment(request.pr, body))
        if action == "updated" and existing is not None:
            return CommentResult(action, await client.update_comment(existing.id, body))
        return CommentResult(action, existing)
