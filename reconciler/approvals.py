"""Approval rules: which changes of a plan need whose approval, and whether a pull request's
reviews give it (docs/approvals.md). Pure: no I/O, no clock; team membership is asked of a
lookup the caller passes (the GitHub client, or a test's dictionary).

Two steps. `needed` (at plan time) lists, for each rule of reconcile.yaml's `approvals:`, the
plan's changes it covers (`covered`): the plan file carries that list, under its digest and
signature. `evaluate` (at review and at apply time) reads a pull request's reviews against
it, the way GitHub itself counts them: only reviews of the pull request's current head
commit, never its author's, and the latest decisive review of each reviewer
(APPROVED, CHANGES_REQUESTED or DISMISSED; a COMMENTED review changes nothing).

Where the plan cannot tell whether a change is covered (the incident's priority or severity
is not in its state file, the value before a first apply is unknown), the rule covers it:
an approval is asked for rather than skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Change, IncidentMap, Value

#: A GitHub login: letters, digits and single hyphens, not at either end, at most 39.
LOGIN_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"
#: A team's slug (GitHub makes it from the name: lowercase letters, digits, - and _).
SLUG_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}"
#: An entry of `approvers:`: `login`, `@login` or `@org/team-slug`.
APPROVER_PATTERN = rf"@?{LOGIN_PATTERN}|@{LOGIN_PATTERN}/{SLUG_PATTERN}"
_LOGIN = re.compile(LOGIN_PATTERN)
_TEAM = re.compile(rf"@({LOGIN_PATTERN})/({SLUG_PATTERN})")
#: The review states that decide a reviewer's standing; COMMENTED and PENDING do not.
DECISIVE = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})


@dataclass(frozen=True, order=True)
class Approver:
    """One entry of `approvers:`: a user (`org` empty) or a team `@org/slug`."""

    login_or_slug: str
    org: str = ""

    @property
    def is_team(self) -> bool:
        return bool(self.org)

    def __str__(self) -> str:
        return f"@{self.org}/{self.login_or_slug}" if self.org else self.login_or_slug

    @classmethod
    def parse(cls, text: str) -> Approver:
        """`dana`, `@dana` or `@acme/comms`; ValueError for anything else."""
        team = _TEAM.fullmatch(text)
        if team is not None:
            return cls(team.group(2), team.group(1))
        login = text.removeprefix("@")
        if _LOGIN.fullmatch(login) is None:
            raise ValueError(
                f"{text!r} is not a GitHub login (login or @login) or a team (@org/team)"
            )
        return cls(login)


@dataclass(frozen=True)
class When:
    """Which changes a rule covers. `before`/`after`: None means any value; otherwise a
    one-value tuple (so that a value of null, "ensure none", can be asked for)."""

    field: str
    before: tuple[Value] | None = None
    after: tuple[Value] | None = None
    #: The incident's desired priorities / severities; empty: any.
    priority: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    #: Teams of reconcile.yaml; empty: any.
    team: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalRule:
    """One rule of `approvals:` (validated by config/approval_rules.py)."""

    name: str
    when: When
    approvers: tuple[Approver, ...]
    count: int = 1


def _same(value: Value, wanted: tuple[Value] | None) -> bool:
    # By type too: True == 1 in Python, not in a plan.
    return wanted is None or (type(value) is type(wanted[0]) and value == wanted[0])


def _desired_among(desired: Mapping[str, Value], name: str, allowed: tuple[str, ...]) -> bool:
    if not allowed:
        return True
    if name not in desired:  # not in the state file: unknown, so covered
        return True
    return desired[name] in allowed


def covers(
    rule: ApprovalRule, change: Change, desired: Mapping[str, Value], team: str | None
) -> bool:
    """Whether `rule` covers `change`; `desired` is the incident's desired fields, `team`
    the reconcile.yaml team the plan is for (None: a project without teams)."""
    when = rule.when
    if change.field != when.field:
        return False
    if when.team and team not in when.team:
        return False
    if change.before_known and not _same(change.before, when.before):
        return False
    if not _same(change.after, when.after):
        return False
    return _desired_among(desired, "priority", when.priority) and _desired_among(
        desired, "severity", when.severity
    )


def covered(
    rule: ApprovalRule,
    changes: Iterable[Change],
    desired: IncidentMap,
    team: str | None = None,
) -> list[Change]:
    """The changes among `changes` that `rule` covers (rule-expanded ones too), in order."""
    empty: dict[str, Value] = {}
    return [c for c in changes if covers(rule, c, desired.get(c.incident, empty), team)]


@dataclass(frozen=True)
class Needed:
    """One rule's part of a plan: the approvals its changes need (the plan JSON's
    `approvals` items)."""

    rule: str
    approvers: tuple[Approver, ...]
    count: int
    changes: tuple[Change, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "approvers": [str(a) for a in self.approvers],
            "count": self.count,
            "changes": [c.to_json() for c in self.changes],
        }


def needed(
    rules: Sequence[ApprovalRule],
    changes: Sequence[Change],
    desired: IncidentMap,
    team: str | None = None,
) -> list[Needed]:
    """Every rule that covers at least one change, by name, with the changes it covers."""
    out = []
    for rule in sorted(rules, key=lambda r: r.name):
        mine = covered(rule, changes, desired, team)
        if mine:
            out.append(Needed(rule.name, rule.approvers, rule.count, tuple(mine)))
    return out


def merge_needed(parts: Iterable[Sequence[Needed]]) -> list[Needed]:
    """The needs of several teams' plans as one list: a rule's changes together (approvals
    are given once for the whole pull request)."""
    by_rule: dict[str, Needed] = {}
    for part in parts:
        for need in part:
            had = by_rule.get(need.rule)
            by_rule[need.rule] = (
                need
                if had is None
                else Needed(need.rule, need.approvers, need.count, had.changes + need.changes)
            )
    return [by_rule[name] for name in sorted(by_rule)]


# ---------------------------------------------------------------------------------------------
# Reviews


@dataclass(frozen=True)
class Review:
    """One review of a pull request, as GitHub lists them (oldest first)."""

    login: str
    state: str
    commit_id: str
    submitted_at: str = ""


@dataclass(frozen=True)
class Approval:
    """An approval that counts: who, and when they gave it."""

    login: str
    at: str

    def to_json(self) -> dict[str, str]:
        return {"login": self.login, "at": self.at}


@dataclass(frozen=True)
class RuleStatus:
    """One rule, evaluated against a pull request's reviews."""

    need: Needed
    #: The approvals that count for the rule (at most what it needs are named first).
    approved_by: tuple[Approval, ...]
    #: The approvers who could still approve (the author never can).
    could: tuple[str, ...] = field(default=())

    @property
    def met(self) -> bool:
        return len(self.approved_by) >= self.need.count

    @property
    def missing(self) -> int:
        return max(0, self.need.count - len(self.approved_by))

    def line(self, author: str) -> str:
        """`public-pages: met, approved by cy (2030-...)`, or what is missing and from whom."""
        need = self.need
        if self.met:
            by = ", ".join(f"{a.login} ({a.at})" for a in self.approved_by)
            return f"{need.rule}: met, approved by {by}"
        who = ", ".join(self.could) or "no one: every approver is the author"
        return (
            f"{need.rule}: not met: {len(self.approved_by)} of {need.count} "
            f"approval{'s' * (need.count != 1)} on the head commit; {self.missing} more "
            f"from: {who} (not {author}, the author)"
        )


