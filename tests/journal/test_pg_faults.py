"""The PostgreSQL journal when the database misbehaves, against the real server: a migration
cut at any record, a statement blocked behind another session's lock, a signal during it, a
client killed in the middle of a statement. Each test has its own namespace, or its own
schema where it locks a table, so no other session's tests are touched."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import KEY, TEAM, cli, command, live_matches, with_params, write_states
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.applier import Applier
from reconciler.errors import JournalError, LockHeldError
from reconciler.journal import migrate
from reconciler.journal.file import FileJournal
from reconciler.journal.postgres import PostgresJournal
from reconciler.model import Operation
from reconciler.sandbox import SandboxServer

PLAN = "sha256:" + "cd" * 32
REFUSED = "did not finish, so it holds no usable record"


def source_journal(path: Path) -> FileJournal:
    """A file journal of 7 records: an apply escalating two incidents, one more escalation."""
    journal = FileJournal(path)
    escalate = Operation("POST", "/incidents/escalate", {"ids": ["i-1", "i-2"]})
    with journal.open_for_apply(0, "apply") as writer:
        writer.start(PLAN, 1)
        serial = writer.intent(escalate, PLAN)
        writer.applied(escalate, PLAN, serial)
        writer.end(PLAN, "applied", applied=1, failed=0, skipped=0)
    with journal.open_for_apply(0, "apply") as writer:
        writer.applied(Operation("POST", "/incidents/acknowledge", {"ids": ["i-1"]}), PLAN)
        writer.set_values({"i-2": {"severity": "sev1"}}, "refresh")
    return journal


class CutDestination(PostgresJournal):
    """A destination whose connection is terminated (by the server, from another session)
    just before the copy inserts record `cut`; `cut` = records + 1: just before the commit."""

    copy_chunk = 1

    def __init__(self, url: str, admin: Any, cut: int | None) -> None:
        super().__init__(url)
        self.admin, self.cut = admin, cut

    def _insert_rows(self, conn: Any, rows: list[tuple[str, int, str]]) -> None:
        if rows[0][1] == self.cut:
            self._terminate(conn)
        super()._insert_rows(conn, rows)
        if self.cut is not None and rows[-1][1] + 1 == self.cut:
            self._terminate(conn)

    def _terminate(self, conn: Any) -> None:
        self.admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))


def refused_by_every_command(url: str, work: Path) -> None:
    write_states(work / "states", {"i-1": {"status": "acknowledged"}})
    spike = {"SPIKE_API_URL": "http://127.0.0.1:1", "SPIKE_API_KEY": "k", "SPIKE_TEAM_ID": "t"}
    states = str(work / "states")
    for args in (
        ["show"],
        ["log"],
        ["plan", states],
        ["apply", states, "--auto-approve"],
    ):
        code, out, err = cli(*args, "--journal", url, env=spike)
        assert (code, out) == (1, ""), (args, out, err)
        assert REFUSED in err and "run that migration again" in err, (args, err)
        assert "Traceback" not in err


def test_a_migration_cut_at_any_record_leaves_a_copy_every_command_refuses(
    tmp_path: Path, url: str, admin: Any
) -> None:
    source = source_journal(tmp_path / "source.jsonl")
    records, state = source.records(), source.read()
    assert len(records) == 7
    for cut in range(1, len(records) + 2):
        with pytest.raises(JournalError) as caught:
            migrate(source, CutDestination(url, admin, cut))
        message = str(caught.value)
        assert "no record was copied for sure" in message, message
        if cut <= len(records):
            assert "holds the marker of an unfinished migration" in message
        else:
            assert "the commit's outcome is unknown" in message
        refused_by_every_command(url, tmp_path)
    # A retry replaces the unfinished copy with the whole one, and retires the source.
    assert migrate(source, PostgresJournal(url)) == (len(records), True)
    assert PostgresJournal(url).records() == records
    assert PostgresJournal(url).read() == state
    retired = source.read(retired_ok=True).retired
    assert retired is not None and retired[0] == PostgresJournal(url).location


def test_a_whole_copy_is_not_replaced(tmp_path: Path, url: str) -> None:
    source = source_journal(tmp_path / "source.jsonl")
    records = source.records()
    migrate(source, PostgresJournal(url))
    retired = source.path.read_bytes()
    with pytest.raises(JournalError, match=r"source.jsonl: this journal was migrated to "):
        migrate(source, PostgresJournal(url))
    assert PostgresJournal(url).records() == records
    assert source.path.read_bytes() == retired


PROPERTY = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(schedule=st.lists(st.one_of(st.none(), st.integers(1, 8)), min_size=1, max_size=4))
def test_whatever_the_faults_the_destination_is_the_source_or_refused(
    tmp_path_factory: pytest.TempPathFactory,
    server_url: str,
    admin: Any,
    schedule: list[int | None],
) -> None:
    source = source_journal(tmp_path_factory.mktemp("source") / "journal.jsonl")
    records = source.records()
    url = with_params(server_url, namespace=f"test-{uuid.uuid4()}")
    try:
        whole = False
        for cut in schedule:
            try:
                migrate(source, CutDestination(url, admin, cut))
                whole = True
            except JournalError as exc:
                # Refused as retired only once a whole copy is there (a commit whose
                # outcome is unknown may have made it whole: the next run only retires).
                assert whole == ("this journal was migrated to" in str(exc)), str(exc)
            dest = PostgresJournal(url)
            if whole:
                assert dest.records() == records
                assert source.read(retired_ok=True).retired is not None
            else:
                with pytest.raises(JournalError, match=REFUSED):
                    dest.read()
    finally:
        admin.execute("DELETE FROM reconcile_journal WHERE namespace = %s", (url.split("=")[-1],))


def test_an_unfinished_file_copy_is_refused_then_replaced(tmp_path: Path) -> None:
    source = source_journal(tmp_path / "source.jsonl")
    dest = FileJournal(tmp_path / "dest.jsonl")
    marker = '{"kind":"migration-unfinished","from":"old.jsonl","at":"2026-11-30T14:00:00.000Z"}\n'
    dest.path.write_text(marker)  # what a migration cut short leaves
    refused_by_every_command(str(dest.path), tmp_path)
    copied = source.path.read_bytes()
    assert migrate(source, dest) == (7, True)
    assert dest.path.read_bytes() == copied
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# ---------------------------------------------------------------------------------------------
# A statement blocked behind another session's lock


@contextmanager
def table_locked(admin: Any, schema_url: str) -> Iterator[str]:
    """The journal table of `schema_url`'s schema locked ACCESS EXCLUSIVE by `admin`."""
    schema = schema_url.split("search_path%3D")[1].split("&")[0]
    with admin.transaction():
        admin.execute(f'LOCK TABLE "{schema}".reconcile_journal IN ACCESS EXCLUSIVE MODE')
        yield schema


