"""Keep one GitHub issue for a drift report: opened when drift appears, edited while it lasts,
closed with a comment when it is gone (docs/drift.md, "Scheduled drift and the drift issue").

A scheduled `reconcile drift` that opened an issue per run would bury a team in duplicates, and
one that only failed a job would be noticed by nobody. Like the plan comment (comment.py), the
issue carries a hidden marker on its first line, and only an open issue that the token's own
account opened counts as ours: anyone can paste the marker into an issue of their own. A second
hidden line keeps the time the drift was first seen, so the body can say "drifting since" across
edits. A clean report with no open issue sends nothing at all.

`plan_issue` is the whole policy, pure; `run_issue` reads the report, asks GitHub and does
what it says.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from .. import jsontext
from ..config import POLICIES, TEAM_NAME_MAX, TEAM_NAME_PATTERN
from ..errors import ReconcileError, printable
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
from ..model import FIELDS, is_counter_id, is_field_value
from ..wording import counted
from .comment import GitHubOptions, find_marked, login_once, marker
from .drift import DriftEntry, DriftReport, LastApply

if TYPE_CHECKING:
    pass

IssueAction = Literal["created", "updated", "unchanged", "closed", "nothing"]

#: A drift report larger than this is refused unread (one entry is about 200 bytes).
MAX_REPORT_BYTES = 64 * 1024 * 1024
#: GitHub refuses longer issue titles.
TITLE_LIMIT = 256
#: Teams named in a title; more are counted.
TITLE_TEAMS = 3
_KINDS = ("outside", "pending", "missing")
_TEAM_NAME = re.compile(TEAM_NAME_PATTERN)
_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)"
_SINCE_PREFIX = "<!-- spike-reconcile:drift-since:"
#: The body GitHub keeps after an edit in the browser has CRLF line ends.
_SINCE = re.compile(rf"^{re.escape(_SINCE_PREFIX)}({_TIME}) -->\r?$", re.MULTILINE)


# ---------------------------------------------------------------------------------------------
# The report, read back from its JSON (docs/drift.md, "JSON")


def read_drift_report(path: str, limit: int = MAX_REPORT_BYTES) -> DriftReport:
    """The drift report a `reconcile drift --out` wrote; anything else is refused with one
    line naming the file and what is wrong (ReconcileError), before any call.

    Every value is checked against what the report may hold (counter ids, field values, team
    names, policies, kinds, an ISO-8601 time), because the issue shows them: a forged file
    must not put markdown or HTML of its choosing into an issue.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise ReconcileError(
            f"{printable(path)}: cannot read the drift report: {exc.strerror}"
        ) from None
    name = printable(path)
    if len(data) > limit:
        raise ReconcileError(f"{name}: not a drift report (larger than {limit} bytes)")
    try:
        body = jsontext.loads(data)
    except ValueError as exc:
        raise ReconcileError(f"{name}: not a drift report (invalid JSON: {exc})") from None
    if not isinstance(body, dict) or body.get("format_version") != 1:
        raise ReconcileError(
            f"{name}: not a drift report of format_version 1 "
            "(make it with `reconcile drift --format json --out FILE`)"
        )
    checked_at = body.get("checked_at")
    if not is_time(checked_at):
        raise ReconcileError(f"{name}: checked_at must be an ISO-8601 time")
    summary = body.get("summary")
    if not isinstance(summary, dict) or not all(
        _is_count(summary.get(key)) for key in ("incidents", "drifted_incidents", "fields")
    ):
        raise ReconcileError(
            f"{name}: summary must hold incidents, drifted_incidents and fields as counts"
        )
    raw = body.get("drift")
    if not isinstance(raw, list):
        raise ReconcileError(f"{name}: drift must be a list")
    entries = [_entry(item, f"{name}: drift[{n}]") for n, item in enumerate(raw)]
    applies = body.get("last_apply", [])  # reports written before it have none
    if not isinstance(applies, list):
        raise ReconcileError(f"{name}: last_apply must be a list")
    last = [_last_apply(item, f"{name}: last_apply[{n}]") for n, item in enumerate(applies)]
    return DriftReport(str(checked_at), entries, summary["incidents"], last)


