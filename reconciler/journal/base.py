"""The Journal base class, which owns the apply protocol (`open_for_apply`: lock, holder, replay,
prove writable, yield a writer, clean up) as a template method over its backends' steps, and
the JournalWriter that appends records (docs/journal.md, Locking and Durability)."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import JournalError, LockHeldError, printable
from ..model import Operation, Value
from .records import (
    FORMAT,
    RETIRED,
    STATE_KINDS,
    Recorded,
    now,
)

#: The kind of the one record a journal holds while `journal migrate` copies into it: written
#: (and made durable) before the copy, replaced by the whole copy at once. A journal holding
#: it is refused by every command (docs/journal.md, reconcile journal migrate); a version of
#: reconcile that does not know the kind refuses it too, as corrupt.
UNFINISHED_MIGRATION = "migration-unfinished"


def unfinished_migration(location: str, source: str, started: str) -> dict[str, Any]:
    """The marker record of a migration from `source` into the journal at `location`."""
    return {"kind": UNFINISHED_MIGRATION, "from": source, "at": started}


def refuse_unfinished(location: str, records: Sequence[tuple[str, Any]]) -> None:
    """Refuse a journal that a migration began and did not finish (its marker record)."""
    first = records[0][1] if records else None
    if isinstance(first, dict) and first.get("kind") == UNFINISHED_MIGRATION:
        raise JournalError(
            f"{location}: a `reconcile journal migrate` into this journal from "
            f"{printable(str(first.get('from')))} (started {printable(str(first.get('at')))}) "
            "did not finish, so it holds no usable record: run that migration again (it "
            "replaces an unfinished copy), or keep using the source journal"
        )


def refuse_retired(location: str, state: Recorded) -> None:
    """Refuse a journal `journal migrate` retired: it moved, and two live journals would
    share one history (docs/journal.md, reconcile journal migrate)."""
    if state.retired is None:
        return
    import shlex

    to, at = (printable(part) for part in state.retired)
    raise JournalError(
        f"{location}: this journal was migrated to {to} on {at} and is retired: nothing is "
        "written to it or planned against it any more (reconcile show and log still read "
        f"it); use --journal {shlex.quote(to)} (with reconcile.yaml: the team's journal)"
    )


@dataclass(frozen=True)
class LockInfo:
    """Who holds the apply lock, for the message a second apply prints."""

    pid: int
    host: str
    since: str
    purpose: str

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since} ({self.purpose})"

    @classmethod
    def mine(cls, purpose: str) -> LockInfo:
        return cls(os.getpid(), socket.gethostname(), now(), purpose)

    def alive_here(self) -> bool | None:
        """Whether the holder's process is running, when it ran on this host (None: another
        host, or no way to tell)."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return None
        try:
            os.kill(self.pid, 0)  # signal 0: only checks that the process exists
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists, under another user
        except OSError:
            return None
        return True