def test_a_blocked_statement_ends_within_its_bound(fresh_schema: str, admin: Any) -> None:
    journal = PostgresJournal(with_params(fresh_schema, statement_timeout="1s"))
    journal.read()  # the tables exist
    for attempt in (journal.read, lambda: journal.open_for_apply(0, "apply").__enter__()):
        with table_locked(admin, fresh_schema):
            started = time.monotonic()
            with pytest.raises(JournalError) as caught:
                attempt()
            assert 0.9 <= time.monotonic() - started < 4  # the bound, not the 30 s default
        message = str(caught.value)
        assert re.search("canceling statement due to (lock|statement) timeout", message)
        assert "statement_timeout=1000ms" in message and "?statement_timeout=" in message


def test_the_bounds_are_set_on_the_session(url: str) -> None:
    default = PostgresJournal(url)
    with default._session() as conn:
        shown = conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
            " current_setting('client_connection_check_interval'),"
            " current_setting('tcp_keepalives_idle')"
        ).fetchone()
    assert shown == ("30s", "30s", "5s", "10")
    tight = PostgresJournal(
        with_params(url, statement_timeout="250ms", client_connection_check_interval="1s")
    )
    assert tight.location == default.location  # the same journal, other bounds
    with tight._session() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("250ms",)
        assert conn.execute("SHOW client_connection_check_interval").fetchone() == ("1s",)


@pytest.mark.parametrize("value", ["5", "-1s", "1h", "s", "99999999999ms"])
def test_a_bad_bound_is_refused_up_front(url: str, value: str) -> None:
    with pytest.raises(JournalError, match=rf"statement_timeout={value!r}: use a duration"):
        PostgresJournal(with_params(url, statement_timeout=value))


def blocked_backends(admin: Any) -> list[int]:
    """The backends waiting for a lock `admin` holds (read afresh: inside a transaction the
    activity view is otherwise a snapshot)."""
    admin.execute("SELECT pg_stat_clear_snapshot()")
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
    ).fetchall()
    return [pid for (pid,) in rows]


