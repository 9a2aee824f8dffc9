"""What the sandbox does behind the tool's back, over real loopback HTTP, so drift can be tried
locally: deleting an incident, and an acknowledge timeout."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from helpers import T0, HandClock, cli, serve_sandbox

from reconciler.errors import ReconcileError
from reconciler.sandbox import SandboxServer
from reconciler.sandbox.incidents import seed_from_json

# ---------------------------------------------------------------------------------------------
# Deleting


def test_a_deleted_incident_is_gone_from_every_endpoint() -> None:
    with serve_sandbox({"t1": {"status": "ACK"}, "t2": {}}) as (server, client):
        deleted = client.post("/_sandbox/incidents", json={"t1": None})
        read = client.get("/incidents/t1")
        batch = client.post("/incidents/resolve", json={"ids": ["t2", "t1"]})
        sharing = client.patch("/incidents/t1/public-sharing", json={"publicSharing": True})
        acknowledged = client.get("/incidents/acknowledged").json()
        control = client.get("/_sandbox/incidents").json()
    assert deleted.status_code == 200
    assert deleted.json() == {"success": True, "ids": ["t1"]}
    assert read.status_code == 404
    assert read.json() == {"message": "unknown incident id: t1", "error": "Not Found"}
    assert batch.status_code == 400
    assert batch.json() == {"message": "unknown incident ids: t1", "error": "Bad Request"}
    assert sharing.status_code == 404
    assert sharing.json() == {"message": "unknown incident id: t1", "error": "Not Found"}
    assert acknowledged["incidents"] == []
    # The refused batch changed nothing: t2 is still triggered.
    assert list(control) == ["t2"]
    assert control["t2"]["status"] == "NACK"
    assert server.incidents() == control


def test_deleting_is_all_or_nothing_and_an_unknown_id_is_refused() -> None:
    with serve_sandbox({"t1": {}, "t2": {}}) as (server, client):
        before = server.incidents()
        response = client.post(
            "/_sandbox/incidents", json={"t1": None, "t2": {"status": "ACK"}, "zz": None}
        )
        after = server.incidents()
    assert response.status_code == 400
    assert response.json() == {
        "message": "incident zz: cannot delete it, there is no such incident",
        "error": "Bad Request",
    }
    assert after == before


def test_a_deleted_id_can_be_created_again_fresh() -> None:
    with serve_sandbox({"t1": {"priority": "p1", "title": "old"}}) as (server, client):
        server.set_incidents({"t1": None})
        assert server.incidents() == {}
        client.post("/_sandbox/incidents", json={"t1": {}})
        read = client.get("/incidents/t1")
    assert read.json()["incident"] == {
        "counterId": "t1",
        "status": "NACK",
        "message": "Sandbox incident t1",
        "priority": None,
        "severity": None,
    }


def test_set_incidents_refuses_deleting_an_unknown_id() -> None:
    with SandboxServer({"t1": {}}) as server:
        with pytest.raises(
            ValueError, match=r"^incident t2: cannot delete it, there is no such incident$"
        ):
            server.set_incidents({"t1": None, "t2": None})
        assert list(server.incidents()) == ["t1"]


def test_a_seed_cannot_delete(tmp_path: Path) -> None:
    path = tmp_path / "seed.json"
    path.write_text('{"incidents": {"a": null}}', encoding="utf-8")
    with pytest.raises(ReconcileError) as caught:
        seed_from_json(str(path))
    assert str(caught.value) == f"{path}: incident a: cannot delete it, there is no such incident"


# ---------------------------------------------------------------------------------------------
# Acknowledge timeout


def _status(client: httpx.Client, cid: str) -> str:
    response = client.get(f"/incidents/{cid}")
    assert response.status_code == 200
    status: str = response.json()["incident"]["status"]
    return status


def test_an_api_acknowledge_times_out_back_to_triggered() -> None:
    clock = HandClock()
    with serve_sandbox(
        {"x": {"age": "1h", "escalations": 2}, "r": {"status": "RES"}}, clock=clock, ack_timeout=300
    ) as (server, client):
        clock.now = T0 + 10
        client.post("/incidents/acknowledge", json={"ids": ["x"]})
        clock.now = T0 + 309.5
        assert _status(client, "x") == "ACK"
        clock.now = T0 + 310
        assert _status(client, "x") == "NACK"
        triggered = client.get("/incidents/triggered").json()["incidents"]
        snapshot = server.incidents()
        calls = [(c["method"], c["path"], c["status"]) for c in server.calls]
    # Re-triggered: the trigger time stays (the incident's age is from its creation), no ACK_at.
    assert triggered == [
        {
            "counterId": "x",
            "status": "NACK",
            "title": "Sandbox incident x",
            "message": "Sandbox incident x",
            "NACK_at": "2027-01-15T07:00:00.000Z",
        }
    ]
    assert snapshot["x"]["escalations"] == 2
    assert snapshot["r"]["status"] == "RES"
    # Nothing the tool sent did it: the calls are the acknowledge and the reads.
    assert calls == [
        ("POST", "/incidents/acknowledge", 200),
        ("GET", "/incidents/x", 200),
        ("GET", "/incidents/x", 200),
        ("GET", "/incidents/triggered", 200),
    ]


def test_seeded_and_control_acknowledgements_time_out_too() -> None:
    clock = HandClock()
    with serve_sandbox({"s": {"status": "ACK"}, "c": {}}, clock=clock, ack_timeout=60) as (
        server,
        client,
    ):
        clock.now = T0 + 30
        client.post("/_sandbox/incidents", json={"c": {"status": "ACK"}})
        clock.now = T0 + 60
        assert {cid: i["status"] for cid, i in server.incidents().items()} == {
            "s": "NACK",
            "c": "ACK",
        }
        clock.now = T0 + 90
        control = client.get("/_sandbox/incidents").json()
    assert {cid: i["status"] for cid, i in control.items()} == {"s": "NACK", "c": "NACK"}


def test_acknowledging_again_does_not_restart_the_clock_but_a_new_acknowledge_does() -> None:
    clock = HandClock()
    with serve_sandbox({"x": {}}, clock=clock, ack_timeout=100) as (_, client):
        client.post("/incidents/acknowledge", json={"ids": ["x"]})
        clock.now = T0 + 80
        # Already acknowledged: a 200 that changes nothing, the timeout still counts from T0.
        assert client.post("/incidents/acknowledge", json={"ids": ["x"]}).status_code == 200
        clock.now = T0 + 100
        assert _status(client, "x") == "NACK"
        client.post("/incidents/acknowledge", json={"ids": ["x"]})
        clock.now = T0 + 199
        acknowledged = client.get("/incidents/acknowledged").json()["incidents"]
        assert [(i["counterId"], i["ACK_at"]) for i in acknowledged] == [
            ("x", "2027-01-15T08:01:40.000Z")
        ]
        clock.now = T0 + 200
        assert _status(client, "x") == "NACK"


def test_without_a_timeout_an_acknowledge_lasts() -> None:
    clock = HandClock()
    with serve_sandbox({"x": {"status": "ACK"}}, clock=clock) as (_, client):
        clock.now = T0 + 10 * 365 * 86400
        assert _status(client, "x") == "ACK"


@pytest.mark.parametrize("timeout", [0, -1.5])
def test_a_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match=r"^ack_timeout must be more than 0 seconds$"):
        SandboxServer({}, ack_timeout=timeout)


def test_cli_refuses_a_timeout_of_zero() -> None:
    result = cli("sandbox", "--port", "0", "--ack-timeout", "0")
    assert result.code == 1
    assert "Invalid value for '--ack-timeout': 0.0 is not in the range x>0." in result.stderr
    assert "Traceback" not in result.stderr
