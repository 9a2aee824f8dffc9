"""Defects a hostile review found in rules (docs/rules.md), each reproduced."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import cli

from reconciler.errors import RuleError
from reconciler.rules import Candidate, Rule, TitleSearches, expand, undecided

NOW = 1_800_000_000.0


def test_a_title_pattern_that_backtracks_for_ever_is_stopped_and_named() -> None:
    rule = Rule(
        name="noisy",
        source="states/r.yaml",
        statuses=frozenset({"triggered"}),
        set={"priority": "p5"},
        title="^(a|aa)+$",
    )
    title = "a" * 40 + "!"  # ~2^40 ways to split: hours with Python's re
    started = time.monotonic()
    with pytest.raises(RuleError) as caught:
        expand([rule], [Candidate("a-1", "triggered", title, NOW - 10)], {}, NOW)
    assert time.monotonic() - started < 5
    [message] = caught.value.messages
    assert message.startswith("incident a-1: rule noisy: its title pattern took more than")


def backtracking(**match: object) -> Rule:
    return Rule(
        name="noisy",
        source="states/r.yaml",
        statuses=frozenset({"triggered"}),
        set={"priority": "p5"},
        title="^(a|aa)+$",
        max_matches=1000,
        **match,
    )


class Meter:
    """A CPU meter for TitleSearches that moves 0.25 s on each reading: a search costs 0.25."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return self.readings * 0.25


def storm(n: int, title: str = "a" * 22 + "!") -> list[Candidate]:
    return [Candidate(f"a-{i:03}", "triggered", title, NOW - 10) for i in range(n)]


def test_a_rules_title_searches_share_a_budget_and_stop_when_it_is_spent() -> None:
    meter = Meter()
    with pytest.raises(RuleError) as caught:
        expand([backtracking()], storm(200), {}, NOW, TitleSearches(meter=meter))
    # Each search stays under its own limit; the fifth takes the rule over the default 1 s,
    # and the other 195 titles are not searched.
    assert meter.readings == 10
    assert caught.value.messages == [
        "states/r.yaml: rule noisy: its title pattern took more than 1 s of CPU over the "
        "open incidents' titles; simplify it (nested repetition such as (a+)+ can take "
        "exponential time); nothing was planned"
    ]


def test_the_budget_is_cpu_time_over_many_titles_that_each_pass_their_limit() -> None:
    started = time.process_time()
    with pytest.raises(RuleError, match=r"rule noisy: its title pattern took more than 0\.05 s"):
        expand([backtracking()], storm(200), {}, NOW, TitleSearches(budget=0.05))
    assert time.process_time() - started < 0.5  # the 200 searches would take over 1 s


def test_both_passes_over_the_candidates_search_each_title_once() -> None:
    meter = Meter()
    searches = TitleSearches(budget=10, meter=meter)
    rule = backtracking(priority=frozenset({None}))
    candidates = storm(5, title="aaaa")
    assert undecided([rule], candidates, NOW, searches) == [c.counter_id for c in candidates]
    done = [Candidate(c.counter_id, c.status, c.title, c.created, None) for c in candidates]
    expanded = expand([rule], done, {}, NOW, searches)
    assert expanded.incidents == {c.counter_id: {"priority": "p5"} for c in candidates}
    assert meter.readings == 10


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ("a{99999999999}", "rule r: match.title is not a valid regular expression"),
        ("(unclosed", "rule r: match.title is not a valid regular expression"),
    ],
)
def test_a_bad_title_pattern_is_a_problem_at_its_place(
    tmp_path: Path, title: str, message: str
) -> None:
    file = tmp_path / "r.yaml"
    file.write_text(
        "version: 1\nrules:\n  r:\n    match:\n      status: [triggered]\n"
        f"      title: '{title}'\n    set: {{priority: p5}}\n"
    )
    code, _, err = cli("validate", str(file))
    assert code == 1
    assert err.startswith(f"{file}:6:14: {message}"), err


@pytest.mark.parametrize("name", ["1", "22", "-3"])
def test_a_rule_named_with_a_number_is_a_problem_not_an_ignored_file(
    tmp_path: Path, name: str
) -> None:
    file = tmp_path / "m.yaml"
    file.write_text(
        "version: 1\nincidents:\n  m-1: {status: resolved}\nrules:\n"
        f"  {name}: {{match: {{status: [triggered]}}, set: {{priority: p3}}}}\n"
    )
    code, out, err = cli("validate", str(file))
    assert code == 1, out
    assert f"{file}:5:3: " in err and "rule name" in err, err


def test_a_plain_plan_never_unmanages_a_field_a_rule_set(tmp_path: Path) -> None:
    from helpers import KEY, TEAM, HandClock, env

    from reconciler.sandbox import SandboxServer

    states = tmp_path / "states"
    states.mkdir()
    (states / "s.yaml").write_text(
        "version: 1\nincidents:\n  s-1: {priority: p1}\nrules:\n  ack-disk:\n"
        "    match: {status: [triggered], title: '^disk'}\n    set: {status: acknowledged}\n"
    )
    journal = str(tmp_path / "j.jsonl")
    seed = {"s-1": {"title": "disk full"}}
    with (
        SandboxServer(seed, api_key=KEY, team_id=TEAM, clock=HandClock(time.time())) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        code, out, err = cli("apply", str(states), "--journal", journal, "--auto-approve")
        assert code == 0, out + err
        assert server.incidents()["s-1"]["status"] == "ACK"
        code, out, _ = cli("plan", str(states), "--journal", journal, "--detailed-exitcode")
        assert code == 0, out
        assert "stop managing" not in out


def test_a_path_naming_a_file_of_rules_plans_what_its_rules_expand_to(tmp_path: Path) -> None:
    from helpers import KEY, HandClock, env

    from reconciler.sandbox import SandboxServer

    pay = "64b7f0c2e1d3a4b5c6d7e8f9"
    folder = tmp_path / "teams" / "payments"
    folder.mkdir(parents=True)
    (folder / "r.yaml").write_text(
        "version: 1\nrules:\n  low:\n    match: {status: [triggered]}\n    set: {priority: p5}\n"
    )
    (folder / "other.yaml").write_text("version: 1\nincidents:\n  pa-9: {priority: p1}\n")
    config = tmp_path / "reconcile.yaml"
    config.write_text(f"version: 1\nteams:\n  payments: {{team_id: {pay}}}\n")
    seed = {pay: {"pa-1": {}, "pa-2": {}, "pa-9": {"status": "ACK"}}}
    with (
        SandboxServer(teams=seed, api_key=KEY, clock=HandClock(time.time())) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=""),
    ):
        code, out, err = cli(
            "plan", "--config", str(config), "--refresh", str(folder / "r.yaml"),
            "--format", "json",
        )  # fmt: skip
        assert code == 0, err
        changes = json.loads(out)["teams"]["payments"]["changes"]
        assert {(c["incident"], c.get("rule")) for c in changes} == {
            ("pa-1", "low"),
            ("pa-2", "low"),
        }
