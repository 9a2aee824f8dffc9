"""Teams are independent (docs/teams.md): for generated teams, each with state files and a
journal, the plan of all teams is, team by team, the plan that team gets on its own; and
applying it over real HTTP converges every team, so a second apply changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import KEY, cli, env, plan_to_json, write_states
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config import load_project
from reconciler.journal import open_journal
from reconciler.sandbox import SandboxServer
from reconciler.usecases.plan import PlanRequest, run_plan
from reconciler.usecases.project import select

NAMES = ["alpha", "beta", "gamma"]
IDS = ["1", "2", "shared-9"]
API = {"triggered": "NACK", "acknowledged": "ACK"}
Team = tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]


@st.composite
def a_team(draw: st.DrawFn) -> Team:
    """(journaled = live incidents, desired incidents) of one team."""
    journaled: dict[str, dict[str, Any]] = {}
    desired: dict[str, dict[str, Any]] = {}
    for cid in draw(st.lists(st.sampled_from(IDS), unique=True)):
        journaled[cid] = {
            "status": draw(st.sampled_from(list(API))),
            "priority": draw(st.sampled_from([None, "p1", "p3"])),
            "public_sharing": draw(st.booleans()),
        }
    for cid in draw(st.lists(st.sampled_from(IDS), unique=True)):
        fields: dict[str, Any] = {}
        if draw(st.booleans()):
            fields["status"] = draw(st.sampled_from(["triggered", "acknowledged", "resolved"]))
        if draw(st.booleans()):
            fields["priority"] = draw(st.sampled_from([None, "p2", "p3"]))
        if draw(st.booleans()):
            fields["severity"] = draw(st.sampled_from([None, "sev1"]))
        if draw(st.booleans()):
            fields["escalations"] = draw(st.integers(0, 2))
        desired[cid] = fields
    return journaled, desired


TEAMS = st.dictionaries(st.sampled_from(NAMES), a_team(), min_size=1, max_size=3)
PROPERTY = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def lay_out(work: Path, teams: dict[str, Team]) -> str:
    """reconcile.yaml, each team's state files and journal; the config's path."""
    lines = ["version: 1", "teams:"]
    for name, (journaled, desired) in sorted(teams.items()):
        lines += [f"  {name}:", f"    team_id: id-{name}"]
        write_states(work / "teams" / name, desired)
        if journaled:
            journal = open_journal(str(work / ".reconcile" / f"{name}.jsonl"))
            with journal.open_for_apply(0, "seed") as writer:
                writer.set_values(journaled, "refresh")
    config = work / "reconcile.yaml"
    config.write_text("\n".join(lines) + "\n")
    return str(config)


@PROPERTY
@given(teams=TEAMS)
def test_the_plan_of_all_teams_is_each_teams_own_plan(
    tmp_path_factory: pytest.TempPathFactory, teams: dict[str, Team]
) -> None:
    work = tmp_path_factory.mktemp("union")
    project = load_project(lay_out(work, teams))
    runs = select(project, env={}).runs
    together = run_plan([PlanRequest(run.paths, run.journal, team=run.team) for run in runs])
    assert [team.name for team in together.teams] == sorted(teams)
    for team in together.teams:
        name = str(team.name)
        # The same files and journal as one team of its own, without reconcile.yaml.
        alone = run_plan(
            [PlanRequest((str(work / "teams" / name),), str(work / ".reconcile" / f"{name}.jsonl"))]
        )
        mine, theirs = plan_to_json(team.made.plan), plan_to_json(alone.only.plan)
        assert mine == theirs
    assert together.summary()["changes"] == sum(len(t.made.plan.changes) for t in together.teams)


@PROPERTY
@given(teams=TEAMS)
def test_applying_the_plan_of_teams_twice_changes_nothing(
    tmp_path_factory: pytest.TempPathFactory, teams: dict[str, Team]
) -> None:
    work = tmp_path_factory.mktemp("twice")
    config = lay_out(work, teams)
    seed = {
        f"id-{name}": {
            cid: {**fields, "status": API[fields["status"]]} for cid, fields in journaled.items()
        }
        | {cid: {} for cid in desired if cid not in journaled}
        for name, (journaled, desired) in teams.items()
    }
    with (
        SandboxServer(teams=seed, api_key=KEY) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=""),
    ):
        code, out, err = cli("apply", "--config", config, "--auto-approve")
        assert code == 0, out + err
        calls = len(server.calls)
        journals = {
            name: (work / ".reconcile" / f"{name}.jsonl").read_bytes()
            for name in teams
            if (work / ".reconcile" / f"{name}.jsonl").exists()
        }
        code, out, err = cli("apply", "--config", config, "--auto-approve")
        assert code == 0, out + err
        assert len(server.calls) == calls
        for name, before in journals.items():
            assert (work / ".reconcile" / f"{name}.jsonl").read_bytes() == before, name
        code, out, _ = cli("plan", "--config", config, "--detailed-exitcode")
        assert code == 0, out
