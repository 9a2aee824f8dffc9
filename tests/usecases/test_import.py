"""`reconcile import`: live incidents into a state file and the journal, over real HTTP
against the sandbox. The next plan is empty for them; comments stay; a failing id writes
nothing at all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import KEY, TEAM, cli, env

from reconciler.sandbox import SandboxServer

LIVE = {
    "116": {"status": "ACK", "priority": "p2"},
    "db-9": {"status": "NACK", "severity": "sev1"},
    "prim-1": {"status": "RES", "priority": "p4", "severity": "sev3"},
    "web-3": {"status": "NACK"},
}
APPLIED = "# Payments.\nincidents:\n  web-3:  # checkout page\n    status: acknowledged\n"
HAND_WRITTEN = """\
# yaml-language-server: $schema=../schema/state-file.json
# Owned by the platform team.
version: 1
incidents:
  # Disk full on the primary; the PIR asked for a runbook.
  zz-1:
    status: resolved  # closed after the PIR
    # priority: p1
"""


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[SandboxServer, Path, str]]:
    """A states folder applied once (so the journal exists), the sandbox, the journal."""
    states = tmp_path / "states"
    states.mkdir()
    (states / "applied.yaml").write_text(APPLIED)
    journal = str(tmp_path / "journal.jsonl")
    with (
        SandboxServer(LIVE, api_key=KEY, team_id=TEAM) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        code, out, err = cli("apply", str(states), "--auto-approve", "--journal", journal)
        assert code == 0, out + err
        server.clear_calls()
        yield server, states, journal


def run_import(states: Path, journal: str, *args: str) -> tuple[int, str, str]:
    return cli("import", *args, "--states", str(states), "--journal", journal)


def test_imported_incidents_plan_empty(repo: tuple[SandboxServer, Path, str]) -> None:
    server, states, journal = repo
    target = states / "imported.yaml"
    code, out, err = run_import(states, journal, "db-9", "116", "--to", str(target))
    assert code == 0, err
    assert out == (
        f"Imported 2 incidents into {target}: db-9, 116\n"
        "Recorded their live values in the journal (serial 2).\n"
    )
    assert target.read_text() == (
        "version: 1\n"
        "incidents:\n"
        '  "116":\n'
        "    status: acknowledged\n"
        "    priority: p2\n"
        "    severity: null\n"
        "\n"
        "  db-9:\n"
        "    status: triggered\n"
        "    priority: null\n"
        "    severity: sev1\n"
    )
    assert sorted((c["method"], c["path"]) for c in server.calls) == [
        ("GET", "/incidents/116"),
        ("GET", "/incidents/db-9"),
    ]
    code, out, _ = cli("plan", str(states), "--journal", journal, "--detailed-exitcode")
    assert (code, out.strip()) == (0, "No changes. 3 incidents match the journal.")
    code, out, _ = cli("show", "--journal", journal, "--format", "json")
    shown = json.loads(out)["incidents"]
    assert shown["db-9"] == {"status": "triggered", "priority": None, "severity": "sev1"}
    assert shown["116"] == {"status": "acknowledged", "priority": "p2", "severity": None}


def test_a_file_with_hand_written_comments_keeps_them(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    _, states, journal = repo
    target = states / "platform.yaml"
    target.write_text(HAND_WRITTEN)
    code, _, err = run_import(states, journal, "prim-1", "--to", str(target))
    assert code == 0, err
    assert target.read_text() == (
        "# yaml-language-server: $schema=../schema/state-file.json\n"
        "# Owned by the platform team.\n"
        "version: 1\n"
        "incidents:\n"
        "  prim-1:\n"
        "    status: resolved\n"
        "    priority: p4\n"
        "    severity: sev3\n"
        "\n"
        "  # Disk full on the primary; the PIR asked for a runbook.\n"
        "  zz-1:\n"
        "    status: resolved  # closed after the PIR\n"
        "    # priority: p1\n"
    )


def test_importing_into_a_file_with_rules_keeps_them_as_written(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    """import owns the incidents it adds: the rules block stays byte for byte, and the file
    plans the same rules afterwards."""
    server, states, journal = repo
    server.set_incidents({"db-9": {"title": "db-9 replica lag"}})
    target = states / "rules.yaml"
    rules = (
        "rules:\n"
        "  # Stale triggered incidents: nobody looks at them.\n"
        "  quiet-db:  # agreed with storage\n"
        "    match: {status: [triggered], title: '^db'}\n"
        "    set: {priority: p5}\n"
    )
    target.write_text("version: 1\n" + rules)

    def rule_changes() -> list[tuple[str, str, str]]:
        code, out, err = cli(
            "plan", str(states), "--refresh", "--journal", journal, "--format", "json"
        )
        assert code == 0, err
        changes = json.loads(out)["changes"]
        return [(c["incident"], c["field"], c["rule"]) for c in changes if c.get("rule")]

    assert rule_changes() == [("db-9", "priority", "quiet-db")]
    code, _, err = run_import(states, journal, "116", "--to", str(target))
    assert code == 0, err
    assert target.read_text() == (
        "version: 1\n" + rules + "incidents:\n"
        '  "116":\n'
        "    status: acknowledged\n"
        "    priority: p2\n"
        "    severity: null\n"
    )
    assert rule_changes() == [("db-9", "priority", "quiet-db")]


def test_a_failing_id_leaves_the_file_and_the_journal_byte_identical(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    server, states, journal = repo
    target = states / "platform.yaml"
    target.write_text(HAND_WRITTEN)
    before = (target.read_bytes(), Path(journal).read_bytes())
    code, out, err = run_import(states, journal, "116", "nope-1", "gone-2", "--to", str(target))
    assert (code, out) == (1, "")
    assert "incident gone-2: not found in Spike (deleted, or another team)" in err
    assert "incident nope-1: not found in Spike (deleted, or another team)" in err
    assert (target.read_bytes(), Path(journal).read_bytes()) == before
    assert {c["method"] for c in server.calls} == {"GET"}
    new = states / "new.yaml"
    code, _, _ = run_import(states, journal, "116", "nope-1", "--to", str(new))
    assert code == 1 and not new.exists()
    assert Path(journal).read_bytes() == before[1]
    # A team adopting the tool has no journal yet: a failing import does not start one.
    fresh = states.parent / "fresh" / "journal.jsonl"
    code, _, _ = run_import(states, str(fresh), "nope-1", "--to", str(new))
    assert code == 1 and not fresh.parent.exists()


def test_an_id_already_written_is_refused_unless_overwrite(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    server, states, journal = repo
    applied = states / "applied.yaml"
    target = states / "new.yaml"
    journal_before = Path(journal).read_bytes()
    code, out, err = run_import(states, journal, "116", "web-3", "--to", str(target))
    assert (code, out) == (1, "")
    assert err == (
        "error: already in a state file (pass --overwrite to set their live fields there): "
        f"web-3 ({applied})\n"
    )
    assert server.calls == [] and not target.exists()
    assert Path(journal).read_bytes() == journal_before

    # Spike moved on (an acknowledge timeout); the team takes the live value, in place.
    applied.write_text(APPLIED.replace("acknowledged", "acknowledged\n    public_sharing: true"))
    server.set_incidents({"web-3": {"status": "NACK"}})
    code, out, err = run_import(states, journal, "web-3", "--to", str(target), "--overwrite")
    assert code == 0, err
    assert out.startswith(f"Imported 1 incident into {applied}: web-3\n")
    assert applied.read_text() == (
        "# Payments.\n"
        "incidents:\n"
        "  web-3:  # checkout page\n"
        "    status: triggered\n"
        "    priority: null\n"
        "    severity: null\n"
        "    public_sharing: true\n"
    )
    assert not target.exists()
    # Public sharing cannot be read from Spike: it stays in the file, and is the only change.
    code, out, _ = cli("plan", str(states), "--journal", journal, "--format", "json")
    operations = json.loads(out)["operations"]
    assert operations == [
        {
            "method": "PATCH",
            "path": "/incidents/web-3/public-sharing",
            "body": {"publicSharing": True},
        }
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad id", "--to", "{states}/x.yaml"], "error: import: invalid incident id 'bad id'\n"),
        (
            ["116", "--to", "{states}/x.json"],
            "error: --to {states}/x.json: a state file's name ends in .yaml or .yml\n",
        ),
    ],
)
def test_bad_arguments_call_nothing(
    repo: tuple[SandboxServer, Path, str], args: list[str], message: str
) -> None:
    server, states, journal = repo
    code, _, err = run_import(states, journal, *(a.format(states=states) for a in args))
    assert (code, err) == (1, message.format(states=states))
    assert server.calls == []


def test_an_invalid_state_file_stops_the_import(repo: tuple[SandboxServer, Path, str]) -> None:
    server, states, journal = repo
    broken = states / "broken.yaml"
    broken.write_text("incidents:\n  a: {status: open}\n")
    code, _, err = run_import(states, journal, "116", "--to", str(states / "new.yaml"))
    assert code == 1
    assert err == (
        f"{broken}:2:15: incident a: status must be one of triggered, acknowledged, resolved\n"
        "error: 1 problem in the state files\n"
    )
    assert server.calls == [] and not (states / "new.yaml").exists()


def test_a_file_outside_the_states_folder_is_checked_too(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    _, states, journal = repo
    elsewhere = states.parent / "elsewhere.yaml"
    elsewhere.write_text("incidents:\n  116: {}  # written by hand\n")
    code, out, err = run_import(states, journal, "116", "--to", str(elsewhere))
    assert (code, out) == (1, "")
    assert f"116 ({elsewhere})" in err
    code, _, err = run_import(states, journal, "116", "--to", str(elsewhere), "--overwrite")
    assert code == 0, err
    assert elsewhere.read_text() == (
        'incidents:\n  "116":  # written by hand\n'
        "    status: acknowledged\n    priority: p2\n    severity: null\n"
    )
    code, _, err = cli("import", "116", "--to", str(elsewhere), "--states", str(states / "no"))
    assert code == 1 and f"{states / 'no'}: no such file or directory" in err