#: What a last apply's audit may say, as the issue shows it (docs/approvals.md).
_COMMIT = re.compile(r"[0-9a-f]{7,64}")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
_RUN_URL = re.compile(r"https?://[!-~]{1,2000}")  # printable ASCII, no space


def _last_apply(item: Any, where: str) -> LastApply:
    if not isinstance(item, dict):
        raise ReconcileError(f"{where} must be an object")
    for key in ("team", "at", "commit", "repository", "pull_request", "run_url"):
        if key not in item:
            raise ReconcileError(f"{where}: {key} is missing")
    if item["team"] is not None and not _is_team_name(item["team"]):
        raise ReconcileError(f"{where}: team must be null or a team name")
    if not is_time(item["at"]):
        raise ReconcileError(f"{where}: at must be an ISO-8601 time")
    for key, pattern, what in (
        ("commit", _COMMIT, "a commit's hex id"),
        ("repository", _REPOSITORY, "OWNER/NAME"),
        ("run_url", _RUN_URL, "an http(s) URL"),
    ):
        value = item[key]
        if value is not None and not (
            isinstance(value, str) and pattern.fullmatch(value) is not None
        ):
            raise ReconcileError(f"{where}: {key} must be null or {what}")
    number = item["pull_request"]
    if number is not None and not (_is_count(number) and number > 0):
        raise ReconcileError(f"{where}: pull_request must be null or a pull request number")
    return LastApply(
        item["team"], item["at"], item["commit"], item["repository"], number, item["run_url"]
    )


def _entry(item: Any, where: str) -> DriftEntry:
    if not isinstance(item, dict):
        raise ReconcileError(f"{where} must be an object")
    for key in ("team", "incident", "field", "desired", "journaled", "live", "policy", "kind"):
        if key not in item:
            raise ReconcileError(f"{where}: {key} is missing")
    team, incident, name, kind = item["team"], item["incident"], item["field"], item["kind"]
    desired, journaled, live = item["desired"], item["journaled"], item["live"]
    if team is not None and not _is_team_name(team):
        raise ReconcileError(f"{where}: team must be null or a team name")
    if not is_counter_id(incident):
        raise ReconcileError(f"{where}: incident must be a counter id")
    if item["policy"] not in POLICIES:
        raise ReconcileError(f"{where}: policy must be one of {', '.join(POLICIES)}")
    if kind not in _KINDS:
        raise ReconcileError(f"{where}: kind must be one of {', '.join(_KINDS)}")
    if kind == "missing":
        if (name, desired, journaled, live) != (None, None, None, None):
            raise ReconcileError(
                f"{where}: a missing incident has null field, desired, journaled and live"
            )
        return DriftEntry(incident, None, None, None, None, "missing", False, item["policy"], team)
    if name not in FIELDS:
        raise ReconcileError(f"{where}: field must be one of {', '.join(FIELDS)}")
    for key, value in (("desired", desired), ("live", live)):
        if not is_field_value(name, value):
            raise ReconcileError(f"{where}: {key} is not a {name} value")
    if journaled is not None and not is_field_value(name, journaled):
        raise ReconcileError(f"{where}: journaled is not a {name} value")
    # The JSON writes "the journal has no value" as null, like "none": only an `outside`
    # entry (the journal equals the desired value) says which; a pending null is shown unknown.
    known = journaled is not None or kind == "outside"
    return DriftEntry(incident, name, desired, journaled, live, kind, known, item["policy"], team)


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def _is_team_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= TEAM_NAME_MAX
        and _TEAM_NAME.fullmatch(value) is not None
    )


