"""`reconcile doctor` over real loopback HTTP: against the sandbox (every endpoint understood,
GET only, shapes without values), against a small server answering odd shapes (what was
missing is named, exit 1), a refused key, teams of reconcile.yaml; and `shape_of` itself."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from helpers import KEY, cli

from reconciler.sandbox import SandboxServer
from reconciler.usecases.doctor import HIDDEN_KEY, shape_of

TEAM = "64b7f0c2e1d3a4b5c6d7e8f9"
SEED: dict[str, dict[str, Any]] = {
    "pay-101": {"status": "NACK", "title": "Card authorisations failing", "age": "2h"},
    "pay-102": {"status": "ACK", "priority": "p2", "message": "Payout batch late"},
}


def environment(url: str, key: str = KEY, team: str | None = TEAM) -> dict[str, str | None]:
    return {
        "SPIKE_API_URL": url,
        "SPIKE_API_KEY": key,
        "SPIKE_TEAM_ID": team,
        "RECONCILE_CONFIG": None,
        "RECONCILE_JOURNAL": None,
    }


@contextmanager
def sandbox(seed: dict[str, dict[str, Any]] | None = None) -> Iterator[SandboxServer]:
    with SandboxServer(SEED if seed is None else seed, api_key=KEY, team_id=TEAM) as server:
        yield server


def test_against_the_sandbox_every_endpoint_is_understood_with_gets_only(tmp_path: Path) -> None:
    shapes = tmp_path / "shapes.json"
    with sandbox() as server:
        code, out, err = cli("doctor", "--shapes", str(shapes), env=environment(server.url))
        calls = server.calls
    assert (code, err) == (0, "")
    assert [(c["method"], c["path"], c["status"]) for c in calls] == [
        ("GET", "/teams/get-all-teams", 200),
        ("GET", "/incidents/triggered?page=1&perPage=100", 200),
        ("GET", "/incidents/acknowledged?page=1&perPage=100", 200),
        ("GET", "/incidents/pay-101", 200),
        ("GET", "/incidents/pay-101/activity-log", 200),
    ]
    assert out.splitlines()[0] == "SPIKE_TEAM_ID's team (key from SPIKE_API_KEY)"
    assert "  GET /incidents/pay-101: 200, understood" in out
    assert "status from incident.status; priority from groupedIncident.priority" in out
    assert out.endswith("All 5 endpoints understood.\n")
    assert KEY not in out
    text = shapes.read_text()
    for secret in (KEY, TEAM, "pay-101", "pay-102", "Card authorisations", "Payout batch"):
        assert secret not in text
    saved = json.loads(text)
    endpoints = saved["teams"][0]["endpoints"]
    assert [(e["endpoint"], e["status"]) for e in endpoints] == [
        ("GET /teams/get-all-teams", 200),
        ("GET /incidents/triggered", 200),
        ("GET /incidents/acknowledged", 200),
        ("GET /incidents/{counterId}", 200),
        ("GET /incidents/{counterId}/activity-log", 200),
    ]
    assert endpoints[0]["shape"] == {"teams": [{"_id": "string", "name": "string"}]}
    assert endpoints[3]["shape"]["groupedIncident"] == {"priority": "null", "severity": "null"}
    assert endpoints[4]["shape"]["activities"] == [
        {"action": "string", "at": "string", "by": "string"}
    ]


def test_json_names_each_reading_and_the_incident_asked_for() -> None:
    with sandbox() as server:
        code, out, err = cli(
            "doctor", "--id", "pay-102", "--format", "json", env=environment(server.url)
        )
        paths = [c["path"] for c in server.calls]
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert body["understood"] is True
    team = body["teams"][0]
    assert (team["team"], team["key_source"], team["team_source"]) == (
        None,
        "SPIKE_API_KEY",
        "SPIKE_TEAM_ID",
    )
    incident = team["checks"][3]
    assert incident == {
        "endpoint": "GET /incidents/{counterId}",
        "request": "GET /incidents/pay-102",
        "status": 200,
        "outcome": "understood",
        "readings": [
            "status from incident.status",
            "priority from groupedIncident.priority",
            "severity from groupedIncident.severity",
        ],
        "problem": None,
    }
    assert "items under 'incidents'" in team["checks"][2]["readings"]
    assert "page count from pagination.totalPages" in team["checks"][2]["readings"]
    assert paths[-2:] == ["/incidents/pay-102", "/incidents/pay-102/activity-log"]


def test_a_refused_key_is_said_clearly_and_never_shown() -> None:
    with sandbox() as server:
        code, out, err = cli("doctor", env=environment(server.url, key="sk-wrong-key-0000"))
    assert (code, err) == (1, "")
    assert (
        "  GET /teams/get-all-teams: 401, refused\n"
        "    the Spike API answered 401 (invalid API key or team id: Unauthorized): check "
        "SPIKE_API_KEY\n"
        "    and SPIKE_TEAM_ID\n"
    ) in out
    assert "the open-incident lists were not read: pass --id ID" in out
    assert out.endswith("0 of 5 endpoints understood: see above.\n")
    assert "sk-wrong-key-0000" not in out


def test_no_open_incident_is_not_checked_and_exits_1() -> None:
    with sandbox({}) as server:
        code, out, _ = cli("doctor", env=environment(server.url))
        calls = server.calls
    assert code == 1
    assert "  GET /incidents/{counterId}: not checked\n" in out
    assert "no open incident is listed: pass --id ID (a resolved incident will do)" in out
    assert out.endswith("3 of 5 endpoints understood: see above.\n")
    assert len(calls) == 3


def test_a_team_id_the_key_does_not_see_is_not_understood() -> None:
    with OddSpike({"/teams/get-all-teams": {"teams": [{"_id": "someone-else"}]}}) as url:
        code, out, _ = cli("doctor", "--id", "pay-1", env=environment(url))
    assert code == 1
    assert "  GET /teams/get-all-teams: 200, not understood\n" in out
    assert f"team id {TEAM} (SPIKE_TEAM_ID) is not among the teams the key sees" in out


def test_every_team_of_reconcile_yaml_with_its_id_and_key_variable(tmp_path: Path) -> None:
    config = tmp_path / "reconcile.yaml"
    config.write_text(
        "version: 1\nteams:\n"
        "  payments: {team_id: team-pay, api_key_env: SPIKE_PAY_KEY}\n"
        "  search: {team_id: team-search}\n"
    )
    teams = {"team-pay": {"pay-1": {}}, "team-search": {"s-1": {"status": "ACK"}}}
    with SandboxServer(teams=teams, api_key=KEY) as server:
        env = {**environment(server.url, team=None), "SPIKE_PAY_KEY": KEY}
        code, out, err = cli("doctor", "--config", str(config), env=env)
        first = [(c["path"], c["team"]) for c in server.calls]
        server.clear_calls()
        code_one, out_one, _ = cli("doctor", "--config", str(config), "--team", "search", env=env)
        second = {c["team"] for c in server.calls}
    assert (code, err) == (0, "")
    assert out.startswith("team payments (key from SPIKE_PAY_KEY)\n")
    assert "\nteam search (key from SPIKE_API_KEY)\n" in out
    assert out.endswith("All 10 endpoints understood.\n")
    assert ("/incidents/pay-1", "team-pay") in first
    assert ("/incidents/s-1/activity-log", "team-search") in first
    assert (code_one, second) == (0, {"team-search"})
    assert out_one.startswith("team search (key from SPIKE_API_KEY)\n")


# ---------------------------------------------------------------------------------------------
# Odd shapes: a small server answering what a test sets


class OddSpike:
    """A loopback server answering GET PATH (query ignored) with `routes[PATH]` as JSON, or a
    (status, body) pair; anything else is a 404."""

    def __init__(self, routes: dict[str, Any]) -> None:
        defaults: dict[str, Any] = {
            "/teams/get-all-teams": {"teams": [{"_id": TEAM, "name": "payments"}]},
            "/incidents/triggered": {"incidents": [{"counterId": "pay-1", "status": "NACK"}]},
            "/incidents/acknowledged": [],
            "/incidents/pay-1": {"incident": {"status": "NACK"}},
            "/incidents/pay-1/activity-log": {"activities": []},
        }
        self.routes = {**defaults, **routes}
        self.paths: list[str] = []

    def __enter__(self) -> str:
        odd = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                odd.paths.append(self.path)
                answer = odd.routes.get(path, (404, {"message": "no such endpoint"}))
                status, body = answer if isinstance(answer, tuple) else (200, answer)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_odd_but_readable_shapes_are_understood_and_say_how() -> None:
    routes = {
        "/teams/get-all-teams": {"data": {"teams": [{"id": TEAM, "title": "Payments"}]}},
        "/incidents/triggered": [{"counterId": 7, "message": "disk full"}],
        "/incidents/pay-1": {"incident": {"status": "ACK", "priority": "p2"}},
        "/incidents/pay-1/activity-log": [{"what": "ack"}],
    }
    with OddSpike(routes) as url:
        code, out, _ = cli("doctor", "--id", "pay-1", "--format", "json", env=environment(url))
    assert code == 0
    checks = json.loads(out)["teams"][0]["checks"]
    assert checks[0]["readings"] == [
        "the list of teams under 'data.teams'",
        "id from 'id'",
        "name from 'title'",
        "1 team",
        "the team id is listed",
    ]
    assert "counter id from counterId (a number)" in checks[1]["readings"]
    assert "status: not in the item (the list's own status)" in checks[1]["readings"]
    assert "title from message" in checks[1]["readings"]
    assert (
        "no pagination: the list is read page by page until an empty page" in checks[1]["readings"]
    )
    assert "items: the answer itself (a list)" in checks[2]["readings"]
    assert checks[3]["readings"] == [
        "status from incident.status",
        "priority from incident.priority",
        "severity not reported (the journaled value is kept)",
    ]
    assert checks[4]["readings"] == [
        "entries: the answer itself (a list)",
        "1 entry, each an object",
    ]


def test_missing_fields_are_not_understood_naming_the_field(tmp_path: Path) -> None:
    routes = {
        "/incidents/triggered": {"items": []},
        "/incidents/acknowledged": {"incidents": [{"id": "pay-9"}]},
        "/incidents/pay-1": {"incident": {"counterId": "pay-1", "title": "Disk full on db-7"}},
        "/incidents/pay-1/activity-log": {"incident": {}, "log": "nope"},
    }
    shapes = tmp_path / "shapes.json"
    with OddSpike(routes) as url:
        code, out, err = cli(
            "doctor", "--id", "pay-1", "--shapes", str(shapes), env=environment(url)
        )
    assert (code, err) == (1, "")
    assert (
        "  GET /incidents/triggered?page=1&perPage=100: 200, not understood\n"
        "    GET /incidents/triggered page 1: the response has no list of incidents (looked for "
        "the\n"
        "    answer itself, 'incidents' and 'data')\n"
    ) in out
    assert "GET /incidents/acknowledged page 1: an item has no valid counterId (None)" in out
    assert (
        "  GET /incidents/pay-1: 200, not understood\n"
        "    incident pay-1: the response has no 'incident.status'\n"
    ) in out
    assert "incident pay-1: the activity log has no list of entries" in out
    assert out.endswith("1 of 5 endpoints understood: see above.\n")
    saved = json.loads(shapes.read_text())["teams"][0]["endpoints"]
    assert saved[3]["shape"] == {"incident": {"counterId": "string", "title": "string"}}
    assert "Disk full" not in shapes.read_text()
    assert "pay-" not in shapes.read_text()


def test_a_server_error_is_refused_with_its_status() -> None:
    routes = {"/incidents/pay-1/activity-log": (404, {"message": "no such endpoint"})}
    with OddSpike(routes) as url:
        code, out, _ = cli("doctor", env=environment(url))
    assert code == 1
    assert "  GET /incidents/pay-1/activity-log: 404, refused\n    404 no such endpoint\n" in out


def test_an_invalid_id_is_refused_before_any_request() -> None:
    odd = OddSpike({})
    with odd as url:
        code, out, err = cli("doctor", "--id", "no such id", env=environment(url))
    assert (code, out) == (1, "")
    assert err == "error: --id 'no such id': not a counter id\n"
    assert odd.paths == []


# ---------------------------------------------------------------------------------------------
# shape_of


def test_shape_of_replaces_values_and_hides_keys_that_are_data() -> None:
    answer = {
        "incidents": [
            {"counterId": "pay-1", "score": 1.5, "open": True, "by": None, "sev1": 3},
            {"counterId": "pay-2", "score": 2.0, "open": False, "by": None, "sev1": 4},
        ],
        "byId": {
            "pay-1": {"status": "NACK"},
            "64b7f0c2e1d3a4b5c6d7e8f9": {"status": "ACK"},
            "116": [1, "x"],
            "payments": {"status": "RES"},
        },
    }
    shape = shape_of(answer, hidden={"payments"})
    assert shape == {
        "incidents": [
            {
                "counterId": "string",
                "score": "number",
                "open": "boolean",
                "by": "null",
                "sev1": "integer",
            }
        ],
        "byId": {HIDDEN_KEY: {"status": "string"}, "<key 2>": ["integer", "string"]},
    }
