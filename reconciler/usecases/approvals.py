"""Check a plan's approvals against a pull request's reviews (`reconcile approvals`, and
apply's check before any call; docs/approvals.md).

The reading of reviews is approvals.py's (pure); this module makes the GitHub calls: the pull
request (its head commit and author), its reviews, and a team membership only for a
standing approval that no user approver already gives (a rule naming users alone needs no
membership read, so the Actions token is enough for it).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..approvals import Approval, Needed, RuleStatus, approvals, evaluate, merge_needed
from ..errors import ReconcileError, printable
from ..github import DEFAULT_RETRY, GitHubClient, GitHubConfig, PullRequest, run_url_from_env

if TYPE_CHECKING:
    from ..github import Transport
    from ..httpcall import RetryPolicy
    from ..planfile import SavedPlan, SavedTeamsPlan

_PURPOSE = "to read the pull request's reviews (a token with pull-requests: read)"
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass
class ApprovalsOutcome:
    """Each rule of the plan, met or not, on one pull request."""

    pull: PullRequest | None
    statuses: list[RuleStatus] = field(default_factory=list)
    #: Teams GitHub answered 404 for (not a member, or not visible to the token).
    unseen: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return all(status.met for status in self.statuses)

    @property
    def unmet(self) -> list[RuleStatus]:
        return [status for status in self.statuses if not status.met]

    def approvals_met(self) -> list[Approval]:
        """Every approval that counted for a rule, once each, in the order given."""
        seen: dict[str, Approval] = {}
        for status in self.statuses:
            for approval in status.approved_by:
                seen.setdefault(approval.login.lower(), approval)
        return sorted(seen.values(), key=lambda a: (a.at, a.login))


@dataclass(frozen=True)
class GitHubAccess:
    """Where GitHub is and which repository (GITHUB_TOKEN, GITHUB_API_URL from `env`)."""

    repo: str
    env: Mapping[str, str] | None = None
    transport: Transport | None = None
    retry: RetryPolicy | None = None

    def client(self) -> GitHubClient:
        config = GitHubConfig.from_env(self.repo, self.env, purpose=_PURPOSE)
        return GitHubClient(config, self.transport, retry=self.retry or DEFAULT_RETRY)


def needs_of(saved: SavedPlan | SavedTeamsPlan) -> list[Needed]:
    """The approvals a plan file says its changes need (every team's, by rule)."""
    from ..planfile import SavedTeamsPlan

    if not isinstance(saved, SavedTeamsPlan):
        return list(saved.approvals)
    return merge_needed(team.plan.approvals for team in saved.teams.values())


def check_plan_file(plan_file: str, pr: int, access: GitHubAccess) -> ApprovalsOutcome:
    """`reconcile approvals`: the plan file's approvals on pull request `pr`. A plan that
    needs none makes no GitHub call."""
    from ..planfile import read_plan_file

    needs = needs_of(read_plan_file(plan_file))
    if not needs:
        return ApprovalsOutcome(None)
    return asyncio.run(_check(access, needs, pr, None))


def check_needs(
    needs: Sequence[Needed], pr: int | None, sha: str | None, access: GitHubAccess
) -> ApprovalsOutcome:
    """Apply's check: `needs` on pull request `pr`, or on the pull request merged as commit
    `sha` (GITHUB_SHA)."""
    return asyncio.run(_check(access, needs, pr, sha))


async def _check(
    access: GitHubAccess, needs: Sequence[Needed], pr: int | None, sha: str | None
) -> ApprovalsOutcome:
    async with access.client() as client:
        if pr is None:
            assert sha is not None
            found = await client.pulls_of_commit(sha)
            if not found:
                raise ReconcileError(
                    f"no pull request of {access.repo} was merged as commit {sha}, so its "
                    "approvals cannot be checked: pass --pr N, or --force-approvals REASON"
                )
            pr = found[0].number
        pull = await client.pull_request(pr)
        reviews = await client.list_reviews(pr)
        standing = approvals(reviews, pull.head_sha, pull.author)
        answers: dict[tuple[str, str, str], bool | None] = {}
        for need in needs:
            users = {a.login_or_slug.lower() for a in need.approvers if not a.is_team}
            for approval in standing:
                if approval.login.lower() in users:
                    continue
                for team in (a for a in need.approvers if a.is_team):
                    key = (team.org, team.login_or_slug, approval.login.lower())
                    if key not in answers:
                        answers[key] = await client.team_member(*key[:2], approval.login)
    statuses = evaluate(
        needs,
        reviews,
        pull.head_sha,
        pull.author,
        lambda org, slug, login: bool(answers.get((org, slug, login.lower()))),
    )
    unseen = sorted({f"@{o}/{s}" for (o, s, _), v in answers.items() if v is None})
    return ApprovalsOutcome(pull, statuses, unseen)


@dataclass(frozen=True)
class ApprovalGate:
    """Apply's check (docs/approvals.md, Apply checks again): which pull request, where
    GitHub is, and --force-approvals."""

    #: None: the repository is not known (no --repo, no GITHUB_REPOSITORY).
    access: GitHubAccess | None
    #: --pr; None: the pull request merged as the commit applied (GITHUB_SHA).
    pr: int | None = None
    #: --force-approvals REASON: apply without checking, the reason journaled.
    force: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def check(self, needs: Sequence[Needed]) -> dict[str, Any]:
        """Refuse (ReconcileError) a plan whose approvals are unmet, before any call; the
        apply's audit record otherwise. No GitHub call when nothing needs an approval."""
        outcome = None
        if needs and self.force is None:
            if self.access is None:
                raise ReconcileError(
                    f"the plan needs approvals ({', '.join(n.rule for n in needs)}), but the "
                    "repository is not known: pass --repo OWNER/NAME (or set "
                    "GITHUB_REPOSITORY) and --pr N, or --force-approvals REASON"
                )
            sha = None if self.pr is not None else commit_of(self.env)
            if self.pr is None and sha is None:
                raise ReconcileError(
                    "the plan needs approvals, but neither --pr nor the commit applied "
                    "(GITHUB_SHA, git rev-parse HEAD) is known; pass --pr N"
                )
            outcome = check_needs(needs, self.pr, sha, self.access)
            if not outcome.met:
                assert outcome.pull is not None
                lines = "; ".join(s.line(outcome.pull.author) for s in outcome.unmet)
                raise ReconcileError(
                    f"the plan's approvals are not met on pull request #{outcome.pull.number}: "
                    f"{lines}. Nothing was applied; an operator who must apply anyway passes "
                    "--force-approvals REASON, which the journal records"
                )
        repo = self.access.repo if self.access is not None else None
        return audit(self.env, outcome, repo, self.force if needs else None)


# ---------------------------------------------------------------------------------------------
# The audit trail of an apply (docs/journal.md, apply-start)


def pr_from_env(env: Mapping[str, str]) -> int | None:
    """The pull request of a `pull_request` workflow's GITHUB_REF (refs/pull/N/merge)."""
    ref = env.get("GITHUB_REF", "")
    match = re.fullmatch(r"refs/pull/([0-9]{1,9})/(?:merge|head)", ref)
    return int(match.group(1)) if match else None


def commit_of(env: Mapping[str, str]) -> str | None:
    """The commit applied: GITHUB_SHA, else `git rev-parse HEAD` (None outside a git
    repository, or without git)."""
    sha = env.get("GITHUB_SHA", "")
    if _SHA.fullmatch(sha):
        return sha
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    head = done.stdout.strip()
    return head if done.returncode == 0 and _SHA.fullmatch(head) else None


def audit(
    env: Mapping[str, str],
    outcome: ApprovalsOutcome | None,
    repo: str | None,
    forced: str | None,
) -> dict[str, Any]:
    """Who and why, for the apply-start record: the commit, the repository, the pull
    request and its author, the approvals met, the CI run, the local user outside CI, the
    --force-approvals reason. Nothing secret: no token, no key."""
    record: dict[str, Any] = {}
    commit = commit_of(env)
    if commit:
        record["commit"] = commit
    repository = repo or env.get("GITHUB_REPOSITORY")
    if repository:
        record["repository"] = printable(repository)
    if outcome is not None and outcome.pull is not None:
        record["pull_request"] = outcome.pull.number
        record["author"] = outcome.pull.author
        record["approvals"] = [a.to_json() for a in outcome.approvals_met()]
    run_url = run_url_from_env(env)
    if run_url:
        record["run_url"] = run_url
    elif env.get("GITHUB_ACTIONS") != "true":
        user = _login_name()
        if user:
            record["user"] = printable(user)
    if forced is not None:
        record["force_approvals"] = printable(forced)
    return record


def _login_name() -> str | None:
    """The local account (LOGNAME, USER, ..., else the password database)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None
