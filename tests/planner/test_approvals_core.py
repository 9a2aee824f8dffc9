"""reconciler.approvals (docs/approvals.md): the changes a rule covers equal an independent
filter; "met" equals an independent reading of the review history (the latest decisive
review per reviewer, on the head commit, never the author's)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.approvals import (
    ApprovalRule,
    Approver,
    Needed,
    Review,
    When,
    approvals,
    covered,
    evaluate,
    needed,
)
from reconciler.model import PRIORITIES, SEVERITIES, Change

VALUES: dict[str, list[Any]] = {
    "status": ["triggered", "acknowledged", "resolved"],
    "priority": [None, "p1", "p2", "p4"],
    "severity": [None, "sev1", "sev3"],
    "public_sharing": [True, False],
    "escalations": [0, 1, 2],
}
IDS = ["a-1", "a-2", "b-1", "b-2"]


@st.composite
def changes(draw: st.DrawFn) -> list[Change]:
    out = []
    for cid in draw(st.lists(st.sampled_from(IDS), unique=True)):
        for name in draw(st.lists(st.sampled_from(list(VALUES)), unique=True, min_size=1)):
            before, after = draw(st.sampled_from(VALUES[name])), draw(st.sampled_from(VALUES[name]))
            out.append(
                Change(
                    cid,
                    name,
                    before,
                    after,
                    before_known=draw(st.booleans()),
                    rule=draw(st.sampled_from([None, "stale"])),
                )
            )
    return out


@st.composite
def desired_of(draw: st.DrawFn, changes: list[Change]) -> dict[str, dict[str, Any]]:
    desired: dict[str, dict[str, Any]] = {}
    for cid in {c.incident for c in changes}:
        fields: dict[str, Any] = {c.field: c.after for c in changes if c.incident == cid}
        for name in ("priority", "severity"):
            if name not in fields and draw(st.booleans()):
                fields[name] = draw(st.sampled_from(VALUES[name]))
        desired[cid] = fields
    return desired


@st.composite
def approval_rules(draw: st.DrawFn) -> ApprovalRule:
    name = draw(st.sampled_from(list(VALUES)))

    def one() -> tuple[Any] | None:
        return draw(st.one_of(st.none(), st.sampled_from(VALUES[name]).map(lambda v: (v,))))

    when = When(
        field=name,
        before=one(),
        after=one(),
        priority=tuple(draw(st.lists(st.sampled_from(PRIORITIES), unique=True, max_size=2))),
        severity=tuple(draw(st.lists(st.sampled_from(SEVERITIES), unique=True, max_size=2))),
        team=tuple(draw(st.lists(st.sampled_from(["ops", "web"]), unique=True, max_size=1))),
    )
    return ApprovalRule("r", when, (Approver("dana"),))


def oracle_covered(
    rule: ApprovalRule, changes: list[Change], desired: dict[str, dict[str, Any]], team: str | None
) -> list[Change]:
    """Written from the contract, not the code: a change is covered unless something known
    says it is not."""
    w = rule.when
    out = []
    for c in changes:
        fields = desired.get(c.incident, {})
        excluded = (
            c.field != w.field
            or (w.team != () and team not in w.team)
            or (w.after is not None and repr(c.after) != repr(w.after[0]))
            or (c.before_known and w.before is not None and repr(c.before) != repr(w.before[0]))
            or (w.priority != () and "priority" in fields and fields["priority"] not in w.priority)
            or (w.severity != () and "severity" in fields and fields["severity"] not in w.severity)
        )
        if not excluded:
            out.append(c)
    return out


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_covered_equals_an_independent_filter(data: st.DataObject) -> None:
    plan_changes = data.draw(changes())
    desired = data.draw(desired_of(plan_changes))
    rule = data.draw(approval_rules())
    team = data.draw(st.sampled_from([None, "ops", "web"]))
    assert covered(rule, plan_changes, desired, team) == oracle_covered(
        rule, plan_changes, desired, team
    )


def test_a_value_matches_by_type_and_an_unknown_before_is_covered() -> None:
    rule = ApprovalRule("esc", When("escalations", after=(1,)), (Approver("dana"),))
    sharing = ApprovalRule("pub", When("public_sharing", before=(False,), after=(True,)), ())
    one = Change("a-1", "escalations", 0, 1, True)
    unknown = Change("a-1", "public_sharing", None, True, False)
    assert covered(rule, [one, Change("a-1", "escalations", 0, 2, True)], {}) == [one]
    assert covered(sharing, [unknown], {}) == [unknown]
    assert covered(ApprovalRule("t", When("status", after=(True,)), ()), [one], {}) == []


def test_rule_expanded_changes_are_covered_and_rules_without_changes_left_out() -> None:
    rules = [
        ApprovalRule("close-p1", When("status", after=("resolved",), priority=("p1",)), ()),
        ApprovalRule("public", When("public_sharing", after=(True,)), (Approver("dana"),)),
    ]
    expanded = Change("a-1", "status", "triggered", "resolved", True, rule="stale")
    other = Change("a-2", "status", "triggered", "resolved", True)
    desired = {"a-1": {"status": "resolved", "priority": "p1"}, "a-2": {"priority": "p3"}}
    got = needed(rules, [expanded, other], desired)
    assert [(n.rule, n.changes) for n in got] == [("close-p1", (expanded,))]
    assert got[0].to_json()["changes"] == [expanded.to_json()]


@pytest.mark.parametrize(
    ("text", "shown"),
    [("dana", "dana"), ("@dana", "dana"), ("@acme/comms", "@acme/comms"), ("a-b", "a-b")],
)
def test_approvers_parse(text: str, shown: str) -> None:
    assert str(Approver.parse(text)) == shown


@pytest.mark.parametrize(
    "text", ["", "@", "-dana", "dana-", "a--b", "@acme/", "acme/comms", "x" * 40]
)
def test_invalid_approvers_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a GitHub login"):
        Approver.parse(text)


# ---------------------------------------------------------------------------------------------
# Reviews

LOGINS = ["ana", "Bob", "bob", "cy", "author", "dana"]
HEAD, OLD = "h" * 40, "o" * 40
TEAMS = {("acme", "comms"): {"ana", "cy"}}


def members(org: str, slug: str, login: str) -> bool:
    return login.lower() in TEAMS.get((org, slug), set())


reviews = st.lists(
    st.builds(
        Review,
        login=st.sampled_from(LOGINS),
        state=st.sampled_from(["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED"]),
        commit_id=st.sampled_from([HEAD, OLD]),
        submitted_at=st.sampled_from([f"2030-01-01T00:00:0{n}Z" for n in range(10)]),
    ),
    max_size=12,
)


def oracle_approvers(history: list[Review], author: str) -> set[str]:
    """For each reviewer (logins without case), walk their reviews newest first and stop at
    the first that is not a comment."""
    out = set()
    for login in {r.login.lower() for r in history}:
        if login == author.lower():
            continue
        theirs = [r for r in history if r.login.lower() == login]
        for r in reversed(theirs):
            if r.state == "COMMENTED":
                continue
            if r.state == "APPROVED" and r.commit_id == HEAD:
                out.add(login)
            break
    return out


@settings(max_examples=300, deadline=None)
@given(
    history=reviews,
    author=st.sampled_from(["author", "ana", "BOB"]),
    count=st.integers(1, 3),
    approvers=st.lists(st.sampled_from(["@acme/comms", "dana", "bob", "@acme/legal"]), min_size=1),
)
def test_met_equals_an_oracle_over_the_review_history(
    history: list[Review], author: str, count: int, approvers: list[str]
) -> None:
    parsed = tuple(Approver.parse(a) for a in approvers)
    need = Needed("r", parsed, count, ())
    (status,) = evaluate([need], history, HEAD, author, members)
    allowed = {a for a in approvers if not a.startswith("@")} | (
        TEAMS[("acme", "comms")] if "@acme/comms" in approvers else set()
    )
    expected = oracle_approvers(history, author) & allowed
    assert {a.login.lower() for a in status.approved_by} == expected
    assert status.met == (len(expected) >= count)
    assert author.lower() not in {c.lower() for c in status.could}


def test_a_later_changes_requested_or_a_dismissal_cancels_and_a_comment_does_not() -> None:
    approved = Review("ana", "APPROVED", HEAD, "t1")
    assert approvals([approved, Review("ana", "COMMENTED", HEAD, "t2")], HEAD, "x") == [
        approvals([approved], HEAD, "x")[0]
    ]
    assert approvals([approved, Review("ana", "CHANGES_REQUESTED", HEAD, "t2")], HEAD, "x") == []
    # GitHub shows a dismissed approval with the state DISMISSED.
    assert approvals([Review("ana", "DISMISSED", HEAD, "t1")], HEAD, "x") == []
    assert approvals([Review("ana", "APPROVED", OLD, "t1")], HEAD, "x") == []
    assert approvals([Review("Author", "APPROVED", HEAD, "t1")], HEAD, "author") == []


def test_who_could_meet_a_rule_and_who_met_it() -> None:
    need = Needed("public", (Approver("comms", "acme"), Approver("dana"), Approver("x")), 2, ())
    history = [Review("cy", "APPROVED", HEAD, "t1"), Review("dana", "APPROVED", OLD, "t0")]
    (status,) = evaluate([need], history, HEAD, "x", members)
    assert not status.met and status.missing == 1
    assert [(a.login, a.at) for a in status.approved_by] == [("cy", "t1")]
    assert status.could == ("@acme/comms", "dana")
