"""`reconcile journal migrate` retires its source (docs/journal.md, reconcile journal migrate):
end to end over real loopback HTTP against the sandbox, with file and PostgreSQL journals.

Before, the source of a migration still took the plans made for it: a plan made for A before
the migration, applied to A after a new plan was applied to the copy B, escalated an incident
a second time for a file asking once (two live journals sharing one history).
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import KEY, cli, command, write_states

from reconciler.journal import open_journal
from reconciler.sandbox import SandboxServer

TEAM = "team-a-0001"
PLAN_KEY = "k" * 32
RETIRED = "this journal was migrated to "


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(teams={TEAM: {"42": {"status": "NACK"}}}, api_key=KEY) as server:
        yield server


def spike(server: SandboxServer) -> dict[str, str]:
    return {
        "SPIKE_API_URL": server.url,
        "SPIKE_API_KEY": KEY,
        "SPIKE_TEAM_ID": TEAM,
        "RECONCILE_PLAN_KEY": PLAN_KEY,
    }


def make_plan(server: SandboxServer, work: Path, desired: dict[str, Any], journal: str) -> Path:
    write_states(work / "states", desired)
    out = work / "plan.json"
    code, stdout, stderr = cli(
        "plan", str(work / "states"), "--journal", journal, "--out", str(out), env=spike(server)
    )
    assert code == 0, stdout + stderr
    return out


def apply(server: SandboxServer, plan: Path, journal: str) -> tuple[int, str, int]:
    """`apply PLAN --journal JOURNAL`: (exit code, output, calls it sent)."""
    before = len(server.calls)
    code, out, err = cli("apply", str(plan), "--journal", journal, env=spike(server))
    return code, out + err, len(server.calls) - before


@pytest.fixture(params=["file-to-postgres", "postgres-to-file"])
def locations(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(source, destination): one a file, the other a PostgreSQL namespace of this test."""
    database = request.getfixturevalue("url")
    file = str(tmp_path / "journal.jsonl")
    return (file, database) if request.param == "file-to-postgres" else (database, file)


def test_the_source_of_a_migration_refuses_the_plan_made_for_it(
    sandbox: SandboxServer, tmp_path: Path, locations: tuple[str, str]
) -> None:
    source, dest = locations
    seeded = make_plan(sandbox, tmp_path / "seed", {"42": {"priority": "p3"}}, source)
    assert apply(sandbox, seeded, source)[:3:2] == (0, 1)
    asked = {"42": {"priority": "p3", "escalations": 1}}
    old = make_plan(sandbox, tmp_path / "old", asked, source)

    code, migrated, err = cli("journal", "migrate", "--from", source, "--to", dest)
    assert (code, err) == (0, ""), migrated + err

    new = make_plan(sandbox, tmp_path / "new", asked, dest)
    code, out, calls = apply(sandbox, new, dest)
    assert (code, calls) == (0, 1), out
    code, out, calls = apply(sandbox, old, source)
    assert (code, calls) == (1, 0), out
    shown = open_journal(dest).location
    assert f"{RETIRED}{shown} on " in out
    assert "Traceback" not in out
    assert sandbox.incidents(TEAM)["42"]["escalations"] == 1  # what the file asks, once
    assert migrated == (
        f"Copied 4 records from {open_journal(source).location} to {shown}; "
        f"{open_journal(source).location} is retired: use --journal {shlex.quote(shown)} "
        "from now on.\n"
    )


