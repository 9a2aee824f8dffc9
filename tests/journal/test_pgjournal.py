"""The PostgreSQL journal, against a real server.

The server comes from RECONCILE_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test). Each test works in its own namespace. Without a
reachable server these tests skip, except under CI (CI=true), where they fail: a CI job must
never pass by silently not testing the shared journal.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest
from helpers import with_params

from reconciler.errors import JournalError, LockHeldError
from reconciler.journal import migrate, open_journal
from reconciler.journal.base import Journal
from reconciler.journal.file import FileJournal
from reconciler.journal.postgres import MIGRATIONS, PostgresJournal, _PostgresWriter
from reconciler.journal.records import encode_record
from reconciler.model import Operation

PLAN = "sha256:" + "ab" * 32


@pytest.fixture
def journal(url: str) -> PostgresJournal:
    return PostgresJournal(url)


def exercise(journal: Journal) -> None:
    """Two applies and a refresh covering every record kind, as the applier would write them."""
    with journal.open_for_apply(0, "apply") as writer:
        writer.start(PLAN, 4)
        writer.applied(
            Operation("POST", "/incidents/acknowledge", {"ids": ["116", "prim-1"]}), PLAN
        )
        writer.applied(
            Operation("POST", "/incidents/priority", {"priority": "p2", "ids": ["116"]}), PLAN
        )
        writer.applied(
            Operation("PATCH", "/incidents/prim-1/public-sharing", {"publicSharing": True}), PLAN
        )
        writer.applied(Operation("POST", "/incidents/escalate", {"ids": ["116"]}), PLAN)
        writer.end(PLAN, "ok", applied=4, failed=0)
    with journal.open_for_apply(0, "refresh") as writer:
        writer.set_values(
            {"116": {"severity": "sev1"}, "prim-1": {"status": "triggered"}}, "réfresh"
        )
        writer.unmanage([("116", "priority"), ("116", "escalations")], None)
        writer.forget(["prim-1"], None)
        writer.start(None, 0)
        writer.end(None, "nothing to do")


def normalized(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without what differs between two journals written the same way."""
    return [{**r, "at": "AT", **({"lineage": "L"} if "lineage" in r else {})} for r in records]


# ---------------------------------------------------------------------------------------------
# Reading and writing


def test_open_journal_picks_postgres_for_both_url_schemes() -> None:
    for scheme in ("postgresql", "postgres"):
        journal = open_journal(f"{scheme}://u:pw@db.example:5432/j?namespace=team-a")
        assert isinstance(journal, PostgresJournal)
        assert journal.location == f"{scheme}://u@db.example:5432/j?namespace=team-a"


def test_an_empty_namespace_reads_as_an_empty_journal(journal: PostgresJournal) -> None:
    state = journal.read()
    assert (state.lineage, state.serial, state.incidents, state.warnings) == (None, 0, {}, [])
    assert journal.records() == []


def test_records_and_state_match_the_file_journal(
    journal: PostgresJournal, tmp_path: Path, admin: Any, namespace: str
) -> None:
    file_journal = FileJournal(tmp_path / "journal.jsonl")
    exercise(file_journal)
    exercise(journal)

    assert normalized(journal.records()) == normalized(file_journal.records())
    pg_state, file_state = journal.read(), file_journal.read()
    assert (
        pg_state.incidents
        == file_state.incidents
        == {"116": {"severity": "sev1", "escalations": 1, "status": "acknowledged"}}
    )
    assert pg_state.serial == file_state.serial == 7
    # Stored as the file journal's exact line text, so replay() sees the same thing.
    stored = admin.execute(
        "SELECT record::text FROM reconcile_journal WHERE namespace = %s ORDER BY position",
        (namespace,),
    ).fetchall()
    assert [text for (text,) in stored] == [encode_record(r) for r in journal.records()]


