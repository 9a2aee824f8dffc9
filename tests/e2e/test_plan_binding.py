"""A saved plan applies only where it was made for (docs/trust.md, Binding): end to end over
real loopback HTTP against a sandbox serving two teams.

Each scenario is one a signed plan got through before plans were bound: another team with a
fresh journal, a third fresh journal of the same team, a wrong --journal (reported as stale),
a replay of the same plan, and a migrated copy of the journal.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import KEY, cli, write_states

from reconciler.journal import open_journal
from reconciler.sandbox import SandboxServer

TEAM_A, TEAM_B = "team-a-0001", "team-b-0002"
PLAN_KEY = "k" * 32
#: Both teams have incident 42: counter ids are per team.
SEED = {TEAM_A: {"42": {"status": "NACK"}}, TEAM_B: {"42": {"status": "NACK"}}}


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(teams=SEED, api_key=KEY) as server:
        yield server


def spike(server: SandboxServer, team: str) -> dict[str, str]:
    return {
        "SPIKE_API_URL": server.url,
        "SPIKE_API_KEY": KEY,
        "SPIKE_TEAM_ID": team,
        "RECONCILE_PLAN_KEY": PLAN_KEY,
    }


def make_plan(
    server: SandboxServer, work: Path, desired: dict[str, Any], journal: Path, team: str = TEAM_A
) -> Path:
    """`plan --out` of `desired` against `journal`, signed, for `team`; the plan file."""
    write_states(work / "states", desired)
    out = work / "plan.json"
    code, stdout, stderr = cli(
        "plan", str(work / "states"), "--journal", str(journal), "--out", str(out),
        env=spike(server, team),
    )  # fmt: skip
    assert code == 0, stdout + stderr
    return out


def apply(server: SandboxServer, plan: Path, journal: Path, team: str) -> tuple[int, str, int]:
    """`apply PLAN --journal JOURNAL` as `team`: (exit code, output, calls it sent)."""
    before = len(server.calls)
    code, out, err = cli("apply", str(plan), "--journal", str(journal), env=spike(server, team))
    return code, out + err, len(server.calls) - before


def test_a_plan_for_team_a_is_refused_for_team_b_with_a_fresh_journal(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    plan = make_plan(
        sandbox, tmp_path, {"42": {"escalations": 1, "public_sharing": True}}, tmp_path / "a.jsonl"
    )
    body = json.loads(plan.read_text())
    assert body["team_id"] == TEAM_A
    assert body["journal"] == {"location": str(tmp_path / "a.jsonl"), "lineage": None, "serial": 0}
    code, out, calls = apply(sandbox, plan, tmp_path / "a.jsonl", TEAM_A)
    assert (code, calls) == (0, 2), out
    code, out, calls = apply(sandbox, plan, tmp_path / "b.jsonl", TEAM_B)
    assert code == 1
    assert f"made for another team: team id {TEAM_A}, not {TEAM_B}" in out
    assert "stale" not in out
    assert calls == 0
    assert sandbox.incidents(TEAM_B)["42"]["public_sharing"] is False
    assert sandbox.incidents(TEAM_B)["42"]["escalations"] == 0
    assert not (tmp_path / "b.jsonl").exists()  # refused before the journal is touched


def test_a_plan_for_a_fresh_journal_is_refused_by_a_third_fresh_journal(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    plan = make_plan(sandbox, tmp_path, {"42": {"escalations": 1}}, tmp_path / "a.jsonl")
    code, out, calls = apply(sandbox, plan, tmp_path / "a.jsonl", TEAM_A)
    assert (code, calls) == (0, 1), out
    code, out, calls = apply(sandbox, plan, tmp_path / "third.jsonl", TEAM_A)
    assert code == 1
    assert "made for another journal" in out
    assert str(tmp_path / "a.jsonl") in out
    assert calls == 0
    assert sandbox.incidents(TEAM_A)["42"]["escalations"] == 1
    assert not (tmp_path / "third.jsonl").exists()


def test_a_plan_for_a_fresh_journal_is_refused_once_that_journal_has_records(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    journal = tmp_path / "a.jsonl"
    plan = make_plan(sandbox, tmp_path, {"42": {"escalations": 1}}, journal)
    first = make_plan(sandbox, tmp_path / "other", {"42": {"priority": "p2"}}, journal)
    code, out, _ = apply(sandbox, first, journal, TEAM_A)
    assert code == 0, out
    code, out, calls = apply(sandbox, plan, journal, TEAM_A)
    assert code == 1
    assert "made for another journal" in out
    assert "before its journal existed" in out
    assert calls == 0
    assert sandbox.incidents(TEAM_A)["42"]["escalations"] == 0


def test_a_wrong_journal_is_another_journal_not_stale(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    mine, other = tmp_path / "mine.jsonl", tmp_path / "other.jsonl"
    for journal, priority in ((mine, "p3"), (other, "p4")):
        seeded = make_plan(
            sandbox, tmp_path / journal.stem, {"42": {"priority": priority}}, journal
        )
        assert apply(sandbox, seeded, journal, TEAM_A)[0] == 0
    plan = make_plan(sandbox, tmp_path, {"42": {"priority": "p1"}}, mine)
    code, out, calls = apply(sandbox, plan, other, TEAM_A)
    assert code == 1
    assert "made for another journal" in out
    assert "stale" not in out
    assert calls == 0
    assert sandbox.incidents(TEAM_A)["42"]["priority"] == "p4"


def test_a_plan_is_applied_once(sandbox: SandboxServer, tmp_path: Path) -> None:
    journal = tmp_path / "a.jsonl"
    plan = make_plan(sandbox, tmp_path, {"42": {"escalations": 1}}, journal)
    assert apply(sandbox, plan, journal, TEAM_A)[::2] == (0, 1)
    plan_id = json.loads(plan.read_text())["plan_id"]
    [start] = [r for r in open_journal(str(journal)).records() if r["kind"] == "apply-start"]
    assert start["plan_id"] == plan_id
    code, out, calls = apply(sandbox, plan, journal, TEAM_A)
    assert code == 1
    assert f"plan {plan_id} was already applied to this journal" in out
    assert "stale" not in out
    assert calls == 0
    assert sandbox.incidents(TEAM_A)["42"]["escalations"] == 1


def test_a_plan_whose_calls_all_failed_is_not_applied_again(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The call fails (Spike knows no incident 77), so the serial does not move: before
    # plan ids, the same plan file passed every check again and sent its calls again.
    journal = tmp_path / "a.jsonl"
    seeded = make_plan(sandbox, tmp_path / "seed", {"42": {"priority": "p3"}}, journal)
    assert apply(sandbox, seeded, journal, TEAM_A)[0] == 0
    plan = make_plan(
        sandbox, tmp_path, {"42": {"priority": "p3"}, "77": {"priority": "p2"}}, journal
    )
    code, out, calls = apply(sandbox, plan, journal, TEAM_A)
    assert (code, calls) == (1, 1), out
    code, out, calls = apply(sandbox, plan, journal, TEAM_A)
    assert code == 1
    assert "was already applied to this journal" in out
    assert calls == 0


def test_a_migrated_copy_refuses_the_plans_of_its_source(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    source, copy = tmp_path / "source.jsonl", tmp_path / "copy.jsonl"
    seeded = make_plan(sandbox, tmp_path / "seed", {"42": {"priority": "p3"}}, source)
    assert apply(sandbox, seeded, source, TEAM_A)[0] == 0
    plan = make_plan(sandbox, tmp_path, {"42": {"priority": "p3", "escalations": 3}}, source)
    code, out, err = cli("journal", "migrate", "--from", str(source), "--to", str(copy))
    assert code == 0, out + err
    code, out, calls = apply(sandbox, plan, copy, TEAM_A)
    assert code == 1
    assert "made for another journal" in out
    assert calls == 0
    # Nor does the source, which the migration retired (tests/e2e/test_migrate_retires.py).
    code, out, calls = apply(sandbox, plan, source, TEAM_A)
    assert (code, calls) == (1, 0), out
    assert f"this journal was migrated to {copy} on " in out
    assert sandbox.incidents(TEAM_A)["42"]["escalations"] == 0


def test_the_hint_after_plan_out_is_the_command_that_applies_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    write_states(tmp_path / "states", {"42": {"priority": "p2"}})
    journal, out = tmp_path / "my journal.jsonl", tmp_path / "the plan.json"
    code, stdout, _ = cli(
        "plan", str(tmp_path / "states"), "--journal", str(journal), "--out", str(out),
        env=spike(sandbox, TEAM_A),
    )  # fmt: skip
    assert code == 0
    hint = stdout.rsplit("Apply exactly it with: ", 1)[1].strip()
    assert hint == f"reconcile apply {shlex.quote(str(out))} --journal {shlex.quote(str(journal))}"
    code, applied, err = cli(*shlex.split(hint)[1:], env=spike(sandbox, TEAM_A))
    assert code == 0, applied + err
    assert sandbox.incidents(TEAM_A)["42"]["priority"] == "p2"


# ---------------------------------------------------------------------------------------------
# Plans of teams (format 2): each team's section is bound the same way


def project(work: Path, team_id: str = TEAM_A, journal: str = ".reconcile/alpha.jsonl") -> Path:
    write_states(work / "teams" / "alpha", {"42": {"escalations": 1, "public_sharing": True}})
    config = work / "reconcile.yaml"
    config.write_text(
        f"version: 1\nteams:\n  alpha:\n    team_id: {team_id}\n    journal: {journal}\n"
    )
    return config


def test_a_plan_of_teams_is_refused_for_another_team_id_or_journal(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = project(tmp_path)
    saved = tmp_path / "plan.json"
    code, out, err = cli(
        "plan", "--config", str(config), "--team", "alpha", "--out", str(saved),
        env=spike(sandbox, TEAM_A),
    )  # fmt: skip
    assert code == 0, out + err
    hint = out.rsplit("Apply exactly it with: ", 1)[1].strip()
    assert hint == f"reconcile apply {saved} --config {config} --team alpha"
    assert json.loads(saved.read_text())["plan_id"]
    before = len(sandbox.calls)
    project(tmp_path, team_id=TEAM_B)  # the same name now means team B
    code, out, err = cli(*shlex.split(hint)[1:], env=spike(sandbox, TEAM_A))
    assert code == 1
    assert f"team alpha: the plan was made for another team: team id {TEAM_A}" in err
    project(tmp_path, journal=".reconcile/fresh.jsonl")
    code, out, err = cli(*shlex.split(hint)[1:], env=spike(sandbox, TEAM_A))
    assert code == 1
    assert "team alpha: the plan was made for another journal: .reconcile/alpha.jsonl" in err
    assert "stale" not in err
    assert len(sandbox.calls) == before
    assert sandbox.incidents(TEAM_B)["42"]["public_sharing"] is False
    assert not (tmp_path / ".reconcile").exists()
    project(tmp_path)
    code, out, err = cli(*shlex.split(hint)[1:], env=spike(sandbox, TEAM_A))
    assert code == 0, out + err
    assert sandbox.incidents(TEAM_A)["42"]["escalations"] == 1


def test_a_plan_of_the_previous_release_is_refused_with_plan_again(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    from reconciler.planfile import digest

    journal = tmp_path / "a.jsonl"
    plan = make_plan(sandbox, tmp_path, {"42": {"escalations": 1}}, journal)
    body = json.loads(plan.read_text())
    # As the previous release wrote it: no plan id, team id or journal location, unsigned.
    for key in ("plan_id", "team_id", "signature"):
        del body[key]
    del body["journal"]["location"]
    body["plan_digest"] = digest(body)
    plan.write_text(json.dumps(body))
    env = {**spike(sandbox, TEAM_A), "RECONCILE_PLAN_KEY": None}
    code, _out, err = cli("apply", str(plan), "--journal", str(journal), env=env)
    assert code == 1
    assert "a plan file of an earlier version" in err and "plan again" in err
    assert sandbox.calls == []
    assert not journal.exists()


def test_a_journal_refuses_an_apply_start_with_a_malformed_plan_id(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    lines = [
        {"kind": "lineage", "lineage": "l-1", "format": 1, "at": "2026-01-01T00:00:00.000Z"},
        {"kind": "apply-start", "at": "2026-01-01T00:00:00.000Z", "plan": None,
         "operations": 0, "plan_id": "not a plan id"},
    ]  # fmt: skip
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, _out, err = cli("show", "--journal", str(journal))
    assert code == 1
    assert f"{journal}:2: malformed apply-start record" in err