class Journal(ABC):
    """One journal, wherever it is stored. Planner and applier see only this interface."""

    location: str

    def read(self, retired_ok: bool = False) -> Recorded:
        """The last-applied state (an empty state when the journal does not exist yet).

        A retired journal (migrated elsewhere) is refused, unless `retired_ok` (`reconcile
        show`, which says it is retired): nothing is planned against it."""
        state = self._read()
        if not retired_ok:
            refuse_retired(self.location, state)
        return state

    @abstractmethod
    def _read(self) -> Recorded:
        """The last-applied state, retired or not."""

    @abstractmethod
    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first (for `reconcile log`)."""

    @contextmanager
    def open_for_apply(self, timeout: float, purpose: str) -> Iterator[JournalWriter]:
        """Take the apply lock (waiting up to `timeout` seconds) and return a writer.

        The protocol, the same for every backend (docs/journal.md, Locations): take the lock,
        write who holds it, replay the records, refuse a retired journal, prove the journal
        writable (so no API call is made against a journal that could not record it), yield
        the writer, then close it, clear the holder and release the lock, whatever happened.
        The backends fill in the steps (the hooks below).
        """
        with self._locked(timeout) as held:
            try:
                self._write_holder(held, LockInfo.mine(purpose))
                state = self._replay_locked(held)
                refuse_retired(self.location, state)
                writer = self._open_writer(held, state)
                try:
                    yield writer
                finally:
                    writer.close()
            finally:
                self._clear_holder(held)

    def copy_in(self, records: Sequence[dict[str, Any]], source: str, timeout: float) -> None:
        """Make this empty journal a copy of `records` (`journal migrate` from `source`), all
        at once: under the lock, a marker record is stored first, then the whole copy
        replaces it in one step (one transaction, one rename). A copy cut short leaves the
        journal as it was or holding the marker, which every command refuses and a new
        migration replaces. Raises JournalError, saying what the destination holds, when
        it fails; refuses a journal with records (nothing copied)."""
        with self._locked(timeout) as held:
            try:
                self._write_holder(held, LockInfo.mine("journal migrate (destination)"))
                self._copy_in(held, records, unfinished_migration(self.location, source, now()))
            finally:
                self._clear_holder(held)

    def _not_empty(self) -> JournalError:
        return JournalError(
            f"{self.location}: the destination journal is not empty; "
            "migrate only into a new journal (nothing was copied)"
        )

    def _lock_held(self, timeout: float, holder: str) -> LockHeldError:
        """The refusal when another apply holds the lock (`holder` says who)."""
        return LockHeldError(
            f"{self.location} is locked by another apply: {holder}"
            + (f" (waited {timeout:g}s)" if timeout > 0 else "; use --lock-timeout to wait")
        )

    # -- the backend's steps ---------------------------------------------------------------
    # `held` is whatever the backend needs while it holds the lock (a lock file, a session).

    @abstractmethod
    def _locked(self, timeout: float) -> AbstractContextManager[Any]:
        """Take the lock, or raise self._lock_held(...); release it on exit."""

    @abstractmethod
    def _write_holder(self, held: Any, info: LockInfo) -> None:
        """Record who holds the lock, for the message a waiting apply prints."""

    @abstractmethod
    def _replay_locked(self, held: Any) -> Recorded:
        """Read and replay every record, under the lock."""

    @abstractmethod
    def _open_writer(self, held: Any, state: Recorded) -> JournalWriter:
        """Prove the journal writable and return a writer appending after `state`."""

    @abstractmethod
    def _clear_holder(self, held: Any) -> None:
        """Remove the holder record (best effort: releasing the lock is what counts)."""

    @abstractmethod
    def _copy_in(
        self, held: Any, records: Sequence[dict[str, Any]], marker: dict[str, Any]
    ) -> None:
        """Under the lock: refuse a journal with records other than an unfinished
        migration's `marker`; store `marker` durably; replace it with `records` at once."""


