"""The unsafe rule with rules in play (docs/plan-format.md, Unsafe plans; docs/rules.md): the
numerator is the incidents whose recorded values the plan changes or forgets, the denominator
the journaled incidents plus the incidents a rule changes; a rule match that changes nothing
counts in neither, a rule change counts whatever its before, and the forgets of incidents a
rule resolved count in no numerator. A saved plan of the same inputs gets the same verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import plan, plan_json

from reconciler.journal.records import Recorded
from reconciler.planfile import read_saved_plan, verify
from reconciler.planner import Plan

Incidents = dict[str, dict[str, Any]]


def journaled(n: int, **fields: Any) -> Incidents:
    return {f"j-{i:02}": {"status": "triggered", "priority": "p3", **fields} for i in range(n)}


def by_rule(ids: list[str], fields: list[str], name: str = "tidy") -> dict[str, dict[str, str]]:
    return {cid: {f: name for f in fields} for cid in ids}


def saved_verdict(tmp_path: Path, made: Plan, state: Recorded) -> bool:
    """The verdict apply works out for the plan saved to a file (its own flag not trusted)."""
    path = tmp_path / "plan.json"
    made.lineage, made.serial = state.lineage, state.serial
    path.write_text(plan_json(made, "2026-01-01T00:00:00.000Z"))
    return verify(read_saved_plan(str(path)), state).unsafe


def test_a_rule_match_that_changes_nothing_dilutes_nothing(tmp_path: Path) -> None:
    journal = journaled(10)
    live = {cid: {**fields, "priority": "p1"} for cid, fields in journal.items()}
    noise = [f"t-{i:02}" for i in range(30)]
    desired = {**journal, **{cid: {"status": "triggered"} for cid in noise}}
    live.update({cid: {"status": "triggered"} for cid in noise})
    made = plan(desired, journal, live=live, rules=by_rule(noise, ["status"]))
    assert len(made.changes) == 10  # the ten reverts; the rule changes nothing
    assert made.unsafe
    assert "on 10 of 10 journaled incidents (more than 30%)" in made.warnings[-1]
    assert saved_verdict(tmp_path, made, Recorded("l", 0, journal)) is True


def test_a_rule_change_counts_whatever_the_open_lists_leave_out(tmp_path: Path) -> None:
    pages = [f"p-{i:03}" for i in range(100)]
    desired = {cid: {"public_sharing": False} for cid in pages}
    # The open lists carry status, not public_sharing: every before is unknown.
    live = {cid: {"status": "triggered"} for cid in pages}
    made = plan(desired, {}, live=live, rules=by_rule(pages, ["public_sharing"]))
    assert {c.before_known for c in made.changes} == {False}
    assert made.unsafe
    assert made.warnings[-1] == (
        "unsafe plan: it changes or forgets recorded values on 100 of 100 incidents: "
        "journaled, or changed by a rule (more than 30%); apply refuses it without --force"
    )
    assert saved_verdict(tmp_path, made, Recorded("l", 0, {})) is True


def test_rule_changes_add_to_both_sides_and_journaled_ones_count_once(tmp_path: Path) -> None:
    journal = journaled(10)
    # A rule sets severity (never journaled: before unknown) on two journaled incidents and
    # three new ones: 5 changed of 10 + 3 = 13, 38% > 30%.
    ids = ["j-00", "j-01", "n-0", "n-1", "n-2"]
    desired = {**journal, **{cid: {**journal.get(cid, {}), "severity": "sev3"} for cid in ids}}
    made = plan(desired, journal, rules=by_rule(ids, ["severity"]))
    assert made.unsafe
    assert "on 5 of 13 incidents: journaled, or changed by a rule" in made.warnings[-1]
    assert saved_verdict(tmp_path, made, Recorded("l", 0, journal)) is True
    # One incident of the rule fewer, both kinds: 3 of 12, 25%, not unsafe.
    fewest = ["j-00", "n-0", "n-1"]
    desired = {**journal, **{cid: {**journal.get(cid, {}), "severity": "sev3"} for cid in fewest}}
    made = plan(desired, journal, rules=by_rule(fewest, ["severity"]))
    assert not made.unsafe
    assert saved_verdict(tmp_path, made, Recorded("l", 0, journal)) is False


@pytest.mark.parametrize("status", ["resolved", "acknowledged"])
def test_the_incidents_a_rule_resolved_are_forgotten_quietly(tmp_path: Path, status: str) -> None:
    journal = journaled(31, status=status)
    owners = dict.fromkeys(journal, "close-stale")
    made = plan({}, journal, owners=owners)
    assert made.forget == sorted(journal)
    if status == "resolved":
        assert made.left_rule == owners
        assert not made.unsafe and made.warnings == []
    else:  # still open: it stopped matching, an ordinary forget that counts
        assert made.left_rule == {}
        assert made.unsafe
        assert "on 31 of 31 journaled incidents" in made.warnings[-1]
    state = Recorded("l", 4, journal, rules=owners)
    assert saved_verdict(tmp_path, made, state) is made.unsafe
    # Without a rule named in the journal, forgetting resolved incidents counts as ever.
    assert plan({}, journal).unsafe


def test_a_saved_plan_cannot_relabel_its_forgets(tmp_path: Path) -> None:
    from reconciler.errors import InvalidPlanError
    from reconciler.planfile import digest

    journal = journaled(31, status="resolved")
    owners = dict.fromkeys(journal, "close-stale")
    made = plan({}, journal, lineage="l", serial=4, owners=owners)
    body = json.loads(plan_json(made, "2026-01-01T00:00:00.000Z"))
    assert body["forget_left_rule"] == owners
    # A journal that names no rule for them: the file's labels are not the journal's.
    path = tmp_path / "plan.json"
    body["plan_digest"] = digest(body)
    path.write_text(json.dumps(body))
    with pytest.raises(InvalidPlanError, match="forget_left_rule does not match the journal"):
        verify(read_saved_plan(str(path)), Recorded("l", 4, journal))
    # Labels of ids it does not forget are malformed.
    body["forget_left_rule"] = {"x-1": "close-stale"}
    body["plan_digest"] = digest(body)
    path.write_text(json.dumps(body))
    with pytest.raises(InvalidPlanError, match="forget_left_rule must map forgotten ids"):
        read_saved_plan(str(path))
