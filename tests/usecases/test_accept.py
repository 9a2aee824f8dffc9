"""`reconcile accept` (docs/drift.md, Accepting live values), over real HTTP against the
sandbox: live values of accept-policy fields (or those named) go into the state files, every
comment kept, and into the journal; any failed read, a 404 included, writes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from helpers import KEY, TEAM, HandClock, cli, env

from reconciler.config import ALL_REVERT
from reconciler.errors import LiveStateError, ReconcileError
from reconciler.sandbox import SandboxServer
from reconciler.usecases.accept import AcceptRequest, run_accept
from reconciler.usecases.drift import DriftEntry, DriftRequest, run_drift
from reconciler.usecases.plan import PlanRequest, run_plan

FILE = """\
# Payments: decided in the incident review of 2026-11-02.
version: 1
incidents:
  # Card declines: customers see it.
  pay-1:
    status: acknowledged  # the on-call has it
    # sev1 while refunds fail
    severity: sev1  # until the vendor fixes it
    priority: p2
  pay-2:
    priority: p3  # low: a retry succeeds
"""
ACCEPT = {**ALL_REVERT, "severity": "accept"}


class Repo(NamedTuple):
    server: SandboxServer
    states: Path
    journal: Path

    def accept(self, *ids: str, fields: tuple[str, ...] = (), **policy: str) -> Any:
        request = AcceptRequest(
            [str(self.states)],
            str(self.journal),
            ids,
            fields,
            drift_policy={**ALL_REVERT, **policy},
        )
        (outcome,) = run_accept([request])
        return outcome

    def drift(self, **policy: str) -> list[DriftEntry]:
        request = DriftRequest([str(self.states)], str(self.journal), 4, {**ALL_REVERT, **policy})
        return run_drift([request]).entries


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    """FILE applied to a sandbox."""
    states, journal = tmp_path / "states", tmp_path / "journal.jsonl"
    states.mkdir()
    (states / "payments.yaml").write_text(FILE)
    with (
        SandboxServer({}, api_key=KEY, team_id=TEAM, clock=HandClock()) as sbx,
        env(SPIKE_API_URL=sbx.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        sbx.set_incidents({"pay-1": {}, "pay-2": {}})
        code, out, err = cli("apply", str(states), "--auto-approve", "--journal", str(journal))
        assert code == 0, out + err
        yield Repo(sbx, states, journal)


def test_an_accepted_severity_is_written_with_its_comments_and_journaled(repo: Repo) -> None:
    repo.server.set_incidents({"pay-1": {"severity": "sev2"}, "pay-2": {"priority": "p5"}})
    outcome = repo.accept(severity="accept")
    path = str(repo.states / "payments.yaml")
    assert list(outcome.files) == [path]
    [entry] = outcome.files[path]
    assert (entry.incident, entry.field, entry.desired, entry.live) == (
        "pay-1",
        "severity",
        "sev1",
        "sev2",
    )
    # Only the accepted line changed (and fmt's canonical field order), every comment kept.
    assert (repo.states / "payments.yaml").read_text() == FILE.replace(
        "    # sev1 while refunds fail\n    severity: sev1  # until the vendor fixes it\n"
        "    priority: p2\n",
        "    priority: p2\n    # sev1 while refunds fail\n"
        "    severity: sev2  # until the vendor fixes it\n",
    ).replace("  pay-2:", "\n  pay-2:")
    # The priority's policy is revert: still drift, left for apply --refresh.
    assert repo.drift(severity="accept") == [
        DriftEntry("pay-2", "priority", "p3", "p3", "p5", "outside")
    ]
    journal = [json.loads(line) for line in repo.journal.read_text().splitlines()]
    assert journal[-1]["kind"] == "set" and journal[-1]["source"] == "accept"
    assert journal[-1]["incidents"] == {"pay-1": {"severity": "sev2"}}
    assert not run_plan([PlanRequest([str(repo.states)], str(repo.journal))]).has_changes


def test_without_selection_only_outside_drift_of_accept_fields_is_taken(repo: Repo) -> None:
    """A pending field is a change of the files not applied yet: the files win."""
    repo.server.set_incidents({"pay-1": {"status": "NACK"}, "pay-2": {"priority": "p5"}})
    text = (repo.states / "payments.yaml").read_text().replace("priority: p3", "priority: p1")
    (repo.states / "payments.yaml").write_text(text)
    before = repo.journal.read_bytes()
    outcome = repo.accept(priority="accept", status="warn")
    assert outcome.files == {}
    assert repo.journal.read_bytes() == before
    assert (repo.states / "payments.yaml").read_text() == text


def test_id_and_field_select_whatever_the_policy(repo: Repo) -> None:
    repo.server.set_incidents(
        {"pay-1": {"status": "NACK", "priority": "p1"}, "pay-2": {"priority": "p5"}}
    )
    outcome = repo.accept("pay-1", fields=("priority",))
    assert [(e.incident, e.field) for e in next(iter(outcome.files.values()))] == [
        ("pay-1", "priority")
    ]
    assert [(e.incident, e.field) for e in repo.drift()] == [
        ("pay-1", "status"),
        ("pay-2", "priority"),
    ]
    outcome = repo.accept(fields=("priority",))
    assert [(e.incident, e.field) for e in next(iter(outcome.files.values()))] == [
        ("pay-2", "priority")
    ]
    assert [(e.incident, e.field) for e in repo.drift()] == [("pay-1", "status")]


def test_a_missing_incident_is_a_failed_read_and_nothing_is_written(repo: Repo) -> None:
    repo.server.set_incidents({"pay-1": {"severity": "sev3"}, "pay-2": None})
    files, journal = (repo.states / "payments.yaml").read_bytes(), repo.journal.read_bytes()
    with pytest.raises(LiveStateError, match=r"(?s)pay-2: not found in Spike.*nothing written"):
        repo.accept(severity="accept")
    assert (repo.states / "payments.yaml").read_bytes() == files
    assert repo.journal.read_bytes() == journal
    code, _, err = cli("accept", str(repo.states), "--journal", str(repo.journal))
    assert code == 1 and "incident pay-2: not found in Spike" in err and "Traceback" not in err


def test_any_failed_read_writes_nothing(tmp_path: Path) -> None:
    states = tmp_path / "states"
    states.mkdir()
    (states / "payments.yaml").write_text(FILE)
    # Every read answers 429 asking for a wait longer than the client will ever wait.
    with (
        SandboxServer(
            {"pay-1": {}, "pay-2": {}},
            api_key=KEY,
            team_id=TEAM,
            fault_rate=1.0,
            fault_codes=[429],
            retry_after="99999",
        ) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
        pytest.raises(LiveStateError, match="nothing written"),
    ):
        run_accept([AcceptRequest([str(states)], str(tmp_path / "journal.jsonl"), ("pay-1",))])
    assert not (tmp_path / "journal.jsonl").exists()
    assert (states / "payments.yaml").read_text() == FILE


def test_a_resolved_incident_is_never_reopened_by_accepting(repo: Repo) -> None:
    text = (repo.states / "payments.yaml").read_text()
    (repo.states / "payments.yaml").write_text(text.replace("acknowledged", "resolved"))
    code, out, err = cli(
        "apply", str(repo.states), "--auto-approve", "--journal", str(repo.journal)
    )
    assert code == 0, out + err
    # Spike's own data says otherwise (a reused id, an import): never written as desired.
    repo.server.set_incidents({"pay-1": None})
    repo.server.set_incidents({"pay-1": {"status": "NACK", "priority": "p2", "severity": "sev1"}})
    outcome = repo.accept("pay-1")
    assert outcome.files == {}
    assert outcome.warnings == [
        "incident pay-1: status: not accepted: this tool recorded it as resolved, which is "
        "terminal, and Spike now says triggered (if Spike's data was reset: reconcile "
        "refresh --id pay-1 --reopened)"
    ]


def test_bad_selections_are_refused_before_any_read(repo: Repo) -> None:
    repo.server.clear_calls()
    with pytest.raises(ReconcileError, match="--field public_sharing: only status, priority"):
        repo.accept(fields=("public_sharing",))
    with pytest.raises(ReconcileError, match="--id nope-9: in no state file; `reconcile import`"):
        repo.accept("nope-9")
    with pytest.raises(ReconcileError, match="--id: invalid incident id"):
        repo.accept("bad id")
    assert repo.server.calls == []


def test_the_command_prints_the_files_it_changed(repo: Repo) -> None:
    repo.server.set_incidents({"pay-1": {"severity": None}})
    path = str(repo.states / "payments.yaml")
    args = ("accept", str(repo.states), "--journal", str(repo.journal), "--field", "severity")
    code, out, err = cli(*args, "--format", "json")
    assert code == 0, err
    body = json.loads(out)
    assert body["files"] == {
        path: [{"incident": "pay-1", "field": "severity", "was": "sev1", "live": None}]
    }
    assert body["journal"]["serial"] >= 1 and body["warnings"] == []
    assert "    severity: null  # until the vendor fixes it\n" in Path(path).read_text()
    code, out, _ = cli(*args)
    assert (code, out) == (0, "Nothing to accept: no drifted field was selected.\n")
    repo.server.set_incidents({"pay-2": {"priority": "p1"}})
    code, out, _ = cli("accept", str(repo.states), "--journal", str(repo.journal), "--id", "pay-2")
    assert out.splitlines()[0] == path
    assert out.splitlines()[1:] == [
        "  pay-2 priority: p3 -> p1",
        "Accepted 1 live value into 1 file; recorded in the journal (serial 6).",
    ]


RULES = """\
# Payments: the rules first, then the incidents.
version: 1
rules:
  # Disk alerts are noise until the new disks arrive.
  quiet-disk:  # agreed with storage
    match:
      status: [triggered]
      title: "^disk"   # every host
    set: {priority: p5}
    # max_matches: 10 (not needed yet)

