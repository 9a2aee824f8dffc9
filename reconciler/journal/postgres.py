"""The PostgreSQL journal: `--journal postgresql://user@host:5432/db?namespace=NAME`.

For teams whose CI runners share no disk. The semantics are the file journal's: the same
records, stored as the same JSON text (one row each), checked by the same `replay()`; one apply
at a time per namespace under a session-level advisory lock, which PostgreSQL releases when
the holder's connection ends, so a killed apply never leaves a stuck lock.

Several journals share one database through `?namespace=NAME` (default `default`). The lock
needs a real session: point the URL at PostgreSQL itself or a session-mode pooler, not a
transaction-mode pooler (PgBouncer's default), which would drop the lock between statements.

psycopg 3 is an optional dependency (`spike-reconcile[postgres]`), imported only when a
PostgreSQL journal is used, so the file journal and `reconcile --help` never pay for it.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .. import redact
from ..errors import JournalError
from .base import Journal, JournalWriter, LockInfo, refuse_unfinished
from .records import Recorded, encode_record, parse_record, replay

if TYPE_CHECKING:
    import psycopg

    Connection = psycopg.Connection[tuple[Any, ...]]

DEFAULT_NAMESPACE = "default"
NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

#: Schema migrations, applied in order; step N (1-based) brings the schema to version N.
#: Append new steps, never edit a released one: databases already at version N skip it.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE reconcile_schema_version (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )""",
        # `json` (not `jsonb`) keeps the text exactly as written, key order included, so a
        # record reads back byte-identical to the file journal's line.
        """CREATE TABLE reconcile_journal (
            namespace text NOT NULL,
            position bigint NOT NULL CHECK (position > 0),
            record json NOT NULL,
            PRIMARY KEY (namespace, position)
        )""",
        # Who holds a namespace's apply lock, only for the message a waiting apply prints;
        # the lock itself is the advisory lock, and a row is trusted only while its
        # backend_pid is the session that holds it.
        """CREATE TABLE reconcile_lock_holder (
            namespace text PRIMARY KEY,
            backend_pid integer NOT NULL,
            pid integer NOT NULL,
            host text NOT NULL,
            since text NOT NULL,
            purpose text NOT NULL
        )""",
    ),
)

# Added only when the URL does not set them: a dead host should fail in seconds, not hang a
# CI job, and DBAs should see who is connected in pg_stat_activity. The TCP keepalives make
# this end notice a vanished server; the same values are set on the server's end of the
# session (tcp_keepalives_*), so the server notices a vanished client (docs/journal.md).
_CONNECT_DEFAULTS = {
    "connect_timeout": "10",
    "application_name": "reconcile",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
#: reconcile's own URL parameters (taken out of the query, never passed to libpq) and their
#: defaults: the bound of every journal statement and lock wait, and how often the server
#: checks, during a statement, that the client is still there (PostgreSQL 14 and later).
DEFAULT_STATEMENT_TIMEOUT = "30s"
DEFAULT_CHECK_INTERVAL = "5s"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|min)")
_UNIT_MS = {"ms": 1, "s": 1000, "min": 60_000}
_MAX_LOCK_TIMEOUT_MS = 2**31 - 1  # lock_timeout is a 32-bit count of milliseconds


def _advisory_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for `name`.

    Derived by hashing, so every process agrees on it without a round trip; 64 bits make a
    collision between two namespaces (which would only make them wait for each other)
    negligible.
    """
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_SCHEMA_LOCK_KEY = _advisory_key("reconcile:schema")


def _psycopg() -> ModuleType:
    """psycopg, or a JournalError saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise JournalError(
            "a postgresql:// journal needs psycopg 3: pip install 'spike-reconcile[postgres]'"
        ) from None
    return psycopg