def alive(admin: Any) -> list[int]:
    admin.execute("SELECT pg_stat_clear_snapshot()")
    return [pid for (pid,) in admin.execute("SELECT pid FROM pg_stat_activity").fetchall()]


def wait_for(condition: Any, within: float = 10) -> Any:
    deadline = time.monotonic() + within
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def test_sigterm_ends_a_plan_blocked_on_the_journal_within_the_grace(
    fresh_schema: str, admin: Any, tmp_path: Path
) -> None:
    journal = with_params(fresh_schema, statement_timeout="60s")
    PostgresJournal(journal).read()
    write_states(tmp_path / "states", {"i-1": {"status": "acknowledged"}})
    with table_locked(admin, fresh_schema):
        proc = subprocess.Popen(
            command("plan", str(tmp_path / "states"), "--journal", journal),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: blocked_backends(admin))
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
            assert time.monotonic() - started < 4.5  # the 3 s grace, with room for a loaded machine
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert (proc.returncode, out) == (143, "")
    assert err.endswith("Terminated.\n") and "Traceback" not in err


HOLDER = textwrap.dedent(
    """
    import sys
    from reconciler.journal.postgres import PostgresJournal

    with PostgresJournal(sys.argv[1]).open_for_apply(0, "holder-test") as writer:
        print("locked", flush=True)
        sys.stdin.readline()
        writer.start(None, 0)  # blocked behind the parent's table lock
    """
)


def test_a_killed_holder_in_a_blocked_statement_frees_the_lock_within_a_bound(
    fresh_schema: str, admin: Any
) -> None:
    journal = with_params(
        fresh_schema, statement_timeout="60s", client_connection_check_interval="200ms"
    )
    PostgresJournal(journal).read()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, journal],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == "locked\n"
        with table_locked(admin, fresh_schema):
            proc.stdin.write("go\n")
            proc.stdin.flush()
            (backend,) = wait_for(lambda: blocked_backends(admin))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            started = time.monotonic()
            # Its backend ends (and frees the advisory lock) while the table is still
            # locked: the server noticed the client is gone.
            wait_for(lambda: backend not in alive(admin), within=3)
            assert time.monotonic() - started < 3
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    with PostgresJournal(journal).open_for_apply(0, "after the kill") as writer:
        writer.start(None, 0)


