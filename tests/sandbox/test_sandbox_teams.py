"""The sandbox serving several teams over real loopback HTTP: each team its own incidents,
chosen by `x-team-id`; an unknown team is a 401; the control endpoints take `?team=`; the
organisation's team list; `reconcile sandbox --team ID=PATH`."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import cli, write_states

from reconciler.sandbox import SandboxServer

_TLS = ssl.create_default_context()
RECONCILE = Path(sys.executable).with_name("reconcile")
T0 = 1_800_000_000.0
TEAMS: dict[str, dict[str, dict[str, object]]] = {
    "team-a": {"shared-9": {}, "a-1": {"status": "ACK"}},
    "team-b": {"shared-9": {"priority": "p2"}, "b-1": {}},
}


def headers(team: str | None, key: str = "dev") -> dict[str, str]:
    sent = {"x-api-key": key}
    if team is not None:
        sent["x-team-id"] = team
    return sent


@contextmanager
def serve(**options: Any) -> Iterator[tuple[SandboxServer, httpx.Client]]:
    options.setdefault("teams", TEAMS)
    with (
        SandboxServer(**options) as server,
        httpx.Client(base_url=server.url, timeout=10, verify=_TLS) as client,
    ):
        yield server, client


def test_each_team_has_its_own_incidents() -> None:
    with serve() as (server, client):
        acked = client.post(
            "/incidents/acknowledge", json={"ids": ["shared-9"]}, headers=headers("team-a")
        )
        other = client.post("/incidents/resolve", json={"ids": ["b-1"]}, headers=headers("team-a"))
        read_a = client.get("/incidents/shared-9", headers=headers("team-a")).json()
        read_b = client.get("/incidents/shared-9", headers=headers("team-b")).json()
        missing = client.get("/incidents/a-1", headers=headers("team-b"))
        lists = {
            team: [
                i["counterId"]
                for i in client.get("/incidents/acknowledged", headers=headers(team)).json()[
                    "incidents"
                ]
            ]
            for team in ("team-a", "team-b")
        }
        snapshots = {team: server.incidents(team) for team in ("team-a", "team-b")}
        calls = server.calls
    assert acked.json() == {"success": True, "ids": ["shared-9"]}
    assert other.status_code == 400
    assert other.json() == {"message": "unknown incident ids: b-1", "error": "Bad Request"}
    assert (read_a["incident"]["status"], read_a["incident"]["priority"]) == ("ACK", None)
    assert (read_b["incident"]["status"], read_b["incident"]["priority"]) == ("NACK", "p2")
    assert missing.status_code == 404
    assert lists == {"team-a": ["a-1", "shared-9"], "team-b": []}
    assert {t: {c: i["status"] for c, i in s.items()} for t, s in snapshots.items()} == {
        "team-a": {"shared-9": "ACK", "a-1": "ACK"},
        "team-b": {"shared-9": "NACK", "b-1": "NACK"},
    }
    # With several teams each call names the team it was served for.
    assert [(c["path"], c["status"], c["team"]) for c in calls] == [
        ("/incidents/acknowledge", 200, "team-a"),
        ("/incidents/resolve", 400, "team-a"),
        ("/incidents/shared-9", 200, "team-a"),
        ("/incidents/shared-9", 200, "team-b"),
        ("/incidents/a-1", 404, "team-b"),
        ("/incidents/acknowledged", 200, "team-a"),
        ("/incidents/acknowledged", 200, "team-b"),
    ]


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (headers("team-c"), "invalid API key or team id"),
        (headers("dev"), "invalid API key or team id"),
        (headers("team-a", key="wrong"), "invalid API key or team id"),
        (headers(None), "missing x-api-key or x-team-id header"),
        ({"x-team-id": "team-a"}, "missing x-api-key or x-team-id header"),
    ],
)
def test_an_unknown_team_is_refused_like_a_wrong_key(sent: dict[str, str], message: str) -> None:
    with serve() as (server, client):
        response = client.post("/incidents/resolve", json={"ids": ["shared-9"]}, headers=sent)
        calls = server.calls
        after = server.incidents("team-a")
    assert response.status_code == 401
    assert response.json() == {"message": message, "error": "Unauthorized"}
    assert calls == [
        {
            "method": "POST",
            "path": "/incidents/resolve",
            "body": {"ids": ["shared-9"]},
            "status": 401,
            "team": None,
        }
    ]
    assert after["shared-9"]["status"] == "NACK"


def test_get_all_teams_lists_the_configured_teams() -> None:
    with serve() as (server, client):
        with_team = client.get("/teams/get-all-teams", headers=headers("team-b"))
        key_only = client.get("/teams/get-all-teams", headers=headers(None))
        wrong_team = client.get("/teams/get-all-teams", headers=headers("team-c"))
        wrong_key = client.get("/teams/get-all-teams", headers=headers(None, key="wrong"))
        anonymous = client.get("/teams/get-all-teams")
        post = client.post("/teams/get-all-teams", headers=headers(None))
        calls = [(c["status"], c["team"]) for c in server.calls]
    expected = {"teams": [{"_id": "team-a", "name": "team-a"}, {"_id": "team-b", "name": "team-b"}]}
    assert with_team.json() == expected
    assert key_only.json() == expected
    for refused in (wrong_team, wrong_key):
        assert refused.status_code == 401
        assert refused.json() == {"message": "invalid API key or team id", "error": "Unauthorized"}
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "message": "missing x-api-key or x-team-id header",
        "error": "Unauthorized",
    }
    assert post.status_code == 405
    assert post.headers["Allow"] == "GET"
    assert calls == [
        (200, "team-b"),
        (200, None),
        (401, None),
        (401, None),
        (401, None),
        (405, None),
    ]


def test_one_team_is_served_as_before() -> None:
    with serve(teams=None, team_id="solo") as (server, client):
        teams = client.get("/teams/get-all-teams", headers=headers("solo"))
        read = client.get("/incidents/x", headers=headers("solo"))
        control = client.get("/_sandbox/incidents", params={"team": "solo"})
        calls = server.calls
    assert teams.json() == {"teams": [{"_id": "solo", "name": "solo"}]}
    assert read.status_code == 404
    assert control.json() == {}
    # Without `teams`, a call has no "team" key: the log's shape is unchanged.
    assert calls == [
        {"method": "GET", "path": "/teams/get-all-teams", "body": None, "status": 200},
        {"method": "GET", "path": "/incidents/x", "body": None, "status": 404},
    ]


def test_control_endpoints_pick_a_team_with_a_query() -> None:
    with serve() as (server, client):
        default = client.get("/_sandbox/incidents").json()
        chosen = client.get("/_sandbox/incidents", params={"team": "team-b"}).json()
        changed = client.post(
            "/_sandbox/incidents?team=team-b", json={"shared-9": {"status": "RES"}, "b-2": {}}
        )
        unchanged_default = client.post("/_sandbox/incidents", json={"a-1": None})
        unknown = client.get("/_sandbox/incidents", params={"team": "team-c"})
        unknown_post = client.post("/_sandbox/incidents?team=team-c", json={"x": {}})
        twice = client.get("/_sandbox/incidents?team=team-a&team=team-b")
        a, b = server.incidents("team-a"), server.incidents("team-b")
        with pytest.raises(ValueError, match=r"^unknown team 'team-c' \(teams: team-a, team-b\)$"):
            server.incidents("team-c")
    assert list(default) == ["shared-9", "a-1"]
    assert list(chosen) == ["shared-9", "b-1"]
    assert changed.json() == {"success": True, "ids": ["b-2", "shared-9"], "created": ["b-2"]}
    assert unchanged_default.json() == {"success": True, "ids": ["a-1"]}
    assert unknown.status_code == unknown_post.status_code == 404
    assert unknown.json() == {"message": "unknown team: team-c", "error": "Not Found"}
    assert twice.status_code == 400
    assert twice.json() == {"message": "team given 2 times", "error": "Bad Request"}
    assert {c: i["status"] for c, i in a.items()} == {"shared-9": "NACK"}
    assert {c: i["status"] for c, i in b.items()} == {
        "shared-9": "RES",
        "b-1": "NACK",
        "b-2": "NACK",
    }
    assert server.team_ids == ["team-a", "team-b"]


def test_an_acknowledge_timeout_applies_in_every_team() -> None:
    clock = [T0]
    with serve(clock=lambda: clock[0], ack_timeout=60) as (server, client):
        client.post("/incidents/acknowledge", json={"ids": ["b-1"]}, headers=headers("team-b"))
        clock[0] = T0 + 60
        statuses = {
            team: {c: i["status"] for c, i in server.incidents(team).items()}
            for team in ("team-a", "team-b")
        }
    assert statuses == {
        "team-a": {"shared-9": "NACK", "a-1": "NACK"},
        "team-b": {"shared-9": "NACK", "b-1": "NACK"},
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"teams": TEAMS, "incidents": {"x": {}}}, "give incidents or teams, not both"),
        ({"teams": {}}, "teams must name at least one team"),
        ({"teams": {"": {}}}, "team ids must be non-empty strings, got ['']"),
        ({"teams": {"a": {"bad id": {}}}}, "invalid counter id 'bad id'"),
    ],
)
def test_bad_teams_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        SandboxServer(**options)
    assert str(caught.value) == message


# ---------------------------------------------------------------------------------------------
# The command


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--team", "team-a"], "error: --team team-a: expected ID=PATH, e.g. team-a=states/a\n"),
        (["--team", "=states"], "error: --team =states: expected ID=PATH, e.g. team-a=states/a\n"),
        (
            ["--team", "team-a={tmp}/nowhere"],
            "error: --team team-a={tmp}/nowhere: {tmp}/nowhere does not exist\n",
        ),
        (
            ["--team", "team-a={tmp}/a", "--seed", "{tmp}/a"],
            "error: --team seeds each team from its PATH: use it instead of --seed and "
            "--seed-json\n",
        ),
    ],
)
def test_cli_refuses_bad_team_options(tmp_path: Path, args: list[str], message: str) -> None:
    write_states(tmp_path / "a", {"a-1": {"status": "resolved"}})
    given = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = cli("sandbox", "--port", "0", *given)
    expected = message.replace("{tmp}", str(tmp_path))
    assert (result.code, result.stdout, result.stderr) == (1, "", expected)


def test_cli_refuses_an_invalid_team_state_file(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "incidents.yaml").write_text("version: 1\nincidents:\n  a-1: {status: open}\n")
    result = cli("sandbox", "--port", "0", "--team", f"team-a={folder}")
    assert result.code == 1
    assert result.stdout == ""
    assert f"{folder / 'incidents.yaml'}:3:" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_serves_each_team_from_its_state_files(tmp_path: Path) -> None:
    write_states(tmp_path / "a", {"shared-9": {"status": "resolved"}, "a-1": {}})
    write_states(tmp_path / "b1", {"shared-9": {"status": "resolved"}})
    write_states(tmp_path / "b2", {"b-1": {}})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPIKE_", "RECONCILE_"))}
    proc = subprocess.Popen(
        [
            str(RECONCILE),
            "sandbox",
            "--port",
            "0",  # a port of its own, never one another test (or worker) may take meanwhile
            "--team",
            f"team-a={tmp_path / 'a'}",
            "--team",
            f"team-b={tmp_path / 'b1'}",
            "--team",
            f"team-b={tmp_path / 'b2'}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # printed once it listens
        url = first.removeprefix("Spike sandbox on ").partition(" ")[0]
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*", url), first
        with httpx.Client(base_url=url, timeout=10, verify=_TLS) as client:
            teams = client.get("/teams/get-all-teams", headers=headers(None)).json()
            a = client.get("/_sandbox/incidents", params={"team": "team-a"}).json()
            b = client.get("/_sandbox/incidents", params={"team": "team-b"}).json()
            refused = client.get("/incidents/a-1", headers=headers("dev"))
    finally:
        proc.kill()  # ours, by its handle; the SIGTERM path has its own test
        proc.communicate(timeout=30)
    assert first == f"Spike sandbox on {url} with 4 incidents in 2 teams: team-a, team-b\n"
    assert teams == {
        "teams": [{"_id": "team-a", "name": "team-a"}, {"_id": "team-b", "name": "team-b"}]
    }
    assert sorted(a) == ["a-1", "shared-9"]
    assert sorted(b) == ["b-1", "shared-9"]
    assert {i["status"] for i in (*a.values(), *b.values())} == {"NACK"}
    assert refused.status_code == 401