def is_time(value: object) -> bool:
    """True for an ISO-8601 time with a UTC offset, as the journal and reports write them."""
    if not isinstance(value, str) or not re.fullmatch(_TIME, value, re.ASCII):
        return False
    try:
        # Python 3.10's fromisoformat knows no "Z".
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # 2026-13-45T...
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The policy


@dataclass(frozen=True)
class IssueChange:
    """What to do with the drift issue: the action, and the texts it sends."""

    action: IssueAction
    title: str = ""
    body: str = ""
    #: The comment that closes the issue.
    comment: str = ""


def plan_issue(
    existing: Issue | None,
    report: DriftReport,
    marker_name: str,
    table: Callable[[DriftReport, int], str],
    run_url: str | None = None,
) -> IssueChange:
    """What to do with the drift issue for this report. Pure: the whole policy of this module.

    Drift and no issue: open one. Drift and an issue: make it show this report (title and
    body), keeping the time the drift was first seen, unless it already does. No drift and an
    issue: say when the drift was found resolved, and close it. No drift and no issue: nothing.

    `table` renders the report in at most the given number of characters. A report checked
    before the drift the issue tracks began is older than the issue: refused (an old run's
    job run again), never applied over newer news.
    """
    if existing is not None:
        since = drifting_since(existing, report)
        if _instant(report.checked_at) < _instant(since):
            raise ReconcileError(
                f"the report was checked at {report.checked_at}, before the drift of issue "
                f"#{existing.number} was first seen ({since}): it is older than the issue; "
                "nothing done"
            )
    if not report.has_drift:
        if existing is None:
            return IssueChange("nothing")
        comment = (
            f"Drift resolved at {report.checked_at}: {counted(report.incidents, 'incident')} "
            "checked, all match the state files. Closing this issue; a new one opens if drift "
            "comes back."
        )
        return IssueChange("closed", comment=comment + _run_line(run_url))
    since = report.checked_at if existing is None else drifting_since(existing, report)
    title = issue_title(report, marker_name)
    body = issue_body(report, marker_name, since, table, run_url)
    if existing is None:
        return IssueChange("created", title, body)
    if existing.title == title and existing.body == body:
        return IssueChange("unchanged", title, body)
    return IssueChange("updated", title, body)


def _instant(moment: str) -> datetime:
    """A time of `is_time`'s form, its zone included: `Z` and fractions of other than 3 or 6
    digits made readable to Python 3.10 too."""
    text = re.sub(r"\.(\d{1,6})", lambda m: "." + m[1].ljust(6, "0"), moment)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def drifting_since(existing: Issue, report: DriftReport) -> str:
    """The time the drift was first seen, from the issue's hidden field; failing that (someone
    edited the body), when the issue was opened; failing that, this report's time."""
    found = _SINCE.search(existing.body)
    if found and is_time(found[1]):
        return found[1]
    return existing.created_at if is_time(existing.created_at) else report.checked_at


def issue_title(report: DriftReport, marker_name: str) -> str:
    """The counts, the teams (when the report has them) and a marker other than the default."""
    what = []
    if report.fields:
        what.append(counted(report.fields, "field"))
    if report.missing:
        what.append(f"{report.missing} missing")
    title = "Spike drift"
    if marker_name != "default":
        title += f" [{marker_name}]"
    teams = sorted({e.team for e in report.entries if e.team is not None})
    if teams:
        shown = ", ".join(teams[:TITLE_TEAMS])
        more = len(teams) - TITLE_TEAMS
        title += f" in {shown}" + (f" and {more} more" if more > 0 else "")
    title += f": {counted(report.drifted_incidents, 'incident')} ({', '.join(what)})"
    return title[:TITLE_LIMIT]


