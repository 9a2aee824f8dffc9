"""rules.expand (docs/rules.md): the expansion equals an independent filter, explicit entries
win field by field, resolved incidents never match, and the guards list every problem."""

from __future__ import annotations

import re
from typing import Any

import pytest
from helpers import examples, plan
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import RuleError
from reconciler.rules import UNKNOWN, Candidate, Rule, TitleSearches, expand, undecided

NOW = 1_800_000_000.0
DAY = 86400
TITLES = ["disk usage 97%", "disk usage 50%", "checkout latency", "cpu high", "Disk usage"]
PATTERNS = ["^disk usage", "latency", "[0-9]+%", "^cpu"]


def candidates() -> st.SearchStrategy[list[Candidate]]:
    one = st.builds(
        Candidate,
        counter_id=st.from_regex(r"[a-c]-[0-9]{1,2}", fullmatch=True),
        status=st.sampled_from(["triggered", "acknowledged", "resolved"]),
        title=st.sampled_from(TITLES),
        created=st.integers(0, 40).map(lambda days: NOW - days * DAY - 1),
        priority=st.sampled_from([None, "p1", "p4", "p5"]),
        severity=st.sampled_from([None, "sev1", "sev3"]),
    )
    return st.lists(one, max_size=25, unique_by=lambda c: c.counter_id)


@st.composite
def rules(draw: st.DrawFn) -> list[Rule]:
    out = []
    for n in range(draw(st.integers(0, 3))):
        sets = draw(
            st.dictionaries(
                st.sampled_from(["status", "priority", "severity", "public_sharing"]),
                st.none(),
                min_size=1,
            )
        )
        values = {
            "status": st.sampled_from(["triggered", "acknowledged", "resolved"]),
            "priority": st.sampled_from([None, "p5"]),
            "severity": st.sampled_from([None, "sev3"]),
            "public_sharing": st.just(False),
        }
        out.append(
            Rule(
                name=f"rule-{n}",
                source=f"states/r{n}.yaml",
                statuses=frozenset(
                    draw(st.sets(st.sampled_from(["triggered", "acknowledged"]), min_size=1))
                ),
                set={name: draw(values[name]) for name in sets},
                older_than=draw(st.none() | st.integers(0, 30).map(lambda d: d * DAY)),
                priority=draw(st.none() | st.frozensets(st.sampled_from([None, "p4", "p5"]))),
                severity=draw(st.none() | st.frozensets(st.sampled_from([None, "sev3"]))),
                title=draw(st.none() | st.sampled_from(PATTERNS)),
                max_matches=draw(st.integers(1, 30)),
            )
        )
    return out


def oracle_matches(rule: Rule, c: Candidate) -> bool:
    """The filter of docs/rules.md, written out plainly."""
    return (
        c.status in ("triggered", "acknowledged")
        and c.status in rule.statuses
        and (
            rule.older_than is None or (c.created is not None and NOW - c.created > rule.older_than)
        )
        and (rule.title is None or re.search(rule.title, c.title or "") is not None)
        and (rule.priority is None or c.priority in rule.priority)
        and (rule.severity is None or c.severity in rule.severity)
    )


@settings(max_examples=examples(300))
@given(rules=rules(), pool=candidates(), explicit_ids=st.sets(st.sampled_from(["a-1", "b-2"])))
def test_the_expansion_equals_the_oracle_filter(
    rules: list[Rule], pool: list[Candidate], explicit_ids: set[str]
) -> None:
    explicit: dict[str, dict[str, Any]] = {cid: {"priority": "p1"} for cid in explicit_ids}
    matched = {r.name: sorted(c.counter_id for c in pool if oracle_matches(r, c)) for r in rules}
    over = [r.name for r in rules if len(matched[r.name]) > r.max_matches]
    wanted: dict[str, dict[str, set[Any]]] = {}
    for rule in rules:
        if rule.name in over:
            continue
        for cid in matched[rule.name]:
            for name, value in rule.set.items():
                if name not in explicit.get(cid, {}):
                    wanted.setdefault(cid, {}).setdefault(name, set()).add(value)
    conflicts = any(len(v) > 1 for fields in wanted.values() for v in fields.values())
    if over or conflicts:
        with pytest.raises(RuleError) as caught:
            expand(rules, pool, explicit, NOW)
        for name in over:
            assert any(
                f"rule {name} matches {len(matched[name])}" in m for m in caught.value.messages
            )
        return
    result = expand(rules, pool, explicit, NOW)
    assert result.matches == matched
    assert result.incidents == {
        cid: {name: next(iter(values)) for name, values in fields.items()}
        for cid, fields in wanted.items()
    }
    resolved = {c.counter_id for c in pool if c.status == "resolved"}
    assert not resolved & set(result.incidents)
    for cid, fields in result.incidents.items():
        # explicit entries win, field by field; a rule is never public and never escalates
        assert not set(fields) & set(explicit.get(cid, {}))
        assert fields.get("public_sharing", False) is False and "escalations" not in fields
        merged = result.merged(explicit)[cid]
        assert merged == {**fields, **explicit.get(cid, {})}
        # the rule named for a field is one that matched it and sets that value
        for name, rule_name in result.rules[cid].items():
            rule = next(r for r in rules if r.name == rule_name)
            assert cid in matched[rule_name] and rule.set[name] == fields[name]


