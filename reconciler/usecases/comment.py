"""Post a saved plan to its pull request: the one plan comment, created, edited or left alone."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ReconcileError

if TYPE_CHECKING:
    from ..github import Transport
    from ..planner import Plan

from ..github import (
    _SHA,
    ACTIONS_LOGIN,
    Action,
    Comment,
    GitHubClient,
    GitHubConfig,
    comment_body,
    decide,
    find_comment,
    marker,
    run_url_from_env,
)
from ..planfile import plan_from_saved, read_saved_plan


@dataclass(frozen=True)
class CommentRequest:
    plan_file: str
    repo: str
    pr: int
    marker_name: str = "default"
    commit: str | None = None
    run_url: str | None = None
    #: Whose comment to edit when the token cannot read its own login (see GitHubClient.login).
    author: str = ACTIONS_LOGIN
    #: The comment's view of the plan (render.plan_markdown: views live above the use cases).
    markdown: Callable[[Plan], str] = field(kw_only=True)
    #: Where GITHUB_TOKEN and GITHUB_API_URL are read (None: os.environ).
    env: Mapping[str, str] | None = field(default=None, kw_only=True)
    #: For tests: an httpx transport instead of the network.
    transport: Transport | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class CommentResult:
    action: Action
    comment: Comment | None


def post_plan_comment(request: CommentRequest) -> CommentResult:
    """Create, update or leave alone the pull request's one plan comment (see `decide`)."""
    env, transport = request.env, request.transport
    if request.commit and not _SHA.fullmatch(request.commit):
        raise ReconcileError(f"--commit: {request.commit!r} is not a commit SHA")
    plan = plan_from_saved(read_saved_plan(request.plan_file))
    config = GitHubConfig.from_env(request.repo, env)
    mark = marker(request.marker_name)
    run_url = request.run_url or run_url_from_env(env)
    body = comment_body(request.markdown(plan), mark, request.commit or None, run_url)
    with GitHubClient(config, transport) as client:
        existing = find_comment(
            client.list_comments(request.pr), mark, lambda: client.login(request.author)
        )
        action = decide(existing, body, plan.has_changes)
        if action == "created":
            return CommentResult(action, client.create_comment(request.pr, body))
        if action == "updated" and existing is not None:
            return CommentResult(action, client.update_comment(existing.id, body))
        return CommentResult(action, existing)