def test_lineage_stays_and_serial_grows_across_applies(journal: PostgresJournal) -> None:
    with journal.open_for_apply(0, "first") as writer:
        writer.start(PLAN, 1)  # history only: no serial
        assert writer.state.serial == 0
        writer.applied(Operation("POST", "/incidents/resolve", {"ids": ["7"]}), PLAN)
    first = journal.read()
    assert first.lineage is not None and first.serial == 1

    with journal.open_for_apply(0, "second") as writer:
        assert (writer.state.lineage, writer.state.serial) == (first.lineage, 1)
        writer.forget(["7"], PLAN)
        writer.end(PLAN, "ok")
    second = journal.read()
    assert (second.lineage, second.serial, second.incidents) == (first.lineage, 2, {})
    assert [r["kind"] for r in journal.records()] == [
        "lineage",
        "apply-start",
        "op",
        "forget",
        "apply-end",
    ]


def test_namespaces_are_independent(server_url: str, journal: PostgresJournal) -> None:
    other = PostgresJournal(with_params(server_url, namespace=f"test-{uuid.uuid4()}"))
    with journal.open_for_apply(0, "one") as writer:
        writer.applied(Operation("POST", "/incidents/acknowledge", {"ids": ["1"]}), None)
        # The other namespace's lock is a different lock: no waiting on this apply.
        with other.open_for_apply(0, "two") as other_writer:
            other_writer.applied(Operation("POST", "/incidents/resolve", {"ids": ["2"]}), None)
    try:
        assert journal.read().incidents == {"1": {"status": "acknowledged"}}
        assert other.read().incidents == {"2": {"status": "resolved"}}
        assert journal.read().lineage != other.read().lineage
    finally:
        with other._session() as conn:
            conn.execute("DELETE FROM reconcile_journal WHERE namespace = %s", (other.namespace,))


# ---------------------------------------------------------------------------------------------
# The lock

HOLDER = textwrap.dedent(
    """
    import sys, time
    from reconciler.journal.postgres import PostgresJournal

    with PostgresJournal(sys.argv[1]).open_for_apply(0, "holder-test"):
        print("locked", flush=True)
        time.sleep(float(sys.stdin.readline() or 0))  # the parent says when to let go
    """
)


