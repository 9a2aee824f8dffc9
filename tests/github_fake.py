"""A local fake of the GitHub REST endpoints `reconcile comment` and `reconcile issue` use: an
issue's comments (list, with Link pagination the way GitHub pages them, and create), one
comment (edit), the repository's issues (list open ones with pull requests among them, paged
the same way; create), one issue (edit, close) and the token's user (`GET /user`). A real HTTP
server on 127.0.0.1 that records every request it gets.

It misbehaves on request, as GitHub and the networks before it do: `faults` answer matching
requests with an error status (and headers such as Retry-After), drip the answer a byte at a
time, or send a body of any size; `on_page` runs before each page of a listing is answered,
so a test can change the listing between pages (delete a comment, close an issue).

For `reconcile approvals` and apply's check (docs/approvals.md) it serves pull requests (head
commit, author), their reviews (paged like comments; `review`, `push` and `dismiss` make the
histories a test needs: an approval of an older commit, a dismissed one), team memberships
(`teams`; `team_status` answers every membership read with that status instead, e.g. the 403
the Actions token gets) and the pull requests of a merge commit."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reconciler.httpcall import RetryPolicy

TOKEN = "ghs_s3cretTokenValue0123456789"
REPO = "octo/states"
MARK = "<!-- spike-reconcile:plan:default -->"
DRIFT_MARK = "<!-- spike-reconcile:drift:default -->"
#: Bounds small enough for tests: three attempts, waits of milliseconds, seconds in all.
FAST = RetryPolicy(attempts=3, base=0.001, cap=0.01, total=5.0, deadline=2.0, timeout=1.0)


@dataclass
class Fault:
    """A misbehaviour for the requests it matches (`method`, and `path` without the query, a
    regular expression): answer `status` with `headers` instead of handling the request; or,
    with `drip`, a 200 whose body comes one byte every `drip` seconds; or, with `huge`, a 200
    whose body is that many bytes. `times`: how many requests it answers (None: all)."""

    method: str
    path: str = ".*"
    status: int = 502
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1
    drip: float = 0.0
    huge: int = 0


@dataclass
class FakeGitHub:
    """Comments of issues in one repository; records every request it gets."""

    per_page_max: int = 100
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: Issues and pull requests by number, as GitHub lists them (a pull request has a
    #: `pull_request` key).
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    next_id: int = 1000
    url: str = ""
    #: The token's account, or None for the Actions token, which `GET /user` answers with 403.
    login: str | None = None
    #: When set, every request is answered with this (status, JSON body).
    failure: tuple[int, Any] | None = None
    #: Misbehaviours, the first matching one answers (see Fault).
    faults: list[Fault] = field(default_factory=list)
    #: Called with the page number before each page of a listing is answered.
    on_page: Callable[[int], None] | None = None
    #: Bytes of bodies sent by drips and huge answers (a client that stops reading stops it).
    sent: int = 0
    #: Set when the server stops: drips end.
    closing: threading.Event = field(default_factory=threading.Event)
    #: Pull requests by number, as `GET /repos/{o}/{r}/pulls/{n}` answers them.
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Reviews of each pull request, oldest first.
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: (org, team slug) -> the logins of its active members.
    teams: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    #: When set, every team membership read is answered with this status.
    team_status: int | None = None

    def add_pull(self, number: int, author: str, head: str = "a" * 40) -> None:
        self.pulls[number] = {
            "number": number,
            "state": "open",
            "user": {"login": author},
            "head": {"sha": head},
            "merged_at": None,
            "merge_commit_sha": None,
            "html_url": f"https://github.example/{REPO}/pull/{number}",
        }

    def push(self, number: int, head: str) -> None:
        """A new commit on the pull request's branch."""
        self.pulls[number]["head"]["sha"] = head

    def review(self, number: int, login: str, state: str, commit: str | None = None) -> int:
        """A review of the pull request (by default of its current head commit)."""
        self.next_id += 1
        second = len(self.reviews.get(number, []))
        self.reviews.setdefault(number, []).append(
            {
                "id": self.next_id,
                "user": {"login": login},
                "state": state,
                "commit_id": commit or self.pulls[number]["head"]["sha"],
                "submitted_at": f"2030-01-01T10:{second // 60:02}:{second % 60:02}Z",
            }
        )
        return self.next_id

    def dismiss(self, number: int, review_id: int) -> None:
        """GitHub shows a dismissed review with the state DISMISSED."""
        for item in self.reviews[number]:
            if item["id"] == review_id:
                item["state"] = "DISMISSED"

    def merge(self, number: int, sha: str) -> None:
        pull = self.pulls[number]
        pull.update(state="closed", merged_at="2030-01-02T00:00:00Z", merge_commit_sha=sha)

    @property
    def author(self) -> str:
        """The login of the comments the token writes."""
        return self.login or "github-actions[bot]"

    def add(self, pr: int, body: str, login: str = "someone") -> int:
        self.next_id += 1
        self.comments.setdefault(pr, []).append(
            {
                "id": self.next_id,
                "body": body,
                "user": {"login": login},
                "html_url": f"https://github.example/{REPO}/pull/{pr}#issuecomment-{self.next_id}",
            }
        )
        return self.next_id

    def add_issue(
        self,
        body: str,
        login: str = "someone",
        title: str = "an issue",
        state: str = "open",
        pull_request: bool = False,
    ) -> int:
        number = len(self.issues) + 1
        self.issues[number] = {
            "number": number,
            "title": title,
            "body": body,
            "state": state,
            "user": {"login": login},
            "html_url": f"https://github.example/{REPO}/issues/{number}",
            "created_at": f"2026-11-{number % 28 + 1:02}T08:00:00Z",
        }
        if pull_request:
            self.issues[number]["pull_request"] = {"url": f"{self.url}/repos/{REPO}/pulls/1"}
        return number

    def writes(self) -> list[tuple[str, str, Any]]:
        """Every request but a read."""
        return [r for r in self.requests if r[0] != "GET"]

    def ours(self, pr: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.get(pr, []) if c["body"].startswith(MARK)]

    def calls(self, method: str) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] == method]

    def fault_for(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and re.fullmatch(fault.path, path) and fault.times != 0:
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body: Any = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append((method, self.path, body))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._answer(401, {"message": "Bad credentials"})
                return
            if fake.failure is not None:
                self._answer(*fake.failure)
                return
            parts = urlsplit(self.path)
            fault = fake.fault_for(method, parts.path)
            if fault is not None:
                self._misbehave(fault)
                return
            # GitHub's next links use /repositories/{id}/...; both forms name the same repo.
            listed = re.fullmatch(
                r"/(?:repos/octo/states|repositories/42)/issues/(\d+)/comments", parts.path
            )
            edited = re.fullmatch(r"/repos/octo/states/issues/comments/(\d+)", parts.path)
            issues = re.fullmatch(r"/(?:repos/octo/states|repositories/42)/issues", parts.path)
            issue = re.fullmatch(r"/repos/octo/states/issues/(\d+)", parts.path)
            pull = re.fullmatch(r"/repos/octo/states/pulls/(\d+)", parts.path)
            reviews = re.fullmatch(
                r"/(?:repos/octo/states|repositories/42)/pulls/(\d+)/reviews", parts.path
            )
            member = re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", parts.path)
            commit = re.fullmatch(r"/repos/octo/states/commits/([0-9a-f]+)/pulls", parts.path)
            if parts.path == "/user" and method == "GET":
                if fake.login is None:
                    self._answer(403, {"message": "Resource not accessible by integration"})
                else:
                    self._answer(200, {"login": fake.login, "id": 1})
            elif listed and method == "GET":
                self._list(int(listed[1]), parse_qs(parts.query))
            elif pull and method == "GET" and int(pull[1]) in fake.pulls:
                self._answer(200, fake.pulls[int(pull[1])])
            elif reviews and method == "GET" and int(reviews[1]) in fake.pulls:
                self._list(int(reviews[1]), parse_qs(parts.query), fake.reviews, "pulls", "reviews")
            elif member and method == "GET":
                self._membership(member[1], member[2], member[3])
            elif commit and method == "GET":
                found = [
                    p for _, p in sorted(fake.pulls.items()) if p["merge_commit_sha"] == commit[1]
                ]
                self._answer(200, found)
            elif listed and method == "POST":
                new_id = fake.add(int(listed[1]), body["body"], login=fake.author)
                self._answer(201, fake.comments[int(listed[1])][-1] | {"id": new_id})
            elif issues and method == "GET":
                self._list_issues(parse_qs(parts.query))
            elif issues and method == "POST":
                number = fake.add_issue(body["body"], login=fake.author, title=body["title"])
                self._answer(201, fake.issues[number])
            elif issue and method == "PATCH" and int(issue[1]) in fake.issues:
                item = fake.issues[int(issue[1])]
                item.update(body)
                self._answer(200, item)
            elif edited and method == "PATCH":
                for comments in fake.comments.values():
                    for item in comments:
                        if item["id"] == int(edited[1]):
                            item["body"] = body["body"]
                            self._answer(200, item)
                            return
                self._answer(404, {"message": "Not Found"})
            else:
                self._answer(404, {"message": "Not Found"})

        def _misbehave(self, fault: Fault) -> None:
            if not (fault.drip or fault.huge):
                self._answer(fault.status, {"message": "misbehaving"}, fault.headers)
                return
            size = fault.huge or 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            step = 1 if fault.drip else 1 << 16
            try:
                while fake.sent < size and not fake.closing.is_set():
                    self.wfile.write(b" " * step)
                    self.wfile.flush()
                    fake.sent += step
                    if fault.drip:
                        time.sleep(fault.drip)
            except OSError:  # the client stopped reading and closed the connection
                pass

        def _membership(self, org: str, slug: str, login: str) -> None:
            if fake.team_status is not None:
                message = "Resource not accessible by integration"
                self._answer(fake.team_status, {"message": message})
            elif login.lower() in {m.lower() for m in fake.teams.get((org, slug), set())}:
                self._answer(200, {"state": "active", "role": "member"})
            else:
                self._answer(404, {"message": "Not Found"})

        def _list(
            self,
            pr: int,
            query: dict[str, list[str]],
            source: dict[int, list[dict[str, Any]]] | None = None,
            kind: str = "issues",
            what: str = "comments",
        ) -> None:
            per_page = min(int(query.get("per_page", ["30"])[0]), fake.per_page_max)
            page = int(query.get("page", ["1"])[0])
            if fake.on_page is not None:
                fake.on_page(page)
            items = (fake.comments if source is None else source).get(pr, [])
            chunk = items[(page - 1) * per_page : page * per_page]
            headers = {}
            if page * per_page < len(items):
                nxt = f"{fake.url}/repositories/42/{kind}/{pr}/{what}?per_page={per_page}"
                headers["Link"] = f'<{nxt}&page={page + 1}>; rel="next"'
            self._answer(200, chunk, headers)

        def _list_issues(self, query: dict[str, list[str]]) -> None:
            assert query["state"] == ["open"], query
            per_page = min(int(query.get("per_page", ["30"])[0]), fake.per_page_max)
            page = int(query.get("page", ["1"])[0])
            if fake.on_page is not None:
                fake.on_page(page)
            items = [i for _, i in sorted(fake.issues.items()) if i["state"] == "open"]
            if query.get("direction") != ["asc"]:
                items.reverse()
            chunk = items[(page - 1) * per_page : page * per_page]
            headers = {}
            if page * per_page < len(items):
                rest = "&".join(f"{k}={v[0]}" for k, v in query.items() if k != "page")
                nxt = f"{fake.url}/repositories/42/issues?{rest}&page={page + 1}"
                headers["Link"] = f'<{nxt}>; rel="next"'
            self._answer(200, chunk, headers)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

    return Handler


@contextlib.contextmanager
def serve_fake_github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll: shutdown() waits for it, once per test.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.closing.set()
        server.shutdown()
        server.server_close()
        thread.join()
