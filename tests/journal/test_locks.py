"""The journal's lock covers everything it protects: the state files that `import` writes are
read, decided on and written under it, by `import` and by `apply` alike.

Real processes race for the lock here, against the sandbox over real HTTP. No timing is
asserted: each test holds the lock itself until the processes are known to be past their
first reading (the sandbox saw their reads, PostgreSQL lists them waiting), then lets go.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import KEY, TEAM, command, write_states

from reconciler.journal import open_journal
from reconciler.journal.file import FileJournal
from reconciler.sandbox import SandboxServer
from reconciler.states.loader import load

#: Long enough for any machine; the tests never wait for it to run out.
PATIENCE = 120.0


def spawn(server: SandboxServer, *args: str) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        "SPIKE_API_URL": server.url,
        "SPIKE_API_KEY": KEY,
        "SPIKE_TEAM_ID": TEAM,
    }
    environment.pop("RECONCILE_PLAN_KEY", None)
    return subprocess.Popen(
        command(*args), env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition: Callable[[], bool], procs: list[subprocess.Popen[str]]) -> None:
    """Poll until `condition` holds; fail (showing their output) if a process ends first."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        for proc in procs:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"ended early ({proc.returncode}): {out}{err}")
        assert time.monotonic() < deadline, "the processes never got there"
        time.sleep(0.02)


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 0, out + err
    return out, err


def test_two_imports_waiting_for_the_lock_both_land_in_the_file(tmp_path: Path) -> None:
    live = {"a-1": {"status": "ACK"}, "b-2": {"status": "NACK", "priority": "p2"}}
    states = tmp_path / "states"
    states.mkdir()
    target = states / "imported.yaml"
    journal = str(tmp_path / "j.jsonl")
    with SandboxServer(live, api_key=KEY, team_id=TEAM) as server:
        with FileJournal(journal).open_for_apply(0, "the test, holding the lock"):
            procs = [
                spawn(
                    server,
                    "import",
                    cid,
                    "--to",
                    str(target),
                    "--states",
                    str(states),
                    "--journal",
                    journal,
                    "--lock-timeout",
                    str(PATIENCE),
                )
                for cid in live
            ]
            # Each import read the state files before its read of Spike.
            wait_for(
                lambda: {c["path"] for c in server.calls} >= {"/incidents/a-1", "/incidents/b-2"},
                procs,
            )
        for proc in procs:
            finish(proc)
    assert load([target]).incidents == {
        "a-1": {"status": "acknowledged", "priority": None, "severity": None},
        "b-2": {"status": "triggered", "priority": "p2", "severity": None},
    }
    state = open_journal(journal).read()
    assert set(state.incidents) == {"a-1", "b-2"}
    # So the next plan forgets nothing.
    done = subprocess.run(
        command("plan", str(states), "--journal", journal, "--format", "json"),
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    plan = json.loads(done.stdout)
    assert (plan["forget"], plan["operations"]) == ([], [])


def test_apply_plans_the_state_files_as_they_are_once_it_holds_the_lock(
    tmp_path: Path, url: str, admin: Any
) -> None:
    """An apply that waited while an import wrote an incident does not forget it."""
    states = tmp_path / "states"
    write_states(states, {"a-1": {"status": "acknowledged"}})
    journal = open_journal(url)
    live = {"a-1": {"status": "NACK"}, "b-2": {"status": "ACK"}}
    with SandboxServer(live, api_key=KEY, team_id=TEAM) as server:
        with journal.open_for_apply(0, "the test, as an import") as writer:
            proc = spawn(
                server,
                "apply", str(states), "--auto-approve", "--journal", url,
                "--lock-timeout", str(PATIENCE), "--format", "json",
            )  # fmt: skip

            # This namespace's lock only: another test's (another worker's) waiting apply
            # must not pass for this one. A bigint key shows as its two 32-bit halves.
            key = journal._lock_key & 0xFFFF_FFFF_FFFF_FFFF  # type: ignore[attr-defined]

            def waiting() -> bool:
                row = admin.execute(
                    "SELECT count(*) FROM pg_locks w JOIN pg_locks h USING "
                    "(locktype, database, classid, objid, objsubid) WHERE w.locktype = "
                    "'advisory' AND NOT w.granted AND h.granted AND w.objsubid = 1 "
                    "AND w.classid::bigint = %s AND w.objid::bigint = %s",
                    (key >> 32, key & 0xFFFF_FFFF),
                ).fetchone()
                return bool(row[0])

            wait_for(waiting, [proc])
            # What `reconcile import b-2` does under the lock: the file, then the journal.
            write_states(
                states, {"a-1": {"status": "acknowledged"}, "b-2": {"status": "acknowledged"}}
            )
            writer.set_values({"b-2": {"status": "acknowledged"}}, "import")
        out, _ = finish(proc)
    result = json.loads(out)
    assert result["forgotten"] == []
    assert result["applied"] == [
        {"method": "POST", "path": "/incidents/acknowledge", "body": {"ids": ["a-1"]}}
    ]
    assert journal.read().incidents == {
        "a-1": {"status": "acknowledged"},
        "b-2": {"status": "acknowledged"},
    }
