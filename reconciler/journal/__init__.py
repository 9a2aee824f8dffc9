"""The journal: what this tool applied, as an append-only list of records (docs/journal.md).

records.py: the record kinds, their checks and replay(); base.py: the Journal interface and
its writer; file.py and postgres.py: the backends.

open_journal() picks the backend from the location (a path, or a postgresql:// URL);
migrate() copies one journal into another.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

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
    "is_database_url",
    "migrate",
    "open_journal",
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


def migrate(source: Journal, dest: Journal, timeout: float = DEFAULT_LOCK_TIMEOUT) -> int:
    """Copy every record of `source` into the empty journal `dest`; return how many.

    Lineage, serials and history are kept verbatim, so plans made against the source stay
    valid against the destination. Both apply locks are held throughout (each waiting up to
    `timeout` seconds), so no apply can change either journal mid-copy. The copy is all or
    nothing (`Journal.copy_in`): a destination that already has records, or an empty
    source, is refused with nothing written; a copy cut short leaves a destination that
    every command refuses until a migration is run again.
    """
    from .records import replay

    if _identity(source) == _identity(dest):
        raise JournalError(
            f"{source.location}: the source and the destination are one journal; nothing to migrate"
        )
    if source.read().lineage is None:  # before the lock, which would create a missing file
        raise JournalError(f"{source.location}: the journal is empty; nothing to migrate")
    with source.open_for_apply(timeout, "journal migrate (source)"):
        records = source.records()
        if not records:
            raise JournalError(f"{source.location}: the journal is empty; nothing to migrate")
        # Checked as the destination's reads will check them: a migration can only produce
        # a journal that reads back.
        replay([(f"{source.location}: record {n}", r) for n, r in enumerate(records, start=1)])
        dest.copy_in(records, source.location, timeout)
    return len(records)


def _identity(journal: Journal) -> str:
    """What makes two journals one: a file's resolved path, a database's shown location."""
    path = getattr(journal, "path", None)
    return os.path.realpath(path) if path is not None else journal.location
