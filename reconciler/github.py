"""The GitHub REST client behind `reconcile comment` (the comment policy is in
usecases/comment.py).

A small client for the GitHub REST API (list an issue's comments, following the `Link`
pagination, create a comment, edit a comment, read the token's login). It imports httpx
lazily, like the CLI does, so that importing it costs nothing. The rule "spike/client.py is
the only module that speaks to Spike" is about the Spike API: GitHub is another service with
another credential, and it stays out of the Spike client on purpose.

The token goes only into the `Authorization` header: it is in no message, repr or output.
Pagination links are followed only to the origin of the configured API URL, so the token is
never sent anywhere else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import redact
from .errors import GitHubError, ReconcileError, printable

if TYPE_CHECKING:
    import httpx

    #: An httpx transport (tests pass a MockTransport or one bound to a fake server).
    Transport = httpx.BaseTransport

DEFAULT_API_URL = "https://api.github.com"
#: GitHub refuses longer comment bodies.
COMMENT_LIMIT = 65_536
#: Comments are listed 100 at a time; a pull request with more pages than this is refused
#: rather than walked forever.
MAX_PAGES = 200
PER_PAGE = 100
USER_AGENT = "spike-reconcile"
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
    def from_env(cls, repo: str, env: Mapping[str, str] | None = None) -> GitHubConfig:
        env = os.environ if env is None else env
        token = env.get("GITHUB_TOKEN", "")
        redact.register(token)
        if not token:
            raise ReconcileError(
                "GITHUB_TOKEN must be set to comment on a pull request "
                "(a token with pull-requests: write)"
            )
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


class GitHubClient:
    """The three REST calls this tool needs, over one httpx.Client."""

    def __init__(self, config: GitHubConfig, transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        self._config = config
        self._origin = _origin(config.api_url)
        self._http = httpx.Client(
            base_url=config.api_url,
            transport=transport,
            timeout=30.0,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {config.token}",
                "User-Agent": USER_AGENT,
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )

    def __repr__(self) -> str:
        return f"GitHubClient({self._config.api_url!r}, {self._config.repo!r})"

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def list_comments(self, pr: int) -> list[Comment]:
        """Every comment of the pull request, oldest first, following `Link: rel="next"`."""
        url: str | None = f"/repos/{self._config.repo}/issues/{pr}/comments?per_page={PER_PAGE}"
        comments: list[Comment] = []
        for _page in range(MAX_PAGES):
            if url is None:
                return comments
            response = self._send("GET", url, None, f"list the comments of #{pr}")
            items = response.json()
            if not isinstance(items, list):
                raise GitHubError(f"listing the comments of #{pr}: expected a JSON list")
            comments.extend(_comment(item) for item in items)
            url = response.links.get("next", {}).get("url")
            if url is not None and _origin(url) != self._origin:
                raise GitHubError(
                    f"listing the comments of #{pr}: the next page is on another host "
                    f"({_origin(url)}); not following it with the token"
                )
        if url is not None:
            raise GitHubError(f"#{pr} has more than {MAX_PAGES * PER_PAGE} comments")
        return comments

    def login(self, fallback: str) -> str:
        """The login of the token's account (`GET /user`), or `fallback` when GitHub answers
        403, as it does for the Actions token (an installation, not a user)."""
        response = self._send("GET", "/user", None, "read the token's login", allow=(403,))
        if response.status_code == 403:
            return fallback
        data = response.json()
        if not isinstance(data, dict) or not isinstance(data.get("login"), str):
            raise GitHubError("GET /user: GitHub answered without a login")
        return str(data["login"])

    def create_comment(self, pr: int, body: str) -> Comment:
        path = f"/repos/{self._config.repo}/issues/{pr}/comments"
        return _comment(self._send("POST", path, {"body": body}, f"comment on #{pr}").json())

    def update_comment(self, comment_id: int, body: str) -> Comment:
        path = f"/repos/{self._config.repo}/issues/comments/{comment_id}"
        response = self._send("PATCH", path, {"body": body}, f"edit comment {comment_id}")
        return _comment(response.json())

    def _send(
        self, method: str, url: str, body: Any, what: str, allow: tuple[int, ...] = ()
    ) -> httpx.Response:
        import httpx

        try:
            response = self._http.request(method, url, json=body)
        except httpx.HTTPError as exc:
            # The type only: some of httpx's messages quote request headers (the token).
            raise GitHubError(f"cannot {what}: {type(exc).__name__}") from None
        if response.is_success or response.status_code in allow:
            return response
        message = _api_message(response)
        hint = ""
        if response.status_code in (401, 403):
            hint = (
                " (the token needs pull-requests: write; a pull request from a fork gets a "
                "read-only token, so its plan is only in the job summary)"
            )
        elif response.status_code == 404:
            hint = " (no such repository or pull request, or the token cannot see it)"
        raise GitHubError(f"cannot {what}: GitHub answered {response.status_code}: {message}{hint}")


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
    body = item.get("body")
    url = item.get("html_url")
    user = item.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    return Comment(
        id=item["id"],
        body=body if isinstance(body, str) else "",
        url=url if isinstance(url, str) else "",
        author=login if isinstance(login, str) else "",
    )


def _api_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase or "no message"
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return redact.clip(printable(data["message"]), 300)
    return response.reason_phrase or "no message"


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