# The incidents reviewed by hand.
incidents:
  pay-1:
    status: acknowledged
    severity: sev1  # until the vendor fixes it
    priority: p2
  pay-2:
    priority: p3
"""


def rule_changes(repo: Repo) -> list[tuple[str, str, Any, str]]:
    code, out, err = cli(
        "plan",
        str(repo.states),
        "--refresh",
        "--journal",
        str(repo.journal),
        "--format",
        "json",
    )
    assert code == 0, err
    return [
        (c["incident"], c["field"], c["after"], c["rule"])
        for c in json.loads(out)["changes"]
        if c.get("rule")
    ]


def test_accepting_into_a_file_with_rules_keeps_them_as_written(repo: Repo) -> None:
    """The rewrite owns the incidents only: the rules block, its comments and all, stays,
    and the file plans the same rules afterwards."""
    path = repo.states / "payments.yaml"
    path.write_text(RULES)
    repo.server.set_incidents({"disk-1": {"title": "disk full on db-1", "status": "NACK"}})
    repo.server.set_incidents({"pay-1": {"severity": "sev2"}})
    before = rule_changes(repo)
    assert before == [("disk-1", "priority", "p5", "quiet-disk")]
    outcome = repo.accept("pay-1", fields=("severity",))
    assert list(outcome.files) == [str(path)]
    rules_block = RULES.split("\n\n# The incidents")[0] + "\n"
    text = path.read_text()
    assert text.startswith(rules_block)
    assert text[len(rules_block) :] == (
        "# The incidents reviewed by hand.\n"
        "incidents:\n"
        "  pay-1:\n"
        "    status: acknowledged\n"
        "    priority: p2\n"
        "    severity: sev2  # until the vendor fixes it\n"
        "\n"
        "  pay-2:\n"
        "    priority: p3\n"
    )
    assert rule_changes(repo) == before