def _duration_ms(name: str, text: str) -> int:
    """A URL parameter's duration (`500ms`, `5s`, `1min`; `0` for none) in milliseconds."""
    if text == "0":
        return 0
    match = _DURATION.fullmatch(text)
    ms = math.ceil(float(match[1]) * _UNIT_MS[match[2]]) if match else -1
    if not 0 < ms <= _MAX_LOCK_TIMEOUT_MS:
        raise JournalError(
            f"invalid PostgreSQL journal URL: {name}={text!r}: use a duration such as 30s, "
            "500ms or 2min (0 for no bound), at most 24 days"
        )
    return ms


def _scalar(conn: Connection, query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None, query  # every caller selects exactly one row
    return row[0]


@dataclass
class _Session:
    """What an apply holds of a PostgreSQL journal: the session holding the advisory lock,
    and the position the first record appended goes to."""

    conn: Connection
    next_position: int = 0


class PostgresJournal(Journal):
    """One namespace of a journal stored in PostgreSQL.

    `location` is the URL without credentials or other parameters, with the namespace made
    explicit; it is what messages show, so it never holds a password.
    """

    def __init__(self, url: str) -> None:
        try:
            parts = urlsplit(url)
        except ValueError:
            # Not the parser's message: it can quote the netloc, password included.
            raise JournalError(
                "invalid PostgreSQL journal URL: it does not parse as "
                "postgresql://USER@HOST:PORT/DATABASE (an IPv6 host goes in [brackets])"
            ) from None
        if parts.netloc.count("@") > 1:
            # libpq splits at the first "@", so the rest of the password would become the
            # host name and be printed in its "could not translate host name" error.
            raise JournalError(
                "invalid PostgreSQL journal URL: more than one '@' before the host; "
                "percent-encode an '@' in the user or password as %40"
            )
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        redact.register(unquote(password))

        # The query is filtered as raw text, not decoded and re-encoded, so every parameter
        # but `namespace` reaches libpq exactly as written ("+" and "%20" differ to libpq).
        kept: list[str] = []
        namespaces: list[str] = []
        own: dict[str, str] = {}
        secrets = [password]
        for item in parts.query.split("&") if parts.query else []:
            key, _, value = item.partition("=")
            if unquote(key) == "namespace":
                namespaces.append(unquote(value))
                continue
            if unquote(key) in ("statement_timeout", "client_connection_check_interval"):
                own[unquote(key)] = unquote(value)
                continue
            if unquote(key) == "password":
                secrets.append(value)
            kept.append(item)
        if len(namespaces) > 1:
            raise JournalError("a PostgreSQL journal URL takes one namespace, not several")
        namespace = namespaces[0] if namespaces else DEFAULT_NAMESPACE
        if not NAMESPACE_PATTERN.fullmatch(namespace):
            raise JournalError(
                f"invalid journal namespace {namespace!r}: use letters, digits, '.', '_' "
                "and '-', starting with a letter or digit, at most 64 characters"
            )

        self.namespace = namespace
        #: The bound of every statement and lock wait (ms, 0: none), and the interval of the
        #: server's client-connection check (ms, 0: none).
        self.statement_timeout = _duration_ms(
            "statement_timeout", own.get("statement_timeout", DEFAULT_STATEMENT_TIMEOUT)
        )
        self.check_interval = _duration_ms(
            "client_connection_check_interval",
            own.get("client_connection_check_interval", DEFAULT_CHECK_INTERVAL),
        )
        self._conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), ""))
        # Scrubbed from every message: libpq can quote parts of the URL back, e.g. a
        # malformed percent-escape in the password.
        # Longest first, so a secret that contains another is not left half-replaced.
        self._secrets = sorted(
            {s for raw in secrets if raw for s in (raw, unquote(raw))}, key=len, reverse=True
        )
        shown_netloc = f"{user}@{hostport}" if user else hostport
        self.location = urlunsplit(
            (parts.scheme, shown_netloc, parts.path, f"namespace={namespace}", "")
        )
        self._lock_key = _advisory_key(f"reconcile:journal:{namespace}")

    # -- reading ---------------------------------------------------------------------------

    def _read(self) -> Recorded:
        with self._session() as conn:
            return replay(self._records(conn))

    def records(self) -> list[dict[str, Any]]:
        with self._session() as conn:
            records = self._records(conn)
        replay(records)  # refuse to show a corrupt history as if it were fine
        return [record for _, record in records]

    def _records(self, conn: Connection) -> list[tuple[str, Any]]:
        """(where, record) pairs, oldest first; a missing position is corruption, not a gap."""
        with self._failures("cannot read the journal"):
            rows = conn.execute(
                "SELECT position, record::text FROM reconcile_journal"
                " WHERE namespace = %s ORDER BY position",
                (self.namespace,),
            ).fetchall()
        records: list[tuple[str, Any]] = []
        for number, (position, text) in enumerate(rows, start=1):
            if position != number:
                raise JournalError(
                    f"{self.location}: record {number} is missing (the next one stored is "
                    f"{position}); restore it or fix the table by hand, the journal is never "
                    "reset silently"
                )
            where = f"{self.location}: record {position}"
            # The json column only holds valid JSON, but it may nest deeper than any record.
            records.append((where, parse_record(where, text, "record")))
        refuse_unfinished(self.location, records)
        return records

    # -- writing ---------------------------------------------------------------------------

    @contextmanager
    def _locked(self, timeout: float) -> Iterator[_Session]:
        """The namespace's advisory lock, on a dedicated session.

        The writer inserts through that same session, so a record can only be stored while
        the lock is held: if the connection drops (and the server frees the lock), the next
        write fails instead of interleaving with another apply.
        """
        with self._session() as conn:
            self._acquire(conn, timeout)
            try:
                yield _Session(conn)
            finally:
                # Best effort: closing the session (next) releases the lock in any case.
                with suppress(_psycopg().Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))

    def _write_holder(self, held: _Session, info: LockInfo) -> None:
        conn = held.conn
        with self._failures("cannot prepare the journal for writing"):
            # A record must be on disk before the next call starts (as the file's
            # fsync); a server or role default of `off` would acknowledge it earlier.
            conn.execute(
                "SELECT set_config('synchronous_commit', 'on', false)"
                " WHERE current_setting('synchronous_commit') = 'off'"
            )
            conn.execute(
                "INSERT INTO reconcile_lock_holder"
                " (namespace, backend_pid, pid, host, since, purpose)"
                " VALUES (%s, pg_backend_pid(), %s, %s, %s, %s)"
                " ON CONFLICT (namespace) DO UPDATE SET backend_pid = excluded.backend_pid,"
                " pid = excluded.pid, host = excluded.host, since = excluded.since,"
                " purpose = excluded.purpose",
                (self.namespace, info.pid, info.host, info.since, info.purpose),
            )

    def _replay_locked(self, held: _Session) -> Recorded:
        records = self._records(held.conn)
        held.next_position = len(records) + 1
        return replay(records)

    def _open_writer(self, held: _Session, state: Recorded) -> JournalWriter:
        conn, next_position = held.conn, held.next_position
        # A rolled-back insert proves the privilege and that the server is not a
        # read-only standby before any API call depends on it.
        with (
            self._failures("cannot write the journal"),
            conn.transaction(force_rollback=True),
        ):
            conn.execute(
                "INSERT INTO reconcile_journal (namespace, position, record) VALUES (%s, %s, '{}')",
                (self.namespace, next_position),
            )
        return _PostgresWriter(state, self, conn, next_position)

    def _clear_holder(self, held: _Session) -> None:
        # Best effort: closing the session releases the lock, and the holder row of a
        # session that no longer holds it is ignored (see _holder).
        with suppress(_psycopg().Error):
            held.conn.execute(
                "DELETE FROM reconcile_lock_holder"
                " WHERE namespace = %s AND backend_pid = pg_backend_pid()",
                (self.namespace,),
            )

    #: Records inserted per statement by a migration (all in its one transaction).
    copy_chunk = 200

    def _copy_in(
        self, held: _Session, records: Sequence[dict[str, Any]], marker: dict[str, Any]
    ) -> None:
        conn = held.conn
        with self._failures("cannot migrate into the journal (nothing was copied)"):
            first = conn.execute(
                "SELECT record::text FROM reconcile_journal WHERE namespace = %s"
                " ORDER BY position LIMIT 1",
                (self.namespace,),
            ).fetchone()
            if first is not None and _kind(first[0]) != marker["kind"]:
                raise self._not_empty()
            # The marker first, in its own transaction (replacing an unfinished copy): from
            # here on, whatever happens, every command refuses this namespace until the
            # copy below has replaced the marker.
            with conn.transaction():
                self._clear(conn)
                conn.execute(
                    "INSERT INTO reconcile_journal (namespace, position, record)"
                    " VALUES (%s, 1, %s)",
                    (self.namespace, encode_record(marker)),
                )
        committing = False
        try:
            with conn.transaction():
                self._clear(conn)
                rows = [
                    (self.namespace, position, encode_record(record))
                    for position, record in enumerate(records, start=1)
                ]
                for start in range(0, len(rows), self.copy_chunk):
                    self._insert_rows(conn, rows[start : start + self.copy_chunk])
                committing = True
        except _psycopg().Error as exc:
            holds = (
                "either the whole copy or the marker of an unfinished migration (the commit's "
                "outcome is unknown)"
                if committing
                else "the marker of an unfinished migration, which every command refuses"
            )
            raise JournalError(
                f"{self.location}: cannot migrate into the journal: {self._reason(exc)}; "
                f"no record was copied for sure: the destination holds {holds}; "
                "run the migration again (it replaces an unfinished copy)"
            ) from None

    def _clear(self, conn: Connection) -> None:
        conn.execute("DELETE FROM reconcile_journal WHERE namespace = %s", (self.namespace,))

    def _insert_rows(self, conn: Connection, rows: list[tuple[str, int, str]]) -> None:
        """Insert a migration's rows (a hook the fault tests cut)."""
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO reconcile_journal (namespace, position, record) VALUES (%s, %s, %s)",
                rows,
            )

    def _acquire(self, conn: Connection, timeout: float) -> None:
        """Take the apply lock, waiting up to `timeout` seconds, or raise LockHeldError."""
        psycopg = _psycopg()
        with self._failures("cannot lock the journal"):
            if timeout <= 0:
                got = _scalar(conn, "SELECT pg_try_advisory_lock(%s)", (self._lock_key,))
            else:
                # The server does the waiting, so the lock is taken the moment it is freed,
                # with no polling interval to lose.
                # --lock-timeout bounds this wait instead of statement_timeout, which
                # still ends it a bound later if the wait itself hangs.
                ms = min(max(1, math.ceil(timeout * 1000)), _MAX_LOCK_TIMEOUT_MS)
                bound = min(ms + self.statement_timeout, _MAX_LOCK_TIMEOUT_MS)
                self._bound(conn, lock=ms, statement=bound if self.statement_timeout else 0)
                try:
                    conn.execute("SELECT pg_advisory_lock(%s)", (self._lock_key,))
                    got = True
                except psycopg.errors.LockNotAvailable:
                    got = False
                self._bound(conn)
        if not got:
            raise self._lock_held(timeout, self._holder(conn))

    def _holder(self, conn: Connection) -> str:
        """Who holds the lock: the holder row, trusted only if its session holds the lock."""
        unsigned = self._lock_key & 0xFFFF_FFFF_FFFF_FFFF
        try:
            # A bigint advisory key shows in pg_locks as its two 32-bit halves.
            row = conn.execute(
                "SELECT l.pid, h.pid, h.host, h.since, h.purpose FROM pg_locks l"
                " LEFT JOIN reconcile_lock_holder h"
                " ON h.namespace = %s AND h.backend_pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                " AND l.database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())"
                " AND l.classid::bigint = %s AND l.objid::bigint = %s",
                (self.namespace, unsigned >> 32, unsigned & 0xFFFF_FFFF),
            ).fetchone()
        except _psycopg().Error:
            return "holder unknown"
        if row is None:
            return "holder unknown (it has just released the lock; try again)"
        backend, pid, host, since, purpose = row
        if pid is None:
            return f"holder unknown (PostgreSQL backend pid {backend})"
        info = LockInfo(pid, host, since, purpose)
        alive = info.alive_here()
        if alive is None:
            whether = ""
        elif alive:
            whether = f"; pid {pid} is running on this host"
        else:
            # Killed in the middle of a statement: the server has not noticed yet.
            whether = (
                f"; pid {pid} is not running on this host any more: its session ends, and "
                "frees the lock, within client_connection_check_interval (PostgreSQL 14 and "
                "later) or statement_timeout"
            )
        return f"{info} (PostgreSQL backend pid {backend}){whether}"

    # -- sessions, schema, errors --------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Connection]:
        """An autocommit connection with the schema at the current version, closed on exit."""
        psycopg = _psycopg()
        try:
            params = psycopg.conninfo.conninfo_to_dict(self._conninfo)
        except psycopg.Error as exc:
            raise JournalError(
                f"{self.location}: invalid PostgreSQL URL: {self._reason(exc)}"
            ) from None
        defaults = {k: v for k, v in _CONNECT_DEFAULTS.items() if k not in params}
        try:
            conn: Connection = psycopg.connect(self._conninfo, autocommit=True, **defaults)
        except psycopg.Error as exc:
            raise JournalError(
                f"{self.location}: cannot connect to PostgreSQL (host "
                f"{params.get('host') or 'default'}, port {params.get('port') or 5432}, "
                f"database {params.get('dbname') or 'default'}): {self._reason(exc)}"
            ) from None
        try:
            with self._failures("cannot prepare the journal's session"):
                self._bound(conn, params={**defaults, **params})
            with self._failures("cannot prepare the journal's tables"):
                _ensure_schema(conn)
            yield conn
        finally:
            conn.close()

    def _bound(
        self,
        conn: Connection,
        lock: int | None = None,
        statement: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        """Set the session's statement and lock bounds (the URL's statement_timeout unless
        given, ms), and once per session (`params`: its connection parameters) the server's
        checks that the client is still there, so a killed client's session, and the
        advisory lock it holds, ends within a bound even in the middle of a statement."""
        settings = {
            "statement_timeout": self.statement_timeout if statement is None else statement,
            "lock_timeout": self.statement_timeout if lock is None else lock,
        }
        if params is not None:
            for name in ("idle", "interval", "count"):
                value = str(params.get(f"keepalives_{name}", ""))
                if value.isdigit() and params.get("keepalives") != "0":
                    settings[f"tcp_keepalives_{name}"] = int(value)
            if conn.info.server_version >= 140000:  # the setting is new in PostgreSQL 14
                settings["client_connection_check_interval"] = self.check_interval
        names = list(settings)
        conn.execute(
            "SELECT " + ", ".join("set_config(%s, %s, false)" for _ in names),
            tuple(x for name in names for x in (name, str(settings[name]))),
        )

    @contextmanager
    def _failures(self, doing: str) -> Iterator[None]:
        """Turn a database error inside the block into a JournalError saying what failed."""
        psycopg = _psycopg()
        try:
            yield
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            raise JournalError(
                f"{self.location}: {doing}: {self._reason(exc)} (every journal statement is "
                f"bounded by statement_timeout={self.statement_timeout}ms: another session "
                "holds a lock on the journal's tables for longer, see pg_locks; the bound is "
                "the URL's ?statement_timeout=)"
            ) from None
        except psycopg.Error as exc:
            raise JournalError(f"{self.location}: {doing}: {self._reason(exc)}") from None

    def _reason(self, exc: BaseException) -> str:
        """The error's text on one line, with anything from the URL's credentials removed."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _kind(text: str) -> object:
    """The `kind` of a stored record's text (None when it is not an object)."""
    from ..jsontext import loads

    try:
        value = loads(text)
    except ValueError:
        return None
    return value.get("kind") if isinstance(value, dict) else None


def _ensure_schema(conn: Connection) -> None:
    """Bring the tables to the latest version, once, even when many processes start at once.

    The fast path reads the version without locking. Otherwise the steps run in one
    transaction under an advisory lock, and the version is read again under it: a process that
    waited for another one's migration finds nothing left to do.
    """
    if _schema_version(conn) == len(MIGRATIONS):
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        current = _schema_version(conn)
        if current > len(MIGRATIONS):
            raise JournalError(
                f"the journal's tables are at schema version {current}, newer than this "
                f"reconcile knows ({len(MIGRATIONS)}); upgrade spike-reconcile"
            )
        for version, steps in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in steps:
                conn.execute(statement)
            conn.execute("INSERT INTO reconcile_schema_version (version) VALUES (%s)", (version,))


def _schema_version(conn: Connection) -> int:
    """The schema version in this database; 0 before the first migration."""
    # Not to_regclass(): it answers from the backend's catalog cache, which an advisory lock
    # does not refresh, so a process that waited for another's migration would still see no
    # table and try to create it again. A query on pg_class reads a fresh snapshot.
    exists = _scalar(
        conn,
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relname = 'reconcile_schema_version')",
    )
    if not exists:
        return 0
    version: int = _scalar(conn, "SELECT coalesce(max(version), 0) FROM reconcile_schema_version")
    return version


