"""The sandbox's `GET /incidents/{counterId}/activity-log`: what happened to an incident,
oldest first, by whom (the API, a control request, the acknowledge timeout)."""

from __future__ import annotations

from helpers import T0, HandClock, serve_sandbox


def test_the_log_lists_the_trigger_then_every_change_in_order() -> None:
    clock = HandClock()
    with serve_sandbox({"pay-1": {"message": "Card declines"}}, clock, ack_timeout=60) as (
        server,
        client,
    ):
        clock.now = T0 + 10
        assert client.post("/incidents/acknowledge", json={"ids": ["pay-1"]}).status_code == 200
        # Acknowledging again changes nothing, so it logs nothing.
        client.post("/incidents/acknowledge", json={"ids": ["pay-1"]})
        clock.now = T0 + 20
        client.post("/incidents/priority", json={"priority": "p2", "ids": ["pay-1"]})
        clock.now = T0 + 100  # past the acknowledge timeout: back to triggered
        client.post("/_sandbox/incidents", json={"pay-1": {"escalations": 2}})
        clock.now = T0 + 110
        client.patch("/incidents/pay-1/public-sharing", json={"publicSharing": True})
        client.post("/incidents/resolve", json={"ids": ["pay-1"]})
        answer = client.get("/incidents/pay-1/activity-log")
        missing = client.get("/incidents/nope-1/activity-log")
    assert answer.status_code == 200
    at = "2027-01-15T08:0"
    assert answer.json() == {
        "incident": {"counterId": "pay-1", "status": "RES", "message": "Card declines"},
        "activities": [
            {"action": "triggered", "at": f"{at}0:00.000Z", "by": "alert"},
            {"action": "acknowledged", "at": f"{at}0:10.000Z", "by": "api"},
            {"action": "priority changed", "at": f"{at}0:20.000Z", "by": "api", "value": "p2"},
            {"action": "unacknowledged", "at": f"{at}1:40.000Z", "by": "acknowledge timeout"},
            {"action": "escalated", "at": f"{at}1:40.000Z", "by": "sandbox"},
            {"action": "escalated", "at": f"{at}1:40.000Z", "by": "sandbox"},
            {
                "action": "public sharing changed",
                "at": f"{at}1:50.000Z",
                "by": "api",
                "value": True,
            },
            {"action": "resolved", "at": f"{at}1:50.000Z", "by": "api"},
        ],
    }
    assert missing.status_code == 404
    assert missing.json() == {"message": "unknown incident id: nope-1", "error": "Not Found"}
    assert [c["path"] for c in server.calls][-2:] == [
        "/incidents/pay-1/activity-log",
        "/incidents/nope-1/activity-log",
    ]
