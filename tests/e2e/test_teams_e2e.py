"""Many teams end to end over real loopback HTTP (docs/teams.md): one reconcile.yaml, one
journal per team, one sandbox serving every team by x-team-id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import KEY, cli, command, env, live_matches, write_states

from reconciler.journal import open_journal
from reconciler.sandbox import SandboxServer

PAY, PLAT = "64b7f0c2e1d3a4b5c6d7e8f9", "64b7f0c2e1d3a4b5c6d7e8fa"
NACK = {"status": "NACK"}
#: Both teams have an incident `shared-9`: ids are per team.
SEED = {
    PAY: {"shared-9": NACK, "pay-1": NACK, "pay-2": NACK},
    PLAT: {"shared-9": NACK, "plat-1": NACK},
}
DESIRED = {
    "payments": {
        "shared-9": {"status": "acknowledged", "priority": "p2"},
        "pay-1": {"status": "resolved"},
        "pay-2": {"severity": "sev1"},
    },
    "platform": {
        "shared-9": {"status": "resolved", "priority": "p4"},
        "plat-1": {"public_sharing": True},
    },
}
TEAM_IDS = {"payments": PAY, "platform": PLAT}


def project(work: Path, platform_id: str = PLAT, extra: str = "") -> str:
    """A reconcile.yaml with two teams and their state files; the file's path."""
    for name, desired in DESIRED.items():
        write_states(work / "teams" / name, desired)
    config = work / "reconcile.yaml"
    config.write_text(
        "version: 1\n"
        f"{extra}"
        "teams:\n"
        "  payments:\n"
        f"    team_id: {PAY}\n"
        "  platform:\n"
        f"    team_id: {platform_id}\n"
    )
    return str(config)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with (
        SandboxServer(teams=SEED, api_key=KEY) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY),
    ):
        os.environ.pop("SPIKE_TEAM_ID", None)
        yield server


def team_calls(server: SandboxServer, team: str) -> list[dict[str, Any]]:
    return [call for call in server.calls if call.get("team") == team]


def journal_of(work: Path, name: str) -> Any:
    return open_journal(str(work / ".reconcile" / f"{name}.jsonl"))


