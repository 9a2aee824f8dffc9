"""`reconcile teams` over real loopback HTTP: against the sandbox (its teams, the configured
one, a refused key), against a small server answering other shapes (names, no names, no list),
and once as a real process."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers import KEY, cli, command

from reconciler.sandbox import SandboxServer
from reconciler.usecases.teams import ListedTeam, TeamsOutcome, list_teams

TEAMS: dict[str, dict[str, Any]] = {"team-b": {"b-1": {}}, "team-a": {}, "team-c": {}}


def environment(url: str, team: str | None) -> dict[str, str | None]:
    return {
        "SPIKE_API_URL": url,
        "SPIKE_API_KEY": KEY,
        "SPIKE_TEAM_ID": team,
        "RECONCILE_JOURNAL": None,
    }


@contextmanager
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(teams=TEAMS, api_key=KEY) as server:
        yield server


def test_text_lists_every_team_and_marks_the_configured_one() -> None:
    with sandbox() as server:
        code, out, err = cli("teams", env=environment(server.url, "team-b"))
        calls = server.calls
    assert (code, err) == (0, "")
    assert out == (
        "NAME    ID      CONFIGURED\nteam-a  team-a  no\nteam-b  team-b  yes\nteam-c  team-c  no\n"
    )
    assert calls == [
        {
            "method": "GET",
            "path": "/teams/get-all-teams",
            "body": None,
            "status": 200,
            "team": "team-b",
        }
    ]


def test_json_without_a_team_sends_none_and_configures_none() -> None:
    with sandbox() as server:
        code, out, err = cli("teams", "--format", "json", env=environment(server.url, None))
        calls = server.calls
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "teams": [
            {"id": "team-a", "name": "team-a", "configured": False},
            {"id": "team-b", "name": "team-b", "configured": False},
            {"id": "team-c", "name": "team-c", "configured": False},
        ]
    }
    # The sandbox logs the team a request was served for: none was sent.
    assert [(c["path"], c["status"], c["team"]) for c in calls] == [
        ("/teams/get-all-teams", 200, None)
    ]


def test_with_teams_in_reconcile_yaml_spike_team_id_is_ignored_and_not_sent(
    tmp_path: Path,
) -> None:
    """As every other command: the README's exports (SPIKE_TEAM_ID among them) must not turn
    the listing into a 401 for a team id reconcile.yaml has replaced."""
    config = tmp_path / "reconcile.yaml"
    config.write_text("version: 1\nteams:\n  bee: {team_id: team-b}\n")
    with sandbox() as server:
        env = environment(server.url, "retired-team")
        code, out, err = cli("teams", "--config", str(config), env=env)
        calls = server.calls
    assert code == 0, err
    assert err == f"warning: SPIKE_TEAM_ID is ignored: {config} configures the teams\n"
    assert "team-b  team-b  yes" in out
    assert [(c["path"], c["status"], c["team"]) for c in calls] == [
        ("/teams/get-all-teams", 200, None)
    ]


@pytest.mark.parametrize(
    ("key", "team"), [("sk-wrong-key-0000", "team-a"), (KEY, "no-such-team")], ids=["key", "team"]
)
def test_a_refused_key_or_team_is_the_credentials_error(key: str, team: str) -> None:
    with sandbox() as server:
        code, out, err = cli("teams", env={**environment(server.url, team), "SPIKE_API_KEY": key})
        calls = server.calls
    assert (code, out) == (1, "")
    assert err == (
        "error: GET /teams/get-all-teams: the Spike API answered 401 (invalid API key or team "
        "id: Unauthorized): check SPIKE_API_KEY and SPIKE_TEAM_ID\n"
    )
    assert key not in err
    assert [c["status"] for c in calls] == [401]


def test_without_a_key_nothing_is_sent() -> None:
    with sandbox() as server:
        env = {**environment(server.url, "team-a"), "SPIKE_API_KEY": None}
        code, out, err = cli("teams", env=env)
        calls = server.calls
    assert (code, out, err) == (1, "", "error: SPIKE_API_KEY must be set to call the Spike API\n")
    assert calls == []


def test_as_a_real_process() -> None:
    with sandbox() as server:
        env = {k: v for k, v in environment(server.url, "team-c").items() if v is not None}
        done = subprocess.run(
            command("teams", "--format", "json"),
            env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert (done.returncode, done.stderr) == (0, "")
    assert [(t["id"], t["configured"]) for t in json.loads(done.stdout)["teams"]] == [
        ("team-a", False),
        ("team-b", False),
        ("team-c", True),
    ]


# --------------------------------------------------------------------------------------------
# Other shapes, from a server that answers one fixed body.


class _Fixed(BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (200, b"[]")
    seen: ClassVar[list[dict[str, str]]]

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, **dict(self.headers.items())})
        status, body = self.answer
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def answering(body: Any, status: int = 200) -> Iterator[tuple[str, list[dict[str, str]]]]:
    class Handler(_Fixed):
        answer = (status, json.dumps(body).encode())
        seen: ClassVar[list[dict[str, str]]] = []

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Handler.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


NESTED = {
    "success": True,
    "data": {
        "teams": [
            {"id": "64b7f0c2e1d3a4b5c6d7e8fa", "title": "Platform", "members": 12},
            {"_id": "64b7f0c2e1d3a4b5c6d7e8f9", "name": "Payments"},
            {"_id": "64b7f0c2e1d3a4b5c6d7e8f0"},
            {"_id": "64b7f0c2e1d3a4b5c6d7e8f1", "name": "Payments"},
        ]
    },
}


def test_a_nested_answer_sorted_by_name_then_id_with_nameless_teams_last() -> None:
    with answering(NESTED) as (url, seen):
        code, out, err = cli("teams", env=environment(url, "64b7f0c2e1d3a4b5c6d7e8f9"))
    assert (code, err) == (0, "")
    assert out == (
        "NAME       ID                        CONFIGURED\n"
        "Payments   64b7f0c2e1d3a4b5c6d7e8f1  no\n"
        "Payments   64b7f0c2e1d3a4b5c6d7e8f9  yes\n"
        "Platform   64b7f0c2e1d3a4b5c6d7e8fa  no\n"
        "(no name)  64b7f0c2e1d3a4b5c6d7e8f0  no\n"
    )
    (request,) = seen
    assert request["path"] == "/teams/get-all-teams"
    assert request["x-api-key"] == KEY
    assert request["x-team-id"] == "64b7f0c2e1d3a4b5c6d7e8f9"


def test_json_shows_a_missing_name_as_null() -> None:
    with answering([{"_id": "t1"}, {"_id": "t0", "name": "Ops"}]) as (url, _):
        code, out, err = cli("teams", "--format", "json", env=environment(url, None))
    assert (code, err) == (0, "")
    assert out == (
        '{\n  "teams": [\n'
        '    {\n      "id": "t0",\n      "name": "Ops",\n      "configured": false\n    },\n'
        '    {\n      "id": "t1",\n      "name": null,\n      "configured": false\n    }\n'
        "  ]\n}\n"
    )


def test_no_teams() -> None:
    with answering({"teams": []}) as (url, _):
        text = cli("teams", env=environment(url, None))
        as_json = cli("teams", "--format", "json", env=environment(url, None))
    assert text == (0, "The API key sees no teams.\n", "")
    assert as_json == (0, '{\n  "teams": []\n}\n', "")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"message": "ok"},
            "no list of teams in the answer (looked for a list, or one under 'teams' or 'data')",
        ),
        (
            {"teams": [{"_id": "t1"}, {"name": "Payments"}]},
            "item 2 of the list of teams ('Payments') has no id (looked for '_id' or 'id': a "
            "non-empty string or a number)",
        ),
    ],
)
def test_an_unreadable_answer_fails_naming_what_was_missing(body: Any, message: str) -> None:
    with answering(body) as (url, _):
        code, out, err = cli("teams", env=environment(url, None))
    assert (code, out) == (1, "")
    assert err == f"error: GET /teams/get-all-teams: {message}\n"


def test_the_key_is_never_shown_even_when_echoed_as_a_name() -> None:
    with answering([{"_id": "t1", "name": f"echo {KEY}"}]) as (url, _):
        code, out, err = cli("teams", env=environment(url, None))
    assert (code, err) == (0, "")
    assert KEY not in out
    assert "echo ***" in out


def test_control_characters_in_names_are_escaped() -> None:
    with answering([{"_id": "t\x1b1", "name": "evil\n::error::x"}]) as (url, _):
        code, out, _err = cli("teams", env=environment(url, None))
    assert code == 0
    assert out.splitlines()[1:] == ["evil\\n::error::x  t\\x1b1  no"]


def test_list_teams_marks_and_sorts() -> None:
    from reconciler.spike.teams import SpikeTeam

    listed = list_teams(
        [SpikeTeam("b", None), SpikeTeam("z", "A"), SpikeTeam("a", None), SpikeTeam("y", "A")],
        {"a", "z", "unseen"},
    )
    assert TeamsOutcome(listed) == TeamsOutcome(
        [
            ListedTeam("y", "A", False),
            ListedTeam("z", "A", True),
            ListedTeam("a", None, True),
            ListedTeam("b", None, False),
        ]
    )
