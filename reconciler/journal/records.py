"""The journal's records: their kinds, their checks, replay(), and the recorded state.

The recorded (last-applied) state is derived by replaying the records, so the journal never
holds a second copy of the truth. The journal package is the only writer of state on disk.
Two backends share everything but storage: a JSON Lines file (journal/file.py, default
`.reconcile/journal.jsonl`) and a PostgreSQL table (journal/postgres.py). Both read through
`replay()`, so every record kind below means the same in both (docs/journal.md, Records).

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
  refresh, import or accept) or, for `escalations`, recorded by the operator from Spike's
  activity log (`source` "activity-log", `reconcile refresh --id ID --escalations N`). A `set` of
  `escalations` clears that incident's uncertainty; for an incident that is not journaled, it
  sets the kept count. A `set` with `source` "reopened" (`reconcile refresh --id ID
  --reopened`) holds live values the operator adopted for incidents this journal recorded as
  resolved while Spike reports them open: their kept resolved status is dropped. Any other
  `set` that says open for a resolved incident keeps the resolved status as a fact.
- `op` and `set` records may carry `rules` {id: rule name}: the incidents among their ids
  (or incidents) that a rule's expansion asked for, with the rule (docs/rules.md). The
  journal keeps the last rule named for each incident until it is forgotten; journals
  written before rules existed have none.
- `apply-start` {plan, operations[, plan_id][, audit]} / `apply-end` {plan, outcome, applied,
  failed, skipped, uncertain[, error]}: history only. `outcome` is `applied`, `failed` (some
  calls failed or are uncertain), `interrupted` (a signal) or `aborted` (the apply died on an
  error, named in `error`). An `apply-start` with no `apply-end` after it (the last one in the
  journal) means the apply was killed or is still running: reading the journal warns about it.
  `plan_id` is the random id of the plan applied (journals written before plan ids have
  none): a saved plan whose id the journal holds was applied already, and is refused.
  `audit` says who and why (docs/approvals.md): the commit, repository, pull request and its
  author, the approvals met, the CI run's URL or the local user, a --force-approvals reason.
- `retired` {to}: the last record of a journal `journal migrate` copied whole to `to` (the
  destination as `--to` spelled it; a database URL without its credentials), written under
  the source's lock in the same run. History only, and final: no record may follow it, and
  every command that would write to the journal or plan against it refuses it, naming `to`
  (`show` and `log` still read it).

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
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..endpoints import ESCALATE, effects, parse_operation
from ..errors import InvalidPlanError, JournalError, printable
from ..jsontext import JsonTooDeepError, loads
from ..model import FIELDS, Fields, IncidentMap, Operation, Value, is_counter_id, is_field_value
from ..rules import is_rule_name

FORMAT = 1
OUTCOME_KINDS = frozenset({"uncertain", "not-sent"})
STATE_KINDS = frozenset({"op", "forget", "unmanage", "set", "intent", *OUTCOME_KINDS})
#: The kind of the last record of a journal migrated elsewhere (docs/journal.md).
RETIRED = "retired"
HISTORY_KINDS = frozenset({"lineage", "apply-start", "apply-end", RETIRED})
_PLAN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: The `source` of a `set` record holding an escalation count the operator read in Spike.
ACTIVITY_LOG = "activity-log"
#: The `source` of a `set` record of live open statuses the operator adopted for incidents
#: recorded as resolved (Spike's data was reset): the only record that undoes a resolved.
REOPENED = "reopened"


def new_plan_id() -> str:
    """A random id for a plan: its apply-start record names it, so it is applied once."""
    return str(uuid.uuid4())


def is_plan_id(value: object) -> bool:
    """A plan id as new_plan_id makes them (a plan file is untrusted: nothing else)."""
    return isinstance(value, str) and _PLAN_ID.fullmatch(value) is not None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_int(value: object) -> bool:
    """A JSON integer: not a bool (True == 1) and not a float (1.0 == 1)."""
    return type(value) is int


@dataclass
class Recorded:
    """The last-applied state: per incident, each field this tool knows the value of."""

    lineage: str | None = None
    serial: int = 0
    incidents: IncidentMap = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: Facts Spike cannot undo, kept after the incident or its status stopped being managed
    #: (forget, unmanage): {"status": "resolved"} and {"escalations": N}. An escalation count
    #: lives here only while the incident is not journaled with one in `incidents`.
    kept: IncidentMap = field(default_factory=dict)
    #: Incidents whose last escalate call has an unknown outcome -> what happened.
    uncertain: dict[str, str] = field(default_factory=dict)
    #: Escalate intents with no outcome yet: intent serial -> the call.
    intents: dict[int, Operation] = field(default_factory=dict)
    #: Incidents a rule put in the journal -> the rule last named for them (`rules` of op
    #: and set records); dropped when the incident is forgotten.
    rules: dict[str, str] = field(default_factory=dict)
    #: The plan ids of the apply-start records: the plans applied to this journal.
    applied_plans: set[str] = field(default_factory=set)
    #: The last apply-start record with no apply-end after it, with where it is.
    unfinished: tuple[str, Mapping[str, Any]] | None = None
    #: The journal was migrated: (where to, when), from its `retired` record.
    retired: tuple[str, str] | None = None
    #: The last apply-start record (its `at`, `audit`...): the last apply, for drift.
    last_apply: Mapping[str, Any] | None = None

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
                self.rules.pop(cid, None)
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
                known = incidents.get(cid, {})
                if record.get("source") == REOPENED and "status" in values:
                    self._unkeep(cid, "status")
                elif known.get("status") == "resolved" and values.get("status") != "resolved":
                    # A live read that says otherwise does not undo what Spike cannot undo.
                    self._keep(cid, {"status": "resolved"})
                incidents[cid] = {**known, **values}
        if kind in ("op", "set") and "rules" in record:
            self.rules.update(record["rules"])
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


def check_record(record: Any, where: str, state: Recorded) -> None:
    """Refuse a record that is not one this tool writes, naming where it is."""
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise JournalError(f"{where}: not a journal record")
    kind = record["kind"]
    if not isinstance(record.get("at"), str):
        raise JournalError(f"{where}: a {kind} record without its time ('at')")
    if state.retired is not None:
        raise JournalError(
            f"{where}: a {kind} record after the journal was retired (migrated to "
            f"{printable(state.retired[0])}): two histories; fix it by hand"
        )
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
        if kind == "op" and not _rules_well_formed(record, op.ids):
            raise JournalError(f"{where}: malformed rules of an op record")
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
    elif kind == "set" and not _rules_well_formed(record, record["incidents"]):
        raise JournalError(f"{where}: malformed rules of a set record")


def _rules_well_formed(record: Mapping[str, Any], ids: Iterable[str]) -> bool:
    """A record's optional `rules`: rule names for incidents the record names."""
    if "rules" not in record:
        return True
    rules = record["rules"]
    return (
        isinstance(rules, dict)
        and set(rules) <= set(ids)
        and all(is_rule_name(name) for name in rules.values())
    )