def test_two_teams_converge_and_a_second_apply_makes_no_call(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    config = project(tmp_path)
    code, out, err = cli("apply", "--config", config, "--auto-approve")
    assert code == 0, out + err
    assert "Team payments:" in out and "Team platform:" in out
    for name, desired in DESIRED.items():
        live_matches_team(sandbox, TEAM_IDS[name], desired)
        assert journal_of(tmp_path, name).read().serial >= 1
    calls = len(sandbox.calls)
    code, out, _ = cli("apply", "--config", config, "--auto-approve")
    assert code == 0
    assert len(sandbox.calls) == calls
    code, out, _ = cli("plan", "--config", config, "--detailed-exitcode")
    assert code == 0, out
    assert "Total: no changes in 2 teams" in out


def live_matches_team(server: SandboxServer, team: str, desired: Mapping[str, Any]) -> None:
    """helpers.live_matches for one team of a sandbox of several."""

    class One:
        def incidents(self) -> dict[str, dict[str, Any]]:
            return server.incidents(team)

    live_matches(One(), desired)


def test_the_same_id_in_two_teams_goes_to_each_team(tmp_path: Path, sandbox: SandboxServer) -> None:
    config = project(tmp_path)
    assert cli("apply", "--config", config, "--auto-approve").code == 0
    assert sandbox.incidents(PAY)["shared-9"]["status"] == "ACK"
    assert sandbox.incidents(PAY)["shared-9"]["priority"] == "p2"
    assert sandbox.incidents(PLAT)["shared-9"]["status"] == "RES"
    assert sandbox.incidents(PLAT)["shared-9"]["priority"] == "p4"


def test_team_touches_one_team_only(tmp_path: Path, sandbox: SandboxServer) -> None:
    config = project(tmp_path)
    code, out, err = cli("apply", "--config", config, "--auto-approve", "--team", "platform")
    assert code == 0, out + err
    assert team_calls(sandbox, PLAT) and not team_calls(sandbox, PAY)
    assert "Team payments" not in out
    assert not (tmp_path / ".reconcile" / "payments.jsonl").exists()
    code, out, _ = cli("plan", "--config", config, "--team", "platform", "--detailed-exitcode")
    assert code == 0, out


def test_a_refused_team_leaves_the_other_applied(tmp_path: Path, sandbox: SandboxServer) -> None:
    config = project(tmp_path, platform_id="64b7f0c2e1d3a4b5c6d7e8ff")  # not a team of the key
    code, out, err = cli("apply", "--config", config, "--auto-approve", "--format", "json")
    assert code == 1, out + err
    result = json.loads(out)
    assert result["outcome"] == "failed"
    assert result["teams"]["payments"]["outcome"] == "applied"
    assert result["teams"]["platform"]["outcome"] != "applied"
    live_matches_team(sandbox, PAY, DESIRED["payments"])
    assert KEY not in out + err


def test_plan_json_is_format_2_with_one_digest_and_a_saved_plan_applies_exactly(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    config = project(tmp_path)
    saved = tmp_path / "plan.json"
    code, out, err = cli("plan", "--config", config, "--out", str(saved), "--format", "json")
    assert code == 0, err
    body = json.loads(out)
    assert body["format_version"] == 2
    assert sorted(body["teams"]) == ["payments", "platform"]
    assert body["teams"]["payments"]["team_id"] == PAY
    assert body["teams"]["payments"]["journal"]["location"].endswith("payments.jsonl")
    assert body["summary"]["changes"] == sum(
        t["summary"]["changes"] for t in body["teams"].values()
    )
    assert body["plan_digest"].startswith("sha256:")
    assert json.loads(saved.read_text())["plan_digest"] == body["plan_digest"]
    code, out, err = cli("apply", "--config", config, str(saved))
    assert code == 0, out + err
    for name, desired in DESIRED.items():
        live_matches_team(sandbox, TEAM_IDS[name], desired)
    # Both journals recorded the plan's id: it is applied once (the first team checked says so).
    code, out, err = cli("apply", "--config", config, str(saved))
    assert code == 1
    assert f"(team payments): plan {body['plan_id']} was already applied to this journal" in err


def test_a_saved_plan_is_stale_when_any_teams_journal_moved(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    config = project(tmp_path)
    saved = tmp_path / "plan.json"
    assert cli("plan", "--config", config, "--out", str(saved)).code == 0
    assert cli("apply", "--config", config, "--auto-approve", "--team", "platform").code == 0
    calls = len(sandbox.calls)
    code, _out, err = cli("apply", "--config", config, str(saved))
    assert code == 1
    assert "stale" in err and "platform" in err
    assert len(sandbox.calls) == calls  # no call at all: payments was not applied either


def test_plan_text_and_markdown_have_a_section_per_team_and_a_total(tmp_path: Path) -> None:
    config = project(tmp_path)
    code, out, err = cli("plan", "--config", config)
    assert code == 0, err
    assert out.index("Team payments:") < out.index("Team platform:") < out.index("Summary:")
    assert "  payments: Plan: " in out and "  platform: Plan: " in out
    assert out.rstrip().splitlines()[-1].startswith("Total: 7 changes on 5 of 5 incidents in 2")
    code, out, _ = cli("plan", "--config", config, "--format", "markdown")
    assert code == 0
    assert "| payments |" in out and "| platform |" in out
    assert out.count("<details") >= 2 and "Team payments: Plan:" in out
    assert len(out) < 65_536


def test_unsafe_is_per_team_and_apply_refuses_the_whole_plan(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    config = project(tmp_path, extra="defaults:\n  unsafe: {min_incidents: 1, max_share: 0.1}\n")
    assert cli("apply", "--config", config, "--auto-approve", "--force").code == 0
    write_states(tmp_path / "teams" / "payments", {"shared-9": {"priority": "p5"}})
    calls = len(sandbox.calls)
    code, _out, err = cli("apply", "--config", config, "--auto-approve")
    assert code == 1
    assert "unsafe for team payments" in err
    assert len(sandbox.calls) == calls


def test_a_held_lock_fails_at_once_naming_the_holder(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    config = project(tmp_path)
    holder = journal_of(tmp_path, "platform")
    with holder.open_for_apply(0, "reconcile apply (another job)"):
        code, _out, err = cli("apply", "--config", config, "--auto-approve")
    assert code == 1
    assert "another job" in err
    assert not sandbox.calls  # payments' lock was taken first, then released: nothing sent
    assert journal_of(tmp_path, "payments").read().serial == 0


def test_kill_9_during_an_apply_of_teams_leaves_readable_journals_and_a_rerun_converges(
    tmp_path: Path,
) -> None:
    many = {
        PAY: {f"p-{n}": NACK for n in range(60)},
        PLAT: {f"q-{n}": NACK for n in range(60)},
    }
    for name, team in (("payments", PAY), ("platform", PLAT)):
        desired = {cid: {"status": "acknowledged", "priority": "p3"} for cid in many[team]}
        write_states(tmp_path / "teams" / name, desired)
    config = tmp_path / "reconcile.yaml"
    config.write_text(
        f"version: 1\nteams:\n  payments: {{team_id: {PAY}}}\n  platform: {{team_id: {PLAT}}}\n"
    )
    with SandboxServer(teams=many, api_key=KEY, latency=0.05) as server:
        variables = {**os.environ, "SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY}
        variables.pop("SPIKE_TEAM_ID", None)
        args = command(
            "apply", "--config", str(config), "--auto-approve", "--batch-size", "1",
            "--parallelism", "2",
        )  # fmt: skip
        proc = subprocess.Popen(
            args, env=variables, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 20
        while len(server.calls) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        for name in ("payments", "platform"):
            journal_of(tmp_path, name).read()  # readable
        server.latency = 0  # only there to kill the first apply midway
        done = subprocess.run(args, env=variables, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        for team in (PAY, PLAT):
            assert all(i["status"] == "ACK" for i in server.incidents(team).values())
            assert all(i["priority"] == "p3" for i in server.incidents(team).values())


def test_bad_team_selections_are_clear_errors(tmp_path: Path) -> None:
    config = project(tmp_path)
    code, _, err = cli("plan", "--config", config, "--team", "payment")
    assert code == 1
    assert "--team payment: no such team" in err and "did you mean payments?" in err
    code, _, err = cli("plan", "--config", config, "--journal", str(tmp_path / "j.jsonl"))
    assert code == 1 and "--journal" in err
    stray = tmp_path / "elsewhere" / "x.yaml"
    write_states(stray.parent, {"1": {"status": "resolved"}})
    code, _, err = cli("plan", "--config", config, str(stray.parent))
    assert code == 1 and "under no team's paths" in err
    code, _out, err = cli("plan", "--config", config, "--team", "platform", "teams/payments")
    assert code == 1


def test_a_file_under_two_teams_is_an_error_naming_it(tmp_path: Path) -> None:
    config = project(tmp_path)
    Path(config).write_text(
        f"version: 1\nteams:\n  payments: {{team_id: {PAY}, paths: [teams]}}\n"
        f"  platform: {{team_id: {PLAT}}}\n"
    )
    code, _, err = cli("plan", "--config", config)
    assert code == 1
    assert "incidents.yaml" in err and "two teams: payments, platform" in err


def test_paths_narrow_the_plan_to_their_teams(tmp_path: Path) -> None:
    config = project(tmp_path)
    code, out, err = cli("plan", "--config", config, str(tmp_path / "teams" / "platform"))
    assert code == 0, err
    assert "Team platform:" in out and "Team payments:" not in out


def test_spike_team_id_is_ignored_with_a_warning(tmp_path: Path) -> None:
    config = project(tmp_path)
    code, _, err = cli("plan", "--config", config, env={"SPIKE_TEAM_ID": "x"})
    assert code == 0
    assert "SPIKE_TEAM_ID is ignored" in err


def test_show_log_refresh_and_drift_take_team(tmp_path: Path, sandbox: SandboxServer) -> None:
    config = project(tmp_path)
    assert cli("apply", "--config", config, "--auto-approve").code == 0
    code, out, _ = cli("show", "--config", config, "--team", "payments")
    assert code == 0 and "Team payments:" in out and "Team platform" not in out
    code, out, _ = cli("show", "--config", config, "--format", "json")
    assert sorted(json.loads(out)["teams"]) == ["payments", "platform"]
    code, out, _ = cli("log", "--config", config, "--format", "json", "--team", "platform")
    assert list(json.loads(out)["teams"]) == ["platform"]
    sandbox_set(sandbox, PLAT, "shared-9", {"priority": "p1"})
    code, out, _ = cli("drift", "--config", config, "--format", "json", "--detailed-exitcode")
    assert code == 2, out
    report = json.loads(out)
    assert [(d["team"], d["incident"], d["field"]) for d in report["drift"]] == [
        ("platform", "shared-9", "priority")
    ]
    code, out, err = cli("refresh", "--config", config, "--team", "platform")
    assert code == 0, err
    assert journal_of(tmp_path, "platform").read().incidents["shared-9"]["priority"] == "p1"


def sandbox_set(server: SandboxServer, team: str, cid: str, fields: Mapping[str, Any]) -> None:
    import httpx

    reply = httpx.post(
        f"{server.url}/_sandbox/incidents", params={"team": team}, json={cid: dict(fields)}
    )
    assert reply.status_code == 200, reply.text


def test_import_needs_exactly_one_team(tmp_path: Path, sandbox: SandboxServer) -> None:
    config = project(tmp_path)
    target = str(tmp_path / "teams" / "payments" / "new.yaml")
    code, _, err = cli("import", "--config", config, "pay-2", "--to", target)
    assert code == 1 and "exactly one --team" in err
    code, _, err = cli("import", "--config", config, "--team", "platform", "plat-1", "--to", target)
    assert code == 1 and "not under the paths of team platform" in err
    Path(tmp_path / "teams" / "payments" / "incidents.yaml").unlink()
    code, _out, err = cli(
        "import", "--config", config, "--team", "payments", "pay-2", "--to", target
    )
    assert code == 0, err
    assert "pay-2" in Path(target).read_text()
    assert "pay-2" in journal_of(tmp_path, "payments").read().incidents


def test_teams_marks_the_configured_teams(tmp_path: Path, sandbox: SandboxServer) -> None:
    config = project(tmp_path)
    code, out, err = cli("teams", "--config", config, "--format", "json")
    assert code == 0, err
    listed = {t["id"]: t["configured"] for t in json.loads(out)["teams"]}
    assert listed == {PAY: True, PLAT: True}


def test_with_lock_timeout_an_apply_of_teams_waits_for_the_holder(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    import threading

    config = project(tmp_path)
    holder = journal_of(tmp_path, "platform")
    held = threading.Event()

    def hold() -> None:
        with holder.open_for_apply(0, "reconcile apply (another job)"):
            held.set()
            time.sleep(0.5)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    code, out, err = cli("apply", "--config", config, "--auto-approve", "--lock-timeout", "10")
    thread.join()
    assert code == 0, out + err
    for name, desired in DESIRED.items():
        live_matches_team(sandbox, TEAM_IDS[name], desired)
