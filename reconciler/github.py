"""The GitHub REST client behind `reconcile comment`, `reconcile issue` and `reconcile
approvals` (their policies are in usecases/comment.py, usecases/issue.py and
usecases/approvals.py).

A small client for the GitHub REST API (list an issue's comments and a repository's open
issues, following the `Link` pagination; create and edit a comment; create, edit and close an
issue; read the token's login; read a pull request, its reviews, a team membership and the
pull requests of a commit), all async. It imports
httpx lazily, like the CLI does, so that importing it costs nothing. The rule "spike/client.py is
the only module that speaks to Spike" is about the Spike API: GitHub is another service with
another credential, and it stays out of the Spike client on purpose.

Bounds and retries are the Spike client's mechanism (httpcall.py) with GitHub's numbers
(DEFAULT_RETRY; docs/github.md, "GitHub's bounds and retries"): `RetryPolicy.total` bounds the
whole client, from `__aenter__`, not each call; one request lasts at most `deadline`; an answer
is read as a stream and refused past `max_body`. GET and PATCH are retried after 429, 5xx, a
rate-limited 403 (Retry-After, or `x-ratelimit-remaining: 0` until `x-ratelimit-reset`) and
network errors; a POST only when GitHub surely did not act (429, 503, a rate-limited 403, a
connection that never opened), else the error says the outcome is unknown.

The token goes only into the `Authorization` header: it is in no message, repr or output.
Pagination links are followed only to the origin of the configured API URL, so the token is
never sent anywhere else.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import jsontext, redact
from .approvals import Review
from .errors import GitHubError, ReconcileError, printable
from .httpcall import (
    NOT_ACTED_STATUS,
    RETRY_STATUS,
    Answer,
    Clock,
    Cut,
    Failed,
    NotRetried,
    RetryPolicy,
    Sleep,
    exchange,
    not_sent,
    retry_after,
    retrying,
)
from .limits import COMMENT_LIMIT as COMMENT_LIMIT

if TYPE_CHECKING:
    import httpx

    #: An httpx transport (tests pass a MockTransport or one bound to a fake server).
    Transport = httpx.AsyncBaseTransport

DEFAULT_API_URL = "https://api.github.com"
#: Comments are listed 100 at a time; a pull request with more pages than this is refused
#: rather than walked forever.
MAX_PAGES = 200
PER_PAGE = 100
USER_AGENT = "spike-reconcile"
#: The bounds of the whole client (one `reconcile comment` or `reconcile issue`): `total` is
#: every call, retry and wait of it together; a request lasts at most `deadline` (each network
#: step `timeout`); an answer over `max_body` is refused unread past it. A page of 100
#: comments of GitHub's longest (65,536 characters, up to 4 bytes each in UTF-8) is about
#: 26 MB. `outage` and `grace` are Spike's (its outage stop, its apply's stop signal).
DEFAULT_RETRY = RetryPolicy(total=120.0, deadline=30.0, timeout=10.0, max_body=32 << 20)
#: The login of the Actions token's comments; the token itself cannot read `GET /user`.
ACTIONS_LOGIN = "github-actions[bot]"
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class GitHubConfig:
    """Where the API is, which repository, and the token (kept out of repr)."""

    api_url: str
    repo: str
    token: str = field(repr=False)

    def __post_init__(self) -> None:
        from .model import check_header_secret

        check_header_secret("GITHUB_TOKEN", self.token)
        if not _REPO.fullmatch(self.repo) or ".." in self.repo:
            raise ReconcileError(f"--repo: {self.repo!r} is not OWNER/NAME")
        if not all("!" <= ch <= "~" for ch in self.api_url):
            raise ReconcileError(
                f"GITHUB_API_URL {self.api_url!r} holds whitespace or non-ASCII characters "
                "(a trailing newline?)"
            )
        try:
            parts = urlsplit(self.api_url)
            parts.port  # noqa: B018 - parsed lazily: a port over 65535 raises only here
        except ValueError:
            raise ReconcileError(
                f"GITHUB_API_URL {self.api_url!r} is not a valid URL "
                "(an https:// URL, a port from 0 to 65535)"
            ) from None
        if not parts.hostname or parts.scheme not in ("https", "http"):
            raise ReconcileError(f"GITHUB_API_URL {self.api_url!r} is not an https:// URL")
        if parts.scheme == "http":
            from .model import is_loopback

            if not is_loopback(parts.hostname):
                raise ReconcileError(
                    f"GITHUB_API_URL http://{parts.hostname}: only https:// is allowed "
                    "(plain http:// only to a loopback host such as 127.0.0.1)"
                )

    @classmethod
    def from_env(
        cls,
        repo: str,
        env: Mapping[str, str] | None = None,
        purpose: str = "to comment on a pull request (a token with pull-requests: write)",
    ) -> GitHubConfig:
        env = os.environ if env is None else env
        token = env.get("GITHUB_TOKEN", "")
        redact.register(token)
        if not token:
            raise ReconcileError(f"GITHUB_TOKEN must be set {purpose}")
        return cls(
            api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
            repo=repo,
            token=token,
        )


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    url: str = ""
    #: The login of the account that wrote it.
    author: str = ""


@dataclass(frozen=True)
class Issue:
    number: int
    title: str
    body: str
    url: str = ""
    #: The login of the account that opened it.
    author: str = ""
    state: str = "open"
    #: When it was opened (ISO-8601), as GitHub says.
    created_at: str = ""


#: Why GitHub refused a call, by what the call needed: (401/403 hint, 404 hint).
_PULL_REQUEST_HINTS = (
    " (the token needs pull-requests: write; a pull request from a fork gets a "
    "read-only token, so its plan is only in the job summary)",
    " (no such repository or pull request, or the token cannot see it)",
)
_ISSUE_HINTS = (
    " (the token needs issues: write)",
    " (no such repository or issue, or the token cannot see it)",
)
_READ_PULL_HINTS = (
    " (the token needs pull-requests: read)",
    " (no such repository or pull request, or the token cannot see it)",
)
#: What a 403 on a team membership means, and what to do (docs/approvals.md, The token).
TEAMS_TOKEN_HINT = (
    "the token cannot read the organisation's team membership. The Actions GITHUB_TOKEN "
    "never can: give this step a fine-grained token with the organisation permission "
    '"Members: read" (or a classic token with read:org) as GITHUB_TOKEN, or name users '
    "instead of teams in approvers"
)


@dataclass(frozen=True)
class PullRequest:
    """What the approvals check needs of a pull request."""

    number: int
    head_sha: str
    author: str
    url: str = ""


class GitHubClient:
    """The REST calls this tool needs, over one httpx.AsyncClient, within `retry`'s bounds.

    Use as `async with GitHubClient(config) as client:`. Every request goes through `_call`,
    which applies the bounds and the retry rule of the module's docstring; a new endpoint is a
    method that names its path, what it does (for messages) and its hints, and reads the JSON.
    """

    def __init__(
        self,
        config: GitHubConfig,
        transport: Transport | None = None,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._config = config
        self._origin = _origin(config.api_url)
        self._transport = transport
        self.retry = retry
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        #: When the budget of the whole client (RetryPolicy.total) ends, from __aenter__.
        self._end = 0.0

    def __repr__(self) -> str:
        return f"GitHubClient({self._config.api_url!r}, {self._config.repo!r})"

    async def __aenter__(self) -> GitHubClient:
        import httpx

        self._http = httpx.AsyncClient(
            base_url=self._config.api_url,
            transport=self._transport,
            timeout=self.retry.timeout,
            follow_redirects=False,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self._config.token}",
                "User-Agent": USER_AGENT,
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )
        self._end = self._clock() + self.retry.total
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- the calls ----------------------------------------------------------------------------

    async def list_comments(self, pr: int) -> list[Comment]:
        """Every comment of the pull request, oldest first, following `Link: rel="next"`."""
        url = f"/repos/{self._config.repo}/issues/{pr}/comments?per_page={PER_PAGE}"
        items = await self._pages(
            url, f"the comments of #{pr}", f"#{pr} has more than {{n}} comments"
        )
        return [_comment(item) for item in items]

    async def list_open_issues(self) -> list[Issue]:
        """The repository's open issues, oldest first, following `Link: rel="next"`.

        GitHub lists pull requests among issues (an item with a `pull_request` key); they are
        left out.
        """
        url = (
            f"/repos/{self._config.repo}/issues?state=open&sort=created&direction=asc"
            f"&per_page={PER_PAGE}"
        )
        what = f"the open issues of {self._config.repo}"
        too_many = f"{self._config.repo} has more than {{n}} open issues and pull requests"
        items = await self._pages(url, what, too_many, _ISSUE_HINTS)
        return [_issue(item) for item in items if not _is_pull_request(item)]

    async def login(self, fallback: str) -> str:
        """The login of the token's account (`GET /user`), or `fallback` when GitHub answers
        403, as it does for the Actions token (an installation, not a user)."""
        answer = await self._call("GET", "/user", None, "read the token's login", allow=(403,))
        if answer.status == 403:
            return fallback
        data = _json(answer, "GET /user", self.retry.max_body)
        if not isinstance(data, dict) or not isinstance(data.get("login"), str):
            raise GitHubError("GET /user: GitHub answered without a login")
        return str(data["login"])

    async def pull_request(self, number: int) -> PullRequest:
        """`GET /repos/{o}/{r}/pulls/{n}`: its head commit and its author."""
        path = f"/repos/{self._config.repo}/pulls/{number}"
        what = f"read pull request #{number}"
        answer = await self._call("GET", path, None, what, hints=_READ_PULL_HINTS)
        return _pull(_json(answer, what, self.retry.max_body))

    async def list_reviews(self, number: int) -> list[Review]:
        """Every review of the pull request, oldest first, following `Link: rel="next"`."""
        url = f"/repos/{self._config.repo}/pulls/{number}/reviews?per_page={PER_PAGE}"
        items = await self._pages(
            url,
            f"the reviews of #{number}",
            f"#{number} has more than {{n}} reviews",
            _READ_PULL_HINTS,
        )
        return [_review(item) for item in items]

    async def team_member(self, org: str, slug: str, login: str) -> bool | None:
        """`GET /orgs/{org}/teams/{slug}/memberships/{login}`: True for an active member,
        False for a pending one, None for 404 (not a member, or a team the token cannot
        see); a 403 is a GitHubError saying which token can read teams."""
        path = f"/orgs/{org}/teams/{slug}/memberships/{login}"
        what = f"read whether {login} is a member of @{org}/{slug}"
        answer = await self._call("GET", path, None, what, allow=(403, 404))
        if answer.status == 403:
            raise GitHubError(f"cannot {what}: GitHub answered 403: {TEAMS_TOKEN_HINT}")
        if answer.status == 404:
            return None
        data = _json(answer, what, self.retry.max_body)
        return isinstance(data, dict) and data.get("state") == "active"

    async def pulls_of_commit(self, sha: str) -> list[PullRequest]:
        """`GET /repos/{o}/{r}/commits/{sha}/pulls`: the pull requests merged as (or holding)
        the commit; the one whose merge commit it is comes first."""
        path = f"/repos/{self._config.repo}/commits/{sha}/pulls"
        what = f"find the pull request of commit {sha}"
        answer = await self._call("GET", path, None, what, hints=_READ_PULL_HINTS)
        items = _json(answer, what, self.retry.max_body)
        if not isinstance(items, list):
            raise GitHubError(f"{what}: expected a JSON list")
        merged = [i for i in items if isinstance(i, dict) and i.get("merge_commit_sha") == sha]
        return [_pull(item) for item in merged + [i for i in items if i not in merged]]

    async def create_comment(self, pr: int, body: str) -> Comment:
        return await self._add_comment(pr, body, f"comment on #{pr}", _PULL_REQUEST_HINTS)

    async def update_comment(self, comment_id: int, body: str) -> Comment:
        path = f"/repos/{self._config.repo}/issues/comments/{comment_id}"
        what = f"edit comment {comment_id}"
        answer = await self._call("PATCH", path, {"body": body}, what)
        return _comment(_json(answer, f"editing comment {comment_id}", self.retry.max_body))

    async def create_issue(self, title: str, body: str) -> Issue:
        path = f"/repos/{self._config.repo}/issues"
        answer = await self._call(
            "POST", path, {"title": title, "body": body}, "open an issue", hints=_ISSUE_HINTS
        )
        return _issue(_json(answer, "opening an issue", self.retry.max_body))

    async def update_issue(self, number: int, **fields: str) -> Issue:
        """Edit the issue's `title`, `body`, `state` or `state_reason`."""
        path = f"/repos/{self._config.repo}/issues/{number}"
        what = f"edit issue #{number}"
        answer = await self._call("PATCH", path, fields, what, hints=_ISSUE_HINTS)
        return _issue(_json(answer, f"editing issue #{number}", self.retry.max_body))

    async def comment_on_issue(self, number: int, body: str) -> Comment:
        return await self._add_comment(number, body, f"comment on issue #{number}", _ISSUE_HINTS)

    async def _add_comment(
        self, number: int, body: str, what: str, hints: tuple[str, str]
    ) -> Comment:
        path = f"/repos/{self._config.repo}/issues/{number}/comments"
        answer = await self._call("POST", path, {"body": body}, what, hints=hints)
        return _comment(_json(answer, what, self.retry.max_body))

    async def _pages(
        self, url: str, what: str, too_many: str, hints: tuple[str, str] = _PULL_REQUEST_HINTS
    ) -> list[Any]:
        """The items of every page of a listing, from `url` on, following `Link: rel="next"`
        only to the configured API's origin and at most MAX_PAGES times."""
        import httpx

        next_url: str | None = url
        items: list[Any] = []
        for _page in range(MAX_PAGES):
            if next_url is None:
                return items
            answer = await self._call("GET", next_url, None, f"list {what}", hints=hints)
            page = _json(answer, f"listing {what}", self.retry.max_body)
            if not isinstance(page, list):
                raise GitHubError(f"listing {what}: expected a JSON list")
            items.extend(page)
            links = httpx.Response(answer.status, headers=answer.headers).links
            next_url = links.get("next", {}).get("url")
            if next_url is not None and _origin(next_url) != self._origin:
                raise GitHubError(
                    f"listing {what}: the next page is on another host "
                    f"({_origin(next_url)}); not following it with the token"
                )
        if next_url is not None:
            raise GitHubError(too_many.format(n=MAX_PAGES * PER_PAGE))
        return items

    # -- one call: bounds and retries (httpcall.py) -------------------------------------------

    async def _call(
        self,
        method: str,
        url: str,
        body: Any,
        what: str,
        allow: tuple[int, ...] = (),
        hints: tuple[str, str] = _PULL_REQUEST_HINTS,
    ) -> Answer:
        """One call: a 2xx answer (or one of `allow`), retried by the module's rule; any other
        outcome is a GitHubError saying what it could not do, and whether GitHub may have."""
        # GET and PATCH (an edit sets the same values again) may be repeated; POST creates.
        idempotent = method != "POST"
        try:
            return await retrying(
                lambda: self._once(method, url, body, what, allow, hints),
                policy=self.retry,
                idempotent=idempotent,
                until=self._end,
                clock=self._clock,
                rng=self._rng,
                sleep=self._sleep,
                stop=None,
            )
        except NotRetried as ended:
            if ended.why == "acted":
                raise GitHubError(f"cannot {what}: {ended.last}{_UNKNOWN}") from None
            raise GitHubError(
                f"cannot {what}: gave up after {ended.tried} attempts; last: {ended.last}"
            ) from None

    async def _once(
        self,
        method: str,
        url: str,
        body: Any,
        what: str,
        allow: tuple[int, ...],
        hints: tuple[str, str],
    ) -> Answer | Failed:
        """One request: its answer, a Failed to retry or not, or a GitHubError."""
        import httpx

        assert self._http is not None, "use GitHubClient as an async context manager"
        left = self._end - self._clock()
        if left <= 0:
            raise GitHubError(
                f"cannot {what}: not sent, the {self.retry.total:g} s allowed for GitHub "
                "are used up"
            )
        try:
            answer = await exchange(
                self._http, method, url, body, self.retry, None, min(self.retry.deadline, left)
            )
        except Cut as cut:
            return Failed(str(cut), maybe_acted=True)
        except httpx.RequestError as exc:
            # The type only: some of httpx's messages quote request headers (the token).
            return Failed(type(exc).__name__, maybe_acted=not not_sent(exc))
        status = answer.status
        throttled, wait = _rate_limited(answer)  # a rate-limited 403 is no allowed 403
        if 200 <= status < 300 or (status in allow and not throttled):
            return answer
        message = _api_message(answer)
        if throttled or status in RETRY_STATUS:
            return Failed(
                f"GitHub answered {status}: {message}",
                maybe_acted=not throttled and status not in NOT_ACTED_STATUS,
                throttled=throttled,
                wait=wait,
            )
        hint = ""
        if status in (401, 403):
            hint = hints[0]
        elif status == 404:
            hint = hints[1]
        elif status == 410:
            hint = " (issues are turned off in this repository)"
        raise GitHubError(f"cannot {what}: GitHub answered {status}: {message}{hint}")


