"""The journal: what this tool applied, as an append-only list of records.

The last-applied state is derived by replaying the records, so the journal never holds a
second copy of the truth. It is the only module that writes disk state. Two backends share
everything but storage: a JSON Lines file (default `.reconcile/journal.jsonl`) and, in
`pgjournal`, a PostgreSQL table. Both read through `replay()`, so every record kind below
means the same in both.

Every record is a JSON object with `kind` and `at` (UTC time, ISO 8601 with milliseconds and
`Z`). Counts and serials are JSON integers (never `true` or `1.0`). Record kinds:

- `lineage` {lineage, format}: the first record; names the journal (a random id) and its
  format (1).
- `op` {serial, plan, method, path, body[, intent]}: one API call Spike confirmed (2xx); its
  effect on each incident of the call follows from the endpoint table. An escalate `op`
  carries `intent`, the serial of the `intent` record it completes (journals written before
  intents existed have escalate ops without it; they count as applied).
- `intent` {serial, plan, method, path, body}: an escalate call about to be sent, written and
  synced before it is. From this record on, each id in `body.ids` is *uncertain* until the
  intent's outcome follows: an `op` (applied), an `uncertain` or a `not-sent` record naming it
  in `intent`. An intent with no outcome (the process was killed with the call in flight)
  leaves its incidents uncertain.
- `uncertain` {serial, plan, intent, ids, reason}: the escalate call of intent `intent` ended
  in a way that does not tell whether Spike acted (a 500/502/504, a timeout, a reset after
  sending, a refused batch). `ids` are the intent's ids; `reason` says what happened. The
  escalation count of each stays as it was, and the incident stays uncertain (no escalate is
  planned for it) until a `set` record gives its escalation count.
- `not-sent` {serial, plan, intent, reason}: the escalate call of intent `intent` surely did
  not reach Spike (refused credentials, retries used up on failures that happen before
  Spike acts); its ids are no longer uncertain and nothing changed.
- `forget` {serial, plan, ids}: incidents no longer in any state file. Their fields are
  dropped, except two facts Spike cannot undo, which are *kept*: a resolved status and the
  escalation count.
- `unmanage` {serial, plan, fields: [[id, field], ...]}: fields no longer in the state files.
  The escalation count is never dropped; a resolved status is dropped from the fields and
  kept as a fact.
- `set` {serial, source, incidents: {id: {field: value}}}: values read from Spike (`source`
  refresh or import) or, for `escalations`, recorded by the operator from Spike's activity
  log (`source` "activity-log", `reconcile refresh --id ID --escalations N`). A `set` of
  `escalations` clears that incident's uncertainty; for an incident that is not journaled, it
  sets the kept count.
- `apply-start` {plan, operations} / `apply-end` {plan, outcome, applied, failed, skipped,
  uncertain[, error]}: history only. `outcome` is `applied`, `failed` (some calls failed or
  are uncertain), `interrupted` (a signal) or `aborted` (the apply died on an error, named
  in `error`). An `apply-start` with no `apply-end` after it (the last one in the journal)
  means the apply was killed or is still running: reading the journal warns about it.

Every record that changes the last-applied state (`op`, `intent`, `uncertain`, `not-sent`,
`forget`, `unmanage`, `set`) carries the next `serial`, so a plan saved before any of them is
stale.

Durability: a record counts only once it is synced (file: fsync; PostgreSQL: a synchronous
commit). Records appended inside `JournalWriter.group()` share one sync (group commit); the
applier groups the records of calls that finish together. A write or sync that fails is cut
back to the last synced record and stops the writer, so what was journaled before stays
readable. A last line that does not parse (a write torn by a crash) is ignored with a warning
and cut before the next append; a complete last record without its newline is kept.
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

from .endpoints import ESCALATE, effects, parse_operation
from .jsontext import JsonTooDeepError, loads
from .model import (
    FIELDS,
    Fields,
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
OUTCOME_KINDS = frozenset({"uncertain", "not-sent"})
STATE_KINDS = frozenset({"op", "forget", "unmanage", "set", "intent", *OUTCOME_KINDS})
HISTORY_KINDS = frozenset({"lineage", "apply-start", "apply-end"})
#: The `source` of a `set` record holding an escalation count the operator read in Spike.
ACTIVITY_LOG = "activity-log"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_int(value: object) -> bool:
    """A JSON integer: not a bool (True == 1) and not a float (1.0 == 1)."""
    return type(value) is int


@dataclass
class JournalState:
    """The last-applied state: per incident, each field this tool knows the value of."""

    lineage: str | None = None
    serial: int = 0
    incidents: StateMap = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: Facts Spike cannot undo, kept after the incident or its status stopped being managed
    #: (forget, unmanage): {"status": "resolved"} and {"escalations": N}. An escalation count
    #: lives here only while the incident is not journaled with one in `incidents`.
    kept: StateMap = field(default_factory=dict)
    #: Incidents whose last escalate call has an unknown outcome -> what happened.
    uncertain: dict[str, str] = field(default_factory=dict)
    #: Escalate intents with no outcome yet: intent serial -> the call.
    intents: dict[int, Operation] = field(default_factory=dict)
    #: The last apply-start record with no apply-end after it, with where it is.
    unfinished: tuple[str, Mapping[str, Any]] | None = None

    def escalations(self, cid: str) -> int | None:
        """The incident's escalation count, journaled or kept; None when never recorded."""
        for source in (self.incidents, self.kept):
            count = source.get(cid, {}).get("escalations")
            if isinstance(count, int):
                return count
        return None

    def resolved(self, cid: str) -> bool:
        """True when the journal ever recorded the incident as resolved (terminal in Spike)."""
        return (
            self.incidents.get(cid, {}).get("status") == "resolved"
            or self.kept.get(cid, {}).get("status") == "resolved"
        )

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
                    value = (self.escalations(cid) or 0) + 1
                    self._unkeep(cid, "escalations")
                    self.uncertain.pop(cid, None)
                incidents[cid] = {**fields, name: value}
            if "intent" in record:
                self.intents.pop(record["intent"], None)
        elif kind == "intent":
            op = Operation(record["method"], record["path"], record["body"])
            self.intents[record["serial"]] = op
            for cid in op.ids:
                self.uncertain[cid] = (
                    f"an escalate call was in flight (journal serial {record['serial']}, "
                    f"{record['at']}) when the apply stopped"
                )
        elif kind in OUTCOME_KINDS:
            op = self.intents.pop(record["intent"])
            for cid in op.ids:
                if kind == "uncertain":
                    self.uncertain[cid] = f"{record['reason']} ({record['at']})"
                else:
                    self.uncertain.pop(cid, None)
        elif kind == "forget":
            for cid in record["ids"]:
                if cid in incidents:
                    self._keep(cid, incidents.pop(cid))
        elif kind == "unmanage":
            for cid, name in record["fields"]:
                known = incidents.get(cid)
                if known is not None and name != "escalations":
                    if name == "status" and known.get("status") == "resolved":
                        self._keep(cid, {"status": "resolved"})
                    incidents[cid] = {k: v for k, v in known.items() if k != name}
        elif kind == "set":
            for cid, values in record["incidents"].items():
                values = dict(values)
                if "escalations" in values:
                    self.uncertain.pop(cid, None)
                    if cid not in incidents:
                        # Not journaled: the count is a kept fact, so recording it does
                        # not make a forgotten incident journaled (and forgotten again).
                        self._keep(cid, {"escalations": values.pop("escalations")})
                        if not values:
                            continue
                    else:
                        self._unkeep(cid, "escalations")
                incidents[cid] = {**incidents.get(cid, {}), **values}
        self.serial = record["serial"]

    def _keep(self, cid: str, fields: Mapping[str, Value]) -> None:
        """Keep the facts among `fields` that Spike cannot undo."""
        facts: Fields = {}
        if fields.get("status") == "resolved":
            facts["status"] = "resolved"
        if isinstance(fields.get("escalations"), int):
            facts["escalations"] = fields["escalations"]
        if facts:
            self.kept[cid] = {**self.kept.get(cid, {}), **facts}

    def _unkeep(self, cid: str, name: str) -> None:
        facts = self.kept.get(cid)
        if facts is not None and name in facts:
            rest = {k: v for k, v in facts.items() if k != name}
            if rest:
                self.kept[cid] = rest
            else:
                del self.kept[cid]


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
        if not _is_int(record.get("format")) or record.get("format") != FORMAT:
            raise JournalError(f"{where}: unsupported journal format {record.get('format')!r}")
        if not isinstance(record.get("lineage"), str):
            raise JournalError(f"{where}: malformed lineage record")
        return
    if state.lineage is None:
        raise JournalError(f"{where}: the journal does not start with a lineage record")
    if kind in HISTORY_KINDS:
        if not _history_well_formed(kind, record):
            raise JournalError(f"{where}: malformed {kind} record")
        return
    if kind not in STATE_KINDS:
        raise JournalError(f"{where}: unknown record kind {kind!r}")
    serial = record.get("serial")
    if not _is_int(serial) or serial != state.serial + 1:
        raise JournalError(f"{where}: serial {serial!r} does not follow {state.serial}")
    if kind in ("op", "intent"):
        try:
            op = parse_operation(
                {k: record.get(k) for k in ("method", "path", "body")}, where=f"{where}: {kind}"
            )
        except InvalidPlanError as exc:
            raise JournalError(str(exc)) from None
        escalate = op.path == ESCALATE
        if kind == "intent" and not escalate:
            raise JournalError(f"{where}: an intent record for a call other than escalate")
        if kind == "op" and "intent" in record:
            intent = record["intent"]
            if not escalate or not _is_int(intent) or state.intents.get(intent) != op:
                raise JournalError(
                    f"{where}: op names intent {record['intent']!r}, which is not a pending "
                    "escalate intent for the same call"
                )
    elif kind in OUTCOME_KINDS:
        intent = record.get("intent")
        if not _is_int(intent) or intent not in state.intents:
            raise JournalError(
                f"{where}: {kind} names intent {intent!r}, which is not a pending escalate intent"
            )
        if not isinstance(record.get("reason"), str) or (
            kind == "uncertain" and record.get("ids") != list(state.intents[intent].ids)
        ):
            raise JournalError(f"{where}: malformed {kind} record")
    elif not _well_formed(kind, record):
        raise JournalError(f"{where}: malformed {kind} record")


