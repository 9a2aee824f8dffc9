"""Drift handling end to end (docs/drift.md): `reconcile` as real processes against the sandbox
over loopback HTTP, Spike's acknowledge timeout moved by a hand clock.

An acknowledge timeout under `status: warn` is reported and never reverted; a priority changed
in the dashboard is reverted by `apply --refresh --auto-approve`, unless a burst of such
changes makes the plan unsafe; a severity under `accept` is written into its file with its
comment; a deleted incident is `missing`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from helpers import KEY, TEAM, HandClock, command, env

from reconciler.config import ALL_REVERT
from reconciler.sandbox import SandboxServer

ACK_TIMEOUT = 600.0
FILE = """\
version: 1
incidents:
  web-1:
    status: acknowledged  # the on-call has it; the integration times out after 10 minutes
    priority: p2
  db-2:
    priority: p1
    severity: sev1  # customers see it: raise only in a review
"""
WARN_STATUS = {**ALL_REVERT, "status": "warn"}


class Repo(NamedTuple):
    server: SandboxServer
    clock: HandClock
    states: Path
    journal: Path
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command(*args, "--journal", str(self.journal)),
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.states.parent,
            timeout=60,
        )

    def non_get_calls(self) -> list[tuple[str, str]]:
        return [(c["method"], c["path"]) for c in self.server.calls if c["method"] != "GET"]


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    """FILE applied (by a real `reconcile apply`) to a sandbox with an acknowledge timeout."""
    states, journal, clock = tmp_path / "states", tmp_path / "journal.jsonl", HandClock()
    states.mkdir()
    (states / "incidents.yaml").write_text(FILE)
    seed: dict[str, dict[str, Any]] = {"web-1": {}, "db-2": {}}
    with SandboxServer(
        seed, api_key=KEY, team_id=TEAM, clock=clock, ack_timeout=ACK_TIMEOUT
    ) as server:
        environ = {
            **os.environ,
            "SPIKE_API_URL": server.url,
            "SPIKE_API_KEY": KEY,
            "SPIKE_TEAM_ID": TEAM,
        }
        environ.pop("RECONCILE_JOURNAL", None)
        repo = Repo(server, clock, states, journal, environ)
        done = repo.run("apply", str(states), "--auto-approve")
        assert done.returncode == 0, done.stdout + done.stderr
        server.clear_calls()
        # The same credentials for the use cases run in this process.
        with env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM):
            yield repo


def test_an_acknowledge_timeout_under_warn_is_reported_and_never_reverted(repo: Repo) -> None:
    (repo.states.parent / "reconcile.yaml").write_text(
        "version: 1\ndefaults:\n  drift: {status: warn}  # our integrations time out\n"
    )
    repo.clock.now += ACK_TIMEOUT  # Spike returns web-1 to triggered
    report = repo.run("drift", str(repo.states), "--format", "json", "--detailed-exitcode")
    assert report.returncode == 2, report.stderr
    [entry] = json.loads(report.stdout)["drift"]
    assert (entry["incident"], entry["field"], entry["live"]) == ("web-1", "status", "triggered")
    assert (entry["kind"], entry["policy"]) == ("outside", "warn")
    before = repo.journal.read_bytes()
    healed = repo.run("apply", str(repo.states), "--refresh", "--auto-approve")
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert (
        "! web-1 status acknowledged -> triggered  (policy warn: not reverted, only reported)"
        in healed.stdout
    )
    assert repo.non_get_calls() == []
    assert repo.server.incidents()["web-1"]["status"] == "NACK"
    assert repo.journal.read_bytes() == before
    # The journal kept `acknowledged`: a plan without --refresh plans nothing either.
    plain = repo.run("plan", str(repo.states), "--detailed-exitcode")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    # Under revert (the default, --config naming a file without drift), self-heal
    # acknowledges it again.
    (repo.states.parent / "revert.yaml").write_text("version: 1\n")
    config = ("--config", str(repo.states.parent / "revert.yaml"))
    report = repo.run("drift", str(repo.states), "--format", "json", *config)
    assert [(e["incident"], e["policy"]) for e in json.loads(report.stdout)["drift"]] == [
        ("web-1", "revert")
    ]
    healed = repo.run("apply", str(repo.states), "--refresh", "--auto-approve", *config)
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert repo.non_get_calls() == [("POST", "/incidents/acknowledge")]


def test_a_priority_changed_in_the_dashboard_is_reverted_by_self_heal(repo: Repo) -> None:
    repo.server.set_incidents({"db-2": {"priority": "p4"}})
    healed = repo.run("apply", str(repo.states), "--refresh", "--auto-approve")
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert "! db-2 priority p1 -> p4  (policy revert: planned against live)" in healed.stdout
    assert repo.non_get_calls() == [("POST", "/incidents/priority")]
    assert repo.server.incidents()["db-2"]["priority"] == "p1"
    drift = repo.run("drift", str(repo.states), "--detailed-exitcode")
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert drift.stdout.startswith("No drift: 2 incidents checked")
    # Off a terminal, self-heal asks for --auto-approve like any apply.
    asked = repo.run("apply", str(repo.states), "--refresh")
    assert asked.returncode == 1 and "--auto-approve" in asked.stderr


def test_a_burst_of_outside_changes_is_not_reverted_without_force(tmp_path: Path) -> None:
    """A mass edit in the dashboard: reverting it changes recorded values on 4 of 10
    incidents, so the plan is unsafe and self-heal refuses it, calling nothing."""
    ids = [f"inc-{n}" for n in range(10)]
    states, journal = tmp_path / "states", tmp_path / "journal.jsonl"
    states.mkdir()
    body = "".join(f"  {cid}:\n    priority: p2\n" for cid in ids)
    (states / "incidents.yaml").write_text(f"version: 1\nincidents:\n{body}")
    with SandboxServer({cid: {} for cid in ids}, api_key=KEY, team_id=TEAM) as server:
        environ = {**os.environ, "SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY}
        environ["SPIKE_TEAM_ID"] = TEAM
        repo = Repo(server, HandClock(), states, journal, environ)
        assert repo.run("apply", str(states), "--auto-approve").returncode == 0
        server.set_incidents({cid: {"priority": "p5"} for cid in ids[:4]})
        server.clear_calls()
        refused = repo.run("apply", str(states), "--refresh", "--auto-approve")
        assert refused.returncode == 1
        assert "unsafe" in refused.stderr and "--force" in refused.stderr
        assert repo.non_get_calls() == []
        # A saved plan made with --refresh is refused the same way.
        saved = repo.run("plan", str(states), "--refresh", "--out", str(tmp_path / "p.json"))
        assert saved.returncode == 0 and "unsafe plan" in saved.stdout
        again = repo.run("apply", str(tmp_path / "p.json"))
        assert again.returncode == 1 and "unsafe" in again.stderr
        assert repo.non_get_calls() == []
        forced = repo.run("apply", str(states), "--refresh", "--auto-approve", "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert {i["priority"] for i in server.incidents().values()} == {"p2"}


def test_a_severity_under_accept_is_written_into_its_file_with_its_comment(repo: Repo) -> None:
    (repo.states.parent / "reconcile.yaml").write_text(
        "version: 1\ndefaults:\n  drift:\n    severity: accept\n"
    )
    repo.server.set_incidents({"db-2": {"severity": "sev2", "priority": "p3"}})
    accepted = repo.run("accept", str(repo.states))
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout == (
        f"{repo.states / 'incidents.yaml'}\n"
        "  db-2 severity: sev1 -> sev2\n"
        "Accepted 1 live value into 1 file; recorded in the journal (serial 5).\n"
    )
    text = (repo.states / "incidents.yaml").read_text()
    assert "    severity: sev2  # customers see it: raise only in a review\n" in text
    assert "# the on-call has it; the integration times out after 10 minutes" in text
    assert repo.non_get_calls() == []
    # The priority's policy is revert: still drift, for self-heal.
    report = repo.run("drift", str(repo.states), "--format", "json")
    assert [(e["field"], e["policy"]) for e in json.loads(report.stdout)["drift"]] == [
        ("priority", "revert")
    ]
    healed = repo.run("apply", str(repo.states), "--refresh", "--auto-approve")
    assert healed.returncode == 0, healed.stdout + healed.stderr
    clean = repo.run("drift", str(repo.states), "--detailed-exitcode")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    plain = repo.run("plan", str(repo.states), "--detailed-exitcode")
    assert plain.returncode == 0, plain.stdout + plain.stderr


def test_a_deleted_incident_is_missing(repo: Repo) -> None:
    repo.server.set_incidents({"db-2": None})
    report = repo.run("drift", str(repo.states), "--format", "json", "--detailed-exitcode")
    assert report.returncode == 2, report.stderr
    [entry] = json.loads(report.stdout)["drift"]
    assert (entry["incident"], entry["field"], entry["kind"]) == ("db-2", None, "missing")
    # Accept cannot write what it cannot read; self-heal cannot revert it.
    accepted = repo.run("accept", str(repo.states), "--id", "db-2")
    assert accepted.returncode == 1
    assert "incident db-2: not found in Spike" in accepted.stderr
    assert "nothing written" in accepted.stderr
    healed = repo.run("apply", str(repo.states), "--refresh", "--auto-approve")
    assert healed.returncode == 1 and "incident db-2: not found in Spike" in healed.stderr
    assert repo.non_get_calls() == []


def test_refresh_keeps_the_journal_value_of_a_warn_field(repo: Repo) -> None:
    (repo.states.parent / "reconcile.yaml").write_text(
        "version: 1\ndefaults:\n  drift: {status: warn}\n"
    )
    repo.clock.now += ACK_TIMEOUT
    repo.server.set_incidents({"db-2": {"priority": "p3"}})
    refreshed = repo.run("refresh", str(repo.states))
    assert refreshed.returncode == 0, refreshed.stderr
    assert refreshed.stdout.splitlines() == [
        "Changed outside reconcile (journal -> live):",
        "  ! db-2 priority p1 -> p3",
        "  ! web-1 status acknowledged -> triggered  (policy warn: not recorded, the journal "
        "keeps its value)",
        "Recorded live values of 1 incident (journal serial 5); nothing was changed in Spike.",
    ]
    # The recorded priority is planned back; the warned status is not.
    plan = repo.run("plan", str(repo.states), "--format", "json")
    changes = json.loads(plan.stdout)["changes"]
    assert [(c["incident"], c["field"]) for c in changes] == [("db-2", "priority")]


def test_a_saved_refresh_plan_follows_the_policies_it_was_made_with(repo: Repo) -> None:
    (repo.states.parent / "reconcile.yaml").write_text(
        "version: 1\ndefaults:\n  drift: {status: warn}\n"
    )
    repo.clock.now += ACK_TIMEOUT
    repo.server.set_incidents({"db-2": {"priority": "p3"}})
    saved = repo.states.parent / "plan.json"
    made = repo.run("plan", str(repo.states), "--refresh", "--out", str(saved))
    assert made.returncode == 0, made.stderr
    body = json.loads(saved.read_text())
    assert [(d["incident"], d["policy"]) for d in body["drift"]] == [
        ("db-2", "revert"),
        ("web-1", "warn"),
    ]
    assert body["refresh"] == {"db-2": {"priority": "p3"}}
    refused = repo.run("apply", str(saved), "--refresh")
    assert refused.returncode == 1 and "--refresh cannot change a saved plan" in refused.stderr
    applied = repo.run("apply", str(saved))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert repo.non_get_calls() == [("POST", "/incidents/priority")]
    shown = repo.run("show", "--format", "json")
    assert '"acknowledged"' in shown.stdout and '"triggered"' not in shown.stdout