def test_a_retired_journal_is_read_by_show_and_log_and_refused_by_every_other_command(
    sandbox: SandboxServer, tmp_path: Path, url: str
) -> None:
    source = str(tmp_path / "journal.jsonl")
    seeded = make_plan(sandbox, tmp_path / "seed", {"42": {"priority": "p3"}}, source)
    assert apply(sandbox, seeded, source)[0] == 0
    assert cli("journal", "migrate", "--from", source, "--to", url)[0] == 0
    dest = open_journal(url).location
    retired = open_journal(source).read(retired_ok=True).retired
    assert retired is not None and retired[0] == dest
    at = retired[1]
    before = Path(source).read_bytes()

    code, out, err = cli("show", "--journal", source)
    assert (code, err) == (0, "")
    assert out.splitlines()[1] == (
        f"retired: migrated to {dest} on {at}; nothing is written or planned here"
    )
    assert "42  priority=p3" in out
    code, out, _ = cli("show", "--journal", source, "--format", "json")
    assert json.loads(out)["retired"] == {"to": dest, "at": at}
    code, out, _ = cli("log", "--journal", source)
    assert out.splitlines()[-1] == f"{at}  journal retired: migrated to {dest}"
    code, out, _ = cli("log", "--journal", source, "--format", "json")
    assert json.loads(out)[-1] == {"at": at, "kind": "retired", "to": dest}

    states = str(tmp_path / "seed" / "states")
    calls = len(sandbox.calls)
    for args in (
        ["plan", states],
        ["apply", states, "--auto-approve"],
        ["drift", states],
        ["accept", states],
        ["refresh", states],
        ["refresh", "--id", "42", "--escalations", "1"],
        ["import", "42", "--to", str(tmp_path / "imported.yaml")],
        ["journal", "migrate", "--from", source, "--to", str(tmp_path / "again.jsonl")],
    ):
        journal = [] if args[0] == "journal" else ["--journal", source]
        code, out, err = cli(*args, *journal, env=spike(sandbox))
        assert (code, out) == (1, ""), (args, out, err)
        assert err.startswith(f"error: {source}: {RETIRED}{dest} on {at} and is retired"), err
        assert f"use --journal '{dest}'" in err, err
    assert len(sandbox.calls) == calls
    assert Path(source).read_bytes() == before
    assert not (tmp_path / "again.jsonl").exists()


@pytest.mark.parametrize("written_since", [False, True])
def test_a_migration_whose_copy_is_whole_only_retires_the_source(
    sandbox: SandboxServer, tmp_path: Path, url: str, written_since: bool
) -> None:
    source = str(tmp_path / "journal.jsonl")
    seeded = make_plan(sandbox, tmp_path / "seed", {"42": {"priority": "p3"}}, source)
    assert apply(sandbox, seeded, source)[0] == 0
    records = open_journal(source).records()
    # What a migration leaves when its retire record could not be written: the whole copy.
    open_journal(url).copy_in(records, source, 0)
    if written_since:  # and the team went on with the copy, as it was told to
        more = make_plan(sandbox, tmp_path / "more", {"42": {"priority": "p2"}}, url)
        assert apply(sandbox, more, url)[0] == 0
    copy = open_journal(url).records()

    code, out, err = cli("journal", "migrate", "--from", source, "--to", url)
    dest = open_journal(url).location
    assert (code, err) == (0, ""), out + err
    assert out == (
        f"{dest} holds the whole copy of {source} (4 records); {source} is retired: "
        f"use --journal '{dest}' from now on.\n"
    )
    assert open_journal(url).records() == copy
    assert open_journal(source).records()[:-1] == records
    retired = open_journal(source).read(retired_ok=True).retired
    assert retired is not None and retired[0] == dest


def test_a_retire_record_that_cannot_be_written_says_the_source_is_not_retired(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    source, dest = tmp_path / "journal.jsonl", tmp_path / "copy.jsonl"
    seeded = make_plan(sandbox, tmp_path / "seed", {"42": {"priority": "p3"}}, str(source))
    assert apply(sandbox, seeded, str(source))[0] == 0
    before = source.read_bytes()
    size = len(before)

    def no_file_grows_past_the_source() -> None:
        # The copy is as long as the source (byte-exact); the retire record would grow it.
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    run = subprocess.run(
        command("journal", "migrate", "--from", str(source), "--to", str(dest)),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=no_file_grows_past_the_source,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert (run.returncode, run.stdout) == (1, ""), run.stderr
    assert run.stderr.startswith(
        f"error: {dest}: the copy is whole (4 records), but the source could not be marked "
        f"retired ({source}: cannot write the journal: File too large; "
    ), run.stderr
    assert f"{source} is NOT retired and still takes the plans made for it" in run.stderr
    assert f"run `reconcile journal migrate --from {source} --to {dest}` again" in run.stderr
    assert dest.read_bytes() == before
    assert source.read_bytes() == before  # not retired, and nothing torn left behind

    code, out, err = cli("journal", "migrate", "--from", str(source), "--to", str(dest))
    assert (code, err) == (0, ""), err
    assert out.startswith(f"{dest} holds the whole copy of {source} (4 records); ")
    assert dest.read_bytes() == before
    assert open_journal(str(source)).read(retired_ok=True).retired is not None
