"""The unsafe rule with rules in play, end to end over real loopback HTTP against the sandbox
(docs/rules.md, docs/plan-format.md Unsafe plans): a rule match that changes nothing dilutes
nothing, a rule change counts whatever the open lists leave out, the incidents a rule resolved
are forgotten quietly afterwards, and the warning says which incidents it counted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import KEY, TEAM, HandClock, cli, env

from reconciler.journal import open_journal
from reconciler.sandbox import SandboxServer

STALE_DISK = """\
rules:
  close-stale-disk:
    match:
      status: [triggered, acknowledged]
      older_than: 14d
      title: "^disk usage"
    set:
      status: resolved
"""


@pytest.fixture
def clock() -> HandClock:
    # Rules compare ages with the real clock: the sandbox's starts there.
    return HandClock(time.time())


@pytest.fixture
def sandbox(request: pytest.FixtureRequest, clock: HandClock) -> Iterator[SandboxServer]:
    seed: dict[str, dict[str, Any]] = request.param
    with (
        SandboxServer(seed, api_key=KEY, team_id=TEAM, clock=clock) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        yield server


def changing(server: SandboxServer) -> list[dict[str, Any]]:
    return [c for c in server.calls if c["method"] != "GET"]


def write(folder: Path, name: str, text: str) -> str:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return str(folder)


JOURNALED = {f"j-{n:02}": {"title": "checkout latency", "priority": "p3"} for n in range(10)}
NOISE = {f"t-{n:02}": {"title": "noisy check"} for n in range(30)}


@pytest.mark.parametrize("sandbox", [{**JOURNALED, **NOISE}], indirect=True)
def test_a_rule_that_changes_nothing_does_not_dilute_the_unsafe_rule(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    folder = tmp_path / "states"
    write(
        folder,
        "incidents.yaml",
        "incidents:\n" + "".join(f"  {cid}:\n    priority: p3\n" for cid in JOURNALED),
    )
    journal = str(tmp_path / "j.jsonl")
    code, _, err = cli("apply", str(folder), "--auto-approve", "--journal", journal)
    assert code == 0, err
    assert len(open_journal(journal).read().incidents) == 10
    # All ten priorities changed in the dashboard; then a rule that matches thirty incidents
    # and changes none of them (they are triggered already).
    sandbox.set_incidents({cid: {"priority": "p1"} for cid in JOURNALED})
    write(
        folder,
        "rules.yaml",
        "rules:\n  keep-noise-open:\n    match: {status: [triggered], title: '^noisy'}\n"
        "    set: {status: triggered}\n",
    )
    sandbox.clear_calls()
    code, out, err = cli("apply", str(folder), "--refresh", "--auto-approve", "--journal", journal)
    assert code == 1, (out, err)
    assert "the plan is marked unsafe" in err
    assert changing(sandbox) == []
    assert {i["priority"] for cid, i in sandbox.incidents().items() if cid in JOURNALED} == {"p1"}

    # The saved plan of the same inputs says the same, and so does its apply.
    saved = tmp_path / "plan.json"
    code, out, err = cli(
        "plan", str(folder), "--refresh", "--journal", journal, "--out", str(saved)
    )
    assert code == 0, err
    body = json.loads(saved.read_text())
    assert body["unsafe"] is True
    assert (
        "unsafe plan: it changes or forgets recorded values on 10 of 10 journaled incidents"
        in body["warnings"][-1]
    )
    code, out, err = cli("apply", str(saved), "--journal", journal)
    assert code == 1 and "the plan is marked unsafe" in err
    assert changing(sandbox) == []


PUBLIC = {f"p-{n:03}": {"title": "status page", "public_sharing": True} for n in range(100)}


@pytest.mark.parametrize("sandbox", [PUBLIC], indirect=True)
def test_a_rule_hiding_a_hundred_public_pages_is_unsafe(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    folder = write(
        tmp_path / "states",
        "rules.yaml",
        "rules:\n  hide-pages:\n    match: {status: [triggered], title: '^status page'}\n"
        "    set: {public_sharing: false}\n    max_matches: 200\n",
    )
    journal = tmp_path / "j.jsonl"
    saved = tmp_path / "plan.json"
    code, out, err = cli(
        "plan", folder, "--refresh", "--journal", str(journal), "--out", str(saved)
    )
    assert code == 0, err
    body = json.loads(saved.read_text())
    assert body["unsafe"] is True
    assert body["warnings"][-1].startswith(
        "unsafe plan: it changes or forgets recorded values on 100 of 100 incidents: "
        "journaled, or changed by a rule (more than 30%)"
    )
    for args in (("apply", folder), ("apply", str(saved))):
        code, out, err = cli(*args, "--auto-approve", "--journal", str(journal))
        assert code == 1, (out, err)
        assert "the plan is marked unsafe" in err
    assert changing(sandbox) == []
    assert all(i["public_sharing"] for i in sandbox.incidents().values())
    assert not journal.exists() or open_journal(str(journal)).read().incidents == {}


STORM = {f"s-{n:02}": {"title": "disk usage 97%", "age": "20d"} for n in range(31)}


@pytest.mark.parametrize("sandbox", [STORM], indirect=True)
def test_after_a_rule_resolved_a_storm_the_next_apply_is_a_quiet_no_op(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    folder = write(tmp_path / "states", "rules.yaml", STALE_DISK)
    journal = str(tmp_path / "j.jsonl")
    # An empty journal: the warning says what it counted.
    code, out, err = cli("plan", folder, "--refresh", "--journal", journal)
    assert code == 0, err
    assert (
        "warning: unsafe plan: it changes or forgets recorded values on 31 of 31 incidents: "
        "journaled, or changed by a rule (more than 30%); apply refuses it without --force"
    ) in out
    assert "journaled incidents" not in out
    code, out, err = cli("apply", folder, "--auto-approve", "--journal", journal, "--force")
    assert code == 0, err
    assert all(i["status"] == "RES" for i in sandbox.incidents().values())
    assert len(open_journal(journal).read().rules) == 31

    # The resolved incidents left the open lists: a quiet forget, labelled, not unsafe.
    sandbox.clear_calls()
    code, out, err = cli("plan", folder, "--refresh", "--journal", journal)
    assert code == 0, err
    assert "  - forget s-00  (resolved, left rule close-stale-disk)" in out
    assert "in no state file" not in out and "unsafe" not in out
    saved = tmp_path / "plan.json"
    code, _, err = cli("plan", folder, "--refresh", "--journal", journal, "--out", str(saved))
    assert code == 0, err
    body = json.loads(saved.read_text())
    assert body["forget"] == sorted(STORM)
    assert body["forget_left_rule"] == {cid: "close-stale-disk" for cid in STORM}
    assert body["unsafe"] is False
    code, out, err = cli("plan", folder, "--refresh", "--journal", journal, "--format", "markdown")
    assert code == 0, err
    assert "| `s-00` | _forget_ | journaled | _resolved, left rule `close-stale-disk`_ |" in out
    assert "not in any file" not in out

    code, out, err = cli("apply", folder, "--auto-approve", "--journal", journal)
    assert code == 0, (out, err)
    assert changing(sandbox) == []
    assert "31 forgotten" in out
    state = open_journal(journal).read()
    assert state.incidents == {} and state.rules == {}
    assert state.kept == {cid: {"status": "resolved"} for cid in STORM}
    code, out, err = cli("apply", folder, "--auto-approve", "--journal", journal)
    assert (code, changing(sandbox)) == (0, [])
    assert "No changes" in out


@pytest.mark.parametrize("sandbox", [STORM], indirect=True)
def test_a_saved_plan_forgetting_what_a_rule_resolved_applies_cleanly(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    folder = write(tmp_path / "states", "rules.yaml", STALE_DISK)
    journal = str(tmp_path / "j.jsonl")
    code, _, err = cli("apply", folder, "--auto-approve", "--journal", journal, "--force")
    assert code == 0, err
    saved = tmp_path / "plan.json"
    code, _, err = cli("plan", folder, "--refresh", "--journal", journal, "--out", str(saved))
    assert code == 0, err
    sandbox.clear_calls()
    code, out, err = cli("apply", str(saved), "--journal", journal)
    assert code == 0, (out, err)
    assert changing(sandbox) == []
    assert open_journal(journal).read().kept == {cid: {"status": "resolved"} for cid in STORM}


BACKTRACKING = {f"a-{n:03}": {"title": "a" * 22 + "!"} for n in range(200)}


@pytest.mark.parametrize("sandbox", [BACKTRACKING], indirect=True)
def test_a_rules_title_searches_stop_at_their_budget(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    from reconciler.errors import RuleError
    from reconciler.states.loader import load
    from reconciler.usecases.rules import evaluate_rules

    folder = write(
        tmp_path / "states",
        "rules.yaml",
        "rules:\n  noisy:\n    match: {status: [triggered], title: '^(a|aa)+$'}\n"
        "    set: {priority: p5}\n    max_matches: 1000\n",
    )
    desired = load([folder])
    started = time.process_time()
    with pytest.raises(RuleError) as caught:
        evaluate_rules(desired.rules, desired.incidents, 4, title_budget=0.05)
    # Each title passes its own 0.1 s; together they would take over 1 s of CPU.
    assert time.process_time() - started < 0.5
    assert caught.value.messages == [
        f"{folder}/rules.yaml: rule noisy: its title pattern took more than 0.05 s of CPU over "
        "the open incidents' titles; simplify it (nested repetition such as (a+)+ can take "
        "exponential time); nothing was planned"
    ]
    assert changing(sandbox) == []
    assert {c["path"].split("?")[0] for c in sandbox.calls} == {
        "/incidents/triggered",
        "/incidents/acknowledged",
    }
