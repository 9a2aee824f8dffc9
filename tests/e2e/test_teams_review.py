"""Defects a hostile review found in the teams feature, each reproduced (docs/teams.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from github_fake import REPO, TOKEN, FakeGitHub, serve_fake_github
from helpers import KEY, cli, env, with_params, write_states

from reconciler.config import load_project
from reconciler.errors import ProjectFileError
from reconciler.model import Change, Operation
from reconciler.planner import Plan
from reconciler.render import plan_markdown
from reconciler.sandbox import SandboxServer
from reconciler.usecases.plan import MadePlan, ProjectPlan, TeamPlan
from reconciler.usecases.project import select

PAY, PLAT = "64b7f0c2e1d3a4b5c6d7e8f9", "64b7f0c2e1d3a4b5c6d7e8fa"


def two_teams(work: Path, payments: str = "", platform: str = "") -> str:
    config = work / "reconcile.yaml"
    config.write_text(
        f"version: 1\nteams:\n  payments: {{team_id: {PAY}{payments}}}\n"
        f"  platform: {{team_id: {PLAT}{platform}}}\n"
    )
    return str(config)


def test_a_link_to_another_teams_file_is_refused_before_any_call(tmp_path: Path) -> None:
    write_states(tmp_path / "teams" / "platform", {"shared-9": {"priority": "p3"}})
    write_states(tmp_path / "teams" / "payments", {"pay-1": {"status": "resolved"}})
    link = tmp_path / "teams" / "payments" / "link.yaml"
    os.symlink("../platform/incidents.yaml", link)
    config = two_teams(tmp_path)
    seed = {PAY: {"shared-9": {"priority": "p1"}, "pay-1": {}}, PLAT: {"shared-9": {}}}
    with (
        SandboxServer(teams=seed, api_key=KEY) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY),
    ):
        for command in (["validate"], ["plan"], ["apply", "--auto-approve", "--team", "payments"]):
            code, _, err = cli(*command, "--config", config)
            assert code == 1, command
            assert (
                "link.yaml: this file is under the paths of team payments but is a file of" in err
            )
            assert "team platform" in err
        assert not server.calls
        assert server.incidents(PAY)["shared-9"]["priority"] == "p1"


def test_two_teams_never_share_a_postgresql_journal_however_it_is_spelled(
    tmp_path: Path,
) -> None:
    for first, second in (
        ("postgresql://u@db/r?namespace=platform", "postgresql://u@db/r"),
        ("postgres://u@db/r?namespace=x", "postgresql://v@DB:5432/r?namespace=x"),
    ):
        config = two_teams(tmp_path, f', journal: "{first}"', f', journal: "{second}"')
        code, _, err = cli("validate", "--config", config)
        assert code == 1, (first, second)
        assert "teams payments and platform have the same journal" in err
    config = two_teams(
        tmp_path, ', journal: "postgresql://u@db/r"', ', journal: "postgresql://u@db/r"'
    )
    project = load_project(config)
    assert project.teams["payments"].journal == "postgresql://u@db/r?namespace=payments"
    assert project.teams["platform"].journal == "postgresql://u@db/r?namespace=platform"


def test_one_postgresql_journal_spelled_by_address_and_by_name_is_refused_before_any_call(
    tmp_path: Path, server_url: str, namespace: str, admin: Any
) -> None:
    """127.0.0.1 and localhost reach one server: after payments applied, platform's plan
    would read payments' journal as its own (and forget its incidents)."""
    by_address = with_params(server_url, namespace=namespace)
    assert "@127.0.0.1:" in by_address
    by_name = by_address.replace("@127.0.0.1:", "@localhost:")
    write_states(tmp_path / "teams" / "payments", {"pay-1": {"status": "resolved"}})
    write_states(tmp_path / "teams" / "platform", {"plat-1": {"priority": "p2"}})
    config = tmp_path / "reconcile.yaml"
    config.write_text(
        f'version: 1\nteams:\n  payments: {{team_id: {PAY}, journal: "{by_address}"}}\n'
    )
    seed: dict[str, dict[str, dict[str, Any]]] = {PAY: {"pay-1": {}}, PLAT: {"plat-1": {}}}
    with (
        SandboxServer(teams=seed, api_key=KEY) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY),
    ):
        os.environ.pop("SPIKE_TEAM_ID", None)
        code, out, err = cli("apply", "--config", str(config), "--auto-approve")
        assert code == 0, out + err
        records = admin.execute(
            "SELECT count(*) FROM reconcile_journal WHERE namespace = %s", (namespace,)
        ).fetchone()[0]
        assert records > 0
        config.write_text(
            config.read_text() + f'  platform: {{team_id: {PLAT}, journal: "{by_name}"}}\n'
        )
        server.clear_calls()
        column = len(f"  platform: {{team_id: {PLAT}, journal: ") + 1
        expected = (
            f"{config.name}:4:{column}: teams payments and platform have the same journal; "
            "each team needs its own"
        )
        for command in (
            ["validate"],
            ["plan", "--team", "platform"],
            ["apply", "--team", "platform", "--auto-approve"],
        ):
            code, out, err = cli(*command, "--config", str(config))
            assert code == 1, command
            assert expected in err, err
            assert "Traceback" not in err and "Plan:" not in out
        assert server.calls == []
        assert server.incidents(PLAT)["plat-1"]["priority"] != "p2"
        assert (
            admin.execute(
                "SELECT count(*) FROM reconcile_journal WHERE namespace = %s", (namespace,)
            ).fetchone()[0]
            == records
        )


