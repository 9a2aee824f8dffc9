"""A live read never undoes what Spike cannot undo: an incident this tool recorded as resolved
stays resolved for planning, whatever a live status says (a refresh, or plan --refresh), and
a forged saved plan cannot carry a live value that reopens it (found in review)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import plan

from reconciler.errors import PlanError
from reconciler.journal.file import FileJournal
from reconciler.model import Operation

RESOLVE = Operation("POST", "/incidents/resolve", {"ids": ["r"]})
#: What a live open status over a recorded resolve means, and the deliberate way out.
REOPENED = (
    r"1 incident this journal recorded as resolved is open in Spike \(r \w+\), and resolved "
    r"is terminal in Spike: this journal may belong to another team or account .* or Spike's "
    r"data was reset .* `reconcile refresh --id r --reopened`"
)


def resolved_journal(tmp_path: Path) -> FileJournal:
    journal = FileJournal(tmp_path / "j.jsonl")
    with journal.open_for_apply(0, "test") as writer:
        writer.applied(RESOLVE, None)
    return journal


def test_a_refresh_that_reads_triggered_keeps_the_resolved_fact(tmp_path: Path) -> None:
    journal = resolved_journal(tmp_path)
    with journal.open_for_apply(0, "test") as writer:
        writer.set_values({"r": {"status": "triggered"}}, "refresh")
    state = journal.read()
    assert state.incidents["r"]["status"] == "triggered"  # what Spike said is recorded
    assert state.kept["r"] == {"status": "resolved"}
    with pytest.raises(PlanError, match=REOPENED):
        plan({"r": {"status": "acknowledged"}}, state.incidents, kept=state.kept)


@pytest.mark.parametrize("live_status", ["triggered", "acknowledged"])
def test_plan_refresh_never_reopens_a_recorded_resolve(tmp_path: Path, live_status: str) -> None:
    state = resolved_journal(tmp_path).read()
    with pytest.raises(PlanError, match=REOPENED):
        plan(
            {"r": {"status": "acknowledged" if live_status == "triggered" else "triggered"}},
            state.incidents,
            kept=state.kept,
            live={"r": {"status": live_status}},
        )
