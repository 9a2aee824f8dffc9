"""Messages that lead somewhere (docs/cli.md): counted nouns, ids in a person's order,
lower-case `warning:`, and errors that say what to do next.

In-process through reconciler.cli.main; apply and refresh against the sandbox over loopback.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from helpers import KEY, TEAM, cli

from reconciler.applier import ApplyResult, Failure
from reconciler.errors import ApiError
from reconciler.model import Operation
from reconciler.render import progress_line, result_text
from reconciler.sandbox import SandboxServer
from reconciler.spike.client import RETRY_NOTE, RetryPolicy, SpikeClient, SpikeConfig
from reconciler.wording import counted, natural_sorted


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("RECONCILE_JOURNAL", "RECONCILE_CONFIG", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


def write_states(incidents: dict[str, dict[str, Any]], folder: str = "states") -> Path:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / "s.yaml").write_text(json.dumps({"version": 1, "incidents": incidents}))
    return path


def test_counted_nouns_and_a_persons_order() -> None:
    assert [counted(n, "API call") for n in (0, 1, 2)] == [
        "0 API calls",
        "1 API call",
        "2 API calls",
    ]
    assert natural_sorted(["b-100", "b-10", "b-2", "b-1", "b-0"]) == [
        "b-0",
        "b-1",
        "b-2",
        "b-10",
        "b-100",
    ]


def test_validate_and_plan_count_one_thing_as_one() -> None:
    write_states({"b-1": {"status": "acknowledged"}})
    assert cli("validate") == (0, "1 file, 1 incident: valid.\n", "")
    _, out, _ = cli("plan")
    assert out.endswith("Plan: 1 change on 1 of 1 incident, 1 API call.\n")


def test_plan_text_lists_incidents_as_a_person_sorts_them() -> None:
    write_states({cid: {"status": "resolved"} for cid in ("b-100", "b-10", "b-2", "b-1", "b-0")})
    _, out, _ = cli("plan")
    blocks = [line.split()[2] for line in out.splitlines() if line.startswith("  ~ incident")]
    assert blocks == ["b-0", "b-1", "b-2", "b-10", "b-100"]


@pytest.mark.parametrize("flags", [(), ("--auto-approve",)])
def test_apply_of_a_missing_plan_file_says_so(flags: tuple[str, ...]) -> None:
    write_states({"b-1": {"status": "acknowledged"}})
    result = cli("apply", "nope.json", *flags)
    assert result == (1, "", "error: no such plan file: nope.json\n")
    assert not Path(".reconcile").exists()


#: Credentials for a Spike that is not there: a command that sends nothing needs no server.
NOWHERE = {"SPIKE_API_URL": "http://127.0.0.1:9/", "SPIKE_API_KEY": "k", "SPIKE_TEAM_ID": "t"}


def test_refresh_with_nothing_journaled_says_how_to_adopt_incidents() -> None:
    write_states({"b-1": {"status": "acknowledged"}})
    assert cli("refresh", env=NOWHERE) == (
        0,
        "Nothing to refresh: the journal records none of the incidents of the state files. "
        "Adopt incidents with `reconcile apply`, `reconcile refresh --id ID...` (their live "
        "values, into the journal) or `reconcile import ID... --to FILE` (into a state file "
        "too).\n",
        "",
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nothing_listening_names_the_url_and_what_was_tried_and_notes_each_retry() -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    notes: list[str] = []
    policy = RetryPolicy(attempts=3, base=0.0, cap=0.0, total=5.0)

    async def go() -> None:
        config = SpikeConfig(url, "sk-never-shown-42", "t")
        async with SpikeClient(config, retry=policy, observe=notes.append) as client:
            await client.call(Operation("POST", "/incidents/acknowledge", {"ids": ["b-1"]}))

    with pytest.raises(ApiError) as raised:
        asyncio.run(go())
    assert str(raised.value) == (
        f"POST /incidents/acknowledge: could not connect to {url} "
        "(3 attempts over 0 s: connection refused)"
    )
    retries = [note for note in notes if note.startswith(RETRY_NOTE)]
    assert retries == [
        f"retrying POST /incidents/acknowledge in 0.0 s (attempt {n}, at most 3): "
        f"could not connect to {url}: connection refused"
        for n in (2, 3)
    ]
    assert not any("sk-never-shown-42" in note for note in notes)


def sandbox_env(server: SandboxServer) -> dict[str, str | None]:
    return {"SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY, "SPIKE_TEAM_ID": TEAM}


def test_an_id_spike_does_not_know_is_not_followed_by_run_apply_again() -> None:
    write_states({"b-1": {"status": "acknowledged"}, "zz-9": {"status": "resolved"}})
    with SandboxServer({"b-1": {}}, api_key=KEY, team_id=TEAM) as server:
        code, out, err = cli("apply", "--auto-approve", env=sandbox_env(server))
    assert (code, err) == (1, "")
    assert out.endswith(
        "Apply failed: 1 API call applied, 1 incident failed. Spike refused these calls, and "
        "would again: fix or remove those incidents in the state files, then plan again.\n"
    )
    assert "Run apply again" not in out


def test_self_heal_of_a_deleted_incident_says_what_to_do() -> None:
    write_states({"b-1": {"status": "acknowledged"}, "zz-9": {"status": "resolved"}})
    with SandboxServer({"b-1": {}}, api_key=KEY, team_id=TEAM) as server:
        result = cli("apply", "--auto-approve", "--refresh", env=sandbox_env(server))
        assert sorted(call["path"] for call in server.calls) == [
            "/incidents/b-1",
            "/incidents/zz-9",
        ]
    assert result == (
        1,
        "",
        "error: incident zz-9: not found in Spike (deleted, or another team)\n"
        "nothing was planned: if Spike deleted it, remove it from the state files "
        "(states/s.yaml) and plan again (the journal then forgets it); if it belongs to "
        "another team, check SPIKE_TEAM_ID\n",
    )


def test_help_lists_each_command_with_a_whole_line() -> None:
    _, out, _ = cli("--help")
    listed = out.split("Commands:\n", 1)[1].splitlines()
    # Whatever the column width (the longest command name sets it):
    words = [" ".join(line.split()) for line in listed]
    assert "plan Show the API calls that would make Spike match the state files." in words
    assert "apply Make the API calls: a saved plan, or plan the files and confirm." in words
    assert "approvals Check a plan's approvals against the pull request's reviews." in words
    assert not [line for line in listed if line.endswith("...")]


def test_import_help_says_one_team() -> None:
    _, out, _ = cli("import", "--help")
    team = out.split("--team NAME", 1)[1].split("--", 1)[0]
    assert "repeatable" not in team
    assert " ".join(team.split()) == (
        "The team of reconcile.yaml to write into (exactly one when teams are configured)."
    )


def test_team_without_a_project_file_says_there_is_none() -> None:
    write_states({"b-1": {"status": "acknowledged"}})
    assert cli("plan", "--team", "payments") == (
        1,
        "",
        "error: --team: there is no reconcile.yaml here (nor --config or RECONCILE_CONFIG): "
        "--team picks a team of a project file's `teams` (docs/teams.md)\n",
    )


@pytest.mark.parametrize("where", ["before", "after"])
def test_drift_verbose_prints_each_request_with_v_before_or_after_the_command(where: str) -> None:
    write_states({"b-1": {"status": "triggered"}, "zz-9": {"status": "resolved"}})
    args = ["-v", "drift"] if where == "before" else ["drift", "-v"]
    with SandboxServer({"b-1": {}}, api_key=KEY, team_id=TEAM) as server:
        code, out, err = cli(*args, env=sandbox_env(server))
    assert code == 0
    assert out.endswith("Drift: 1 incident missing in 1 incident (2 incidents checked).\n")
    assert sorted(re.sub(r"in \d+ ms", "in N ms", line) for line in err.splitlines()) == [
        "GET /incidents/b-1 -> 200 in N ms",
        "GET /incidents/zz-9 -> 404 in N ms",
    ]


def test_config_before_the_command_is_the_project_file() -> None:
    assert cli("--config", "nope.yaml", "validate") == (
        1,
        "",
        "error: --config: nope.yaml: no such file\n",
    )
    assert cli("--no-color", "-v", "validate", "states") == (1, "", cli("validate", "states")[2])


def test_a_usage_error_ends_in_lower_case_error() -> None:
    assert cli("validate", "--bogus") == (
        1,
        "",
        "Usage: reconcile validate [OPTIONS] [PATHS]...\n"
        "Try 'reconcile validate -h' for help.\n\n"
        "error: No such option '--bogus'. Did you mean '--verbose'?\n",
    )
    write_states({"b-1": {"status": "acknowledged"}})
    _, _, err = cli("apply", "states")
    assert err.endswith("\nerror: not a terminal: pass --auto-approve to apply without asking\n")


def test_an_incident_whose_call_failed_is_not_counted_again_as_skipped() -> None:
    ack = Operation("POST", "/incidents/acknowledge", {"ids": ["b-1", "b-2"]})
    resolve = Operation("POST", "/incidents/resolve", {"ids": ["b-1", "b-2"]})
    result = ApplyResult(
        failed=[Failure(cid, ack, "503 down") for cid in ("b-1", "b-2")],
        skipped=[Failure(cid, resolve, "an earlier call failed") for cid in ("b-1", "b-2")],
    )
    assert result_text(result).splitlines()[-1] == (
        "Apply failed: 0 API calls applied, 2 incidents failed. Run apply again to do the rest."
    )


def test_the_apply_progress_line_shows_the_rate_and_the_time_left() -> None:
    assert progress_line(0, 3000, 0.0) == "  applied 0/3000 calls"
    assert progress_line(120, 3000, 3.0) == "  applied 120/3000 calls (40/s, about 72 s left)"
    assert progress_line(3000, 3000, 75.0) == "  applied 3000/3000 calls (40/s)"


def test_a_big_plan_is_summarized_in_text_and_listed_with_full_and_in_json() -> None:
    write_states({f"b-{n}": {"status": "resolved"} for n in range(201)})
    code, out, err = cli("plan")
    assert (code, err) == (0, "")
    assert out == (
        "Changes to incidents, summarized (201 incidents; --full lists each):\n"
        "\n"
        "  status: (unknown) -> resolved  201 incidents\n"
        "\n"
        "API calls, by endpoint:\n"
        "  POST /incidents/resolve  3 calls, 201 ids\n"
        "\n"
        "Plan: 201 changes on 201 of 201 incidents, 3 API calls.\n"
    )
    full = cli("plan", "--full").stdout
    assert full.count("  ~ incident b-") == 201 and "API calls, in order:" in full
    assert len(json.loads(cli("plan", "--format", "json").stdout)["changes"]) == 201
    write_states({f"b-{n}": {"status": "resolved"} for n in range(200)})
    assert cli("plan").stdout.count("  ~ incident b-") == 200
