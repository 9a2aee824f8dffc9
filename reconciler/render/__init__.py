"""Plans, journal views and apply results -> text, JSON and markdown. Formats; writes nothing.

Split by topic: text.py (what every view shares), plans.py, apply.py, journal.py,
drift.py and account.py; every view is imported from here.
"""

from __future__ import annotations

from .account import (
    doctor_json,
    doctor_text,
    import_text,
    init_text,
    teams_json,
    teams_text,
)
from .apply import (
    apply_json,
    apply_text,
    result_text,
)
from .drift import (
    accept_json,
    accept_text,
    comment_text,
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
    plan_markdown,
    plan_text,
    section_markdown,
    section_text,
)
from .text import (
    MARKDOWN_BUDGET,
    by_team_json,
    by_team_text,
    markdown_text,
)

__all__ = [
    "MARKDOWN_BUDGET",
    "accept_json",
    "accept_text",
    "apply_json",
    "apply_text",
    "by_team_json",
    "by_team_text",
    "comment_text",
    "doctor_json",
    "doctor_text",
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
    "refresh_json",
    "refresh_text",
    "result_text",
    "section_markdown",
    "section_text",
    "state_json",
    "state_text",
    "teams_json",
    "teams_text",
]
