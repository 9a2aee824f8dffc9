"""The drift report (`run_drift`), over real HTTP against the sandbox: what Spike or a person
changed behind the tool's back is `outside`, what the files ask and was never applied is
`pending`, a deleted incident is `missing`; and the report writes nothing, anywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from helpers import KEY, TEAM, cli, env, write_states

from reconciler.errors import LiveStateError
from reconciler.sandbox import SandboxServer
from reconciler.usecases.drift import DriftEntry, DriftRequest, find_drift, run_drift

ACK_TIMEOUT = 1800.0
DESIRED: dict[str, dict[str, Any]] = {
    "web-1": {"status": "acknowledged", "priority": "p2"},
    "db-2": {"status": "resolved", "severity": "sev1"},
    "api-3": {"priority": "p1", "public_sharing": True, "escalations": 1},
}
LIVE: dict[str, dict[str, Any]] = {"web-1": {}, "db-2": {}, "api-3": {}}


class Clock:
    """The sandbox's clock, moved by hand: no sleeping."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Repo(NamedTuple):
    server: SandboxServer
    clock: Clock
    states: Path
    journal: Path

    def report(self) -> list[DriftEntry]:
        return run_drift([DriftRequest([str(self.states)], str(self.journal), 4)]).entries


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    """DESIRED applied to a sandbox whose integrations have an acknowledge timeout."""
    states, journal, clock = tmp_path / "states", tmp_path / "journal.jsonl", Clock()
    write_states(states, DESIRED)
    with (
        SandboxServer(LIVE, api_key=KEY, team_id=TEAM, clock=clock, ack_timeout=ACK_TIMEOUT) as sbx,
        env(SPIKE_API_URL=sbx.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        code, out, err = cli("apply", str(states), "--auto-approve", "--journal", str(journal))
        assert code == 0, out + err
        sbx.clear_calls()
        yield Repo(sbx, clock, states, journal)


def test_right_after_apply_there_is_no_drift(repo: Repo) -> None:
    report = run_drift([DriftRequest([str(repo.states)], str(repo.journal))])
    assert report.entries == []
    assert (report.incidents, report.drifted_incidents, report.fields) == (3, 0, 0)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", report.checked_at)


def test_an_acknowledge_timeout_is_drift_from_outside(repo: Repo) -> None:
    repo.clock.now += ACK_TIMEOUT  # Spike returns web-1 to triggered
    assert repo.report() == [
        DriftEntry("web-1", "status", "acknowledged", "acknowledged", "triggered", "outside")
    ]


def test_a_priority_changed_in_the_dashboard_is_drift_from_outside(repo: Repo) -> None:
    repo.server.set_incidents({"api-3": {"priority": "p4"}, "db-2": {"severity": None}})
    assert repo.report() == [
        DriftEntry("api-3", "priority", "p1", "p1", "p4", "outside"),
        DriftEntry("db-2", "severity", "sev1", "sev1", None, "outside"),
    ]


def test_a_change_not_applied_yet_is_pending(repo: Repo) -> None:
    # The files move on (a merged pull request not applied yet): web-1 to p1, a new incident.
    repo.server.set_incidents({"new-4": {"status": "NACK"}})
    write_states(
        repo.states, {**DESIRED, "web-1": {"priority": "p1"}, "new-4": {"severity": "sev2"}}
    )
    report = run_drift([DriftRequest([str(repo.states)], str(repo.journal))])
    assert report.entries == [
        DriftEntry("new-4", "severity", "sev2", None, None, "pending", journaled_known=False),
        DriftEntry("web-1", "priority", "p1", "p2", "p2", "pending"),
    ]
    assert (report.incidents, report.drifted_incidents, report.fields) == (4, 2, 2)


def test_a_deleted_incident_is_missing_and_the_others_still_reported(repo: Repo) -> None:
    repo.server.set_incidents({"db-2": None, "web-1": {"priority": "p3"}})
    report = run_drift([DriftRequest([str(repo.states)], str(repo.journal))])
    assert report.entries == [
        DriftEntry("db-2", None, None, None, None, "missing", journaled_known=False),
        DriftEntry("web-1", "priority", "p2", "p2", "p3", "outside"),
    ]
    assert (report.incidents, report.drifted_incidents, report.fields) == (3, 2, 1)


def test_the_report_writes_nothing_and_only_reads(repo: Repo) -> None:
    before = repo.journal.read_bytes()
    repo.clock.now += ACK_TIMEOUT
    repo.server.set_incidents({"db-2": None, "api-3": {"priority": "p5"}})
    assert len(repo.report()) == 3
    assert repo.journal.read_bytes() == before
    calls = repo.server.calls
    assert sorted((c["method"], c["path"]) for c in calls) == [
        ("GET", "/incidents/api-3"),
        ("GET", "/incidents/db-2"),
        ("GET", "/incidents/web-1"),
    ]
    # Nothing reverted: Spike still shows what the report saw.
    live = repo.server.incidents()
    assert (live["web-1"]["status"], live["api-3"]["priority"]) == ("NACK", "p5")


def test_a_read_that_fails_other_than_404_fails_the_report(tmp_path: Path) -> None:
    states = tmp_path / "states"
    write_states(states, {"web-1": {"status": "acknowledged"}, "db-2": {}})
    # Every read answers 429 asking for a wait longer than the client will ever wait.
    with (
        SandboxServer(
            LIVE, api_key=KEY, team_id=TEAM, fault_rate=1.0, fault_codes=[429], retry_after="99999"
        ) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
        pytest.raises(LiveStateError, match=r"^incident db-2: could not be read: .*429"),
    ):
        run_drift([DriftRequest([str(states)], str(tmp_path / "journal.jsonl"))])
    assert not (tmp_path / "journal.jsonl").exists()


def test_only_managed_fields_a_read_reports_can_drift() -> None:
    """public_sharing and escalations are not in a live read; a field the files do not manage
    is nobody's business; a field the read does not report is not drift."""
    desired: dict[str, dict[str, Any]] = {
        "a": {"status": "resolved", "public_sharing": True, "escalations": 2},
        "b": {"priority": "p1", "severity": "sev2"},
    }
    journal: dict[str, dict[str, Any]] = {"a": {"status": "resolved"}, "b": {"priority": "p1"}}
    live: dict[str, dict[str, Any]] = {
        "a": {"status": "resolved", "priority": "p5", "severity": "sev3"},
        "b": {"status": "triggered", "priority": "p3"},
    }
    assert find_drift(desired, journal, live) == [
        DriftEntry("b", "priority", "p1", "p1", "p3", "outside")
    ]


def test_entries_sort_by_incident_then_field_order() -> None:
    desired = {
        "b": {"severity": "sev1", "status": "resolved", "priority": "p1"},
        "a": {"priority": "p2"},
    }
    live = {"b": {"status": "triggered", "priority": None, "severity": None}}
    entries = find_drift(desired, {}, live, missing=["a"])
    assert [(e.incident, e.field) for e in entries] == [
        ("a", None),
        ("b", "status"),
        ("b", "priority"),
        ("b", "severity"),
    ]
    assert {e.kind for e in entries[1:]} == {"pending"}