def _history_well_formed(kind: str, record: dict[str, Any]) -> bool:
    """An apply-start or apply-end record: a plan digest or null, and integer counts."""
    if not isinstance(record.get("plan"), str | type(None)):
        return False
    if kind == "apply-start":
        return _is_int(record.get("operations"))
    if kind == "apply-end":
        counts = ("applied", "failed", "skipped", "uncertain")
        return isinstance(record.get("outcome"), str) and all(
            _is_int(record[name]) for name in counts if name in record
        )
    return True


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
    kind = record["kind"]
    if kind == "lineage":
        state.lineage = record["lineage"]
    elif kind == "apply-start":
        state.unfinished = (where, record)
    elif kind == "apply-end":
        state.unfinished = None
    elif kind in STATE_KINDS:
        state.apply_record(record)


def unfinished_warning(state: JournalState) -> str | None:
    """The warning about an apply that started and never ended (killed, or still running)."""
    if state.unfinished is None:
        return None
    where, record = state.unfinished
    message = (
        f"{where}: the apply started at {record['at']} never ended: it was killed, or it is "
        "still running"
    )
    in_flight = sorted(
        {cid for op in state.intents.values() for cid in op.ids if cid in state.uncertain}
    )
    if in_flight:
        message += (
            f"; escalations of {', '.join(in_flight)} may have been sent and are uncertain "
            "(check Spike's activity log, then `reconcile refresh --id ID --escalations N`)"
        )
    else:
        return message + "; calls it made are journaled, a call in flight is planned again"
    return message


