"""Drift: reading live state (plan --refresh, reconcile refresh) and the response parser."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import KEY, TEAM, cli, env, plan, plan_to_json, write_states

from reconciler.errors import CredentialsError, LiveStateError
from reconciler.journal.file import FileJournal
from reconciler.planner import overlay_live
from reconciler.sandbox import SandboxServer
from reconciler.spike.client import SpikeClient, SpikeConfig
from reconciler.spike.live import parse_incident, read_incidents

DESIRED = {
    "116": {"status": "acknowledged", "priority": "p2"},
    "prim-122": {"status": "acknowledged", "severity": "sev1"},
}


def test_parser_reads_grouped_values_and_falls_back_to_the_incident() -> None:
    body = {
        "incident": {"counterId": "1", "status": "ACK", "priority": "p4", "extra": {"x": 1}},
        "groupedIncident": {"severity": "sev2"},
        "other": [1, 2],
    }
    assert parse_incident("1", body) == {
        "status": "acknowledged",
        "priority": "p4",
        "severity": "sev2",
    }
    grouped = {"incident": {"status": "RES", "priority": "p1"}, "groupedIncident": {"priority": ""}}
    assert parse_incident("1", grouped) == {"status": "resolved", "priority": None}
    assert parse_incident("1", {"incident": {"status": "NACK"}}) == {"status": "triggered"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "incident 9: the response has no 'incident' object"),
        ({"data": {}}, "incident 9: the response has no 'incident' object"),
        ({"incident": {"counterId": "9"}}, "incident 9: the response has no 'incident.status'"),
        ({"incident": {"status": "OPEN"}}, "unrecognised incident.status 'OPEN'"),
        ({"incident": {"status": "ACK", "priority": "urgent"}}, "unrecognised priority 'urgent'"),
        (
            {"incident": {"status": "ACK"}, "groupedIncident": {"severity": 3}},
            "unrecognised severity 3",
        ),
    ],
)
def test_parser_is_strict_about_what_it_needs(body: Any, message: str) -> None:
    with pytest.raises(LiveStateError, match=message.replace("(", r"\(").replace("'", "'")):
        parse_incident("9", body)


def read_with(handler: Callable[[httpx.Request], httpx.Response], ids: list[str]) -> Any:
    async def go() -> Any:
        config = SpikeConfig("https://api.spike.sh", KEY, TEAM)
        async with SpikeClient(config, transport=httpx.MockTransport(handler)) as client:
            return await read_incidents(client, ids)

    return asyncio.run(go())


def test_read_reports_every_unreadable_incident() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        cid = request.url.path.rsplit("/", 1)[1]
        if cid == "gone":
            return httpx.Response(404, json={"message": "not found"})
        if cid == "odd":
            return httpx.Response(200, json={"incident": {"state": "open"}})
        return httpx.Response(200, json={"incident": {"status": "ACK"}})

    with pytest.raises(LiveStateError) as info:
        read_with(handler, ["ok", "gone", "odd"])
    assert str(info.value).splitlines() == [
        "incident gone: not found in Spike (deleted, or another team)",
        "incident odd: the response has no 'incident.status'",
    ]
    assert read_with(handler, ["ok", "ok"]) == {"ok": {"status": "acknowledged"}}


def test_read_stops_on_credentials() -> None:
    with pytest.raises(CredentialsError):
        read_with(lambda request: httpx.Response(401, json={"message": "no"}), ["a", "b"])


def test_refreshed_takes_only_managed_or_journaled_fields() -> None:
    journal = {"a": {"status": "acknowledged"}, "b": {"priority": "p1"}}
    live = {
        "a": {"status": "triggered", "priority": "p3"},
        "b": {"status": "resolved", "priority": "p1"},
        "c": {"status": "triggered"},
    }
    merged, drift, record = overlay_live(journal, live, {"a": {"status": "acknowledged"}, "c": {}})
    assert [(d.incident, d.field, d.journaled, d.live) for d in drift] == [
        ("a", "status", "acknowledged", "triggered")
    ]
    assert record == {"a": {"status": "triggered"}}
    assert merged["a"] == {"status": "triggered"}
    # Without desired states (adoption), everything live about an unknown incident is taken.
    _, _, adopted = overlay_live({}, {"c": {"status": "triggered", "priority": None}})
    assert adopted == {"c": {"status": "triggered", "priority": None}}


def test_planning_against_live_values() -> None:
    result = plan(
        {"a": {"status": "acknowledged", "priority": "p2"}},
        {"a": {"status": "acknowledged", "priority": "p2"}},
        live={"a": {"status": "triggered", "priority": "p2"}},
    )
    assert [op.path for op in result.operations] == ["/incidents/acknowledge"]
    assert result.live_values == {"a": {"status": "triggered"}}
    assert result.has_changes
    body = plan_to_json(result)
    assert body["drift"] == [
        {
            "incident": "a",
            "field": "status",
            "journaled": "acknowledged",
            "live": "triggered",
            "policy": "revert",
        }
    ]
    assert body["refresh"] == {"a": {"status": "triggered"}}


# ---------------------------------------------------------------------------------------------
# Against the sandbox


@pytest.fixture
def applied(tmp_path: Path) -> Iterator[tuple[SandboxServer, Path, str]]:
    start = {cid: {"status": "NACK"} for cid in (*DESIRED, "adopt-me")}
    write_states(tmp_path / "states", DESIRED)
    journal = str(tmp_path / "j.jsonl")
    with (
        SandboxServer(start, api_key=KEY, team_id=TEAM) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        code, out, err = cli(
            "apply", str(tmp_path / "states"), "--auto-approve", "--journal", journal
        )
        assert code == 0, out + err
        yield server, tmp_path, journal


def test_drift_is_shown_and_fixed_by_the_next_apply(applied: Any) -> None:
    server, tmp_path, journal = applied
    states = str(tmp_path / "states")
    # An acknowledge timeout returns the incident to triggered; someone changes a priority.
    server.set_incidents({"116": {"status": "NACK", "priority": "p5"}})
    code, out, _ = cli("plan", states, "--journal", journal, "--detailed-exitcode")
    assert code == 0 and "No changes" in out  # without --refresh, the journal is the truth
    code, out, _ = cli("plan", states, "--refresh", "--journal", journal, "--detailed-exitcode")
    assert code == 2
    assert "Changed outside reconcile" in out
    assert "! 116 status acknowledged -> triggered" in out
    assert "! 116 priority p2 -> p5" in out
    plan_file = str(tmp_path / "plan.json")
    cli("plan", states, "--refresh", "--journal", journal, "--out", plan_file)
    body = json.loads(Path(plan_file).read_text())
    assert {(d["incident"], d["field"]) for d in body["drift"]} == {
        ("116", "status"),
        ("116", "priority"),
    }
    assert [op["path"] for op in body["operations"]] == [
        "/incidents/acknowledge",
        "/incidents/priority",
    ]
    code, _, err = cli("apply", plan_file, "--journal", journal)
    assert code == 0, err
    assert server.incidents()["116"]["status"] == "ACK"
    assert server.incidents()["116"]["priority"] == "p2"
    code, out, _ = cli("plan", states, "--refresh", "--journal", journal, "--detailed-exitcode")
    assert code == 0, out


def test_refresh_records_live_values_so_the_next_plan_is_empty(applied: Any) -> None:
    server, tmp_path, journal = applied
    states = tmp_path / "states"
    server.set_incidents({"prim-122": {"severity": "sev3"}})
    # The team agrees with the dashboard change and writes it into the file.
    write_states(states, {**DESIRED, "prim-122": {"status": "acknowledged", "severity": "sev3"}})
    calls = len(server.calls)
    code, out, _ = cli("refresh", str(states), "--journal", journal)
    assert code == 0
    assert "! prim-122 severity sev1 -> sev3" in out
    assert all(c["method"] == "GET" for c in server.calls[calls:])
    code, out, _ = cli("plan", str(states), "--journal", journal, "--detailed-exitcode")
    assert code == 0, out


def test_refresh_adopts_incidents_the_journal_never_saw(applied: Any) -> None:
    server, tmp_path, journal = applied
    server.set_incidents({"adopt-me": {"status": "ACK", "priority": "p3"}})
    code, out, _ = cli(
        "refresh", str(tmp_path / "states"), "--id", "adopt-me", "--journal", journal
    )
    assert code == 0, out
    assert FileJournal(journal).read().incidents["adopt-me"] == {
        "status": "acknowledged",
        "priority": "p3",
        "severity": None,
    }
    code, out, _ = cli("refresh", "--id", "nope-1", str(tmp_path / "states"), "--journal", journal)
    assert code == 1


def test_a_deleted_incident_is_reported(applied: Any) -> None:
    _, tmp_path, journal = applied
    write_states(tmp_path / "states", {**DESIRED, "ghost-9": {"status": "resolved"}})
    code, _, err = cli("plan", str(tmp_path / "states"), "--refresh", "--journal", journal)
    assert code == 1
    assert "incident ghost-9: not found in Spike (deleted, or another team)" in err


def test_plans_without_refresh_need_no_network_and_no_credentials(tmp_path: Path) -> None:
    write_states(tmp_path / "states", DESIRED)
    with env(SPIKE_API_URL="https://127.0.0.1:1", SPIKE_API_KEY="", SPIKE_TEAM_ID=""):
        code, out, _ = cli("plan", str(tmp_path / "states"), "--journal", str(tmp_path / "j"))
        assert code == 0 and "API calls, in order" in out
        code, _, err = cli(
            "plan", str(tmp_path / "states"), "--refresh", "--journal", str(tmp_path / "j")
        )
        assert code == 1 and "SPIKE_API_KEY and SPIKE_TEAM_ID must be set" in err


def test_a_status_of_the_wrong_type_is_a_clean_error() -> None:
    with pytest.raises(LiveStateError, match=r"unrecognised incident\.status"):
        parse_incident("a-1", {"incident": {"status": ["ACK"]}})
