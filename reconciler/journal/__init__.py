"""The journal: what this tool applied, as an append-only list of records (docs/journal.md).

records.py: the record kinds, their checks and replay(); base.py: the Journal interface and
its writer; file.py and postgres.py: the backends.

open_journal() picks the backend from the location (a path, or a postgresql:// URL);
migrate() copies one journal into another and retires the source.
"""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import JournalError

if TYPE_CHECKING:
    from .base import Journal

#: Seconds an apply waits for another one's lock on the journal: none, by default.
DEFAULT_LOCK_TIMEOUT: float = 0
#: Where the journal is when neither --journal nor RECONCILE_JOURNAL says.
DEFAULT_LOCATION = ".reconcile/journal.jsonl"

__all__ = [
    "DEFAULT_LOCATION",
    "DEFAULT_LOCK_TIMEOUT",
    "Migration",
    "is_database_url",
    "migrate",
    "open_journal",
    "same_journal",
]


def is_database_url(location: str) -> bool:
    """Whether a journal location names a PostgreSQL database rather than a file."""
    return location.startswith(("postgresql://", "postgres://"))


def open_journal(location: str | None = None) -> Journal:
    """The journal at `location` (a path or a postgresql:// URL), default from the env."""
    location = location or os.environ.get("RECONCILE_JOURNAL") or DEFAULT_LOCATION
    if is_database_url(location):
        from .postgres import PostgresJournal

        journal: Journal = PostgresJournal(location)
        return journal
    from .file import FileJournal

    return FileJournal(location)


class Migration(NamedTuple):
    """What `migrate` did: how many records the destination holds from the source, and
    whether it copied them now (False: a whole copy was there already, so it only retired)."""

    records: int
    copied: bool


def migrate(source: Journal, dest: Journal, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Migration:
    """Copy every record of `source` into the empty journal `dest`, then retire `source`.

    Lineage, serials and history are kept verbatim (the plan ids applied too). Both apply
    locks are held throughout (each waiting up to `timeout` seconds), so no apply can change
    either journal mid-copy. The copy is all or nothing (`Journal.copy_in`): a destination
    that already has records, or an empty source, is refused with nothing written; a copy
    cut short leaves a destination that every command refuses until a migration is run
    again. Once the copy is whole, a `retired` record naming `dest` is appended to `source`
    under its lock, in the same run: from then on every command that would write to the
    source or plan against it refuses it (two live journals would share one history).

    A destination that already starts with every record of the source (a migration whose
    retire record could not be written) is not copied again: the source is only retired.
    """
    from .records import replay

    if same_journal(source.location, dest.location):
        raise JournalError(
            f"{source.location}: the source and the destination are one journal; nothing to migrate"
        )
    if source.read().lineage is None:  # before the lock, which would create a missing file
        raise JournalError(f"{source.location}: the journal is empty; nothing to migrate")
    with source.open_for_apply(timeout, "journal migrate (source)") as writer:
        records = source.records()
        if not records:
            raise JournalError(f"{source.location}: the journal is empty; nothing to migrate")
        # Checked as the destination's reads will check them: a migration can only produce
        # a journal that reads back.
        replay([(f"{source.location}: record {n}", r) for n, r in enumerate(records, start=1)])
        copied = not _holds_copy(dest, records)
        if copied:
            dest.copy_in(records, source.location, timeout)
        try:
            writer.retire(dest.location)
        except JournalError as exc:
            again = ("--from", source.location, "--to", dest.location)
            command = shlex.join(["reconcile", "journal", "migrate", *again])
            raise JournalError(
                f"{dest.location}: the copy is whole ({len(records)} records), but the source "
                f"could not be marked retired ({exc}): {source.location} is NOT retired and "
                "still takes the plans made for it; stop applying to it and run "
                f"`{command}` again: it finds the whole copy and only retires the source"
            ) from None
    return Migration(len(records), copied)


def _holds_copy(dest: Journal, records: list[dict[str, Any]]) -> bool:
    """Whether `dest` starts with every one of `records` (a whole copy of them, maybe
    written to since)."""
    try:
        found = dest.records()
    except JournalError:
        return False  # an unfinished copy, or none that reads: copy_in replaces or refuses it
    return found[: len(records)] == records


def same_journal(one: str, other: str) -> bool:
    """Whether two journal locations are one journal, however they are spelled.

    Files: one file (device and inode) once both exist, one resolved path before. PostgreSQL:
    the same database and namespace on the same server: the port (5432 by default) and the
    addresses the host names resolve to (any loopback address, `localhost` included, is one
    server); users, passwords and other parameters aside. Host names are resolved only when
    everything else is the same and they are spelled differently; a name that does not
    resolve is compared as written. A location that does not parse is compared as written
    (opening it says what is wrong).
    """
    if is_database_url(one) != is_database_url(other):
        return False
    if not is_database_url(one):
        try:
            first, second = os.stat(one), os.stat(other)
        except OSError:
            return os.path.realpath(one) == os.path.realpath(other)
        return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)
    first_db, second_db = _database(one), _database(other)
    if first_db is None or second_db is None:
        return one == other
    (host, rest), (other_host, other_rest) = first_db, second_db
    if rest != other_rest:
        return False
    return host == other_host or bool(_addresses(host, rest[0]) & _addresses(other_host, rest[0]))


def _database(location: str) -> tuple[str, tuple[int, str, str]] | None:
    """A PostgreSQL journal's (host, (port, database, namespace)); None if it does not parse."""
    from urllib.parse import unquote, urlsplit

    from .postgres import PostgresJournal

    try:
        journal = PostgresJournal(location)
        parts = urlsplit(location)
        port = parts.port or 5432
    except (JournalError, ValueError):
        return None
    # libpq's default database is the user's name.
    database = unquote(parts.path.lstrip("/")) or unquote(parts.username or "")
    return (parts.hostname or "").lower(), (port, database, journal.namespace)


def _addresses(host: str, port: int) -> frozenset[str]:
    """The addresses `host` reaches, every loopback address as one; the name itself when it
    does not resolve (or is empty: libpq's local socket)."""
    import ipaddress
    import socket

    if not host:
        return frozenset({host})
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return frozenset({host})
    addresses = set()
    for *_, address in found:
        ip = ipaddress.ip_address(str(address[0]).partition("%")[0])
        addresses.add("loopback" if ip.is_loopback else ip.compressed)
    return frozenset(addresses)