def test_sigterm_ends_an_apply_blocked_on_a_journal_write_within_the_grace(
    fresh_schema: str, admin: Any, tmp_path: Path
) -> None:
    journal = with_params(fresh_schema, statement_timeout="60s")
    PostgresJournal(journal).read()
    schema = fresh_schema.split("search_path%3D")[1].split("&")[0]
    desired: dict[str, dict[str, Any]] = {"e-1": {"escalations": 1}}
    desired.update({f"r-{n}": {"status": "resolved"} for n in range(10)})
    write_states(tmp_path / "states", desired)
    apply = ["apply", str(tmp_path / "states"), "--auto-approve", "--journal", journal]
    with SandboxServer({cid: {} for cid in desired}, api_key=KEY, team_id=TEAM) as server:
        spike = {**os.environ, "SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY}
        spike["SPIKE_TEAM_ID"] = TEAM
        server.latency = 0.2
        proc = subprocess.Popen(
            command(*apply, "--batch-size", "1", "--parallelism", "1", "--format", "json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=spike,
        )
        try:
            # In its calls, past the escalation (wave 3): resolving, one call at a time.
            wait_for(
                lambda: admin.execute(
                    f'SELECT count(*) FROM "{schema}".reconcile_journal'
                    " WHERE record->>'kind' = 'op' AND record->>'path' = '/incidents/resolve'"
                ).fetchone()[0]
            )
            with table_locked(admin, fresh_schema):
                wait_for(lambda: blocked_backends(admin))
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                out, err = proc.communicate(timeout=20)
                took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        # The grace is 3 s: the blocked INSERT was cancelled then, not at statement_timeout.
        assert 2.5 < took < 6, (took, err)  # far below the 30 s statement_timeout
        assert proc.returncode == 143, err
        assert "Traceback" not in err
        result = json.loads(out)
        assert result["outcome"] == "aborted"
        assert "did not complete within the grace after the stop signal" in result["error"]
        assert "so it was cancelled" in result["error"]
        sent = [call["body"]["ids"][0] for call in server.calls if call["method"] == "POST"]
        # What may not have been journaled is named: the resolve whose record was cancelled.
        unjournaled = [op["body"]["ids"][0] for op in result["unjournaled"]]
        assert unjournaled and set(unjournaled) < set(sent)
        *_, error = err.splitlines()
        assert error == f"error: {result['error']}; " + (
            f"{len(unjournaled)} call{'s' * (len(unjournaled) > 1)} Spike confirmed may not be "
            "journaled: "
            + ", ".join(f"POST /incidents/resolve ({cid})" for cid in unjournaled)
            + "; the next plan makes them again"
        )
        assert sent.count("e-1") == 1  # escalated once

        # With the lock gone, a rerun does the rest, and escalates nothing again.
        server.latency = 0
        server.clear_calls()
        again = subprocess.run(command(*apply), capture_output=True, text=True, env=spike)
        assert again.returncode == 0, again.stderr
        posts = [call["body"]["ids"] for call in server.calls if call["method"] == "POST"]
        resent = [cid for ids in posts for cid in ids]
        assert "e-1" not in resent
        assert sorted(resent) == sorted(set(desired) - {"e-1"} - (set(sent) - set(unjournaled)))
        live_matches(server, {cid: f for cid, f in desired.items() if "status" in f})
        assert server.incidents()["e-1"]["escalations"] == 1
    plan = subprocess.run(
        command("plan", str(tmp_path / "states"), "--journal", journal, "--detailed-exitcode"),
        capture_output=True,
        text=True,
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr


def test_a_journal_write_never_blocks_the_apply_loop(fresh_schema: str, admin: Any) -> None:
    """The writes of an apply outside its calls (apply-start, forgets, apply-end) run in a
    worker thread too: while one waits behind a lock, the loop still runs (a stop signal's
    handler can act), and cancelling the writer ends it at once."""
    journal = PostgresJournal(with_params(fresh_schema, statement_timeout="5s"))
    journal.read()

    async def go(writer: Any) -> tuple[float, Any]:
        applier = Applier(None, writer, plan_digest=PLAN)
        task = asyncio.ensure_future(applier.run([], forget=["x"]))
        deadline = time.monotonic() + 3
        while not blocked_backends(admin):  # the loop runs while apply-start waits
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.02)
        started = time.monotonic()
        writer.cancel()
        with pytest.raises(JournalError, match="so it was cancelled"):
            await task
        return time.monotonic() - started, applier.result

    with journal.open_for_apply(0, "apply") as writer, table_locked(admin, fresh_schema):
        took, result = asyncio.run(go(writer))
    assert took < 2
    assert result.outcome == "aborted" and "so it was cancelled" in result.error
    assert journal.records() == []  # nothing was stored, not even apply-start


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_a_stale_holder_row_never_blocks_and_a_dead_holder_is_named_so(
    url: str, namespace: str, admin: Any
) -> None:
    journal = PostgresJournal(url)
    journal.read()
    dead, here = dead_pid(), socket.gethostname()
    holder = (
        "INSERT INTO reconcile_lock_holder (namespace, backend_pid, pid, host, since, purpose)"
        " VALUES (%s, %s, %s, %s, '2026-11-30T14:00:00.000Z', 'reconcile apply states')"
        " ON CONFLICT (namespace) DO UPDATE SET backend_pid = excluded.backend_pid,"
        " pid = excluded.pid, host = excluded.host"
    )
    # A row left by a holder that died, the lock free: replaced, never in the way.
    admin.execute(holder, (namespace, 2**31 - 1, dead, here))
    with journal.open_for_apply(0, "after a crash") as writer:
        writer.start(None, 0)
        row = admin.execute(
            "SELECT pid, purpose FROM reconcile_lock_holder WHERE namespace = %s", (namespace,)
        ).fetchone()
        assert row == (os.getpid(), "after a crash")
    # The lock held by a session whose row names a process: alive here, gone, elsewhere.
    admin.execute("SELECT pg_advisory_lock(%s)", (journal._lock_key,))
    try:
        for pid, host, says in (
            (dead, here, f"; pid {dead} is not running on this host any more: its session "),
            (os.getpid(), here, f"; pid {os.getpid()} is running on this host; use "),
            (dead, "ci-elsewhere-7", " (PostgreSQL backend pid "),
        ):
            admin.execute(holder, (namespace, admin.info.backend_pid, pid, host))
            with pytest.raises(LockHeldError) as caught, journal.open_for_apply(0, "second"):
                pass
            message = str(caught.value)
            assert f"locked by another apply: pid {pid} on {host} since " in message
            assert says in message, message
            assert ("this host" in message) == (host == here)
    finally:
        admin.execute("SELECT pg_advisory_unlock(%s)", (journal._lock_key,))
