"""The journal: what this tool applied, as an append-only list of records.

The last-applied state is derived by replaying the records, so the journal never holds a
second copy of the truth. It is the only module that writes disk state. Two backends share
everything but storage: a JSON Lines file (default `.reconcile/journal.jsonl`) and, in
`pgjournal`, a PostgreSQL table.

Record kinds (one JSON object per line):

- `lineage`: the first record; names the journal (a random id) and its format.
- `op`: one applied API call (method, path, body); its effect follows from the endpoint table.
- `forget`: incidents no longer in any state file.
- `unmanage`: fields no longer in the state files (the escalation count is kept).
- `set`: values read from Spike (refresh, import).
- `apply-start` / `apply-end`: history only (which plan, what happened).

Every record that changes the last-applied state carries the next `serial`.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .endpoints import effects, parse_operation
from .model import (
    FIELDS,
    InvalidPlanError,
    JournalError,
    LockHeldError,
    Operation,
    StateMap,
    Value,
    is_counter_id,
    is_field_value,
)

FORMAT = 1
DEFAULT_LOCATION = ".reconcile/journal.jsonl"
STATE_KINDS = frozenset({"op", "forget", "unmanage", "set"})
HISTORY_KINDS = frozenset({"lineage", "apply-start", "apply-end"})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class JournalState:
    """The last-applied state: per incident, each field this tool knows the value of."""

    lineage: str | None = None
    serial: int = 0
    incidents: StateMap = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def apply_record(self, record: Mapping[str, Any]) -> None:
        """Fold one state-changing record into the state (the journal's replay step).

        An incident's fields are replaced, never changed in place, so a plan made from this
        state (which keeps a snapshot of the incidents mapping) stays as it was while apply
        records what it does.
        """
        kind = record["kind"]
        incidents = self.incidents
        if kind == "op":
            op = Operation(record["method"], record["path"], record["body"])
            name, value = effects(op)
            for cid in op.ids:
                fields = incidents.get(cid, {})
                if name == "escalations":
                    count = fields.get("escalations", 0)
                    assert isinstance(count, int)
                    value = count + 1
                incidents[cid] = {**fields, name: value}
        elif kind == "forget":
            for cid in record["ids"]:
                incidents.pop(cid, None)
        elif kind == "unmanage":
            for cid, name in record["fields"]:
                known = incidents.get(cid)
                if known is not None and name != "escalations":
                    incidents[cid] = {k: v for k, v in known.items() if k != name}
        elif kind == "set":
            for cid, values in record["incidents"].items():
                incidents[cid] = {**incidents.get(cid, {}), **values}
        self.serial = record["serial"]


def _check_record(record: Any, where: str, state: JournalState) -> None:
    """Refuse a record that is not one this tool writes, naming where it is."""
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise JournalError(f"{where}: not a journal record")
    kind = record["kind"]
    if not isinstance(record.get("at"), str):
        raise JournalError(f"{where}: a {kind} record without its time ('at')")
    if kind == "lineage":
        if state.lineage is not None:
            raise JournalError(f"{where}: a second lineage record")
        if record.get("format") != FORMAT or not isinstance(record.get("lineage"), str):
            raise JournalError(f"{where}: unsupported journal format {record.get('format')!r}")
        return
    if state.lineage is None:
        raise JournalError(f"{where}: the journal does not start with a lineage record")
    if kind in HISTORY_KINDS:
        return
    if kind not in STATE_KINDS:
        raise JournalError(f"{where}: unknown record kind {kind!r}")
    if record.get("serial") != state.serial + 1:
        raise JournalError(
            f"{where}: serial {record.get('serial')!r} does not follow {state.serial}"
        )
    if kind == "op":
        try:
            parse_operation(
                {k: record.get(k) for k in ("method", "path", "body")}, where=f"{where}: op"
            )
        except InvalidPlanError as exc:
            raise JournalError(str(exc)) from None
    elif not _well_formed(kind, record):
        raise JournalError(f"{where}: malformed {kind} record")


def _well_formed(kind: str, record: dict[str, Any]) -> bool:
    """A forget, unmanage or set record holds only valid ids, fields and values."""
    if kind == "forget":
        ids = record.get("ids")
        return isinstance(ids, list) and all(is_counter_id(i) for i in ids)
    if kind == "unmanage":
        pairs = record.get("fields")
        return isinstance(pairs, list) and all(
            isinstance(p, list) and len(p) == 2 and is_counter_id(p[0]) and p[1] in FIELDS
            for p in pairs
        )
    incidents = record.get("incidents")
    return isinstance(incidents, dict) and all(
        is_counter_id(cid)
        and isinstance(fields, dict)
        and all(is_field_value(name, value) for name, value in fields.items())
        for cid, fields in incidents.items()
    )


def _fold(state: JournalState, where: str, record: Any) -> None:
    """Check one record against `state` and fold it in (one step of replay)."""
    _check_record(record, where, state)
    if record["kind"] == "lineage":
        state.lineage = record["lineage"]
    elif record["kind"] in STATE_KINDS:
        state.apply_record(record)


def replay(records: Iterable[tuple[str, Any]]) -> JournalState:
    """The state after `records` ((where, record) pairs, oldest first), checking each."""
    state = JournalState()
    for where, record in records:
        _fold(state, where, record)
    return state


def encode_record(record: Mapping[str, Any]) -> str:
    """A record's stored text, the same in every backend (so a migration is byte-exact)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


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


class Journal(ABC):
    """One journal, wherever it is stored. Planner and applier see only this interface."""

    location: str

    @abstractmethod
    def read(self) -> JournalState:
        """The last-applied state (an empty state when the journal does not exist yet)."""

    @abstractmethod
    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first (for `reconcile log`)."""

    @abstractmethod
    @contextmanager
    def open_for_apply(self, timeout: float, purpose: str) -> Iterator[JournalWriter]:
        """Take the apply lock (waiting up to `timeout` seconds) and return a writer.

        Proves the journal is writable before returning, so no API call is made against a
        journal that could not record it.
        """


class JournalWriter(ABC):
    """Appends records durably: each append returns only once the record is stored."""

    def __init__(self, state: JournalState) -> None:
        self.state = state

    @abstractmethod
    def _store(self, record: dict[str, Any]) -> None:
        """Write one record durably (fsync / commit) before returning."""

    def _append(self, kind: str, **fields: Any) -> None:
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

    def copy_record(self, record: dict[str, Any], where: str) -> None:
        """Store a record from another journal verbatim (`journal migrate`).

        It is checked exactly as replay would check it, so a migration can only produce a
        journal that reads back; `where` names the record in the source for that error.
        """
        _check_record(record, where, self.state)  # before storing: never write what replay refuses
        self._store(record)
        _fold(self.state, where, record)

    def applied(self, op: Operation, plan: str | None) -> None:
        """Record one successful API call."""
        self._append("op", plan=plan, **op.to_json())

    def forget(self, ids: Sequence[str], plan: str | None) -> None:
        if ids:
            self._append("forget", plan=plan, ids=list(ids))

    def unmanage(self, pairs: Sequence[tuple[str, str]], plan: str | None) -> None:
        if pairs:
            self._append("unmanage", plan=plan, fields=[list(p) for p in pairs])

    def set_values(self, incidents: Mapping[str, Mapping[str, Value]], source: str) -> None:
        """Record values read from Spike (refresh / import)."""
        if incidents:
            self._append("set", source=source, incidents={k: dict(v) for k, v in incidents.items()})

    def start(self, plan: str | None, operations: int) -> None:
        self._append("apply-start", plan=plan, operations=operations)

    def end(self, plan: str | None, outcome: str, **counts: Any) -> None:
        self._append("apply-end", plan=plan, outcome=outcome, **counts)


# ---------------------------------------------------------------------------------------------
# The file backend


class FileJournal(Journal):
    """`.reconcile/journal.jsonl`: JSON Lines, appended and fsynced one record at a time."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.holder_path = self.path.with_name(self.path.name + ".lock.holder")

    def _lines(self) -> tuple[list[tuple[str, Any]], int, list[str]]:
        """((where, record) pairs, the byte length of the good part, warnings)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], 0, []
        except OSError as exc:
            raise JournalError(
                f"{self.location}: cannot read the journal: {exc.strerror}"
            ) from None
        warnings: list[str] = []
        good = len(data)
        lines = data.split(b"\n")
        if lines[-1]:
            # A last line without its newline was being written when the process died.
            good = len(data) - len(lines[-1])
            warnings.append(
                f"{self.location}:{len(lines)}: ignoring a torn last line "
                "(an interrupted write); the next apply re-issues that call"
            )
        records: list[tuple[str, Any]] = []
        for number, raw in enumerate(lines[:-1], start=1):
            where = f"{self.location}:{number}"
            try:
                records.append((where, json.loads(raw)))
            except ValueError:
                raise JournalError(
                    f"{where}: corrupt journal line (not JSON); fix or remove it by hand, "
                    "the journal is never reset silently"
                ) from None
        return records, good, warnings

    def read(self) -> JournalState:
        records, _, warnings = self._lines()
        state = replay(records)
        state.warnings = warnings
        return state

    def records(self) -> list[dict[str, Any]]:
        records, _, _ = self._lines()
        replay(records)  # refuse to show a corrupt history as if it were fine
        return [record for _, record in records]

    @contextmanager
    def open_for_apply(self, timeout: float, purpose: str) -> Iterator[JournalWriter]:
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.lock_path, timeout=timeout)
        except OSError as exc:
            raise JournalError(
                f"{self.location}: cannot create the journal's folder: {exc.strerror}"
            ) from None
        try:
            lock.acquire()
        except Timeout:
            raise LockHeldError(
                f"{self.location} is locked by another apply: {self._holder()}"
                + (f" (waited {timeout:g}s)" if timeout else "; use --lock-timeout to wait")
            ) from None
        except OSError as exc:
            raise JournalError(
                f"{self.location}: cannot lock the journal: {exc.strerror}"
            ) from None
        try:
            self._write_holder(LockInfo.mine(purpose))
            records, good, warnings = self._lines()
            state = replay(records)
            state.warnings = warnings
            try:
                handle = open(self.path, "ab")  # noqa: SIM115 - closed below
                if handle.tell() != good:
                    handle.truncate(good)  # drop a torn tail before appending after it
                    handle.seek(good)
            except OSError as exc:
                raise JournalError(
                    f"{self.location}: cannot write the journal: {exc.strerror}"
                ) from None
            try:
                yield _FileWriter(state, handle, self.location)
            finally:
                handle.close()
        finally:
            self.holder_path.unlink(missing_ok=True)
            lock.release()

    def _write_holder(self, info: LockInfo) -> None:
        # The holder file only improves the message a waiting apply prints.
        with suppress(OSError):
            self.holder_path.write_text(json.dumps(info.__dict__))

    def _holder(self) -> str:
        try:
            return str(LockInfo(**json.loads(self.holder_path.read_text())))
        except (OSError, ValueError, TypeError):
            return "holder unknown"


class _FileWriter(JournalWriter):
    def __init__(self, state: JournalState, handle: Any, location: str) -> None:
        super().__init__(state)
        self._handle = handle
        self._location = location

    def _store(self, record: dict[str, Any]) -> None:
        line = encode_record(record) + "\n"
        try:
            self._handle.write(line.encode())
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise JournalError(
                f"{self._location}: cannot write the journal: {exc.strerror}"
            ) from None


def open_journal(location: str | None = None) -> Journal:
    """The journal at `location` (a path or a postgresql:// URL), default from the env."""
    location = location or os.environ.get("RECONCILE_JOURNAL") or DEFAULT_LOCATION
    if location.startswith(("postgresql://", "postgres://")):
        from .pgjournal import PostgresJournal

        journal: Journal = PostgresJournal(location)
        return journal
    return FileJournal(location)


def migrate(source: Journal, dest: Journal, timeout: float = 0.0) -> int:
    """Copy every record of `source` into the empty journal `dest`; return how many.

    Lineage, serials and history are kept verbatim, so plans made against the source stay
    valid against the destination. Both apply locks are held throughout (each waiting up to
    `timeout` seconds), so no apply can change either journal mid-copy. A destination that
    already has records, or an empty source, is refused with nothing written.
    """
    with source.open_for_apply(timeout, "journal migrate (source)"):
        records = source.records()
        if not records:
            raise JournalError(f"{source.location}: the journal is empty; nothing to migrate")
        with dest.open_for_apply(timeout, "journal migrate (destination)") as writer:
            if writer.state.lineage is not None:
                raise JournalError(
                    f"{dest.location}: the destination journal is not empty; "
                    "migrate only into a new journal (nothing was copied)"
                )
            for number, record in enumerate(records, start=1):
                writer.copy_record(record, f"{source.location}: record {number}")
    return len(records)