@contextmanager
def lock_holder(url: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the journal's apply lock until told (or killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    stdin, stdout = proc.stdin, proc.stdout
    assert stdin is not None and stdout is not None
    try:
        assert stdout.readline() == "locked\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        stdin.close()
        stdout.close()


def release(proc: subprocess.Popen[str], after: float) -> None:
    stdin: IO[str] | None = proc.stdin
    assert stdin is not None
    stdin.write(f"{after}\n")
    stdin.flush()


def test_a_second_apply_fails_at_once_naming_the_holder(journal: PostgresJournal, url: str) -> None:
    with lock_holder(url) as proc:
        started = time.monotonic()
        with pytest.raises(LockHeldError) as caught, journal.open_for_apply(0, "second"):
            pass
        assert time.monotonic() - started < 2
        message = str(caught.value)
        assert journal.location in message
        assert f"pid {proc.pid} on {socket.gethostname()}" in message
        assert "(holder-test)" in message and "PostgreSQL backend pid" in message
        assert "--lock-timeout" in message


def test_a_second_apply_waits_up_to_the_timeout(journal: PostgresJournal, url: str) -> None:
    with lock_holder(url) as proc:
        started = time.monotonic()
        with (
            pytest.raises(LockHeldError, match=r"waited 0\.5s") as caught,
            journal.open_for_apply(0.5, "second"),
        ):
            pass
        assert 0.5 <= time.monotonic() - started < 3
        assert f"pid {proc.pid}" in str(caught.value)

        release(proc, after=0.5)
        started = time.monotonic()
        with journal.open_for_apply(10, "third") as writer:
            # Taken as soon as the holder let go, not at the end of the timeout.
            assert 0.3 <= time.monotonic() - started < 5
            writer.start(None, 0)
        assert proc.wait(timeout=5) == 0


def test_a_killed_holder_never_leaves_a_stuck_lock(journal: PostgresJournal, url: str) -> None:
    with lock_holder(url) as proc:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        started = time.monotonic()
        with journal.open_for_apply(10, "after the kill") as writer:
            writer.start(None, 0)
        assert time.monotonic() - started < 5
    assert proc.returncode == -signal.SIGKILL


def test_a_holder_row_is_trusted_only_while_its_session_holds_the_lock(
    journal: PostgresJournal, url: str, admin: Any, namespace: str
) -> None:
    with lock_holder(url):
        # A stale row, as a killed holder leaves: it must not be shown as the holder.
        admin.execute(
            "UPDATE reconcile_lock_holder SET backend_pid = 0, purpose = 'stale'"
            " WHERE namespace = %s",
            (namespace,),
        )
        with (
            pytest.raises(LockHeldError, match=r"holder unknown \(PostgreSQL backend pid \d+"),
            journal.open_for_apply(0, "second"),
        ):
            pass


# ---------------------------------------------------------------------------------------------
# Migration


def test_migration_file_to_postgres_to_file_is_byte_exact(
    journal: PostgresJournal, tmp_path: Path
) -> None:
    source = FileJournal(tmp_path / "source.jsonl")
    exercise(source)
    original, records, state = source.path.read_bytes(), source.records(), source.read()
    count = len(original.splitlines())

    assert migrate(source, journal) == (count, True)
    assert journal.records() == records
    assert journal.read() == state

    back = FileJournal(tmp_path / "back.jsonl")
    assert migrate(journal, back) == (count, True)
    assert back.path.read_bytes() == original

    # Writing goes on from the migrated serial and lineage, in the last copy.
    with back.open_for_apply(0, "after migrate") as writer:
        assert (writer.state.lineage, writer.state.serial) == (state.lineage, 7)
        writer.forget(["116"], None)
    assert back.read().serial == 8


def test_migration_refuses_a_non_empty_destination(
    journal: PostgresJournal, tmp_path: Path
) -> None:
    source = FileJournal(tmp_path / "source.jsonl")
    exercise(source)
    with journal.open_for_apply(0, "apply") as writer:
        writer.applied(Operation("POST", "/incidents/resolve", {"ids": ["9"]}), None)
    before = journal.records()

    with pytest.raises(JournalError, match="destination journal is not empty"):
        migrate(source, journal)
    assert journal.records() == before


def test_migration_refuses_an_empty_source(journal: PostgresJournal, tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="empty; nothing to migrate"):
        migrate(journal, FileJournal(tmp_path / "dest.jsonl"))
    assert not (tmp_path / "dest.jsonl").exists()


# ---------------------------------------------------------------------------------------------
# Corruption and concurrent writers: errors naming the record, never a silent reset


def test_a_missing_record_is_an_error_naming_it(
    journal: PostgresJournal, admin: Any, namespace: str
) -> None:
    exercise(journal)
    admin.execute(
        "DELETE FROM reconcile_journal WHERE namespace = %s AND position = 3", (namespace,)
    )
    with pytest.raises(JournalError, match="record 3 is missing"):
        journal.read()


def test_a_bad_record_is_refused_by_the_same_checks_as_the_file(
    journal: PostgresJournal, admin: Any, namespace: str
) -> None:
    exercise(journal)
    admin.execute(
        'UPDATE reconcile_journal SET record = \'{"kind": "op", "serial": 99, "at": "t"}\''
        " WHERE namespace = %s AND position = 3",
        (namespace,),
    )
    with pytest.raises(JournalError, match=r"record 3: serial 99 does not follow 0"):
        journal.read()
    with pytest.raises(JournalError, match="record 3"):
        journal.records()


def test_a_writer_that_bypassed_the_lock_stops_the_apply(
    journal: PostgresJournal, admin: Any, namespace: str
) -> None:
    with journal.open_for_apply(0, "apply") as writer:
        writer.start(None, 1)
        admin.execute(
            "INSERT INTO reconcile_journal VALUES (%s, 3, '{}')",
            (namespace,),
        )
        with pytest.raises(JournalError, match="record 3 was written by someone else"):
            writer.applied(Operation("POST", "/incidents/resolve", {"ids": ["9"]}), None)


def test_a_read_only_server_is_refused_before_any_write(url: str, journal: PostgresJournal) -> None:
    journal.read()  # the tables exist; only writing is impossible below
    read_only = PostgresJournal(with_params(url, options="-cdefault_transaction_read_only%3Don"))
    with (
        pytest.raises(JournalError, match="read-only transaction"),
        read_only.open_for_apply(0, "apply"),
    ):
        pytest.fail("the writer must not be handed out")
    assert read_only.read().lineage is None  # reading still works


def test_each_record_is_committed_durably_even_if_the_server_default_is_not(url: str) -> None:
    lax = PostgresJournal(with_params(url, options="-csynchronous_commit%3Doff"))
    with lax.open_for_apply(0, "apply") as writer:
        assert isinstance(writer, _PostgresWriter)
        assert writer._conn.execute("SHOW synchronous_commit").fetchone() == ("on",)


# ---------------------------------------------------------------------------------------------
# Schema versions


def test_concurrent_first_uses_create_the_schema_once(fresh_schema: str, admin: Any) -> None:
    journals = [PostgresJournal(fresh_schema) for _ in range(6)]
    barrier = threading.Barrier(len(journals))
    errors: list[BaseException] = []

    def first_use(journal: PostgresJournal) -> None:
        barrier.wait()
        try:
            journal.read()
        except JournalError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(j,)) for j in journals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    schema = fresh_schema.split("search_path%3D")[1].split("&")[0]
    versions = admin.execute(
        f'SELECT version FROM "{schema}".reconcile_schema_version ORDER BY version'
    ).fetchall()
    assert [v for (v,) in versions] == list(range(1, len(MIGRATIONS) + 1))


