"""The sandbox's open-incident lists over real loopback HTTP: `GET /incidents/triggered` and
`/incidents/acknowledged`, their items, pagination, titles and ages."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest
from helpers import T0, HandClock, serve_sandbox
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ReconcileError
from reconciler.sandbox.incidents import seed_from_json

_TLS = ssl.create_default_context()


def test_items_carry_status_title_message_and_timestamps() -> None:
    clock = HandClock()
    seed: dict[str, dict[str, object]] = {
        "b": {"title": "disk usage 91% on db-3", "age": "2d", "priority": "p2"},
        "a": {"age": 3600, "severity": "sev1"},
        "c": {"message": "checkout latency"},
        "k": {"status": "ACK", "age": "12h", "title": "cpu"},
        "r": {"status": "RES", "age": "3d"},
    }
    with serve_sandbox(seed, clock) as (_, client):
        triggered = client.get("/incidents/triggered")
        acknowledged = client.get("/incidents/acknowledged")
    assert triggered.status_code == 200
    assert triggered.json() == {
        "incidents": [
            {
                "counterId": "b",
                "status": "NACK",
                "title": "disk usage 91% on db-3",
                "message": "Sandbox incident b",
                "NACK_at": "2027-01-13T08:00:00.000Z",
                "priority": "p2",
            },
            {
                "counterId": "a",
                "status": "NACK",
                "title": "Sandbox incident a",
                "message": "Sandbox incident a",
                "NACK_at": "2027-01-15T07:00:00.000Z",
                "severity": "sev1",
            },
            {
                "counterId": "c",
                "status": "NACK",
                "title": "checkout latency",
                "message": "checkout latency",
                "NACK_at": "2027-01-15T08:00:00.000Z",
            },
        ],
        "pagination": {"page": 1, "perPage": 20, "total": 3, "totalPages": 1},
    }
    assert acknowledged.json() == {
        "incidents": [
            {
                "counterId": "k",
                "status": "ACK",
                "title": "cpu",
                "message": "Sandbox incident k",
                "NACK_at": "2027-01-14T20:00:00.000Z",
                "ACK_at": "2027-01-15T08:00:00.000Z",
            }
        ],
        "pagination": {"page": 1, "perPage": 20, "total": 1, "totalPages": 1},
    }


def test_acknowledging_stamps_ack_at_and_unacknowledging_clears_it() -> None:
    clock = HandClock()
    with serve_sandbox({"x": {"age": "1h"}, "y": {}}, clock) as (_, client):
        clock.now = T0 + 90.5
        assert client.post("/incidents/acknowledge", json={"ids": ["x"]}).status_code == 200
        assert client.get("/incidents/acknowledged").json()["incidents"] == [
            {
                "counterId": "x",
                "status": "ACK",
                "title": "Sandbox incident x",
                "message": "Sandbox incident x",
                "NACK_at": "2027-01-15T07:00:00.000Z",
                "ACK_at": "2027-01-15T08:01:30.500Z",
            }
        ]
        assert [i["counterId"] for i in client.get("/incidents/triggered").json()["incidents"]] == [
            "y"
        ]
        client.post("/incidents/unacknowledge", json={"ids": ["x"]})
        items = client.get("/incidents/triggered").json()["incidents"]
    # Back to triggered: its trigger time is unchanged, so it sorts first again; no ACK_at.
    assert [i["counterId"] for i in items] == ["x", "y"]
    assert "ACK_at" not in items[0]
    assert items[0]["NACK_at"] == "2027-01-15T07:00:00.000Z"


def test_same_trigger_time_sorts_by_counter_id_and_calls_log_the_query() -> None:
    with serve_sandbox({"z": {}, "m": {}, "a": {}}) as (server, client):
        first = client.get("/incidents/triggered", params={"page": 1, "perPage": 2}).json()
        second = client.get("/incidents/triggered", params={"page": 2, "perPage": 2}).json()
        beyond = client.get("/incidents/triggered", params={"page": 3, "perPage": 2}).json()
        calls = server.calls
    assert [i["counterId"] for i in first["incidents"]] == ["a", "m"]
    assert first["pagination"] == {"page": 1, "perPage": 2, "total": 3, "totalPages": 2}
    assert [i["counterId"] for i in second["incidents"]] == ["z"]
    assert beyond == {
        "incidents": [],
        "pagination": {"page": 3, "perPage": 2, "total": 3, "totalPages": 2},
    }
    assert [c["path"] for c in calls] == [
        "/incidents/triggered?page=1&perPage=2",
        "/incidents/triggered?page=2&perPage=2",
        "/incidents/triggered?page=3&perPage=2",
    ]
    assert {c["status"] for c in calls} == {200}


def test_an_empty_list_has_no_pages() -> None:
    with serve_sandbox({"r": {"status": "RES"}}) as (_, client):
        response = client.get("/incidents/acknowledged", params={"perPage": 100})
    assert response.json() == {
        "incidents": [],
        "pagination": {"page": 1, "perPage": 100, "total": 0, "totalPages": 0},
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("page=0", "page must be a whole number, 1 or more, not '0'"),
        ("page=x", "page must be a whole number, 1 or more, not 'x'"),
        ("perPage=", "perPage must be a whole number, 1 or more, not ''"),
        ("perPage=-5", "perPage must be a whole number, 1 or more, not '-5'"),
        ("perPage=1.5", "perPage must be a whole number, 1 or more, not '1.5'"),
        ("perPage=%C2%B2", "perPage must be a whole number, 1 or more, not '²'"),
        ("perPage=101", "perPage must be at most 100, not 101"),
        ("page=1&page=2", "page given 2 times"),
        ("limit=5", "unknown query parameters: limit (valid: page, perPage)"),
    ],
)
def test_bad_paging_is_a_400(query: str, message: str) -> None:
    with serve_sandbox({"a": {}}) as (server, client):
        response = client.get(f"/incidents/triggered?{query}")
        calls = server.calls
    assert response.status_code == 400
    assert response.json() == {"message": message, "error": "Bad Request"}
    assert calls == [
        {"method": "GET", "path": f"/incidents/triggered?{query}", "body": None, "status": 400}
    ]


def test_lists_take_get_only_and_need_auth() -> None:
    with serve_sandbox({"a": {}}) as (server, client):
        post = client.post("/incidents/triggered", json={})
        anonymous = httpx.get(f"{server.url}/incidents/acknowledged", verify=_TLS)
    assert post.status_code == 405
    assert post.headers["Allow"] == "GET"
    assert post.json() == {
        "message": "method POST is not allowed for /incidents/triggered",
        "error": "Method Not Allowed",
    }
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "message": "missing x-api-key or x-team-id header",
        "error": "Unauthorized",
    }


def test_control_endpoint_sets_title_and_age() -> None:
    clock = HandClock()
    with serve_sandbox({"a": {}}, clock) as (server, client):
        clock.now = T0 + 7200
        response = client.post(
            "/_sandbox/incidents", json={"a": {"title": "renamed"}, "n": {"age": "30m"}}
        )
        items = client.get("/incidents/triggered").json()["incidents"]
        bad = client.post("/_sandbox/incidents", json={"a": {"age": "3 days"}})
        snapshot = server.incidents()
    assert response.json() == {"success": True, "ids": ["a", "n"], "created": ["n"]}
    assert [(i["counterId"], i["title"], i["NACK_at"]) for i in items] == [
        ("a", "renamed", "2027-01-15T08:00:00.000Z"),
        ("n", "Sandbox incident n", "2027-01-15T09:30:00.000Z"),
    ]
    assert bad.status_code == 400
    assert bad.json() == {
        "message": 'incident a: age must be seconds (0 or more) or a string like "3d", "12h"',
        "error": "Bad Request",
    }
    assert snapshot["a"]["title"] == "renamed"
    assert "title" not in snapshot["n"]


def test_seed_json_gives_titles_and_ages(tmp_path: Path) -> None:
    path = tmp_path / "storm.json"
    path.write_text(
        json.dumps(
            {
                "incidents": {
                    "s-1": {"title": "disk usage 97%", "age": "15d", "priority": "p4"},
                    "s-2": {"title": "disk usage 80%", "age": "1h"},
                    "s-3": {"status": "ACK", "age": 86400},
                }
            }
        ),
        encoding="utf-8",
    )
    seed = seed_from_json(str(path))
    assert seed["s-1"]["title"] == "disk usage 97%"
    assert seed["s-1"]["age"] == 15 * 86400
    assert seed["s-3"]["age"] == 86400
    assert "title" not in seed["s-3"]
    with serve_sandbox(seed) as (_, client):
        triggered = client.get("/incidents/triggered").json()["incidents"]
        acknowledged = client.get("/incidents/acknowledged").json()["incidents"]
    assert [(i["counterId"], i["title"], i["NACK_at"]) for i in triggered] == [
        ("s-1", "disk usage 97%", "2026-12-31T08:00:00.000Z"),
        ("s-2", "disk usage 80%", "2027-01-15T07:00:00.000Z"),
    ]
    assert [(i["NACK_at"], i["ACK_at"]) for i in acknowledged] == [
        ("2027-01-14T08:00:00.000Z", "2027-01-15T08:00:00.000Z")
    ]


@pytest.mark.parametrize(
    ("age", "message"),
    [
        ('"3w"', 'incident a: age must be seconds (0 or more) or a string like "3d", "12h"'),
        ("-1", "incident a: age must be seconds"),
        ("true", "incident a: age must be seconds"),
        ('"d"', "incident a: age must be seconds"),
    ],
)
def test_seed_json_refuses_bad_ages(tmp_path: Path, age: str, message: str) -> None:
    path = tmp_path / "seed.json"
    path.write_text(f'{{"incidents": {{"a": {{"age": {age}}}}}}}', encoding="utf-8")
    with pytest.raises(ReconcileError) as caught:
        seed_from_json(str(path))
    assert str(caught.value).startswith(f"{path}: {message}")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ages=st.lists(st.integers(0, 5), max_size=45),
    acknowledged=st.sets(st.integers(0, 44)),
    per_page=st.integers(1, 100),
)
def test_pages_concatenated_are_the_whole_list(
    ages: list[int], acknowledged: set[int], per_page: int
) -> None:
    statuses = {f"i-{n}": "ACK" if n in acknowledged else "NACK" for n in range(len(ages))}
    seed: dict[str, dict[str, object]] = {
        f"i-{n}": {"age": age, "status": statuses[f"i-{n}"]} for n, age in enumerate(ages)
    }
    with serve_sandbox(seed) as (_, client):
        for path, status in (("/incidents/triggered", "NACK"), ("/incidents/acknowledged", "ACK")):
            expected = sorted(
                (-age, f"i-{n}") for n, age in enumerate(ages) if statuses[f"i-{n}"] == status
            )
            first = client.get(path, params={"perPage": per_page}).json()
            pages = first["pagination"]["totalPages"]
            assert first["pagination"] == {
                "page": 1,
                "perPage": per_page,
                "total": len(expected),
                "totalPages": -(-len(expected) // per_page),
            }
            seen = list(first["incidents"])
            for page in range(2, pages + 1):
                body = client.get(path, params={"page": page, "perPage": per_page}).json()
                assert len(body["incidents"]) == min(per_page, len(expected) - len(seen))
                seen += body["incidents"]
            ids = [item["counterId"] for item in seen]
            assert ids == [cid for _, cid in expected]
            assert len(set(ids)) == len(ids)
            assert {item["status"] for item in seen} <= {status}