@settings(max_examples=100)
@given(rules=rules(), pool=candidates())
def test_applying_the_expansion_twice_changes_nothing(
    rules: list[Rule], pool: list[Candidate]
) -> None:
    try:
        first = expand(rules, pool, {}, NOW)
    except RuleError:
        return
    once = plan(first.incidents, {}, rules=first.rules)
    for change in once.changes:
        assert change.rule == first.rules[change.incident][change.field]
    # The journal after applying: every desired value recorded.
    journal = {cid: dict(fields) for cid, fields in first.incidents.items()}
    again = plan(first.incidents, journal, rules=first.rules)
    assert not again.operations and not list(again.changes) and not again.forget


def stale(cid: str, **fields: Any) -> Candidate:
    return Candidate(cid, fields.pop("status", "triggered"), "disk usage", NOW - 20 * DAY, **fields)


def rule(name: str, **fields: Any) -> Rule:
    return Rule(
        name=name,
        source=f"states/{name}.yaml",
        statuses=frozenset(fields.pop("statuses", ["triggered", "acknowledged"])),
        set=fields.pop("set", {"status": "resolved"}),
        **fields,
    )


def test_two_rules_setting_one_field_differently_name_both_and_the_incident() -> None:
    rules = [rule("low", set={"priority": "p5"}), rule("lower", set={"priority": "p4"})]
    with pytest.raises(RuleError) as caught:
        expand(rules, [stale("x-1")], {}, NOW)
    assert caught.value.messages == [
        "incident x-1: rules low (states/low.yaml) and lower (states/lower.yaml) set priority "
        "to p5 and p4"
    ]
    # The same value from both: no conflict; the first rule by name is named.
    same = [rule("b", set={"priority": "p5"}), rule("a", set={"priority": "p5"})]
    assert expand(same, [stale("x-1")], {}, NOW).rules == {"x-1": {"priority": "a"}}
    # An explicit entry holding the field settles it.
    assert expand(rules, [stale("x-1")], {"x-1": {"priority": "p1"}}, NOW).incidents == {}


def test_a_rule_over_its_max_matches_names_the_rule_and_the_count() -> None:
    pool = [stale(f"x-{n}") for n in range(5)]
    with pytest.raises(RuleError) as caught:
        expand([rule("sweep", max_matches=4)], pool, {}, NOW)
    assert caught.value.messages == [
        "states/sweep.yaml: rule sweep matches 5 open incidents, more than its max_matches "
        "of 4; nothing was planned"
    ]
    assert expand([rule("sweep", max_matches=5)], pool, {}, NOW).matches["sweep"] == [
        f"x-{n}" for n in range(5)
    ]


def test_unknown_priority_is_read_only_when_a_rule_matches_on_it() -> None:
    pool = [
        stale("x-1"),
        stale("x-2", priority="p5"),
        Candidate("x-3", "triggered", "cpu", NOW - 20 * DAY),
    ]
    by_priority = rule("p", priority=frozenset(["p5", None]), title="^disk")
    assert undecided([rule("any")], pool, NOW) == []
    # x-3's title already rules it out: no read for it.
    assert undecided([by_priority], pool, NOW) == ["x-1"]
    with pytest.raises(RuleError, match="incident x-1: rule p matches on priority"):
        expand([by_priority], pool, {}, NOW)
    assert pool[0].priority is UNKNOWN


def test_a_rule_needing_a_title_or_trigger_time_the_list_lacks_is_an_error() -> None:
    bare = Candidate("x-1", "triggered")
    with pytest.raises(RuleError) as caught:
        undecided([rule("old", older_than=DAY), rule("t", title="x")], [bare], NOW)
    assert caught.value.messages == [
        "incident x-1: rule old matches on its trigger time (NACK_at), which Spike did not report",
        "incident x-1: rule t matches on its title, which Spike did not report",
    ]


def test_older_than_is_strict_and_resolved_never_matches() -> None:
    exact = Candidate("x-1", "triggered", "t", NOW - DAY)
    older = Candidate("x-2", "acknowledged", "t", NOW - DAY - 1)
    gone = Candidate("x-3", "resolved", "t", NOW - 9 * DAY)
    got = expand([rule("old", older_than=DAY)], [exact, older, gone], {}, NOW)
    assert got.matches == {"old": ["x-2"]}


def test_a_rule_refuses_to_be_public_or_to_escalate() -> None:
    with pytest.raises(ValueError):
        rule("pub", set={"public_sharing": True})
    with pytest.raises(ValueError):
        rule("esc", set={"escalations": 1})
    with pytest.raises(ValueError):
        rule("res", statuses=["resolved"])


class _Counted(Candidate):
    """A candidate that counts how often a rule's match reads its fields."""

    reads = 0

    def value(self, name: str) -> Any:
        _Counted.reads += 1
        return super().value(name)


def test_undecided_then_expand_match_each_candidate_once() -> None:
    """The two passes over the open incidents (`undecided`, then `expand` with the same
    TitleSearches) match each candidate once; a candidate read again since is matched
    again."""
    rule = Rule(
        name="p4-to-p5",
        source="states/r.yaml",
        statuses=frozenset({"triggered"}),
        set={"priority": "p5"},
        priority=frozenset({"p4"}),
        max_matches=1000,
    )
    now = 1_800_000_000.0
    listed = [_Counted(f"i-{n:03}", "triggered", "t", now - 10, "p4") for n in range(50)]
    searches = TitleSearches()
    _Counted.reads = 0
    assert undecided([rule], listed, now, searches) == []
    assert _Counted.reads == 50
    reread = _Counted("i-000", "triggered", "t", now - 10, "p3")  # read again: now p3
    expansion = expand([rule], [reread, *listed[1:]], {}, now, searches)
    assert _Counted.reads == 51
    assert sorted(expansion.incidents) == [f"i-{n:03}" for n in range(1, 50)]
