"""`reconcile comment` and `reconcile issue`: the plan's pull-request comment and the drift
report's issue on GitHub."""

from __future__ import annotations

import os

import click

from . import core


@click.command()
@core.plan_on_pull_request_options
@click.option("--marker", default="default", show_default=True, help="One comment per marker.")
@click.option("--commit", metavar="SHA", help="The commit the plan is for (shown in the comment).")
@click.option("--run-url", metavar="URL", help="Link to the CI run [default: from GITHUB_* vars].")
@core.author_option("comment")
@core.common
def comment(
    plan_file: str,
    repo: str,
    pr: int,
    marker: str,
    commit: str | None,
    run_url: str | None,
    author: str,
    verbose: bool,
    no_color: bool,
) -> None:
    """Create or update the pull request's one plan comment (needs GITHUB_TOKEN).

    A plan with no changes posts nothing unless the comment exists, which then says so.
    Only a comment the token's account wrote is edited. GITHUB_API_URL points at GitHub
    Enterprise Server.
    """
    from .. import render
    from ..usecases.comment import CommentRequest, post_plan_comment

    request = CommentRequest(
        plan_file,
        repo,
        pr,
        marker,
        commit,
        run_url,
        author,
        markdown=render.plan_markdown,
    )
    click.echo(render.comment_text(post_plan_comment(request), pr))


@click.command()
@core.plan_on_pull_request_options
@core.common
def approvals(plan_file: str, repo: str, pr: int, verbose: bool, no_color: bool) -> None:
    """Check the plan's approvals against the pull request's reviews (needs GITHUB_TOKEN).

    Exit 0 when every approval rule the plan names is met by an approval of the pull
    request's head commit, 1 naming each unmet rule and who could meet it (docs/approvals.md).
    Writes a step summary when GITHUB_STEP_SUMMARY is set.
    """
    from .. import render
    from ..usecases.approvals import GitHubAccess, check_plan_file

    outcome = check_plan_file(plan_file, pr, GitHubAccess(repo))
    click.echo(render.approvals_text(outcome), nl=False)
    _step_summary(render.approvals_markdown_summary(outcome))
    if not outcome.met:
        raise click.exceptions.Exit(1)


def _step_summary(markdown: str) -> None:
    """Append to the job's summary page ($GITHUB_STEP_SUMMARY), when there is one."""
    from ..errors import ReconcileError

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(markdown + "\n")
    except OSError as exc:
        raise ReconcileError(f"GITHUB_STEP_SUMMARY: cannot write: {exc.strerror}") from None


@click.command()
@click.option(
    "--drift",
    "drift_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="A drift report from `reconcile drift --format json --out FILE`.",
)
@core.repo_option
@click.option("--marker", default="default", show_default=True, help="One open issue per marker.")
@core.author_option("issue")
@core.format_option("text", "json")
@core.common
def issue(
    drift_file: str,
    repo: str,
    marker: str,
    author: str,
    fmt: str,
    verbose: bool,
    no_color: bool,
) -> None:
    """Keep one GitHub issue for a drift report (needs GITHUB_TOKEN with issues: write).

    Opens it when there is drift, edits it while drift lasts, closes it with a comment when
    the report is clean; a clean report and no open issue sends nothing. Only an issue the
    token's account opened counts. Exit 0 whatever was done, 1 on errors.
    """
    from .. import render
    from ..usecases.issue import IssueRequest, run_issue

    outcome = run_issue(
        IssueRequest(drift_file, repo, marker, author, markdown=render.drift_issue_markdown)
    )
    show = render.issue_json if fmt == "json" else render.issue_text
    click.echo(show(outcome), nl=False)
