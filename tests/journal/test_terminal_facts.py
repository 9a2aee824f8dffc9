"""Facts Spike cannot undo survive forgetting and unmanaging (docs/state-files.md): a resolved
status and the escalation count. And forgetting counts in the unsafe rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, plan, plan_json, write_states

from reconciler.errors import PlanError
from reconciler.journal import migrate
from reconciler.journal.base import Journal
from reconciler.journal.file import FileJournal
from reconciler.journal.postgres import PostgresJournal
from reconciler.model import Operation
from reconciler.planfile import digest, read_saved_plan, verify

PLAN = "sha256:test"
RESOLVE = Operation("POST", "/incidents/resolve", {"ids": ["r"]})
ESCALATE = Operation("POST", "/incidents/escalate", {"ids": ["e"]})


def history(journal: Journal) -> None:
    """`r` resolved, `e` escalated three times, `k` acknowledged."""
    with journal.open_for_apply(0, "test") as writer:
        writer.applied(RESOLVE, PLAN)
        writer.applied(Operation("POST", "/incidents/acknowledge", {"ids": ["k"]}), PLAN)
        for _ in range(3):
            writer.applied(ESCALATE, PLAN, writer.intent(ESCALATE, PLAN))


def forget_all(journal: Journal) -> None:
    with journal.open_for_apply(0, "test") as writer:
        writer.forget(["e", "k", "r"], PLAN)


def planned(journal: Journal, desired: dict[str, dict[str, Any]]) -> Any:
    state = journal.read()
    return plan(desired, state.incidents, kept=state.kept, uncertain=state.uncertain)


@pytest.fixture(params=["file", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Journal:
    if request.param == "file":
        return FileJournal(tmp_path / "j.jsonl")
    return PostgresJournal(request.getfixturevalue("url"))


def test_forget_keeps_a_resolved_status_and_the_escalation_count(journal: Journal) -> None:
    history(journal)
    forget_all(journal)
    state = journal.read()
    assert state.incidents == {}
    assert state.kept == {"r": {"status": "resolved"}, "e": {"escalations": 3}}
    # Kept facts are not journaled incidents: nothing to forget or unmanage again.
    again = planned(journal, {})
    assert (again.forget, again.unmanaged, again.has_changes) == ([], [], False)


@pytest.mark.parametrize(("wanted", "calls"), [(3, 0), (5, 2)])
def test_restoring_a_forgotten_incident_never_escalates_it_again(
    journal: Journal, wanted: int, calls: int
) -> None:
    history(journal)
    forget_all(journal)
    made = planned(journal, {"e": {"escalations": wanted, "status": "acknowledged"}})
    assert [op.body for op in made.operations if op.path.endswith("escalate")] == [
        {"ids": ["e"]}
    ] * calls
    # Applied, the count goes on from the kept one.
    with journal.open_for_apply(0, "test") as writer:
        for op in made.operations:
            writer.applied(op, PLAN, writer.intent(op, PLAN) if "escalate" in op.path else None)
    state = journal.read()
    assert state.escalations("e") == wanted
    assert state.incidents["e"]["status"] == "acknowledged"
    assert planned(journal, {"e": {"escalations": wanted}}).operations == []


@pytest.mark.parametrize("how", ["forget", "unmanage"])
def test_a_once_resolved_incident_cannot_be_reopened(journal: Journal, how: str) -> None:
    history(journal)
    with journal.open_for_apply(0, "test") as writer:
        if how == "forget":
            writer.forget(["r"], PLAN)
        else:
            writer.unmanage([("r", "status")], PLAN)
    state = journal.read()
    assert state.incidents.get("r", {}) == {}
    assert state.kept["r"] == {"status": "resolved"}
    for status in ("triggered", "acknowledged"):
        with pytest.raises(PlanError) as caught:
            planned(journal, {"r": {"status": status}})
        assert caught.value.messages == [
            "incident r: status: resolved incidents are terminal in Spike; "
            f"it cannot become {status}"
        ]
    with pytest.raises(PlanError, match="cannot escalate a resolved incident"):
        planned(journal, {"r": {"escalations": 1}})
    # Asking for what it is costs nothing, and is not listed as unmanaged again.
    made = planned(journal, {"r": {"status": "resolved"}, "e": {}, "k": {"status": "acknowledged"}})
    assert (made.operations, made.unmanaged, made.forget) == ([], [], [])


def test_reopening_after_the_status_line_was_removed_is_a_plan_error_in_the_cli(
    tmp_path: Path,
) -> None:
    journal = FileJournal(tmp_path / "j.jsonl")
    history(journal)
    states = tmp_path / "states"
    write_states(states, {"r": {}, "e": {"escalations": 3}, "k": {"status": "acknowledged"}})
    made = planned(journal, json.loads((states / "incidents.yaml").read_text())["incidents"])
    assert made.unmanaged == [("r", "status")]
    with journal.open_for_apply(0, "test") as writer:
        writer.unmanage(made.unmanaged, PLAN)
    code, out, _ = cli("plan", str(states), "--journal", str(journal.path))
    assert (code, out) == (0, "No changes. 3 incidents match the journal.\n")
    write_states(states, {"r": {"status": "triggered"}, "e": {"escalations": 3}, "k": {}})
    code, out, err = cli("plan", str(states), "--journal", str(journal.path))
    assert code == 1
    assert (
        f"{states / 'incidents.yaml'}: incident r: status: resolved incidents are terminal" in err
    )


# ---------------------------------------------------------------------------------------------
# forgetting is a change in the unsafe rule


def twenty(tmp_path: Path) -> tuple[FileJournal, Path]:
    journal = FileJournal(tmp_path / "j.jsonl")
    ids = [f"i{n:02}" for n in range(20)]
    with journal.open_for_apply(0, "test") as writer:
        writer.applied(Operation("POST", "/incidents/acknowledge", {"ids": ids}), PLAN)
    states = tmp_path / "states"
    write_states(states, {cid: {"status": "acknowledged"} for cid in ids})
    return journal, states


def test_emptying_the_state_file_makes_the_plan_unsafe(tmp_path: Path) -> None:
    journal, states = twenty(tmp_path)
    (states / "incidents.yaml").write_text("incidents: {}\n")
    code, out, err = cli("plan", str(states), "--journal", str(journal.path), "--format", "json")
    body = json.loads(out)
    assert (code, body["unsafe"], len(body["forget"])) == (0, True, 20)
    assert (
        "unsafe plan: it changes or forgets recorded values on 20 of 20 journaled incidents"
        in body["warnings"][0]
    )
    before = journal.path.read_bytes()
    code, _, err = cli("apply", str(states), "--journal", str(journal.path), "--auto-approve")
    assert code == 1
    assert "the plan is marked unsafe" in err
    assert journal.path.read_bytes() == before


def test_a_plan_of_a_subset_of_the_journaled_incidents_is_unsafe(tmp_path: Path) -> None:
    journal, _ = twenty(tmp_path)
    state = journal.read()
    ten = {f"i{n:02}": {"status": "acknowledged"} for n in range(10)}
    made = plan(ten, state.incidents)
    assert (len(made.forget), made.unsafe) == (10, True)
    made = plan({**ten, **{f"i{n:02}": {} for n in range(10, 15)}}, state.incidents)
    assert (len(made.forget), made.unsafe) == (5, False)  # 5 of 20 is not over 30%


def test_a_saved_plan_that_forgets_too_much_is_unsafe_whatever_its_flag(tmp_path: Path) -> None:
    journal, _ = twenty(tmp_path)
    state = journal.read()
    for forgotten, unsafe in ((7, True), (6, False)):
        kept = {f"i{n:02}": {"status": "acknowledged"} for n in range(forgotten, 20)}
        made = plan(kept, state.incidents, lineage=state.lineage, serial=state.serial)
        assert (len(made.forget), made.unsafe) == (forgotten, unsafe)
        body = json.loads(plan_json(made, "2026-01-01T00:00:00.000Z"))
        body["unsafe"], body["warnings"] = False, []
        body["plan_digest"] = digest(body)
        saved_file = tmp_path / "plan.json"
        saved_file.write_text(json.dumps(body))
        saved = read_saved_plan(str(saved_file))
        assert verify(saved, state).unsafe is unsafe


def test_apply_recomputes_the_forgets_of_an_edited_saved_plan(tmp_path: Path) -> None:
    journal, states = twenty(tmp_path)
    (states / "incidents.yaml").write_text("incidents: {}\n")
    plan_file = tmp_path / "plan.json"
    assert cli("plan", str(states), "--journal", str(journal.path), "--out", str(plan_file))[0] == 0
    body = json.loads(plan_file.read_text())
    body["unsafe"], body["warnings"] = False, []
    body["plan_digest"] = digest(body)
    plan_file.write_text(json.dumps(body))
    before = journal.path.read_bytes()
    code, _, err = cli("apply", str(plan_file), "--journal", str(journal.path))
    assert code == 1
    assert "the plan is marked unsafe (it changes or forgets recorded values" in err
    assert journal.path.read_bytes() == before
    code, _, err = cli("apply", str(plan_file), "--journal", str(journal.path), "--force")
    assert code == 0, err
    assert journal.read().incidents == {}


def test_kept_facts_and_uncertainty_survive_a_migration(tmp_path: Path, url: str) -> None:
    source = FileJournal(tmp_path / "j.jsonl")
    history(source)
    forget_all(source)
    with source.open_for_apply(0, "test") as writer:
        writer.start(PLAN, 1)
        intent = writer.intent(Operation("POST", "/incidents/escalate", {"ids": ["x"]}), PLAN)
        writer.uncertain(intent, "504 gateway timeout", PLAN)
        writer.end(PLAN, "failed", uncertain=1)
    dest = PostgresJournal(url)
    migrate(source, dest)
    mine, theirs = source.read(retired_ok=True), dest.read()
    assert (theirs.kept, theirs.uncertain, theirs.serial) == (
        mine.kept,
        mine.uncertain,
        mine.serial,
    )
    assert theirs.kept == {"r": {"status": "resolved"}, "e": {"escalations": 3}}
    assert list(theirs.uncertain) == ["x"]
