"""The sandbox over real loopback HTTP: Spike's semantics, auth, faults, the control endpoints."""

from __future__ import annotations

import json
import ssl
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.errors import ReconcileError, StateFileError
from reconciler.sandbox import SandboxServer
from reconciler.sandbox.incidents import seed_from_json, seed_from_paths

AUTH = {"x-api-key": "dev", "x-team-id": "dev"}
#: A client loads the CA bundle (~30 ms) even for plain http unless handed a context: share one.
_TLS = ssl.create_default_context()
#: Two triggered incidents, one acknowledged, one resolved.
SEED: dict[str, dict[str, object]] = {
    "t1": {},
    "t2": {},
    "a1": {"status": "ACK"},
    "r1": {"status": "RES"},
}


@contextmanager
def serve(
    seed: dict[str, dict[str, object]] | None = None, **options: Any
) -> Iterator[tuple[SandboxServer, httpx.Client]]:
    """A started sandbox and a client for it with valid credentials; both closed afterwards."""
    with (
        SandboxServer(SEED if seed is None else seed, **options) as server,
        http_client(server.url) as client,
    ):
        yield server, client


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SEED) as server:
        yield server


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with http_client(sandbox.url) as c:
        yield c


def http_client(url: str, headers: dict[str, str] = AUTH) -> httpx.Client:
    return httpx.Client(base_url=url, headers=headers, timeout=10, verify=_TLS)


def statuses(server: SandboxServer) -> dict[str, str]:
    return {cid: incident["status"] for cid, incident in server.incidents().items()}


def bad_request(message: str) -> dict[str, str]:
    return {"message": message, "error": "Bad Request"}


# ---------------------------------------------------------------------------------------------
# Happy paths