#: Said of a create whose request may have reached GitHub.
_UNKNOWN = (
    "; the request was sent, so whether GitHub did it is unknown: look at the repository "
    "before running again"
)
_RESET_SECONDS = re.compile(r"[0-9]{1,12}")


def _rate_limited(answer: Answer, now: float | None = None) -> tuple[bool, float | None]:
    """Whether GitHub said "slow down", and for how long it asked to wait (None: it did not
    say). A 429, or a 403 that carries `Retry-After` (the secondary rate limits) or
    `x-ratelimit-remaining: 0` (the primary one), whose `x-ratelimit-reset` is the epoch second
    the window opens again. GitHub acted on none of them."""
    headers = answer.headers
    exhausted = headers.get("x-ratelimit-remaining") == "0"
    wait = retry_after(headers.get("retry-after"))
    if wait is None and exhausted:
        reset = headers.get("x-ratelimit-reset", "").strip()
        if _RESET_SECONDS.fullmatch(reset):
            wait = max(0.0, float(reset) - (time.time() if now is None else now))
    throttled = answer.status == 429 or (
        answer.status == 403 and (exhausted or "retry-after" in headers)
    )
    return throttled, wait if throttled else None


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        return (parts.scheme, parts.hostname or "", parts.port)
    except ValueError:  # a link GitHub answered with a port over 65535, an unclosed [
        raise GitHubError(
            f"GitHub answered a link that is not a valid URL: {redact.clip(printable(url), 200)!r}"
        ) from None