def test_a_journal_file_that_became_another_teams_is_refused_when_journals_are_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compared by device and inode once they exist, and checked again at each command's
    selection of teams: a hard link made after reconcile.yaml was read is one journal."""
    monkeypatch.chdir(tmp_path)
    config = two_teams(tmp_path, ', journal: "a.jsonl"', ', journal: "b.jsonl"')
    project = load_project(config)
    assert select(project).runs  # two journals, neither there yet
    (tmp_path / "a.jsonl").write_text("")
    os.link(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    column = len(f"  platform: {{team_id: {PLAT}, journal: ") + 1
    with pytest.raises(ProjectFileError) as caught:
        select(project)
    assert [str(p) for p in caught.value.problems] == [
        f"{config}:4:{column}: teams payments and platform have the same journal; "
        "each team needs its own"
    ]


def test_reconcile_comment_posts_a_plan_of_teams(tmp_path: Path) -> None:
    write_states(tmp_path / "teams" / "payments", {"pay-1": {"status": "resolved"}})
    write_states(tmp_path / "teams" / "platform", {"plat-1": {"priority": "p2"}})
    config = two_teams(tmp_path)
    plan_file = str(tmp_path / "plan.json")
    assert cli("plan", "--config", config, "--out", plan_file).code == 0
    with serve_fake_github() as github:
        variables = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.url}
        code, out, err = cli(
            "comment", "--plan", plan_file, "--repo", REPO, "--pr", "3", env=variables
        )
        assert code == 0, err
        [comment] = ours(github, 3)
    assert "| payments |" in comment["body"] and "Team platform: Plan:" in comment["body"]
    assert TOKEN not in out + err


def ours(github: FakeGitHub, pr: int) -> list[dict[str, str]]:
    return list(github.ours(pr))


def made(cid_count: int, drift: int = 0) -> MadePlan:
    changes = [Change(f"i-{n}", "priority", "p1", "p2", True) for n in range(cid_count)]
    ops = [
        Operation("POST", "/incidents/priority", {"priority": "p2", "ids": [c.incident]})
        for c in changes
    ]
    plan = Plan(None, 0, "sha256:x", cid_count, changes=changes, operations=ops)
    from reconciler.model import Drift

    plan.drift = [Drift(f"i-{n}", "status", "acknowledged", "triggered") for n in range(drift)]
    return MadePlan(plan, "2026-11-30T00:00:00Z")


@pytest.mark.parametrize(
    ("teams", "size", "drift"), [(1000, 1, 0), (300, 1, 0), (30, 60, 60), (4, 3000, 0)]
)
def test_the_markdown_of_many_teams_stays_under_githubs_limit(
    teams: int, size: int, drift: int
) -> None:
    plan = ProjectPlan(
        "now",
        [TeamPlan(f"team-{n:04d}", f"id-{n}", f"j-{n}", made(size, drift)) for n in range(teams)],
    )
    text = plan_markdown(plan)
    assert len(text) < 65_536 - 1_000, len(text)
    assert text.startswith("### spike-reconcile plan")
    assert "Total: " in text


def test_a_path_with_no_state_file_is_an_error_not_every_file(tmp_path: Path) -> None:
    write_states(tmp_path / "teams" / "payments", {"pay-1": {"status": "resolved"}})
    (tmp_path / "teams" / "payments" / "empty").mkdir()
    states = tmp_path / "states"
    states.mkdir()
    (states / "old.yaml").write_text(
        "version:   1\nincidents:\n    legacy-1:   {status: resolved}\n"
    )
    config = two_teams(tmp_path)
    before = (states / "old.yaml").read_text()
    for command in (["fmt"], ["apply", "--auto-approve"], ["plan"], ["validate"]):
        code, _, err = cli(
            *command, "--config", config, str(tmp_path / "teams" / "payments" / "empty")
        )
        assert code == 1, (command, err)
        assert "no state file under" in err
    assert (states / "old.yaml").read_text() == before


@pytest.mark.parametrize(
    "team", [', paths: ["\\0"]', ', paths: ["teams/a\\0x"]', ', journal: "\\0"']
)
def test_a_nul_byte_in_reconcile_yaml_is_a_problem_not_a_traceback(
    tmp_path: Path, team: str
) -> None:
    config = two_teams(tmp_path, team)
    code, _, err = cli("validate", "--config", config)
    assert code == 1
    assert err.startswith(f"{config}:3:"), err
    assert "Traceback" not in err


def test_a_teams_key_variable_is_named_in_its_errors(tmp_path: Path) -> None:
    write_states(tmp_path / "teams" / "payments", {"pay-1": {"status": "resolved"}})
    write_states(tmp_path / "teams" / "platform", {})
    config = two_teams(tmp_path, ", api_key_env: SPIKE_PAY_KEY")
    code, _, err = cli(
        "apply",
        "--config",
        config,
        "--auto-approve",
        env={"SPIKE_PAY_KEY": "bad\nkey", "SPIKE_API_URL": "http://127.0.0.1:9"},
    )
    assert code == 1
    assert "SPIKE_PAY_KEY" in err and "SPIKE_API_KEY" not in err
    assert json.dumps("bad\nkey") not in err


def test_a_path_narrows_a_teams_plan_without_forgetting_its_other_files(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "teams" / "payments"
    write_states(folder, {"pay-1": {"status": "resolved"}})
    (folder / "more.yaml").write_text("version: 1\nincidents:\n  pay-3: {priority: p2}\n")
    write_states(tmp_path / "teams" / "platform", {})
    config = two_teams(tmp_path)
    seed: dict[str, dict[str, dict[str, object]]] = {
        PAY: {"pay-1": {}, "pay-2": {}, "pay-3": {}},
        PLAT: {},
    }
    with (
        SandboxServer(teams=seed, api_key=KEY) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY),
    ):
        assert cli("apply", "--config", config, "--auto-approve").code == 0
        (folder / "more.yaml").write_text("version: 1\nincidents:\n  pay-3: {priority: p4}\n")
        write_states(folder, {"pay-1": {"status": "resolved"}, "pay-2": {"severity": "sev1"}})
        code, out, err = cli("plan", "--config", config, str(folder / "incidents.yaml"))
        assert code == 0, err
        assert "pay-2" in out and "pay-3" not in out and "forget" not in out
        code, out, err = cli(
            "apply", "--config", config, "--auto-approve", str(folder / "incidents.yaml")
        )
        assert code == 0, err
        assert server.incidents(PAY)["pay-3"]["priority"] == "p2"  # not this run's file
        code, out, _ = cli("plan", "--config", config, "--detailed-exitcode")
        assert code == 2 and "pay-3" in out and "forget" not in out


def test_each_teams_drift_policy_is_followed(tmp_path: Path) -> None:
    write_states(tmp_path / "teams" / "payments", {"pay-1": {"status": "acknowledged"}})
    write_states(tmp_path / "teams" / "platform", {"plat-1": {"status": "acknowledged"}})
    config = two_teams(tmp_path, ", drift: {status: warn}")
    seed: dict[str, dict[str, dict[str, object]]] = {PAY: {"pay-1": {}}, PLAT: {"plat-1": {}}}
    with (
        SandboxServer(teams=seed, api_key=KEY) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY),
    ):
        assert cli("apply", "--config", config, "--auto-approve").code == 0
        for team, cid in ((PAY, "pay-1"), (PLAT, "plat-1")):
            server.set_incidents({cid: {"status": "NACK"}}, team=team)  # an acknowledge timeout
        code, out, err = cli("drift", "--config", config, "--format", "json")
        policies = {(d["team"], d["policy"]) for d in json.loads(out)["drift"]}
        assert policies == {("payments", "warn"), ("platform", "revert")}
        code, out, err = cli("apply", "--config", config, "--auto-approve", "--refresh")
        assert code == 0, err
        assert server.incidents(PAY)["pay-1"]["status"] == "NACK"  # warned, not reverted
        assert server.incidents(PLAT)["plat-1"]["status"] == "ACK"  # reverted


def test_validate_counts_rules(tmp_path: Path) -> None:
    states = tmp_path / "states"
    states.mkdir()
    (states / "r.yaml").write_text(
        "version: 1\nrules:\n  close-stale:\n    match: {status: [triggered]}\n"
        "    set: {status: resolved}\n"
    )
    code, out, err = cli("validate", str(states))
    assert code == 0, err
    assert out == "1 file, 0 incidents, 1 rule: valid.\n"


def test_accept_of_teams_reads_every_team_before_writing_any(tmp_path: Path) -> None:
    write_states(tmp_path / "teams" / "payments", {"pay-1": {"severity": "sev1"}})
    write_states(tmp_path / "teams" / "platform", {"plat-1": {"severity": "sev1"}})
    config = two_teams(tmp_path, ", drift: {severity: accept}", ", drift: {severity: accept}")
    seed: dict[str, dict[str, dict[str, object]]] = {PAY: {"pay-1": {}}, PLAT: {"plat-1": {}}}
    with (
        SandboxServer(teams=seed, api_key=KEY) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY),
    ):
        assert cli("apply", "--config", config, "--auto-approve").code == 0
        server.set_incidents({"pay-1": {"severity": "sev3"}}, team=PAY)
        server.set_incidents({"plat-1": None}, team=PLAT)  # deleted: platform's read fails
        files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
        code, _, err = cli("accept", "--config", config)
        assert code == 1
        assert "plat-1" in err and "nothing written" in err
        assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files
        # An --id is looked for in every team, and accepted in its own.
        server.set_incidents({"plat-1": {"severity": "sev1"}}, team=PLAT)
        code, _out, err = cli("accept", "--config", config, "--id", "pay-1")
        assert code == 0, err
        assert "sev3" in (tmp_path / "teams" / "payments" / "incidents.yaml").read_text()
        code, _, err = cli("accept", "--config", config, "--id", "nope-1")
        assert code == 1 and "in no state file of any team" in err


# ---------------------------------------------------------------------------------------------
# A last review's findings


def test_out_never_replaces_a_journal_a_state_file_or_the_project_file(tmp_path: Path) -> None:
    write_states(tmp_path / "teams" / "payments", {"pay-1": {"status": "resolved"}})
    write_states(tmp_path / "teams" / "platform", {"plat-1": {"priority": "p2"}})
    config = two_teams(tmp_path)
    journal = tmp_path / ".reconcile" / "payments.jsonl"
    journal.parent.mkdir()
    journal.write_text("")
    state = tmp_path / "teams" / "platform" / "incidents.yaml"
    for target, what in (
        (journal, "a journal"),
        (state, "a state file"),
        (Path(config), "the project file"),
    ):
        before = target.read_bytes()
        for command in (["plan"], ["drift"]):
            code, _, err = cli(*command, "--config", config, "--out", str(target))
            assert code == 1, (command, target)
            assert f"that is {what}" in err
        assert target.read_bytes() == before


def test_refresh_of_teams_checks_every_key_before_writing_any_journal(tmp_path: Path) -> None:
    write_states(tmp_path / "teams" / "payments", {"pay-1": {"status": "acknowledged"}})
    write_states(tmp_path / "teams" / "platform", {"plat-1": {"status": "acknowledged"}})
    config = two_teams(tmp_path, "", ", api_key_env: SPIKE_OTHER_KEY")
    seed: dict[str, dict[str, dict[str, object]]] = {PAY: {"pay-1": {}}, PLAT: {"plat-1": {}}}
    with (
        SandboxServer(teams=seed, api_key=KEY) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_OTHER_KEY=KEY),
    ):
        assert cli("apply", "--config", config, "--auto-approve").code == 0
        before = {p: p.read_bytes() for p in (tmp_path / ".reconcile").iterdir()}
        calls = len(server.calls)
        server.set_incidents({"pay-1": {"status": "NACK"}}, team=PAY)
        for command in (["refresh"], ["drift"], ["plan", "--refresh"], ["accept"]):
            code, _, err = cli(*command, "--config", config, env={"SPIKE_OTHER_KEY": None})
            assert code == 1 and "SPIKE_OTHER_KEY must be set" in err, command
        assert {p: p.read_bytes() for p in (tmp_path / ".reconcile").iterdir()} == before
        assert len(server.calls) == calls


def test_a_saved_plan_of_teams_made_from_another_folder_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_states(tmp_path / "teams" / "payments", {"pay-1": {"status": "resolved"}})
    write_states(tmp_path / "teams" / "platform", {})
    config = two_teams(tmp_path)
    monkeypatch.chdir(tmp_path / "teams")
    assert cli("plan", "--config", "../reconcile.yaml", "--out", str(tmp_path / "p.json")).code == 0
    monkeypatch.chdir(tmp_path)
    seed: dict[str, dict[str, dict[str, object]]] = {PAY: {"pay-1": {}}, PLAT: {}}
    with (
        SandboxServer(teams=seed, api_key=KEY) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY),
    ):
        code, out, err = cli("apply", "--config", config, str(tmp_path / "p.json"))
        assert code == 0, out + err
        assert server.incidents(PAY)["pay-1"]["status"] == "RES"


def test_drift_names_the_team_and_counts_an_id_of_two_teams_twice(tmp_path: Path) -> None:
    write_states(tmp_path / "teams" / "payments", {"shared-9": {"priority": "p2"}})
    write_states(tmp_path / "teams" / "platform", {"shared-9": {"priority": "p3"}})
    config = two_teams(tmp_path)
    seed: dict[str, dict[str, dict[str, object]]] = {
        PAY: {"shared-9": {"priority": "p1"}},
        PLAT: {"shared-9": {"priority": "p1"}},
    }
    with (
        SandboxServer(teams=seed, api_key=KEY) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY),
    ):
        _, out, _ = cli("drift", "--config", config)
        assert "~ shared-9 (team payments)" in out and "~ shared-9 (team platform)" in out
        assert "2 incidents" in out or "in 2" in out
        _, out, _ = cli("drift", "--config", config, "--format", "json")
        assert json.loads(out)["summary"]["drifted_incidents"] == 2
        _, out, _ = cli("drift", "--config", config, "--format", "markdown")
        assert "| team | incident |" in out and "| payments | `shared-9` |" in out


def test_a_project_file_that_is_not_a_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    os.symlink("missing.yaml", "reconcile.yaml")
    code, _, err = cli("plan")
    assert code == 1 and "reconcile.yaml: not a readable file" in err


def test_a_journal_under_a_teams_state_files_is_a_problem(tmp_path: Path) -> None:
    config = two_teams(tmp_path, ", journal: teams/payments/journal.yaml")
    code, _, err = cli("validate", "--config", config)
    assert code == 1
    assert "team payments: its journal is under the state files of team payments" in err


def test_journal_migrate_never_creates_its_source_and_knows_one_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("journal", "migrate", "--from", "sub/gone.jsonl", "--to", "out.jsonl")
    assert code == 1 and "empty; nothing to migrate" in err
    assert not Path("sub").exists() and not Path("out.jsonl").exists()
    code, _, err = cli("journal", "migrate", "--from", "a.jsonl", "--to", "./a.jsonl")
    assert code == 1 and "one journal" in err


def test_lock_timeout_must_be_finite(tmp_path: Path) -> None:
    code, _, err = cli("apply", str(tmp_path), "--auto-approve", "--lock-timeout", "nan")
    assert code == 1 and "finite" in err


def test_problems_of_reconcile_yaml_are_summed_up_as_the_project_files(tmp_path: Path) -> None:
    config = tmp_path / "reconcile.yaml"
    config.write_text("version: 2\n")
    code, _, err = cli("validate", "--config", str(config))
    assert code == 1
    assert err.splitlines()[-1] == "error: 1 problem in the project file"


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("postgresql://u@127.0.0.1/r", "postgresql://v@localhost:5432/r", True),
        ("postgresql://u@[::1]/r?namespace=x", "postgresql://u@127.0.0.1/r?namespace=x", True),
        ("postgresql://u@127.0.0.1/r", "postgresql://u@localhost:5433/r", False),
        ("postgresql://u@127.0.0.1/r", "postgresql://u@localhost/s", False),
        ("postgresql://u@127.0.0.1/r?namespace=a", "postgresql://u@localhost/r", False),
        # libpq's default database is the user's name.
        ("postgresql://r@127.0.0.1", "postgresql://u@localhost/r", True),
        ("postgresql://u@127.0.0.1/r", "a.jsonl", False),
    ],
)
def test_journals_are_compared_by_what_they_are(one: str, other: str, same: bool) -> None:
    from reconciler.journal import same_journal

    assert same_journal(one, other) is same
    assert same_journal(other, one) is same