def test_acknowledge_moves_triggered_to_acknowledged_and_keeps_acknowledged(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    response = client.post("/incidents/acknowledge", json={"ids": ["a1", "t1"]})
    assert response.status_code == 200
    assert response.json() == {"success": True, "ids": ["a1", "t1"]}
    assert statuses(sandbox) == {"t1": "ACK", "t2": "NACK", "a1": "ACK", "r1": "RES"}


def test_unacknowledge_moves_acknowledged_to_triggered_and_keeps_triggered(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    response = client.post("/incidents/unacknowledge", json={"ids": ["a1", "t1"]})
    assert response.status_code == 200
    assert response.json() == {"success": True, "ids": ["a1", "t1"]}
    assert statuses(sandbox) == {"t1": "NACK", "t2": "NACK", "a1": "NACK", "r1": "RES"}


def test_resolve_closes_open_incidents_and_is_a_no_op_on_resolved_ones(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    response = client.post("/incidents/resolve", json={"ids": ["t1", "a1", "r1"]})
    assert response.status_code == 200
    assert response.json() == {"success": True, "ids": ["t1", "a1", "r1"]}
    assert statuses(sandbox) == {"t1": "RES", "t2": "NACK", "a1": "RES", "r1": "RES"}


def test_escalate_counts_each_call_and_keeps_the_status(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    for _ in range(2):
        response = client.post("/incidents/escalate", json={"ids": ["t1", "a1"]})
        assert response.json() == {"success": True, "ids": ["t1", "a1"]}
    client.post("/incidents/escalate", json={"ids": ["t1"]})
    incidents = sandbox.incidents()
    assert {cid: i["escalations"] for cid, i in incidents.items()} == {
        "t1": 3,
        "t2": 0,
        "a1": 2,
        "r1": 0,
    }
    assert statuses(sandbox) == {"t1": "NACK", "t2": "NACK", "a1": "ACK", "r1": "RES"}


@pytest.mark.parametrize(("field", "value"), [("priority", "p2"), ("severity", "sev1")])
def test_priority_and_severity_are_set_and_removed(
    sandbox: SandboxServer, client: httpx.Client, field: str, value: str
) -> None:
    response = client.post(f"/incidents/{field}", json={field: value, "ids": ["t1", "r1"]})
    assert response.status_code == 200
    assert response.json() == {"success": True, "ids": ["t1", "r1"], field: value}
    assert {cid: i[field] for cid, i in sandbox.incidents().items()} == {
        "t1": value,
        "t2": None,
        "a1": None,
        "r1": value,  # a resolved incident can still be triaged
    }

    response = client.request("DELETE", f"/incidents/{field}/remove", json={"ids": ["t1"]})
    assert response.status_code == 200
    assert response.json() == {"success": True, "ids": ["t1"]}
    assert sandbox.incidents()["t1"][field] is None
    assert sandbox.incidents()["r1"][field] == value


def test_public_sharing_enable_returns_a_url_and_disable_does_not(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    response = client.patch("/incidents/r1/public-sharing", json={"publicSharing": True})
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "success": True,
        "counterId": "r1",
        "publicSharing": True,
        "publicUrl": body["publicUrl"],
    }
    assert body["publicUrl"].startswith("https://") and body["publicUrl"].endswith("/r1")
    assert sandbox.incidents()["r1"]["public_sharing"] is True

    response = client.patch("/incidents/r1/public-sharing", json={"publicSharing": False})
    assert response.json() == {"success": True, "counterId": "r1", "publicSharing": False}
    assert sandbox.incidents()["r1"]["public_sharing"] is False


def test_get_incident_has_spikes_shape(sandbox: SandboxServer, client: httpx.Client) -> None:
    sandbox.set_incidents({"a1": {"priority": "p3", "severity": "sev2", "message": "disk full"}})
    response = client.get("/incidents/a1")
    assert response.status_code == 200
    assert response.json() == {
        "incident": {
            "counterId": "a1",
            "status": "ACK",
            "message": "disk full",
            "priority": "p3",
            "severity": "sev2",
        },
        "groupedIncident": {"priority": "p3", "severity": "sev2"},
    }


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/incidents/nope-1", None),
        ("PATCH", "/incidents/nope-1/public-sharing", {"publicSharing": True}),
    ],
)
def test_unknown_incident_in_the_path_is_404(
    client: httpx.Client, method: str, path: str, body: object
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == 404
    assert response.json() == {"message": "unknown incident id: nope-1", "error": "Not Found"}


def test_unknown_endpoint_is_404_and_wrong_method_is_405(client: httpx.Client) -> None:
    response = client.post("/incidents/snooze", json={"ids": ["t1"]})
    assert response.status_code == 404
    assert response.json() == {
        "message": "no such endpoint: POST /incidents/snooze",
        "error": "Not Found",
    }
    response = client.request("DELETE", "/incidents/resolve", json={"ids": ["t1"]})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"] == "Method Not Allowed"


# ---------------------------------------------------------------------------------------------
# Auth


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing x-api-key or x-team-id header"),
        ({"x-api-key": "s3cret-key"}, "missing x-api-key or x-team-id header"),
        ({"x-team-id": "team-7"}, "missing x-api-key or x-team-id header"),
        ({"x-api-key": "wrong", "x-team-id": "team-7"}, "invalid API key or team id"),
        ({"x-api-key": "s3cret-key", "x-team-id": "team-8"}, "invalid API key or team id"),
    ],
    ids=["none", "no-team", "no-key", "wrong-key", "wrong-team"],
)
def test_bad_credentials_are_401_change_nothing_and_never_echo_the_key(
    headers: dict[str, str], message: str
) -> None:
    with (
        SandboxServer(SEED, api_key="s3cret-key", team_id="team-7") as server,
        http_client(server.url, headers) as client,
    ):
        before = server.incidents()
        response = client.post("/incidents/resolve", json={"ids": ["t1"]})
        assert response.status_code == 401
        assert response.json() == {"message": message, "error": "Unauthorized"}
        got = client.get("/incidents/t1")
        assert got.status_code == 401
        assert server.incidents() == before
        calls = server.calls
        assert [c["status"] for c in calls] == [401, 401]
        everything = response.text + str(response.headers) + got.text + json.dumps(calls)
        assert "s3cret" not in everything


def test_right_credentials_are_accepted_when_not_the_defaults() -> None:
    with (
        SandboxServer(SEED, api_key="s3cret-key", team_id="team-7") as server,
        http_client(server.url, {"x-api-key": "s3cret-key", "x-team-id": "team-7"}) as client,
    ):
        assert client.post("/incidents/resolve", json={"ids": ["t1"]}).status_code == 200
        assert statuses(server)["t1"] == "RES"
        assert "s3cret" not in repr(server)


# ---------------------------------------------------------------------------------------------
# Refusals: a batch is all-or-nothing


BATCH_CALLS = [
    ("POST", "/incidents/acknowledge", {}),
    ("POST", "/incidents/unacknowledge", {}),
    ("POST", "/incidents/resolve", {}),
    ("POST", "/incidents/escalate", {}),
    ("POST", "/incidents/priority", {"priority": "p1"}),
    ("POST", "/incidents/severity", {"severity": "sev3"}),
    ("DELETE", "/incidents/priority/remove", {}),
    ("DELETE", "/incidents/severity/remove", {}),
]


@pytest.mark.parametrize(("method", "path", "extra"), BATCH_CALLS)
def test_unknown_ids_are_400_and_nothing_in_the_batch_changes(
    sandbox: SandboxServer, client: httpx.Client, method: str, path: str, extra: dict[str, str]
) -> None:
    sandbox.set_incidents({"t1": {"priority": "p4", "severity": "sev1"}})
    before = sandbox.incidents()
    response = client.request(method, path, json={**extra, "ids": ["t1", "zz-9", "a1", "aa0"]})
    assert response.status_code == 400
    assert response.json() == bad_request("unknown incident ids: aa0, zz-9")
    assert sandbox.incidents() == before


@pytest.mark.parametrize(
    ("path", "verb"),
    [
        ("/incidents/acknowledge", "acknowledge"),
        ("/incidents/unacknowledge", "unacknowledge"),
        ("/incidents/escalate", "escalate"),
    ],
)
def test_resolved_is_terminal(
    sandbox: SandboxServer, client: httpx.Client, path: str, verb: str
) -> None:
    sandbox.set_incidents({"r2": {"status": "RES"}})
    before = sandbox.incidents()
    response = client.post(path, json={"ids": ["t1", "r2", "a1", "r1"]})
    assert response.status_code == 400
    assert response.json() == bad_request(
        f"cannot {verb} resolved incidents (resolved is terminal): r1, r2"
    )
    assert sandbox.incidents() == before


@pytest.mark.parametrize(
    ("method", "path", "content", "message"),
    [
        ("POST", "/incidents/acknowledge", b"", "request body is required: {ids}"),
        ("POST", "/incidents/acknowledge", b"ids=t1", "request body is not valid JSON"),
        ("POST", "/incidents/acknowledge", b'["t1"]', "request body must be a JSON object"),
        ("POST", "/incidents/acknowledge", b"{}", "missing body keys: ids"),
        ("POST", "/incidents/acknowledge", b'{"ids": "t1"}', "ids must be a list of counter"),
        ("POST", "/incidents/acknowledge", b'{"ids": [1]}', "ids must be a list of counter"),
        ("POST", "/incidents/acknowledge", b'{"ids": []}', "ids must not be empty"),
        ("POST", "/incidents/acknowledge", b'{"ids": ["t1", "t1"]}', "duplicate incident ids: t1"),
        ("POST", "/incidents/acknowledge", b'{"ids": ["t1"], "x": 1}', "unexpected body keys: x"),
        ("POST", "/incidents/priority", b'{"ids": ["t1"]}', "missing body keys: priority"),
        (
            "POST",
            "/incidents/priority",
            b'{"priority": "p9", "ids": ["t1"]}',
            "priority must be one of p1, p2, p3, p4, p5",
        ),
        (
            "POST",
            "/incidents/severity",
            b'{"severity": null, "ids": ["t1"]}',
            "severity must be one of sev1, sev2, sev3",
        ),
        ("PATCH", "/incidents/t1/public-sharing", b"{}", "missing body keys: publicSharing"),
        (
            "PATCH",
            "/incidents/t1/public-sharing",
            b'{"publicSharing": "yes"}',
            "publicSharing must be true or false",
        ),
    ],
)
def test_malformed_bodies_are_400_and_change_nothing(
    sandbox: SandboxServer,
    client: httpx.Client,
    method: str,
    path: str,
    content: bytes,
    message: str,
) -> None:
    before = sandbox.incidents()
    response = client.request(
        method, path, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Bad Request"
    assert body["message"].startswith(message)
    assert sandbox.incidents() == before
    [call] = sandbox.calls
    assert call["status"] == 400


def test_a_batch_larger_than_max_batch_is_400() -> None:
    with serve(max_batch=2) as (server, client):
        response = client.post("/incidents/resolve", json={"ids": ["t1", "t2", "a1"]})
        assert response.status_code == 400
        assert response.json() == bad_request("too many ids: 3, at most 2 per call")
        assert statuses(server)["t1"] == "NACK"
        assert client.post("/incidents/resolve", json={"ids": ["t1", "t2"]}).status_code == 200
        assert statuses(server) == {"t1": "RES", "t2": "RES", "a1": "ACK", "r1": "RES"}


def test_chunked_bodies_are_refused_and_the_connection_closed(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    response = client.post("/incidents/resolve", content=iter([b'{"ids": ["t1"]}']))
    assert response.status_code == 411
    assert response.headers["connection"] == "close"
    assert statuses(sandbox)["t1"] == "NACK"
    assert sandbox.calls == [
        {"method": "POST", "path": "/incidents/resolve", "body": None, "status": 411}
    ]


# ---------------------------------------------------------------------------------------------
# Faults and latency


def run_escalations(seed: int, count: int = 40) -> tuple[list[int], int, list[dict[str, Any]]]:
    """`count` escalations of t1 under 50% faults: (statuses seen, final count, calls log)."""
    with serve(fault_rate=0.5, fault_seed=seed) as (server, client):
        seen = [
            client.post("/incidents/escalate", json={"ids": ["t1"]}).status_code
            for _ in range(count)
        ]
        return seen, server.incidents()["t1"]["escalations"], server.calls


def test_fault_injection_repeats_with_the_same_seed_and_faults_change_nothing() -> None:
    first, escalations, calls = run_escalations(seed=7)
    second, _, _ = run_escalations(seed=7)
    other, _, _ = run_escalations(seed=8)
    assert first == second
    assert first != other
    assert set(first) == {200, 429, 500, 503}
    # Only the calls that succeeded escalated: an injected fault is not applied.
    assert escalations == first.count(200)
    assert [c["status"] for c in calls] == first
    assert all(c["body"] == {"ids": ["t1"]} for c in calls)


def test_injected_faults_have_spikes_error_shape_and_429_carries_retry_after() -> None:
    with serve(fault_rate=1.0, fault_codes=(429,)) as (server, client):
        response = client.post("/incidents/acknowledge", json={"ids": ["t1"]})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "0"
        assert response.json() == {
            "message": "injected fault (sandbox)",
            "error": "Too Many Requests",
        }
        assert statuses(server)["t1"] == "NACK"
    with serve(fault_rate=1.0, fault_codes=(429,), retry_after="7") as (_, client):
        assert client.get("/incidents/t1").headers["retry-after"] == "7"
    with serve(fault_rate=1.0, fault_codes=(429,), retry_after=None) as (_, client):
        assert "retry-after" not in client.get("/incidents/t1").headers
    with serve(fault_rate=1.0, fault_codes=(503,)) as (_, client):
        response = client.get("/incidents/t1")
        assert response.status_code == 503
        assert "retry-after" not in response.headers
        assert response.json()["error"] == "Service Unavailable"


def test_faults_and_latency_apply_to_the_api_only() -> None:
    with serve(fault_rate=1.0, latency=0.2) as (server, client):
        started = time.perf_counter()
        assert client.get("/_sandbox/incidents").status_code == 200
        assert client.post("/_sandbox/incidents", json={"t1": {"status": "ACK"}}).status_code == 200
        assert client.get("/_sandbox/calls").json() == []
        assert time.perf_counter() - started < 0.2
        started = time.perf_counter()
        assert client.get("/incidents/t1").status_code in (429, 500, 503)
        assert time.perf_counter() - started >= 0.2
        assert len(server.calls) == 1


# ---------------------------------------------------------------------------------------------
# Control endpoints and the Python API


def test_calls_log_records_every_api_call_in_order(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    client.post("/incidents/acknowledge", json={"ids": ["t1"]})
    client.post("/incidents/acknowledge", json={"ids": ["nope"]})
    client.get("/incidents/t1", headers={"x-api-key": "wrong"})
    client.patch("/incidents/t2/public-sharing", json={"publicSharing": True})
    client.get("/_sandbox/incidents")  # control calls are not recorded
    expected = [
        {
            "method": "POST",
            "path": "/incidents/acknowledge",
            "body": {"ids": ["t1"]},
            "status": 200,
        },
        {
            "method": "POST",
            "path": "/incidents/acknowledge",
            "body": {"ids": ["nope"]},
            "status": 400,
        },
        {"method": "GET", "path": "/incidents/t1", "body": None, "status": 401},
        {
            "method": "PATCH",
            "path": "/incidents/t2/public-sharing",
            "body": {"publicSharing": True},
            "status": 200,
        },
    ]
    assert sandbox.calls == expected
    assert client.get("/_sandbox/calls").json() == expected

    sandbox.calls[0]["status"] = 999  # a copy: the log itself is untouched
    assert sandbox.calls == expected

    response = client.delete("/_sandbox/calls")
    assert response.json() == {"success": True, "cleared": 4}
    assert sandbox.calls == []
    assert client.get("/_sandbox/calls").json() == []


def test_calls_file_gets_every_call_as_a_json_line(tmp_path: Path) -> None:
    calls_file = tmp_path / "calls.jsonl"
    with serve(calls_file=str(calls_file)) as (server, client):
        client.post("/incidents/resolve", json={"ids": ["t1"]})
        client.get("/incidents/zz")
        recorded = server.calls
    lines = calls_file.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == recorded
    assert [c["status"] for c in recorded] == [200, 404]


def test_sandbox_incidents_lists_every_incident(client: httpx.Client) -> None:
    response = client.get("/_sandbox/incidents")
    assert response.status_code == 200
    incidents = response.json()
    assert sorted(incidents) == ["a1", "r1", "t1", "t2"]
    assert incidents["a1"] == {
        "counterId": "a1",
        "status": "ACK",
        "message": "Sandbox incident a1",
        "priority": None,
        "severity": None,
        "public_sharing": False,
        "escalations": 0,
    }


def test_set_incidents_changes_and_creates_behind_the_tools_back(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    # An acknowledge timeout: the incident is triggered again, the tool is not told.
    client.post("/incidents/acknowledge", json={"ids": ["t1"]})
    created = sandbox.set_incidents({"t1": {"status": "NACK"}, "new-1": {"priority": "p1"}})
    assert created == ["new-1"]  # a typo in an id shows here, rather than passing for a change
    assert client.get("/incidents/t1").json()["incident"]["status"] == "NACK"
    assert sandbox.incidents()["new-1"] == {
        "counterId": "new-1",
        "status": "NACK",
        "message": "Sandbox incident new-1",
        "priority": "p1",
        "severity": None,
        "public_sharing": False,
        "escalations": 0,
    }
    assert client.post("/incidents/escalate", json={"ids": ["new-1"]}).status_code == 200


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"t1": {"status": "acknowledged"}}, "incident t1: status must be one of NACK, ACK, RES"),
        ({"t1": {"priority": "P1"}}, "incident t1: priority must be one of p1"),
        ({"t1": {"escalations": -1}}, "incident t1: escalations must be a whole number"),
        ({"t1": {"escalations": True}}, "incident t1: escalations must be a whole number"),
        ({"t1": {"public_sharing": 1}}, "incident t1: public_sharing must be true or false"),
        ({"t1": {"priorty": "p1"}}, "incident t1: unknown key 'priorty'"),
        ({"bad id": {}}, "invalid counter id 'bad id'"),
        ({"t1": "ACK"}, "incident t1: fields must be a mapping"),
    ],
)
def test_set_incidents_is_all_or_nothing(
    sandbox: SandboxServer, client: httpx.Client, changes: dict[str, Any], message: str
) -> None:
    before = sandbox.incidents()
    # A valid change first: it must not be applied either.
    batch = {"t2": {"status": "RES"}, **changes}
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        sandbox.set_incidents(batch)
    response = client.post("/_sandbox/incidents", json=batch)
    assert response.status_code == 400
    assert response.json()["message"].startswith(message)
    assert sandbox.incidents() == before


def test_set_incidents_over_http(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.post(
        "/_sandbox/incidents", json={"t2": {"status": "RES", "severity": "sev3"}, "n-2": {}}
    )
    # The answer names the ids the sandbox created, so a mistyped id is not silent.
    assert response.json() == {"success": True, "ids": ["n-2", "t2"], "created": ["n-2"]}
    assert client.get("/incidents/t2").json()["groupedIncident"] == {
        "priority": None,
        "severity": "sev3",
    }
    assert statuses(sandbox) == {
        "t1": "NACK",
        "t2": "RES",
        "a1": "ACK",
        "r1": "RES",
        "n-2": "NACK",
    }
    response = client.post("/_sandbox/incidents", content=b"nope")
    assert response.status_code == 400
    assert response.json()["message"].startswith("request body is not valid JSON")


def test_a_snapshot_can_be_fed_back_unchanged(sandbox: SandboxServer) -> None:
    sandbox.set_incidents({"t1": {"escalations": 2, "public_sharing": True}})
    snapshot = sandbox.incidents()
    sandbox.set_incidents(snapshot)
    assert sandbox.incidents() == snapshot


# ---------------------------------------------------------------------------------------------
# Seeding and options


def test_seed_from_paths_makes_fresh_incidents_whatever_the_desired_state(
    tmp_path: Path,
) -> None:
    (tmp_path / "team.yaml").write_text(
        textwrap.dedent(
            """\
            incidents:
              prim-122:
                status: acknowledged
                priority: p2
              116:
                status: resolved
            """
        ),
        encoding="utf-8",
    )
    seed = seed_from_paths([str(tmp_path)])
    assert sorted(seed) == ["116", "prim-122"]
    assert seed["116"] == {
        "counterId": "116",
        "status": "NACK",
        "message": "Sandbox incident 116",
        "priority": None,
        "severity": None,
        "public_sharing": False,
        "escalations": 0,
    }
    with SandboxServer(seed) as server:
        assert server.incidents() == seed


def test_seed_from_paths_reports_invalid_state_files(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("incidents:\n  x1:\n    priorty: p1\n", encoding="utf-8")
    with pytest.raises(StateFileError, match="priorty"):
        seed_from_paths([str(tmp_path)])


def test_seed_from_json_fills_in_defaults(tmp_path: Path) -> None:
    path = tmp_path / "seed.json"
    path.write_text(
        json.dumps({"incidents": {"9": {"status": "ACK", "escalations": 2}, "x-1": {}}}),
        encoding="utf-8",
    )
    seed = seed_from_json(str(path))
    assert seed["9"]["status"] == "ACK"
    assert seed["9"]["escalations"] == 2
    assert seed["9"]["priority"] is None
    assert seed["x-1"]["status"] == "NACK"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{nope", "not valid JSON"),
        ('{"incidents": {}, "extra": 1}', 'expected an object with one key, "incidents"'),
        ('{"incidents": {"1": {"status": "OPEN"}}}', "incident 1: status must be one of"),
    ],
)
def test_seed_from_json_names_the_file_on_errors(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "seed.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ReconcileError) as caught:
        seed_from_json(str(path))
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    with pytest.raises(ReconcileError, match="cannot read"):
        seed_from_json(str(tmp_path / "missing.json"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"host": "0.0.0.0"}, "only binds loopback"),
        ({"fault_rate": 1.5}, "fault_rate"),
        ({"fault_codes": (404,)}, "fault codes"),
        ({"fault_rate": 0.5, "fault_codes": ()}, "fault_codes"),
        ({"latency": -1.0}, "latency"),
        ({"max_batch": 0}, "max_batch"),
    ],
)
def test_invalid_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SandboxServer(**options)


# ---------------------------------------------------------------------------------------------
# The socket layer


def test_keep_alive_requests_do_not_stall(client: httpx.Client) -> None:
    client.get("/incidents/t1")  # connect outside the timing
    started = time.perf_counter()
    for _ in range(100):
        response = client.get("/incidents/t1")
        assert response.http_version == "HTTP/1.1"
    # With Nagle's algorithm on, each response waits ~40 ms for a delayed ACK: 4 s here.
    assert time.perf_counter() - started < 1.0


def test_concurrent_requests_are_each_applied_once(sandbox: SandboxServer) -> None:
    def escalate() -> None:
        with http_client(sandbox.url) as c:
            for _ in range(20):
                assert c.post("/incidents/escalate", json={"ids": ["t1"]}).status_code == 200

    threads = [threading.Thread(target=escalate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sandbox.incidents()["t1"]["escalations"] == 160
    assert len(sandbox.calls) == 160


def test_stop_drops_idle_keep_alive_connections() -> None:
    server = SandboxServer(SEED).start()
    with http_client(server.url) as client:
        assert client.get("/incidents/t1").status_code == 200
        started = time.perf_counter()
        server.stop()
        assert time.perf_counter() - started < 1.0
        with pytest.raises(httpx.TransportError):
            client.get("/incidents/t1")
    server.stop()  # idempotent
    assert server.calls[0]["status"] == 200  # still readable after stop
    with pytest.raises(RuntimeError, match="already started"):
        server.start()


def test_a_calls_file_that_cannot_be_opened_fails_start_cleanly(tmp_path: Path) -> None:
    server = SandboxServer(calls_file=str(tmp_path / "missing-dir" / "calls.jsonl"))
    with pytest.raises(FileNotFoundError):
        server.start()
    server.stop()  # nothing to stop, and it must not wait for a serve loop that never ran


def test_url_needs_a_started_server() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = SandboxServer().url