#: (org, team slug, login) -> whether login is an active member of the team.
Members = Callable[[str, str, str], bool]


def approvals(reviews: Iterable[Review], head_sha: str, author: str) -> list[Approval]:
    """The standing approvals: the latest decisive review of each reviewer other than the
    author, when it is an APPROVED of `head_sha`; in the order they were given. Logins are
    compared without case, as GitHub does."""
    latest: dict[str, Review] = {}
    for review in reviews:
        if review.state in DECISIVE:
            latest[review.login.lower()] = review
    author_key = author.lower()
    standing = [
        r
        for key, r in latest.items()
        if key != author_key and r.state == "APPROVED" and r.commit_id == head_sha
    ]
    return [Approval(r.login, r.submitted_at) for r in sorted(standing, key=_given)]


def _given(review: Review) -> tuple[str, str]:
    return (review.submitted_at, review.login.lower())


def qualifies(login: str, approvers: Iterable[Approver], members: Members) -> bool:
    """Whether `login` is one of `approvers` or a member of one of its teams (users are
    checked first: a user approver needs no membership read)."""
    wanted = list(approvers)
    key = login.lower()
    if any(not a.is_team and a.login_or_slug.lower() == key for a in wanted):
        return True
    return any(members(a.org, a.login_or_slug, login) for a in wanted if a.is_team)


def evaluate(
    needs: Sequence[Needed],
    reviews: Sequence[Review],
    head_sha: str,
    author: str,
    members: Members,
) -> list[RuleStatus]:
    """Each rule of `needs`, met or not by the pull request's reviews (see `approvals`)."""
    standing = approvals(reviews, head_sha, author)
    out = []
    for need in needs:
        by = tuple(a for a in standing if qualifies(a.login, need.approvers, members))
        given = {a.login.lower() for a in by}
        could = tuple(
            str(a)
            for a in need.approvers
            if a.is_team or a.login_or_slug.lower() not in given | {author.lower()}
        )
        out.append(RuleStatus(need, by, could))
    return out
