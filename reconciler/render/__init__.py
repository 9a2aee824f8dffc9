"""Plans, journal views and apply results -> text, JSON and markdown. Formats; writes nothing.

Split by topic: text.py (what every view shares), plans.py, apply.py, journal.py,
drift.py and account.py; every view is imported from here.
"""

from __future__ import annotations

from .account import (
    approvals_markdown_summary,
    approvals_text,
    doctor_json,
    doctor_text,
    import_text,
    init_text,
    teams_json,
    teams_text,
)
from .apply import (
    apply_json,
    apply_refused_json,
    apply_stopped,
    apply_text,
    progress_line,
    result_text,
)
from .drift import (
    accept_json,
    accept_text,
    comment_text,
    drift_issue_markdown,
    drift_json,
    drift_markdown,
    drift_text,
    issue_json,
    issue_text,
)
from .journal import (
    history,
    history_text,
    refresh_json,
    refresh_text,
    state_json,
    state_text,
)
from .plans import (
    SUMMARY_PAST,
    approvals_markdown,
    plan_markdown,
    plan_text,
    section_markdown,
    section_text,
    summarized_changes,
)
from .text import (
    MARKDOWN_BUDGET,
    by_team_json,
    by_team_text,
    markdown_text,
)

__all__ = [
    "MARKDOWN_BUDGET",
    "SUMMARY_PAST",
    "accept_json",
    "accept_text",
    "apply_json",
    "apply_refused_json",
    "apply_stopped",
    "apply_text",
    "approvals_markdown",
    "approvals_markdown_summary",
    "approvals_text",
    "by_team_json",
    "by_team_text",
    "comment_text",
    "doctor_json",
    "doctor_text",
    "drift_issue_markdown",
    "drift_json",
    "drift_markdown",
    "drift_text",
    "history",
    "history_text",
    "import_text",
    "init_text",
    "issue_json",
    "issue_text",
    "markdown_text",
    "plan_markdown",
    "plan_text",
    "progress_line",
    "refresh_json",
    "refresh_text",
    "result_text",
    "section_markdown",
    "section_text",
    "state_json",
    "state_text",
    "summarized_changes",
    "teams_json",
    "teams_text",
]
