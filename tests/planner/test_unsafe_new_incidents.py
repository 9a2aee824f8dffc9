"""The unsafe rule counts recorded values (docs/plan-format.md, Unsafe plans): incidents new to
the journal neither dilute a burst of reverts nor make a plan without reverts unsafe, with
live values (plan --refresh, apply --refresh) as without."""

from __future__ import annotations

from typing import Any

from helpers import plan

from reconciler.model import Unsafe
from reconciler.planfile import verify

JOURNAL: dict[str, dict[str, Any]] = {
    f"i-{n}": {"status": "triggered", "priority": "p1"} for n in range(10)
}


def test_new_incidents_do_not_dilute_a_burst_of_reverts() -> None:
    desired = {cid: dict(fields) for cid, fields in JOURNAL.items()}
    live = {cid: dict(fields) for cid, fields in JOURNAL.items()}
    for n in range(4):  # changed outside reconcile: 4 of 10 journaled incidents
        live[f"i-{n}"]["priority"] = "p3"
    assert plan(desired, JOURNAL, live=live).unsafe
    for n in range(5):  # merged meanwhile: new incidents that already match Spike
        desired[f"new-{n}"] = {"status": "triggered"}
        live[f"new-{n}"] = {"status": "triggered"}
    result = plan(desired, JOURNAL, live=live)
    assert result.unsafe
    assert "on 4 of 10 journaled incidents" in result.warnings[-1]


def test_new_incidents_that_differ_from_spike_are_not_reverts() -> None:
    desired: dict[str, dict[str, Any]] = {cid: dict(f) for cid, f in JOURNAL.items()}
    live = {cid: dict(fields) for cid, fields in JOURNAL.items()}
    for n in range(5):
        desired[f"new-{n}"] = {"status": "resolved"}
        live[f"new-{n}"] = {"status": "triggered"}
    result = plan(desired, JOURNAL, live=live)
    assert len(result.operations) == 1
    assert not result.unsafe


def test_a_saved_plan_is_judged_by_the_journals_own_incidents(tmp_path: Any) -> None:
    from helpers import plan_json

    from reconciler.journal.records import Recorded
    from reconciler.planfile import read_saved_plan

    desired: dict[str, dict[str, Any]] = {cid: dict(f) for cid, f in JOURNAL.items()}
    live = {cid: dict(fields) for cid, fields in JOURNAL.items()}
    for n in range(4):
        live[f"i-{n}"]["priority"] = "p3"
    for n in range(5):
        desired[f"new-{n}"] = {"status": "triggered"}
        live[f"new-{n}"] = {"status": "triggered"}
    made = plan(desired, JOURNAL, live=live, lineage="l", serial=3)
    saved = tmp_path / "p.json"
    saved.write_text(plan_json(made, "2026-11-30T00:00:00Z"))
    state = Recorded(lineage="l", serial=3, incidents=JOURNAL)
    assert verify(read_saved_plan(str(saved)), state, Unsafe()).unsafe