def _comment(item: Any) -> Comment:
    if not isinstance(item, dict) or type(item.get("id")) is not int:
        raise GitHubError("GitHub answered a comment without an integer id")
    return Comment(
        id=item["id"],
        body=_text(item, "body"),
        url=_text(item, "html_url"),
        author=_author(item),
    )


def _text(item: dict[str, Any], key: str) -> str:
    """A string member of GitHub's answer; anything else (missing, null) as ""."""
    value = item.get(key)
    return value if isinstance(value, str) else ""


def _author(item: dict[str, Any]) -> str:
    """The login of the account that wrote a comment or opened an issue, or ""."""
    user = item.get("user")
    return _text(user, "login") if isinstance(user, dict) else ""


def _pull(item: Any) -> PullRequest:
    head = item.get("head") if isinstance(item, dict) else None
    user = item.get("user") if isinstance(item, dict) else None
    sha = head.get("sha") if isinstance(head, dict) else None
    login = user.get("login") if isinstance(user, dict) else None
    if (
        not isinstance(item, dict)
        or type(item.get("number")) is not int
        or not isinstance(sha, str)
        or not isinstance(login, str)
    ):
        raise GitHubError("GitHub answered a pull request without a number, head sha or author")
    url = item.get("html_url")
    return PullRequest(item["number"], sha, login, url if isinstance(url, str) else "")


