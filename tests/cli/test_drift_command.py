"""`reconcile drift` as the operator and CI see it, against the sandbox over real HTTP: the
JSON report's exact shape, --out, the text and markdown views, exit codes (in-process and as a
real process), and errors that write nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from helpers import KEY, TEAM, CliRun, cli, command, env, write_states

from reconciler.github import COMMENT_LIMIT
from reconciler.render import drift_markdown
from reconciler.sandbox import SandboxServer
from reconciler.usecases.drift import DriftEntry, DriftReport

DESIRED = {
    "web-1": {"status": "acknowledged", "priority": "p2"},
    "db-2": {"status": "resolved"},
}
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Repo(NamedTuple):
    server: SandboxServer
    states: Path
    journal: Path

    def drift(self, *args: str) -> CliRun:
        return cli("drift", str(self.states), "--journal", str(self.journal), *args)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    states, journal = tmp_path / "states", tmp_path / "journal.jsonl"
    write_states(states, DESIRED)
    with (
        SandboxServer({"web-1": {}, "db-2": {}}, api_key=KEY, team_id=TEAM) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        code, out, err = cli("apply", str(states), "--auto-approve", "--journal", str(journal))
        assert code == 0, out + err
        server.clear_calls()
        yield Repo(server, states, journal)


def drifted(repo: Repo) -> None:
    """Someone lowers web-1's priority in the dashboard; db-2 is deleted."""
    repo.server.set_incidents({"web-1": {"priority": "p4"}, "db-2": None})


def test_the_json_report_has_exactly_this_shape(repo: Repo) -> None:
    drifted(repo)
    code, out, err = repo.drift("--format", "json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert STAMP.fullmatch(report.pop("checked_at"))
    # The fixture's apply (its audit's values depend on the environment: see
    # tests/github/test_drift_issue_last_apply.py for them).
    [last] = report.pop("last_apply")
    assert list(last) == ["team", "at", "commit", "repository", "pull_request", "run_url"]
    assert last["team"] is None and STAMP.fullmatch(last["at"])
    assert report == {
        "format_version": 1,
        "drift": [
            {
                "team": None,
                "incident": "db-2",
                "field": None,
                "desired": None,
                "journaled": None,
                "live": None,
                "policy": "revert",
                "kind": "missing",
            },
            {
                "team": None,
                "incident": "web-1",
                "field": "priority",
                "desired": "p2",
                "journaled": "p2",
                "live": "p4",
                "policy": "revert",
                "kind": "outside",
            },
        ],
        "summary": {"incidents": 2, "drifted_incidents": 2, "fields": 1},
    }
    assert list(json.loads(out)) == [
        "format_version",
        "checked_at",
        "drift",
        "summary",
        "last_apply",
    ]


def test_out_saves_the_json_whatever_is_printed(repo: Repo, tmp_path: Path) -> None:
    drifted(repo)
    saved = tmp_path / "drift.json"
    code, out, err = repo.drift("--out", str(saved))
    assert (code, err) == (0, "")
    assert out.endswith(
        "Drift: 1 field drifted and 1 incident missing in 2 incidents (2 incidents checked).\n"
    )
    assert "  - db-2: not found in Spike (deleted, or another team)\n" in out
    assert (
        "  ~ web-1\n      priority: desired p2, live p4 (journaled p2; outside, policy revert)\n"
        in out
    )
    report = json.loads(saved.read_text())
    assert [(e["incident"], e["kind"]) for e in report["drift"]] == [
        ("db-2", "missing"),
        ("web-1", "outside"),
    ]


def test_the_markdown_view_is_a_table(repo: Repo) -> None:
    drifted(repo)
    code, out, _ = repo.drift("--format", "markdown")
    assert code == 0
    assert out.startswith("### spike-reconcile drift report\n")
    assert "| `db-2` | _missing_ |  |  |  | missing | revert |\n" in out
    assert "| `web-1` | priority | p2 | p2 | p4 | outside | revert |\n" in out


def test_detailed_exit_codes_and_drift_never_writes(repo: Repo) -> None:
    before = repo.journal.read_bytes()
    clean = repo.drift("--detailed-exitcode")
    assert clean.code == 0, clean.stderr
    assert clean.stdout == "No drift: 2 incidents checked, all match the state files.\n"
    drifted(repo)
    assert repo.drift().code == 0  # drift alone is no failure without --detailed-exitcode
    assert repo.drift("--detailed-exitcode", "--format", "json").code == 2
    assert repo.journal.read_bytes() == before
    assert {c["method"] for c in repo.server.calls} == {"GET"}
    assert {c["path"] for c in repo.server.calls} == {"/incidents/web-1", "/incidents/db-2"}


def test_exit_codes_as_a_real_process_sees_them(repo: Repo, tmp_path: Path) -> None:
    args = ["drift", str(repo.states), "--journal", str(repo.journal), "--detailed-exitcode"]
    variables = dict(os.environ, SPIKE_API_URL=repo.server.url)
    assert subprocess.run(command(*args), env=variables, capture_output=True).returncode == 0
    drifted(repo)
    assert subprocess.run(command(*args), env=variables, capture_output=True).returncode == 2
    del variables["SPIKE_API_KEY"]
    failed = subprocess.run(command(*args), env=variables, capture_output=True, text=True)
    assert failed.returncode == 1
    assert "SPIKE_API_KEY" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_a_failed_read_is_exit_1_naming_the_incident_and_nothing_saved(tmp_path: Path) -> None:
    states, saved = tmp_path / "states", tmp_path / "drift.json"
    write_states(states, DESIRED)
    with (
        SandboxServer(
            {"web-1": {}, "db-2": {}},
            api_key=KEY,
            team_id=TEAM,
            fault_rate=1.0,
            fault_codes=[429],
            retry_after="99999",
        ) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        code, out, err = cli(
            "drift", str(states), "--journal", str(tmp_path / "j.jsonl"), "--out", str(saved),
            "--detailed-exitcode",
        )  # fmt: skip
    assert (code, out) == (1, "")
    assert err.startswith("error: incident db-2: could not be read: GET /incidents/db-2:")
    assert KEY not in err
    assert not saved.exists()
    assert not (tmp_path / "j.jsonl").exists()


def test_without_credentials_nothing_is_read(repo: Repo) -> None:
    code, out, err = cli(
        "drift", str(repo.states), "--journal", str(repo.journal), env={"SPIKE_API_KEY": None}
    )
    assert (code, out) == (1, "")
    assert "SPIKE_API_KEY" in err
    assert repo.server.calls == []


def test_bad_state_files_fail_before_any_call(repo: Repo) -> None:
    (repo.states / "incidents.yaml").write_text("version: 1\nincidents:\n  web-1: {status: up}\n")
    code, out, err = repo.drift()
    assert (code, out) == (1, "")
    assert "incidents.yaml:3" in err
    assert repo.server.calls == []


def test_a_huge_report_fits_an_issue_body() -> None:
    entries = [
        DriftEntry(f"incident-{n:05}", "priority", "p1", "p1", "p2", "outside")
        for n in range(5_000)
    ]
    report = DriftReport("2026-01-01T00:00:00.000Z", entries, 5_000)
    text = drift_markdown(report)
    assert len(text) < COMMENT_LIMIT
    shown = text.count("| `incident-")
    assert 100 < shown < 5_000
    assert text.endswith(
        f"_Truncated to fit a GitHub issue: {5_000 - shown} more rows not shown; the JSON "
        "report (`--out`) has them all._\n"
    )