def replay(records: Iterable[tuple[str, Any]]) -> JournalState:
    """The state after `records` ((where, record) pairs, oldest first), checking each."""
    state = JournalState()
    for where, record in records:
        _fold(state, where, record)
    warning = unfinished_warning(state)
    if warning is not None:
        state.warnings.append(warning)
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
        self._grouped = False

    @abstractmethod
    def _store(self, record: dict[str, Any]) -> None:
        """Write one record durably (fsync / commit) before returning; inside `group()`, the
        backend may leave it to the group's one sync instead."""

    def _sync(self) -> None:
        """Make every record stored in the current group durable (a backend whose every
        `_store` is durable by itself has nothing to do)."""
        return

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

    def applied(self, op: Operation, plan: str | None, intent: int | None = None) -> None:
        """Record one successful API call (an escalate one with the serial of its intent)."""
        extra = {} if intent is None else {"intent": intent}
        self._append("op", plan=plan, **op.to_json(), **extra)

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

    @property
    def lock_path(self) -> Path:
        # At the resolved path: an apply through a symlink and one through the real path
        # must take the same lock.
        real = self.path.resolve()
        return real.with_name(real.name + ".lock")

    @property
    def holder_path(self) -> Path:
        real = self.path.resolve()
        return real.with_name(real.name + ".lock.holder")

    def _lines(self) -> tuple[list[tuple[str, Any]], int, list[str], bool]:
        """((where, record) pairs, the byte length of the good part, warnings, and whether
        the last record lacks its newline)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], 0, [], False
        except OSError as exc:
            raise JournalError(
                f"{self.location}: cannot read the journal: {exc.strerror}"
            ) from None
        warnings: list[str] = []
        good = len(data)
        lines = data.split(b"\n")
        unterminated = False
        if lines[-1]:
            # A last line without its newline: a complete record whose newline was never
            # written (kept: the next append adds the newline first), or a line torn by an
            # interrupted write (ignored, and cut before the next append).
            try:
                whole = isinstance(loads(lines[-1]), dict)
            except JsonTooDeepError:
                whole = True  # not torn: refused below, naming the line
            except ValueError:
                whole = False
            if whole:
                unterminated = True
                lines.append(b"")
            else:
                good = len(data) - len(lines[-1])
                warnings.append(
                    f"{self.location}:{len(lines)}: ignoring a torn last line "
                    "(an interrupted write); the next apply re-issues that call"
                )
        records: list[tuple[str, Any]] = []
        for number, raw in enumerate(lines[:-1], start=1):
            where = f"{self.location}:{number}"
            try:
                records.append((where, loads(raw)))
            except JsonTooDeepError:
                raise JournalError(
                    f"{where}: corrupt journal line (JSON nested too deeply); "
                    "fix or remove it by hand, the journal is never reset silently"
                ) from None
            except ValueError:
                raise JournalError(
                    f"{where}: corrupt journal line (not JSON); fix or remove it by hand, "
                    "the journal is never reset silently"
                ) from None
        return records, good, warnings, unterminated

    def _replayed(self) -> tuple[JournalState, int, bool]:
        records, good, warnings, unterminated = self._lines()
        state = replay(records)
        state.warnings[:0] = warnings
        return state, good, unterminated

    def read(self) -> JournalState:
        return self._replayed()[0]

    def records(self) -> list[dict[str, Any]]:
        records, _, _, _ = self._lines()
        replay(records)  # refuse to show a corrupt history as if it were fine
        return [record for _, record in records]

    @contextmanager
    def open_for_apply(self, timeout: float, purpose: str) -> Iterator[JournalWriter]:
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_path, holder_path = self.lock_path, self.holder_path
            lock = FileLock(lock_path, timeout=timeout)
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise JournalError(
                f"{self.location}: cannot create the journal's folder: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None
        try:
            lock.acquire()
        except Timeout:
            raise LockHeldError(
                f"{self.location} is locked by another apply: {self._holder(holder_path)}"
                + (f" (waited {timeout:g}s)" if timeout else "; use --lock-timeout to wait")
            ) from None
        except OSError as exc:
            raise JournalError(
                f"{self.location}: cannot lock the journal: {exc.strerror}"
            ) from None
        try:
            self._write_holder(holder_path, LockInfo.mine(purpose))
            state, good, unterminated = self._replayed()
            try:
                # Unbuffered: a failed write leaves nothing pending that a later flush (at
                # close) could append after the cut.
                handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed below
                if handle.tell() != good:
                    handle.truncate(good)  # drop a torn tail before appending after it
                    handle.seek(good)
            except OSError as exc:
                raise JournalError(
                    f"{self.location}: cannot write the journal: {exc.strerror}"
                ) from None
            try:
                yield _FileWriter(state, handle, self.location, good, unterminated)
            finally:
                handle.close()
        finally:
            holder_path.unlink(missing_ok=True)
            lock.release()

    def _write_holder(self, path: Path, info: LockInfo) -> None:
        # The holder file only improves the message a waiting apply prints.
        with suppress(OSError):
            path.write_text(json.dumps(info.__dict__))

    def _holder(self, path: Path) -> str:
        try:
            return str(LockInfo(**loads(path.read_bytes())))
        except (OSError, ValueError, TypeError):
            return "holder unknown"


class _FileWriter(JournalWriter):
    def __init__(
        self, state: JournalState, handle: Any, location: str, size: int, unterminated: bool
    ) -> None:
        super().__init__(state)
        self._handle = handle
        self._location = location
        #: The length of what is durable: a failed write or sync is cut back to it.
        self._size = size
        #: The length written, synced or not (more than _size inside a group).
        self._written = size
        #: The last record has no newline yet: the next append writes it first.
        self._unterminated = unterminated
        self._broken: JournalError | None = None

    def _store(self, record: dict[str, Any]) -> None:
        if self._broken is not None:
            raise self._broken
        data = ("\n" if self._unterminated else "") + encode_record(record) + "\n"
        raw = data.encode()
        try:
            written = 0
            while written < len(raw):
                written += self._handle.write(raw[written:])
        except OSError as exc:
            self._fail(exc)
        self._written += len(raw)
        self._unterminated = False
        if not self._grouped:
            self._sync()

    def _sync(self) -> None:
        if self._broken is not None:
            raise self._broken
        try:
            os.fsync(self._handle.fileno())
        except OSError as exc:
            self._fail(exc)
        self._size = self._written

    def _fail(self, exc: OSError) -> None:
        # Disk full, quota, I/O error: cut back what reached the file since the last sync,
        # so the records stored before stay readable, and refuse every later append.
        with suppress(OSError):
            os.ftruncate(self._handle.fileno(), self._size)
        self._broken = JournalError(
            f"{self._location}: cannot write the journal: {exc.strerror}; the calls "
            "journaled before this one are kept, this one and any later are not"
        )
        raise self._broken from None


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
