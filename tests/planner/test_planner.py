"""The planner against docs/api-calls.md, Endpoints: one test per row of the table, then properties.

The properties compare the planner with tests/oracle.py, an independent reading of the docs,
over generated desired states and journals (small batch sizes, so chunking is exercised).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import oracle
import pytest
from helpers import examples, plan, plan_json, plan_to_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import endpoints
from reconciler.errors import InvalidPlanError, PlanError
from reconciler.journal.records import Recorded
from reconciler.model import PRIORITIES, SEVERITIES, STATUSES
from reconciler.planfile import digest
from reconciler.planner import Plan, pack_escalations

ACK = "/incidents/acknowledge"
UNACK = "/incidents/unacknowledge"
RESOLVE = "/incidents/resolve"
ESCALATE = "/incidents/escalate"


def ops(p: Plan) -> list[tuple[str, str, dict[str, Any]]]:
    return [(op.method, op.path, dict(op.body)) for op in p.operations]


def changes(p: Plan) -> list[dict[str, Any]]:
    return [c.to_json() for c in p.changes]


# ---------------------------------------------------------------------------------------------
# status


def test_triggered_to_acknowledged_acknowledges() -> None:
    p = plan({"a": {"status": "acknowledged"}}, {"a": {"status": "triggered"}})
    assert ops(p) == [("POST", ACK, {"ids": ["a"]})]
    assert changes(p) == [
        {"incident": "a", "field": "status", "before": "triggered", "after": "acknowledged"}
    ]


def test_acknowledged_to_triggered_unacknowledges() -> None:
    p = plan({"a": {"status": "triggered"}}, {"a": {"status": "acknowledged"}})
    assert ops(p) == [("POST", UNACK, {"ids": ["a"]})]


@pytest.mark.parametrize("before", ["triggered", "acknowledged"])
def test_open_to_resolved_resolves(before: str) -> None:
    p = plan({"a": {"status": "resolved"}}, {"a": {"status": before}})
    assert ops(p) == [("POST", RESOLVE, {"ids": ["a"]})]
    assert changes(p)[0]["before"] == before


@pytest.mark.parametrize("after", ["triggered", "acknowledged"])
def test_resolved_is_terminal(after: str) -> None:
    with pytest.raises(PlanError) as caught:
        plan(
            {"pay-1": {"status": after}},
            {"pay-1": {"status": "resolved"}},
            sources={"pay-1": "states/payments.yaml"},
        )
    assert caught.value.messages == [
        "states/payments.yaml: incident pay-1: status: resolved incidents are terminal in "
        f"Spike; it cannot become {after}"
    ]


@pytest.mark.parametrize(
    ("after", "path"),
    [("triggered", UNACK), ("acknowledged", ACK), ("resolved", RESOLVE)],
)
def test_unknown_status_is_planned_with_an_unknown_before(after: str, path: str) -> None:
    # A desired `triggered` with nothing journaled plans an unacknowledge: the action
    # endpoints are idempotent, so planning it is safe and makes the journal know.
    p = plan({"a": {"status": after}}, {})
    assert ops(p) == [("POST", path, {"ids": ["a"]})]
    assert changes(p) == [
        {"incident": "a", "field": "status", "before": None, "after": after, "before_known": False}
    ]
    assert p.changes[0].before_known is False


def test_same_status_plans_nothing() -> None:
    p = plan({"a": {"status": "resolved"}}, {"a": {"status": "resolved"}})
    assert (p.operations, p.changes, p.has_changes) == ([], [], False)


# ---------------------------------------------------------------------------------------------
# priority, severity, public sharing


@pytest.mark.parametrize(
    ("name", "value", "set_path"),
    [("priority", "p2", "/incidents/priority"), ("severity", "sev1", "/incidents/severity")],
)
def test_set_priority_or_severity(name: str, value: str, set_path: str) -> None:
    p = plan({"a": {name: value}}, {"a": {name: None}})
    assert ops(p) == [("POST", set_path, {name: value, "ids": ["a"]})]
    assert changes(p) == [{"incident": "a", "field": name, "before": None, "after": value}]


@pytest.mark.parametrize(
    ("name", "before", "remove_path"),
    [
        ("priority", "p1", "/incidents/priority/remove"),
        ("severity", "sev3", "/incidents/severity/remove"),
    ],
)
def test_null_removes(name: str, before: str, remove_path: str) -> None:
    p = plan({"a": {name: None}}, {"a": {name: before}})
    assert ops(p) == [("DELETE", remove_path, {"ids": ["a"]})]
    assert changes(p) == [{"incident": "a", "field": name, "before": before, "after": None}]


def test_null_with_unknown_before_still_removes() -> None:
    p = plan({"a": {"priority": None, "severity": None}}, {})
    assert ops(p) == [
        ("DELETE", "/incidents/priority/remove", {"ids": ["a"]}),
        ("DELETE", "/incidents/severity/remove", {"ids": ["a"]}),
    ]
    assert [c.before_known for c in p.changes] == [False, False]


def test_null_already_journaled_plans_nothing() -> None:
    p = plan({"a": {"priority": None}}, {"a": {"priority": None}})
    assert p.operations == [] and p.changes == []


def test_public_sharing_is_one_call_per_incident() -> None:
    p = plan(
        {
            "b": {"public_sharing": True},
            "a": {"public_sharing": True},
            "c": {"public_sharing": False},
        },
        {"a": {"public_sharing": False}},
        batch_size=100,
    )
    assert ops(p) == [
        ("PATCH", "/incidents/a/public-sharing", {"publicSharing": True}),
        ("PATCH", "/incidents/b/public-sharing", {"publicSharing": True}),
        ("PATCH", "/incidents/c/public-sharing", {"publicSharing": False}),
    ]


# ---------------------------------------------------------------------------------------------
# escalations


def test_escalation_increase_is_n_minus_m_calls() -> None:
    p = plan({"a": {"escalations": 3}}, {"a": {"escalations": 1}})
    assert ops(p) == [("POST", ESCALATE, {"ids": ["a"]})] * 2
    assert changes(p) == [{"incident": "a", "field": "escalations", "before": 1, "after": 3}]


def test_unknown_escalations_count_from_zero() -> None:
    p = plan({"a": {"escalations": 2}}, {"a": {"status": "triggered"}})
    assert ops(p) == [("POST", ESCALATE, {"ids": ["a"]})] * 2
    assert changes(p)[0] == {
        "incident": "a",
        "field": "escalations",
        "before": None,
        "after": 2,
        "before_known": False,
    }


def test_zero_escalations_with_nothing_journaled_plans_nothing() -> None:
    p = plan({"a": {"escalations": 0}}, {})
    assert p.operations == [] and p.changes == []


def test_escalation_decrease_is_an_error() -> None:
    with pytest.raises(PlanError, match=r"incident a: escalations: 1 is below the 3 already"):
        plan({"a": {"escalations": 1}}, {"a": {"escalations": 3}})


def test_escalating_a_resolved_incident_is_an_error() -> None:
    with pytest.raises(PlanError, match="cannot escalate a resolved incident"):
        plan(
            {"a": {"status": "resolved", "escalations": 2}},
            {"a": {"status": "resolved", "escalations": 1}},
        )


def test_escalating_then_resolving_in_one_plan_escalates_first() -> None:
    p = plan({"a": {"status": "resolved", "escalations": 1}}, {"a": {"status": "triggered"}})
    assert ops(p) == [("POST", ESCALATE, {"ids": ["a"]}), ("POST", RESOLVE, {"ids": ["a"]})]


def test_every_error_is_reported_together() -> None:
    with pytest.raises(PlanError) as caught:
        plan(
            {"a": {"status": "triggered"}, "b": {"escalations": 0}, "c": {"status": "resolved"}},
            {"a": {"status": "resolved"}, "b": {"escalations": 1}},
        )
    assert [m.split(":")[0] for m in caught.value.messages] == ["incident a", "incident b"]


def test_packing_reaches_the_minimum() -> None:
    # A naive packing (ids in order, batch by batch) needs 4 calls here; the minimum is
    # max(max count, ceil(total / size)) = max(3, ceil(6 / 2)) = 3.
    counts = {"a": 3, "b": 1, "c": 1, "d": 1}
    calls = pack_escalations(counts, 2)
    assert len(calls) == 3
    assert all(len(c.ids) <= 2 and len(set(c.ids)) == len(c.ids) for c in calls)
    assert all(list(c.ids) == sorted(c.ids) for c in calls)
    assert {cid: sum(cid in c.ids for c in calls) for cid in counts} == counts


def test_packing_when_one_incident_dominates() -> None:
    calls = pack_escalations({"a": 5, "b": 1}, 100)
    assert [list(c.ids) for c in calls] == [["a", "b"], ["a"], ["a"], ["a"], ["a"]]


# ---------------------------------------------------------------------------------------------
# batching and order


def test_changes_sharing_endpoint_and_value_are_one_call() -> None:
    desired = {
        "a": {"priority": "p1", "severity": "sev2"},
        "b": {"priority": "p1", "severity": "sev2"},
        "c": {"priority": "p3", "severity": None},
    }
    p = plan(desired, {})
    assert ops(p) == [
        ("POST", "/incidents/priority", {"priority": "p1", "ids": ["a", "b"]}),
        ("POST", "/incidents/priority", {"priority": "p3", "ids": ["c"]}),
        ("POST", "/incidents/severity", {"severity": "sev2", "ids": ["a", "b"]}),
        ("DELETE", "/incidents/severity/remove", {"ids": ["c"]}),
    ]


def test_ids_are_sorted_by_code_point() -> None:
    ids = ["b", "a-1", "B", "9", "a", "10", "Z9"]
    p = plan({cid: {"status": "acknowledged"} for cid in ids}, {})
    # Code point order: digits, then upper case, then lower case; "a" before "a-1".
    assert ops(p) == [("POST", ACK, {"ids": ["10", "9", "B", "Z9", "a", "a-1", "b"]})]


def test_batches_are_chunks_of_the_batch_size() -> None:
    p = plan({f"i{n}": {"status": "resolved"} for n in range(5)}, {}, batch_size=2)
    assert ops(p) == [
        ("POST", RESOLVE, {"ids": ["i0", "i1"]}),
        ("POST", RESOLVE, {"ids": ["i2", "i3"]}),
        ("POST", RESOLVE, {"ids": ["i4"]}),
    ]


def test_batch_size_below_one_is_refused() -> None:
    with pytest.raises(PlanError, match="at least 1"):
        plan({}, {}, batch_size=0)


def test_operations_run_in_waves() -> None:
    desired = {
        "r": {"status": "resolved", "escalations": 1, "priority": "p1"},
        "t": {"status": "triggered", "severity": None, "public_sharing": True},
        "k": {"status": "acknowledged", "priority": None, "severity": "sev1"},
    }
    journal = {"t": {"status": "acknowledged"}, "k": {"status": "triggered"}}
    p = plan(desired, journal)
    assert [(op.method, op.path) for op in p.operations] == [
        ("POST", ACK),
        ("POST", UNACK),
        ("POST", "/incidents/priority"),
        ("DELETE", "/incidents/priority/remove"),
        ("POST", "/incidents/severity"),
        ("DELETE", "/incidents/severity/remove"),
        ("PATCH", "/incidents/t/public-sharing"),
        ("POST", ESCALATE),
        ("POST", RESOLVE),
    ]
    assert [endpoints.wave_of(op) for op in p.operations] == [1, 1, 2, 2, 2, 2, 2, 3, 4]


def test_changes_are_listed_by_incident_then_field_order() -> None:
    desired = {
        "b": {"escalations": 1, "status": "acknowledged"},
        "a": {"public_sharing": False, "priority": "p2"},
    }
    p = plan(desired, {})
    assert [(c.incident, c.field) for c in p.changes] == [
        ("a", "priority"),
        ("a", "public_sharing"),
        ("b", "status"),
        ("b", "escalations"),
    ]


# ---------------------------------------------------------------------------------------------
# targets, forget, unmanaged


def test_target_limits_the_plan_to_those_incidents() -> None:
    desired = {"a": {"status": "resolved"}, "b": {"status": "resolved"}}
    journal = {"gone": {"status": "triggered"}, "also-gone": {"status": "triggered"}}
    p = plan(desired, journal, targets=["b", "gone", "nowhere"])
    assert ops(p) == [("POST", RESOLVE, {"ids": ["b"]})]
    assert p.forget == ["gone"]
    assert p.incidents == 1
    assert p.warnings == ["target nowhere is in no state file and not in the journal"]


def test_incident_in_no_file_is_forgotten_without_a_call() -> None:
    p = plan({"a": {}}, {"a": {}, "99": {"status": "resolved"}, "7": {}})
    assert p.forget == ["7", "99"]
    assert p.operations == [] and p.changes == []
    assert p.has_changes is True
    assert plan_to_json(p)["forget"] == ["7", "99"]


def test_removed_fields_become_unmanaged_but_escalations_are_kept() -> None:
    journal = {
        "a": {"status": "acknowledged", "priority": "p1", "severity": None, "escalations": 2}
    }
    p = plan({"a": {"status": "acknowledged"}}, journal)
    assert p.unmanaged == [("a", "priority"), ("a", "severity")]
    assert p.operations == [] and p.changes == []
    assert p.has_changes is True
    assert plan_to_json(p)["unmanaged"] == [
        {"incident": "a", "field": "priority"},
        {"incident": "a", "field": "severity"},
    ]


def test_readding_escalations_does_not_escalate_twice() -> None:
    journal = {"a": {"status": "acknowledged", "escalations": 2}}
    assert plan({"a": {"status": "acknowledged"}}, journal).has_changes is False
    assert plan({"a": {"escalations": 2, "status": "acknowledged"}}, journal).operations == []


# ---------------------------------------------------------------------------------------------
# the unsafe rule


def _journal_of(n: int) -> dict[str, dict[str, Any]]:
    return {f"i{k:02}": {"status": "acknowledged", "priority": "p3"} for k in range(n)}


def test_changing_more_than_30_percent_of_recorded_values_is_unsafe() -> None:
    journal = _journal_of(10)
    desired = copy.deepcopy(journal)
    for cid in ("i00", "i01", "i02"):
        desired[cid]["priority"] = "p1"
    assert plan(desired, journal).unsafe is False  # 3 of 10 is not more than 30%
    desired["i03"]["status"] = "resolved"
    unsafe = plan(desired, journal)
    assert unsafe.unsafe is True
    assert plan_to_json(unsafe)["unsafe"] is True
    assert unsafe.warnings == [
        "unsafe plan: it changes or forgets recorded values on 4 of 10 journaled incidents "
        "(more than 30%); apply refuses it without --force"
    ]


def test_first_time_settings_do_not_count_as_unsafe() -> None:
    journal = _journal_of(10)
    desired = {
        cid: {**fields, "severity": "sev1", "escalations": 1} for cid, fields in journal.items()
    }
    p = plan(desired, journal)
    assert len(p.changes) == 20
    assert p.unsafe is False


def test_small_journals_are_never_unsafe() -> None:
    journal = _journal_of(9)
    desired = {cid: {"status": "resolved", "priority": "p1"} for cid in journal}
    assert plan(desired, journal).unsafe is False


# ---------------------------------------------------------------------------------------------
# determinism


_DESIRED = {
    "pay-122": {"status": "acknowledged", "priority": "p2", "public_sharing": True},
    "116": {"status": "resolved", "escalations": 1},
}


def test_plan_json_is_byte_identical_except_created_at() -> None:
    first = plan_json(plan(_DESIRED, {}, lineage="L", serial=3, inputs_digest="sha256:x"), "T1")
    again = plan_json(plan(_DESIRED, {}, lineage="L", serial=3, inputs_digest="sha256:x"), "T1")
    later = plan_json(plan(_DESIRED, {}, lineage="L", serial=3, inputs_digest="sha256:x"), "T2")
    assert first == again
    differing = [
        (a, b) for a, b in zip(first.splitlines(), later.splitlines(), strict=True) if a != b
    ]
    assert differing == [('  "created_at": "T1",', '  "created_at": "T2",')]


def test_plan_digest_covers_the_content_and_nothing_else() -> None:
    body = json.loads(plan_json(plan(_DESIRED, {}, lineage="L", serial=3), "T1"))
    assert body["plan_digest"] == digest(body)
    assert body["plan_digest"].startswith("sha256:") and len(body["plan_digest"]) == 71
    assert digest({**body, "created_at": "other"}) == body["plan_digest"]
    assert digest({**body, "serial": 4}) != body["plan_digest"]
    other = plan({**_DESIRED, "pay-122": {"priority": "p1"}}, {}, lineage="L", serial=3)
    assert plan_to_json(other)["plan_digest"] != body["plan_digest"]
    assert body["summary"] == {
        "incidents": 2,
        "changed_incidents": 2,
        "changes": 5,
        "operations": 5,
    }
    assert body["journal"] == {"location": "journal.jsonl", "lineage": "L", "serial": 3}
    # Where the plan is for is content too (docs/trust.md): another team, journal or plan id
    # is another digest, so a signature covers them.
    for key, value in (("team_id", "t"), ("plan_id", "p")):
        assert digest({**body, key: value}) != body["plan_digest"]
    moved = {**body["journal"], "location": "other.jsonl"}
    assert digest({**body, "journal": moved}) != body["plan_digest"]


# ---------------------------------------------------------------------------------------------
# Properties

IDS = ("1", "10", "116", "9", "A", "Z9", "a", "a-1", "b", "pay-122", "x-y-z", "zz")
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "status": st.sampled_from(STATUSES),
    "priority": st.sampled_from((*PRIORITIES, None)),
    "severity": st.sampled_from((*SEVERITIES, None)),
    "public_sharing": st.booleans(),
    "escalations": st.integers(0, 4),
}
fields_st = st.fixed_dictionaries({}, optional=FIELD_VALUES)
states_st = st.dictionaries(st.sampled_from(IDS), fields_st, max_size=len(IDS))
batch_st = st.integers(1, 4)


@st.composite
def desired_and_journal(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A journal, and desired states that often overlap it (copies, edits, fresh entries)."""
    journal = draw(states_st)
    desired: dict[str, Any] = {}
    for cid in draw(st.lists(st.sampled_from(IDS), unique=True)):
        how = draw(st.sampled_from(["copy", "edit", "fresh"]))
        if how == "fresh" or cid not in journal:
            desired[cid] = draw(fields_st)
        elif how == "copy":
            desired[cid] = dict(journal[cid])
        else:
            desired[cid] = {**journal[cid], **draw(fields_st)}
    return desired, journal


