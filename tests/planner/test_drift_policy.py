"""Drift policies in the planner (docs/drift.md, Policies): with live values, a field whose
policy is `warn` or `accept` and whose live value differs from the desired one is reported
but never reverted nor recorded; `revert` plans against the live value, and its reverts count
in the unsafe rule."""

from __future__ import annotations

from typing import Any

from helpers import plan, plan_to_json
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config import ALL_REVERT, POLICIES
from reconciler.model import Drift
from reconciler.render import section_markdown, section_text

DESIRED: dict[str, dict[str, Any]] = {"a": {"status": "acknowledged", "priority": "p2"}}
JOURNAL: dict[str, dict[str, Any]] = {"a": {"status": "acknowledged", "priority": "p2"}}
# An acknowledge timeout returned `a` to triggered; someone set p4 in the dashboard.
LIVE: dict[str, dict[str, Any]] = {"a": {"status": "triggered", "priority": "p4"}}


def policies(**fields: str) -> dict[str, str]:
    return {**ALL_REVERT, **fields}


def test_revert_plans_against_live_and_records_it() -> None:
    result = plan(DESIRED, JOURNAL, live=LIVE)
    assert [op.path for op in result.operations] == [
        "/incidents/acknowledge",
        "/incidents/priority",
    ]
    assert result.live_values == LIVE
    assert result.drift == [
        Drift("a", "status", "acknowledged", "triggered", "revert"),
        Drift("a", "priority", "p2", "p4", "revert"),
    ]


def test_warn_and_accept_report_without_reverting_or_recording() -> None:
    for policy in ("warn", "accept"):
        result = plan(DESIRED, JOURNAL, live=LIVE, drift_policy=policies(status=policy))
        assert [op.path for op in result.operations] == ["/incidents/priority"]
        # The journal keeps `acknowledged`: later plans without --refresh plan nothing for it.
        assert result.live_values == {"a": {"priority": "p4"}}
        assert result.drift[0] == Drift("a", "status", "acknowledged", "triggered", policy)
        assert [c.field for c in result.changes] == ["priority"]
        assert plan_to_json(result)["drift"][0]["policy"] == policy
        text = section_text(result)
        assert f"! a status acknowledged -> triggered  (policy {policy}: not reverted" in text
        assert "! a priority p2 -> p4  (policy revert: planned against live)" in text
        assert f"(policy {policy}: not reverted, only reported)" in section_markdown(result)


def test_a_held_field_that_already_matches_its_file_is_recorded() -> None:
    """Live equal to desired is no drift to hold: recorded, so no call is planned."""
    journal = {"a": {"status": "triggered", "priority": "p2"}}
    result = plan(
        DESIRED,
        journal,
        live={"a": {"status": "acknowledged", "priority": "p2"}},
        drift_policy=policies(status="warn"),
    )
    assert result.operations == []
    assert result.live_values == {"a": {"status": "acknowledged"}}


def test_a_pending_change_is_planned_whatever_the_policy() -> None:
    """The file asks for p1, the journal has p2, Spike says p4: held, the field is planned as
    a plan without --refresh plans it (from the journal's p2)."""
    desired = {"a": {"priority": "p1"}}
    result = plan(
        desired,
        {"a": {"priority": "p2"}},
        live={"a": {"priority": "p4"}},
        drift_policy=policies(priority="warn"),
    )
    assert [(c.before, c.after) for c in result.changes] == [("p2", "p1")]
    assert result.live_values == {}


def journal_of(n: int) -> dict[str, dict[str, Any]]:
    return {f"i{k}": {"status": "acknowledged", "priority": "p2"} for k in range(n)}


def test_reverts_of_known_values_count_in_the_unsafe_rule() -> None:
    """A burst of outside changes on 4 of 10 incidents: reverting them is unsafe."""
    journal = journal_of(10)
    live = {f"i{k}": {"status": "acknowledged", "priority": "p5"} for k in range(4)}
    assert plan(journal, journal, live=dict(list(live.items())[:3])).unsafe is False
    reverting = plan(journal, journal, live=live)
    assert reverting.unsafe is True
    assert len(reverting.operations) == 1 and reverting.operations[0].ids == tuple(sorted(live))
    # Only warned about, nothing is reverted: nothing unsafe.
    assert plan(journal, journal, live=live, drift_policy=policies(priority="warn")).unsafe is False


values = {
    "status": st.sampled_from(["triggered", "acknowledged", "resolved"]),
    "priority": st.sampled_from([None, "p1", "p2", "p3"]),
    "severity": st.sampled_from([None, "sev1", "sev2"]),
}


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Any, Any, Any, dict[str, str]]:
    ids = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=4))

    def fields() -> dict[str, Any]:
        names = draw(st.lists(st.sampled_from(sorted(values)), unique=True))
        # Statuses stay open so that no plan is an error (resolved is terminal).
        return {
            n: draw(st.sampled_from(["triggered", "acknowledged"]) if n == "status" else values[n])
            for n in names
        }

    desired = {cid: fields() for cid in ids}
    journal = {cid: fields() for cid in ids if draw(st.booleans())}
    live = {cid: {n: draw(v) for n, v in values.items() if n != "status"} for cid in ids}
    for cid in live:
        live[cid]["status"] = draw(st.sampled_from(["triggered", "acknowledged"]))
    policy: dict[str, str] = {name: draw(st.sampled_from(POLICIES)) for name in ALL_REVERT}
    return desired, journal, live, policy


@settings(max_examples=200, deadline=None)
@given(scenario())
def test_a_held_field_is_planned_as_without_refresh_and_never_recorded(case: Any) -> None:
    desired, journal, live, policy = case
    refreshed = plan(desired, journal, live=live, drift_policy=policy)
    plain = plan(desired, journal)
    for cid, fields in desired.items():
        for name, want in fields.items():
            if policy[name] == "revert" or live[cid][name] == want:
                continue
            assert name not in refreshed.live_values.get(cid, {})
            assert [c for c in refreshed.changes if (c.incident, c.field) == (cid, name)] == [
                c for c in plain.changes if (c.incident, c.field) == (cid, name)
            ]
