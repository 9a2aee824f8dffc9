"""A forged plan cannot journal an unmanaged escalation count: the planner never lists one (the
count is kept through unmanaging), so recording it would record an action that changed
nothing (found in review)."""

from __future__ import annotations

from pathlib import Path

from reconciler.sandbox import SandboxServer

from .test_plan_trust import forge, make_plan, refused, repo

__all__ = ["repo"]  # the fixture, used by name


def test_unmanaging_an_escalation_count_is_refused(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    server, tmp_path, journal = repo
    plan_file = make_plan(tmp_path, journal)
    forge(
        plan_file,
        lambda body: body.update(unmanaged=[{"incident": "db-7", "field": "escalations"}]),
    )
    assert refused(server, journal, plan_file) == (
        f"error: {plan_file}: unmanaged: incident db-7 escalations: the escalation count is "
        "never unmanaged\n"
    )


def test_a_plan_cannot_ask_for_more_escalations_than_a_state_file_may(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    """State files cap escalations at 100 (each is a call); so does a plan's `after`: 150
    escalations with their 149 calls passed every check (found in review)."""
    server, tmp_path, journal = repo
    plan_file = make_plan(tmp_path, journal)
    forge(
        plan_file,
        lambda body: body["changes"].append(
            {"incident": "db-7", "field": "escalations", "before": 1, "after": 150}
        ),
    )
    assert "invalid value for escalations" in refused(server, journal, plan_file)