def plannable(desired: dict[str, Any], journal: dict[str, Any]) -> dict[str, Any]:
    """`desired` with what docs/state-files.md forbids taken out: no leaving resolved,
    counts only grow,
    and a journaled-resolved incident escalates no more."""
    out = copy.deepcopy(desired)
    for cid, want in out.items():
        have = journal.get(cid, {})
        if have.get("status") == "resolved" and "status" in want:
            want["status"] = "resolved"
        if "escalations" in want:
            done = have.get("escalations", 0)
            if want["escalations"] < done or have.get("status") == "resolved":
                want["escalations"] = done
    return out


def is_empty(p: Plan) -> bool:
    return not (p.operations or p.changes or p.forget or p.unmanaged)


PROPERTY = settings(
    max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(states_st, batch_st)
def test_a_journal_equal_to_desired_plans_nothing(state: dict[str, Any], batch: int) -> None:
    p = plan(state, copy.deepcopy(state), batch_size=batch)
    assert is_empty(p) and not p.has_changes


@PROPERTY
@given(desired_and_journal(), batch_st, st.none() | st.lists(st.sampled_from(IDS), max_size=4))
def test_plan_matches_the_oracle(
    pair: tuple[dict[str, Any], dict[str, Any]], batch: int, targets: list[str] | None
) -> None:
    desired, journal = pair
    expected = oracle.expect(desired, journal, batch, targets)
    try:
        p = plan(desired, journal, batch_size=batch, targets=targets)
    except PlanError as exc:
        assert expected.errors, exc.messages
        assert {m.split(":")[0].removeprefix("incident ") for m in exc.messages} == expected.errors
        return
    assert not expected.errors
    got = {(c.incident, c.field, c.before, c.after, c.before_known) for c in p.changes}
    assert got == expected.changes
    assert len(p.operations) == expected.minimum
    assert set(p.forget) == expected.forget and p.forget == sorted(p.forget)
    assert set(p.unmanaged) == expected.unmanaged
    # A forgotten journaled incident counts as a changed recorded value.
    changed_known = {c[0] for c in expected.changes if c[4]} | expected.forget
    assert p.unsafe == (len(journal) >= 10 and len(changed_known) > 0.3 * len(journal))
    waves = [endpoints.wave_of(op) for op in p.operations]
    assert waves == sorted(waves)
    for n, op in enumerate(p.operations):
        # Every planned call passes the check apply makes on an untrusted plan file.
        assert endpoints.parse_operation(op.to_json(), f"op {n}") == op
        assert len(op.ids) <= batch
        assert list(op.ids) == sorted(set(op.ids))


def _apply_with_journal(journal: dict[str, Any], p: Plan) -> dict[str, Any]:
    """What the journal records after a full apply of `p`, via its own replay step."""
    state = Recorded(lineage="L", incidents=copy.deepcopy(journal))
    records: list[dict[str, Any]] = [{"kind": "op", **op.to_json()} for op in p.operations]
    records.append({"kind": "forget", "ids": p.forget})
    records.append({"kind": "unmanage", "fields": [list(u) for u in p.unmanaged]})
    for serial, record in enumerate(records, start=1):
        state.apply_record({**record, "serial": serial})
    assert state.serial == len(records)
    return state.incidents


@PROPERTY
@given(desired_and_journal(), batch_st)
def test_planning_after_applying_the_plan_plans_nothing(
    pair: tuple[dict[str, Any], dict[str, Any]], batch: int
) -> None:
    desired = plannable(*pair)
    journal = pair[1]
    p = plan(desired, journal, batch_size=batch)
    after = _apply_with_journal(journal, p)
    independent = oracle.forget_and_unmanage(
        oracle.apply_operations(journal, p.operations), p.forget, p.unmanaged
    )
    assert after == independent
    again = plan(desired, after, batch_size=batch)
    assert is_empty(again), plan_to_json(again)
    assert plan(desired, after, batch_size=batch + 3).operations == []


@PROPERTY
@given(desired_and_journal(), batch_st, st.randoms(use_true_random=False))
def test_incident_order_does_not_change_the_plan(
    pair: tuple[dict[str, Any], dict[str, Any]], batch: int, rnd: Any
) -> None:
    desired, journal = plannable(*pair), pair[1]

    def shuffled(state: dict[str, Any]) -> dict[str, Any]:
        items = [(cid, dict(reversed(list(f.items())))) for cid, f in state.items()]
        rnd.shuffle(items)
        return dict(items)

    first = plan(desired, journal, batch_size=batch, lineage="L", serial=1)
    second = plan(shuffled(desired), shuffled(journal), batch_size=batch, lineage="L", serial=1)
    assert plan_json(first, "T") == plan_json(second, "T")


@PROPERTY
@given(desired_and_journal(), batch_st)
def test_no_plan_moves_a_resolved_incident_out_of_resolved(
    pair: tuple[dict[str, Any], dict[str, Any]], batch: int
) -> None:
    desired, journal = pair
    resolved = {cid for cid, f in journal.items() if f.get("status") == "resolved"}
    reopening = {
        cid
        for cid in resolved & set(desired)
        if desired[cid].get("status", "resolved") != "resolved"
    }
    try:
        p = plan(desired, journal, batch_size=batch)
    except PlanError as exc:
        named = {m.split(":")[0].removeprefix("incident ") for m in exc.messages}
        assert reopening <= named
        return
    assert not reopening
    status_calls = (ACK, UNACK, RESOLVE, ESCALATE)
    touched = {cid for op in p.operations if op.path in status_calls for cid in op.ids}
    assert not touched & resolved
    after = oracle.apply_operations(journal, p.operations)
    assert all(after[cid]["status"] == "resolved" for cid in resolved)


# ---------------------------------------------------------------------------------------------
# The endpoint table as apply checks an untrusted plan file against it


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("POST /incidents/resolve", "not an operation object (method, path, body)"),
        ({"method": "POST", "path": RESOLVE}, "not an operation object"),
        ({"method": "POST", "path": RESOLVE, "body": {}, "x": 1}, "not an operation object"),
        ({"method": 1, "path": RESOLVE, "body": {}}, "method and path must be strings"),
        ({"method": "POST", "path": RESOLVE, "body": []}, "body an object"),
        (
            {"method": "GET", "path": RESOLVE, "body": {"ids": ["a"]}},
            "GET /incidents/resolve is not",
        ),
        ({"method": "POST", "path": "/incidents/delete", "body": {"ids": ["a"]}}, "is not a call"),
        ({"method": "POST", "path": "/incidents/a/public-sharing", "body": {}}, "is not a call"),
        (
            {"method": "PATCH", "path": "/incidents/a_b/public-sharing", "body": {}},
            "invalid counter id in path '/incidents/a_b/public-sharing'",
        ),
        (
            {
                "method": "PATCH",
                "path": "/incidents/a/public-sharing",
                "body": {"publicSharing": 1},
            },
            "body must be exactly {publicSharing: true|false}",
        ),
        ({"method": "POST", "path": RESOLVE, "body": {"ids": []}}, "non-empty list of distinct"),
        ({"method": "POST", "path": RESOLVE, "body": {"ids": ["a", "a"]}}, "distinct counter ids"),
        ({"method": "POST", "path": RESOLVE, "body": {"ids": ["../x"]}}, "distinct counter ids"),
        ({"method": "POST", "path": RESOLVE, "body": {"ids": "a"}}, "distinct counter ids"),
        (
            {"method": "POST", "path": "/incidents/priority", "body": {"ids": ["a"]}},
            "body keys must be ['ids', 'priority'], got ['ids']",
        ),
        (
            {
                "method": "POST",
                "path": "/incidents/priority",
                "body": {"ids": ["a"], "priority": "p9"},
            },
            "priority must be one of p1, p2, p3, p4, p5",
        ),
        (
            {
                "method": "DELETE",
                "path": "/incidents/severity/remove",
                "body": {"ids": ["a"], "severity": "sev1"},
            },
            "body keys must be ['ids']",
        ),
        (
            {"method": "POST", "path": RESOLVE, "body": {"ids": ["a"], "note": "x"}},
            "body keys must be ['ids'], got ['ids', 'note']",
        ),
    ],
)
def test_an_operation_outside_the_endpoint_table_is_refused(raw: Any, message: str) -> None:
    with pytest.raises(InvalidPlanError) as caught:
        endpoints.parse_operation(raw, "operations[3]")
    assert str(caught.value).startswith("operations[3]: ")
    assert message in str(caught.value)


def test_a_plan_keeps_its_changes_while_the_journal_moves_on() -> None:
    from reconciler.journal.records import Recorded

    state = Recorded(lineage="L", serial=0, incidents={"a": {"status": "triggered"}})
    made = plan({"a": {"status": "acknowledged", "priority": "p1"}}, state.incidents)
    before = [c.to_json() for c in made.changes]
    state.apply_record(
        {
            "kind": "op",
            "serial": 1,
            "method": "POST",
            "path": "/incidents/acknowledge",
            "body": {"ids": ["a"]},
        }
    )
    state.apply_record({"kind": "set", "serial": 2, "incidents": {"b": {"status": "resolved"}}})
    assert state.incidents["a"] == {"status": "acknowledged"}
    assert [c.to_json() for c in made.changes] == before
    assert len(made.changes) == 2 and made.changed_incidents == 1
