"""`apply --format json` prints a JSON result on stdout in every outcome (docs/cli.md): an
apply that aborts on a journal write says what it did before, one refused before its calls
says so, one stopped by a signal before its calls too; the error still goes to stderr."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import DISK_FULL, KEY, TEAM, cli, command, write_states

from reconciler.journal.file import FileJournal
from reconciler.sandbox import SandboxServer


def test_an_apply_aborted_by_a_journal_write_prints_what_it_did(tmp_path: Path) -> None:
    states = tmp_path / "states"
    write_states(states, {f"i{n}": {"public_sharing": True} for n in range(12)})
    journal = tmp_path / "j.jsonl"
    with FileJournal(journal).open_for_apply(0, "create") as writer:
        writer.forget(["x"], None)
    room = journal.stat().st_size + 700  # the start record and a few calls
    with SandboxServer({f"i{n}": {} for n in range(12)}, api_key=KEY, team_id=TEAM) as server:
        environ = {**os.environ, "SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY}
        environ["SPIKE_TEAM_ID"] = TEAM
        args = ["apply", str(states), "--auto-approve", "--journal", str(journal)]
        args += ["--parallelism", "1", "--format", "json"]
        done = subprocess.run(
            [sys.executable, "-c", DISK_FULL, str(room), *args],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
        sent = [call["path"] for call in server.calls if call["method"] == "PATCH"]
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "aborted"
    assert result["error"].startswith(f"{journal}: cannot write the journal: File too large")
    # The plan went to stderr (--format json); the error line comes last.
    *_, error = done.stderr.splitlines()
    assert error.startswith(f"error: {result['error']}; ")
    assert "Traceback" not in done.stderr
    # What was done before the abort: the calls journaled, and those Spike confirmed whose
    # records did not fit (a call holds one of 2 x parallelism permits until journaled).
    journaled = [r["path"] for r in FileJournal(journal).records() if r["kind"] == "op"]
    assert [op["path"] for op in result["applied"]] == journaled
    assert 1 <= len(journaled) < 12
    unjournaled = [op["path"] for op in result["unjournaled"]]
    assert sorted(unjournaled) == sorted(set(sent) - set(journaled))
    assert 1 <= len(unjournaled) <= 2
    count = len(unjournaled)
    assert f"; {count} call{'s' * (count > 1)} Spike confirmed may not be journaled: " in error
    assert all(f"PATCH {path} (" in error for path in unjournaled)
    assert len(result["skipped"]) == 12 - len(journaled) - count
    assert result["journal"]["lineage"] == FileJournal(journal).read().lineage


def test_a_refused_apply_prints_a_json_result(tmp_path: Path) -> None:
    states = tmp_path / "states"
    write_states(states, {"i1": {"status": "acknowledged"}})
    journal = str(tmp_path / "j.jsonl")
    with FileJournal(Path(journal)).open_for_apply(0, "reconcile apply elsewhere"):
        code, out, err = cli(
            "apply", str(states), "--auto-approve", "--journal", journal, "--format", "json"
        )
    assert code == 1
    assert err.startswith(f"error: {journal} is locked by another apply: pid {os.getpid()}")
    assert json.loads(out) == {
        "outcome": "refused",
        "error": err.removeprefix("error: ").rstrip("\n"),
        "applied": [],
        "failed": [],
        "skipped": [],
        "journal": None,
    }
    # Bad input too: the state file's problems, as stderr lists them.
    (states / "incidents.yaml").write_text("version: 1\nincidents:\n  i1: {status: nope}\n")
    code, out, err = cli(
        "apply", str(states), "--auto-approve", "--journal", journal, "--format", "json"
    )
    assert code == 1
    refused = json.loads(out)
    assert refused["outcome"] == "refused" and "incidents.yaml:3:" in refused["error"]
    assert refused["error"].split("\n")[0] == err.split("\n")[0]


def test_a_signal_before_the_calls_prints_an_interrupted_json_result(tmp_path: Path) -> None:
    states = tmp_path / "states"
    write_states(states, {"i1": {"status": "acknowledged"}})
    journal = tmp_path / "j.jsonl"
    with FileJournal(journal).open_for_apply(0, "reconcile apply elsewhere"):
        proc = subprocess.Popen(
            command(
                "apply",
                str(states),
                "--auto-approve",
                "--journal",
                str(journal),
                "--lock-timeout",
                "30",
                "--format",
                "json",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Waiting for the lock: it has the journal open.
            deadline = time.monotonic() + 10
            fds = Path(f"/proc/{proc.pid}/fd")
            while not any(os.path.realpath(fd) == str(journal) for fd in fds.iterdir()):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 143, err
    assert err.endswith("Terminated.\n") and "Traceback" not in err
    assert json.loads(out) == {
        "outcome": "interrupted",
        "error": "interrupted by a signal before the calls began",
        "applied": [],
        "failed": [],
        "skipped": [],
        "journal": None,
    }