def _history_well_formed(kind: str, record: dict[str, Any]) -> bool:
    """An apply-start or apply-end record: a plan digest or null, and integer counts; a
    retired record: where to."""
    if kind != RETIRED and not isinstance(record.get("plan"), str | type(None)):
        return False
    if kind == "apply-start":
        return (
            _is_int(record.get("operations"))
            and ("plan_id" not in record or is_plan_id(record["plan_id"]))
            # who and why (docs/approvals.md); journals older than it have none
            and isinstance(record.get("audit", {}), dict)
        )
    if kind == RETIRED:
        return isinstance(record.get("to"), str) and bool(record["to"])
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


def fold(state: Recorded, where: str, record: Any) -> None:
    """Check one record against `state` and fold it in (one step of replay)."""
    check_record(record, where, state)
    kind = record["kind"]
    if kind == "lineage":
        state.lineage = record["lineage"]
    elif kind == "apply-start":
        state.unfinished = (where, record)
        state.last_apply = record
        if "plan_id" in record:
            state.applied_plans.add(record["plan_id"])
    elif kind == "apply-end":
        state.unfinished = None
    elif kind == RETIRED:
        state.retired = (record["to"], record["at"])
    elif kind in STATE_KINDS:
        state.apply_record(record)


def unfinished_warning(state: Recorded) -> str | None:
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


def parse_record(where: str, text: bytes | str, what: str) -> Any:
    """A stored record's JSON (`what`: "journal line", "record"), or a JournalError naming
    `where`: a journal is never reset silently."""
    try:
        return loads(text)
    except JsonTooDeepError:
        problem = "JSON nested too deeply"
    except ValueError:
        problem = "not JSON"
    raise JournalError(
        f"{where}: corrupt {what} ({problem}); fix or remove it by hand, the journal is never "
        "reset silently"
    )


def replay(records: Iterable[tuple[str, Any]]) -> Recorded:
    """The state after `records` ((where, record) pairs, oldest first), checking each."""
    state = Recorded()
    for where, record in records:
        fold(state, where, record)
    warning = unfinished_warning(state)
    if warning is not None:
        state.warnings.append(warning)
    return state


def encode_record(record: Mapping[str, Any]) -> str:
    """A record's stored text, the same in every backend (so a migration is byte-exact)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)