class JournalWriter(ABC):
    """Appends records durably: each append returns only once the record is stored."""

    def __init__(self, state: Recorded) -> None:
        self.state = state
        self._grouped = False
        #: Incidents a rule's expansion asked for -> the rule: named in the `rules` of the
        #: op and set records about them (docs/rules.md).
        self.rule_owners: Mapping[str, str] = {}
        #: The id of the plan applied, named in the apply-start record (docs/journal.md).
        self.plan_id: str | None = None
        #: Set by cancel(): the apply gave up on the journal; every later store fails at once.
        self.cancelled = threading.Event()
        #: Who and why (commit, pull request, approvals...), the apply-start record's
        #: `audit` (docs/journal.md, docs/approvals.md); empty: none.
        self.audit: Mapping[str, Any] = {}

    def _rules_of(self, ids: Iterable[str]) -> dict[str, Any]:
        owners = self.rule_owners
        named = {cid: owners[cid] for cid in ids if cid in owners}
        return {"rules": named} if named else {}

    @abstractmethod
    def _store(self, record: dict[str, Any]) -> None:
        """Write one record durably (fsync / commit) before returning; inside `group()`, the
        backend may leave it to the group's one sync instead."""

    def _sync(self) -> None:
        """Make every record stored in the current group durable (a backend whose every
        `_store` is durable by itself has nothing to do)."""
        return

    def close(self) -> None:
        """Release what the writer holds (the journal's lock is released by the journal)."""
        return

    def cancel(self) -> None:
        """Give up on the journal, from any thread (a stop signal's grace has passed): a
        backend whose writes can wait on another session (PostgreSQL) cancels the statement
        in progress and sets `cancelled`, so every later append raises JournalError at once
        instead of waiting. What was stored stays stored. A file's writes wait on no one:
        nothing to give up, so the apply still writes its end record."""
        return

    def _given_up(self) -> JournalError:
        return JournalError(
            "the journal was given up on: its write did not complete within the grace after "
            "the stop signal"
        )

    @contextmanager
    def group(self) -> Iterator[None]:
        """Records appended inside share one sync (group commit): each is durable only when
        the block has ended without an error. Raises JournalError when the sync fails."""
        assert not self._grouped, "groups do not nest"
        self._grouped = True
        try:
            yield
        finally:
            self._grouped = False
        self._sync()

    def _append(self, kind: str, **fields: Any) -> None:
        if self.cancelled.is_set():
            raise self._given_up()
        self._ensure_lineage()
        record: dict[str, Any] = {"kind": kind}
        if kind in STATE_KINDS:
            record["serial"] = self.state.serial + 1
        record["at"] = now()
        record.update(fields)
        self._store(record)
        if kind in STATE_KINDS:
            self.state.apply_record(record)

    def _ensure_lineage(self) -> None:
        if self.state.lineage is None:
            lineage = str(uuid.uuid4())
            self._store({"kind": "lineage", "lineage": lineage, "format": FORMAT, "at": now()})
            self.state.lineage = lineage

    def applied(self, op: Operation, plan: str | None, intent: int | None = None) -> None:
        """Record one successful API call (an escalate one with the serial of its intent)."""
        extra = {} if intent is None else {"intent": intent}
        self._append("op", plan=plan, **op.to_json(), **extra, **self._rules_of(op.ids))

    def intent(self, op: Operation, plan: str | None) -> int:
        """Record that the escalate call `op` is about to be sent; its serial, for the outcome."""
        self._append("intent", plan=plan, **op.to_json())
        return self.state.serial

    def uncertain(self, intent: int, reason: str, plan: str | None) -> None:
        """Record that the call of `intent` may or may not have reached Spike."""
        ids = list(self.state.intents[intent].ids)
        self._append("uncertain", plan=plan, intent=intent, ids=ids, reason=reason)

    def not_sent(self, intent: int, reason: str, plan: str | None) -> None:
        """Record that the call of `intent` surely did not reach Spike."""
        self._append("not-sent", plan=plan, intent=intent, reason=reason)

    def forget(self, ids: Sequence[str], plan: str | None) -> None:
        if ids:
            self._append("forget", plan=plan, ids=list(ids))

    def unmanage(self, pairs: Sequence[tuple[str, str]], plan: str | None) -> None:
        if pairs:
            self._append("unmanage", plan=plan, fields=[list(p) for p in pairs])

    def set_values(self, incidents: Mapping[str, Mapping[str, Value]], source: str) -> None:
        """Record values read from Spike (refresh / import) or an escalation count."""
        if incidents:
            self._append(
                "set",
                source=source,
                incidents={k: dict(v) for k, v in incidents.items()},
                **self._rules_of(incidents),
            )

    def start(self, plan: str | None, operations: int) -> None:
        extra: dict[str, Any] = {} if self.plan_id is None else {"plan_id": self.plan_id}
        if self.audit:
            extra["audit"] = dict(self.audit)
        self._append("apply-start", plan=plan, operations=operations, **extra)

    def end(self, plan: str | None, outcome: str, **counts: Any) -> None:
        self._append("apply-end", plan=plan, outcome=outcome, **counts)

    def retire(self, to: str) -> None:
        """Record that the journal was migrated to `to`: its last record (journal migrate)."""
        self._append(RETIRED, to=to)