class _PostgresWriter(JournalWriter):
    """Inserts each record in its own (autocommit) transaction on the lock's session; the
    records of a group in one transaction (one commit, one WAL flush)."""

    def __init__(
        self, state: Recorded, journal: PostgresJournal, conn: Connection, position: int
    ) -> None:
        super().__init__(state)
        self._journal = journal
        self._conn = conn
        self._position = position

    @contextmanager
    def group(self) -> Iterator[None]:
        start = self._position
        try:
            with (
                self._given_up_if_cancelled(),
                self._journal._failures("cannot write the journal"),
                self._conn.transaction(),
                super().group(),
            ):
                yield
        except JournalError:
            self._position = start  # the whole group was rolled back
            raise

    def cancel(self) -> None:
        self.cancelled.set()
        # From another thread, while the writer's thread waits in a statement: libpq sends
        # the server a cancel request on a connection of its own (cancel_safe: psycopg 3.2).
        # The statement then fails with QueryCanceled; a group's transaction rolls back.
        conn = self._conn
        with suppress(_psycopg().Error):  # the server unreachable: nothing more to do
            if hasattr(conn, "cancel_safe"):
                conn.cancel_safe(timeout=2.0)
            else:
                conn.cancel()

    def _given_up(self) -> JournalError:
        return JournalError(
            f"{self._journal.location}: cannot write the journal: the statement in progress "
            "did not complete within the grace after the stop signal (another session holds "
            "a lock on the journal's tables? see pg_locks), so it was cancelled"
        )

    def _store(self, record: dict[str, Any]) -> None:
        psycopg = _psycopg()
        with self._given_up_if_cancelled(), self._journal._failures("cannot write the journal"):
            try:
                self._conn.execute(
                    "INSERT INTO reconcile_journal (namespace, position, record)"
                    " VALUES (%s, %s, %s)",
                    (self._journal.namespace, self._position, encode_record(record)),
                )
            except psycopg.errors.UniqueViolation:
                raise JournalError(
                    f"{self._journal.location}: record {self._position} was written by "
                    "someone else while this apply held the lock (a writer that bypassed it?); "
                    "stopping so the two histories do not interleave"
                ) from None
        self._position += 1

    @contextmanager
    def _given_up_if_cancelled(self) -> Iterator[None]:
        """A statement that failed because cancel() cancelled it says so (not as a timeout)."""
        try:
            yield
        except JournalError:
            if self.cancelled.is_set():
                raise self._given_up() from None
            raise
