"""Drift as text, JSON and markdown: the report, what accept took, the GitHub issue kept
for it and the plan comment posted."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..errors import printable
from ..model import Value
from ..wording import counted

if TYPE_CHECKING:
    from ..usecases.accept import AcceptOutcome
    from ..usecases.comment import CommentResult
    from ..usecases.drift import DriftEntry, DriftReport
    from ..usecases.issue import IssueOutcome
from .text import (
    MARKDOWN_BUDGET,
    fill,
    markdown_text,
    show_value,
    styler,
)


def accept_text(outcome: AcceptOutcome) -> str:
    """What `reconcile accept` prints: each file rewritten with the fields accepted into it."""
    if not outcome.files:
        return "Nothing to accept: no drifted field was selected.\n"
    lines: list[str] = []
    for path, entries in outcome.files.items():
        lines.append(printable(path))
        lines.extend(
            f"  {e.incident} {e.field}: {show_value(e.desired)} -> {show_value(e.live)}"
            for e in entries
        )
    count = sum(len(entries) for entries in outcome.files.values())
    files = len(outcome.files)
    lines.append(
        f"Accepted {counted(count, 'live value')} into {counted(files, 'file')}"
        f"; recorded in the journal (serial {outcome.serial})."
    )
    return "\n".join(lines) + "\n"


def accept_json(outcome: AcceptOutcome) -> str:
    """`reconcile accept --format json` (docs/drift.md, Accepting live values)."""
    body = {
        "files": {
            path: [
                {"incident": e.incident, "field": e.field, "was": e.desired, "live": e.live}
                for e in entries
            ]
            for path, entries in outcome.files.items()
        },
        "journal": {"lineage": outcome.lineage, "serial": outcome.serial},
        "warnings": outcome.warnings,
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def drift_json(report: DriftReport) -> str:
    """The report's JSON (docs/drift.md): what `drift --format json` prints and --out saves."""
    body = {
        "format_version": 1,
        "checked_at": report.checked_at,
        "drift": [
            {
                "team": e.team,
                "incident": e.incident,
                "field": e.field,
                "desired": e.desired,
                "journaled": e.journaled,
                "live": e.live,
                "policy": e.policy,
                "kind": e.kind,
            }
            for e in report.entries
        ],
        "summary": {
            "incidents": report.incidents,
            "drifted_incidents": report.drifted_incidents,
            "fields": report.fields,
        },
        "last_apply": [
            {
                "team": last.team,
                "at": last.at,
                "commit": last.commit,
                "repository": last.repository,
                "pull_request": last.pull_request,
                "run_url": last.run_url,
            }
            for last in report.last_apply
        ],
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def drift_summary(report: DriftReport) -> str:
    checked = f"{counted(report.incidents, 'incident')} checked"
    if not report.has_drift:
        return f"No drift: {checked}, all match the state files."
    parts = []
    if report.fields:
        parts.append(f"{counted(report.fields, 'field')} drifted")
    if report.missing:
        parts.append(f"{counted(report.missing, 'incident')} missing")
    drifted = report.drifted_incidents
    return f"Drift: {' and '.join(parts)} in {counted(drifted, 'incident')} ({checked})."


def _drift_line(entry: DriftEntry) -> str:
    if entry.field is None:
        return "not found in Spike (deleted, or another team)"
    return (
        f"{entry.field}: desired {show_value(entry.desired)}, live {show_value(entry.live)} "
        f"(journaled {_journaled(entry)}; {entry.kind}, policy {entry.policy})"
    )


def drift_text(report: DriftReport, color: bool = False) -> str:
    """Terraform-like: each drifted incident with its fields, then a summary line."""
    paint = styler(color)
    lines: list[str] = []
    if report.has_drift:
        lines += [f"Live values that differ from the state files (checked {report.checked_at}):"]
        lines.append("")
    incident: tuple[str | None, str] | None = None
    for entry in report.entries:
        if (entry.team, entry.incident) != incident:
            incident = entry.team, entry.incident
            shown = (
                entry.incident if entry.team is None else f"{entry.incident} (team {entry.team})"
            )
            if entry.field is None:
                lines.append(paint(f"  - {shown}: {_drift_line(entry)}", "red"))
                continue
            lines.append(f"  ~ {shown}")
        lines.append(paint(f"      {_drift_line(entry)}", "yellow"))
    if report.has_drift:
        lines.append("")
    lines.append(paint(drift_summary(report), "cyan"))
    return "\n".join(lines) + "\n"


def drift_issue_markdown(report: DriftReport, budget: int = MARKDOWN_BUDGET) -> str:
    """The drift issue's body below its callout: the report's markdown, then the last apply
    of each team (when, commit, pull request, run), escaped: the report file says them."""
    lines = []
    for last in report.last_apply:
        parts = [f"at {last.at}"]
        if last.commit is not None:
            parts.append(f"commit {last.commit}")
        if last.repository is not None:
            parts.append(f"of {last.repository}")
        if last.pull_request is not None:
            parts.append(f"pull request #{last.pull_request}")
        if last.run_url is not None:
            parts.append(f"run {last.run_url}")
        whose = f" of team {last.team}" if last.team is not None else ""
        lines.append(f"- Last apply{whose}: " + markdown_text(", ".join(parts)))
    if not lines:
        return drift_markdown(report, budget)
    tail = "\n" + "\n".join(lines) + "\n"
    return drift_markdown(report, budget - len(tail)).rstrip("\n") + "\n" + tail


def drift_markdown(report: DriftReport, budget: int = MARKDOWN_BUDGET) -> str:
    """For an issue body: the summary and a table, cut with a note to stay below GitHub's
    limit (the JSON report, from --out, holds every entry)."""
    out = "\n".join(
        [
            "### spike-reconcile drift report",
            "",
            f"**{drift_summary(report)}**",
            "",
            f"Checked at {report.checked_at}.",
            "",
        ]
    )
    if not report.has_drift:
        return out
    note = (
        "\n_Truncated to fit a GitHub issue: {n} more rows not shown; the JSON report "
        "(`--out`) has them all._\n"
    )
    teams = any(e.team is not None for e in report.entries)
    rows = [
        (f"| {e.team} " if teams else "")
        + f"| `{e.incident}` | {e.field or '_missing_'} | {_cell(e, e.desired)} | "
        f"{_journaled(e) if e.field else ''} | {_cell(e, e.live)} | {e.kind} | {e.policy} |"
        for e in report.entries
    ]
    out += (
        "\n"
        + ("| team " if teams else "")
        + "| incident | field | desired | journaled | live | kind | policy |\n"
        + ("| --- " if teams else "")
        + "| --- | --- | --- | --- | --- | --- | --- |\n"
    )
    out, shown = fill(out, rows, budget - len(note) - 100)
    if shown < len(rows):
        out += note.format(n=len(rows) - shown)
    return out


def _cell(entry: DriftEntry, value: Value) -> str:
    return "" if entry.field is None else show_value(value)


def _journaled(entry: DriftEntry) -> str:
    return show_value(entry.journaled) if entry.journaled_known else "(unknown)"


def issue_text(outcome: IssueOutcome) -> str:
    """What `reconcile issue` prints: what happened to the drift issue, in one line."""
    if outcome.issue is None:
        return "No drift and no open drift issue: nothing to do.\n"
    number = f"#{outcome.issue.number}"
    said = {
        "created": f"Created drift issue {number}",
        "updated": f"Updated drift issue {number}",
        "unchanged": f"Drift issue {number} already shows this report",
        "closed": f"Closed drift issue {number}: the drift is resolved",
        "nothing": f"Left drift issue {number} alone",
    }[outcome.action]
    url = printable(outcome.issue.url)
    return f"{said}" + (f": {url}" if url else ".") + "\n"


def issue_json(outcome: IssueOutcome) -> str:
    """`reconcile issue --format json`: the action, the issue (or null), the report's counts."""
    issue = outcome.issue
    report = outcome.report
    body = {
        "action": outcome.action,
        "issue": None if issue is None else {"number": issue.number, "url": issue.url},
        "checked_at": report.checked_at,
        "summary": {
            "incidents": report.incidents,
            "drifted_incidents": report.drifted_incidents,
            "fields": report.fields,
        },
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def comment_text(result: CommentResult, pr: int) -> str:
    """What `reconcile comment` prints: what happened to the plan comment on #pr."""
    if result.action == "skipped":
        return f"No changes and no plan comment on #{pr} yet: nothing posted."
    url = result.comment.url if result.comment else ""
    said = {
        "created": "Created the plan comment",
        "updated": "Updated the plan comment",
        "unchanged": "The plan comment already shows this plan",
    }[result.action]
    return f"{said} on #{pr}" + (f": {url}" if url else ".")