def test_a_newer_schema_is_refused(fresh_schema: str, admin: Any) -> None:
    journal = PostgresJournal(fresh_schema)
    journal.read()
    schema = fresh_schema.split("search_path%3D")[1].split("&")[0]
    admin.execute(f'INSERT INTO "{schema}".reconcile_schema_version (version) VALUES (99)')
    with pytest.raises(JournalError, match="schema version 99, newer than this reconcile"):
        journal.read()


# ---------------------------------------------------------------------------------------------
# URLs and connection errors (no server needed)


def test_an_unreachable_server_is_a_clean_error_without_the_password() -> None:
    journal = PostgresJournal("postgresql://alice:s3cr%2Ft@127.0.0.1:1/test?namespace=ops")
    assert journal.location == "postgresql://alice@127.0.0.1:1/test?namespace=ops"
    with pytest.raises(JournalError) as caught:
        journal.read()
    message = str(caught.value)
    assert "host 127.0.0.1, port 1, database test" in message
    assert "s3cr" not in message
    with pytest.raises(JournalError) as caught, journal.open_for_apply(0, "apply"):
        pass
    assert "s3cr" not in str(caught.value) and "port 1" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:pw@h/db?namespace=a&namespace=b", "one namespace"),
        ("postgresql://u:pw@h/db?namespace=", "invalid journal namespace"),
        ("postgresql://u:pw@h/db?namespace=a%20b", "invalid journal namespace"),
        ("postgresql://u:pw@[::1/db", "invalid PostgreSQL journal URL"),
        ("postgresql://u:p@w@host/db", "percent-encode an '@'"),
    ],
)
def test_invalid_urls_are_refused_up_front(url: str, expected: str) -> None:
    with pytest.raises(JournalError, match=expected) as caught:
        PostgresJournal(url)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # libpq quotes a malformed escape back: it must not carry the password out.
        ("postgresql://u:hunter%zz2@127.0.0.1:1/db", 'invalid percent-encoded token: "\\*\\*\\*"'),
        ("postgresql://u@127.0.0.1:1/db?password=hunter2&bogus=1", "invalid URI query parameter"),
    ],
)
def test_urls_libpq_refuses_are_clean_errors(url: str, expected: str) -> None:
    with pytest.raises(JournalError, match=expected) as caught:
        PostgresJournal(url).read()
    assert "hunter" not in str(caught.value)


def test_only_the_namespace_is_taken_out_of_the_query() -> None:
    journal = PostgresJournal("postgres://h/db?sslmode=require&namespace=x&options=-c%20a%3Db")
    assert journal.namespace == "x"
    assert journal._conninfo == "postgres://h/db?sslmode=require&options=-c%20a%3Db"
    assert journal.location == "postgres://h/db?namespace=x"
    assert PostgresJournal("postgresql://h/db").namespace == "default"


def test_without_psycopg_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    with pytest.raises(JournalError, match=r"pip install 'spike-reconcile\[postgres\]'"):
        PostgresJournal("postgresql://127.0.0.1:1/db").read()