def _review(item: Any) -> Review:
    if not isinstance(item, dict) or not isinstance(item.get("state"), str):
        raise GitHubError("GitHub answered a review without a state")
    return Review(
        # A deleted account's review has no user: it can approve nothing.
        _author(item),
        item["state"],
        _text(item, "commit_id"),
        _text(item, "submitted_at"),
    )


def _json(answer: Answer, what: str, limit: int) -> Any:
    """The answer's JSON; one that is cut or not JSON is a GitHubError, not a traceback."""
    if answer.too_large:
        raise GitHubError(f"{what}: GitHub's answer is larger than {limit} bytes; not read further")
    try:
        return jsontext.loads(answer.body)
    except ValueError:
        raise GitHubError(f"{what}: GitHub answered something that is not JSON") from None


def _is_pull_request(item: Any) -> bool:
    return isinstance(item, dict) and "pull_request" in item


def _issue(item: Any) -> Issue:
    if not isinstance(item, dict) or type(item.get("number")) is not int:
        raise GitHubError("GitHub answered an issue without an integer number")
    return Issue(
        number=item["number"],
        title=_text(item, "title"),
        body=_text(item, "body"),
        url=_text(item, "html_url"),
        author=_author(item),
        state=_text(item, "state"),
        created_at=_text(item, "created_at"),
    )


def _api_message(answer: Answer) -> str:
    import httpx

    reason = httpx.codes.get_reason_phrase(answer.status) or "no message"
    try:
        data = jsontext.loads(answer.body)
    except ValueError:
        return reason
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return redact.clip(printable(data["message"]), 300)
    return reason


# ---------------------------------------------------------------------------------------------


def run_url_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The Actions run's page, from the variables every workflow step has."""
    env = os.environ if env is None else env
    server, repo, run = (
        env.get(n) for n in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    if server and repo and run and run.isdigit() and _REPO.fullmatch(repo):
        return f"{server.rstrip('/')}/{repo}/actions/runs/{run}"
    return None