def issue_body(
    report: DriftReport,
    marker_name: str,
    since: str,
    table: Callable[[DriftReport, int], str],
    run_url: str | None,
) -> str:
    """The marker, the hidden "since" field, a callout, the report's table and a footer; the
    table gets what GitHub's limit leaves of the room."""
    head = (
        f"{marker(marker_name, kind='drift')}\n{_SINCE_PREFIX}{since} -->\n"
        f"> [!WARNING]\n> Drifting since {since}: live values in Spike differ from the state "
        "files.\n\n"
    )
    footer = (
        f"\n<sub>Kept by `reconcile issue` (marker `{marker_name}`): edited while the "
        "drift lasts, closed when a check finds none.</sub>\n" + _run_line(run_url)
    )
    # A few characters spare for the newline table() may end without.
    body = head + table(report, COMMENT_LIMIT - len(head) - len(footer) - 10) + footer
    if len(body) > COMMENT_LIMIT:  # the table keeps to its budget; a guard only
        raise ReconcileError(
            f"the drift issue would be {len(body)} characters; GitHub's limit is {COMMENT_LIMIT}"
        )
    return body


def _run_line(run_url: str | None) -> str:
    return f"\n[Workflow run]({run_url})\n" if run_url else ""


# ---------------------------------------------------------------------------------------------
# The use case


@dataclass(frozen=True)
class IssueRequest(GitHubOptions):
    drift_file: str
    repo: str
    marker_name: str = "default"
    #: Whose marked issue is ours when the token cannot read its own login (GitHubClient.login).
    author: str = ACTIONS_LOGIN
    run_url: str | None = None
    #: The report's table in at most N characters (render.drift_markdown: views live above).
    markdown: Callable[[DriftReport, int], str] = field(kw_only=True)


@dataclass(frozen=True)
class IssueOutcome:
    action: IssueAction
    #: The issue as GitHub answered after the change, or as found; None when there is none.
    issue: Issue | None
    report: DriftReport
    #: The comment that closed the issue.
    comment: Comment | None = None


def run_issue(request: IssueRequest) -> IssueOutcome:
    """Open, edit, close or leave alone the repository's one drift issue (see `plan_issue`).

    The report, the marker and the configuration are checked before any call. With no drift,
    the issues are still listed (an open one must be closed), but nothing is written unless
    one of ours is open.
    """
    mark = marker(request.marker_name, kind="drift")
    report = read_drift_report(request.drift_file)
    config = GitHubConfig.from_env(
        request.repo, request.env, purpose="to keep the drift issue (a token with issues: write)"
    )
    run_url = request.run_url or run_url_from_env(request.env)
    return asyncio.run(_keep_issue(request, config, mark, report, run_url))


async def _keep_issue(
    request: IssueRequest, config: GitHubConfig, mark: str, report: DriftReport, run_url: str | None
) -> IssueOutcome:
    retry = request.retry or DEFAULT_RETRY
    async with GitHubClient(config, request.transport, retry=retry) as client:
        author = login_once(client, request.author)
        existing = await find_marked(client.list_open_issues, mark, author)
        change = plan_issue(existing, report, request.marker_name, request.markdown, run_url)
        if change.action == "created":
            # Right before the create: the first listing may have shifted under it.
            existing = await find_marked(client.list_open_issues, mark, author)
            change = plan_issue(existing, report, request.marker_name, request.markdown, run_url)
        if change.action == "created":
            created = await client.create_issue(change.title, change.body)
            return IssueOutcome("created", created, report)
        if existing is None:
            return IssueOutcome(change.action, None, report)
        if change.action == "updated":
            updated = await client.update_issue(
                existing.number, title=change.title, body=change.body
            )
            return IssueOutcome("updated", updated, report)
        if change.action == "closed":
            # Closed first: a close that fails leaves the issue open and nothing said, so the
            # next run says it once; the comment is posted only on an issue this run closed,
            # which no later run finds open again.
            closed = await client.update_issue(
                existing.number, state="closed", state_reason="completed"
            )
            said = await client.comment_on_issue(existing.number, change.comment)
            return IssueOutcome("closed", closed, report, said)
        return IssueOutcome(change.action, existing, report)
