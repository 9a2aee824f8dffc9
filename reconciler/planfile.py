"""Plan files: the only reader and writer of them (format, digest, signature, checks).

A plan file is untrusted input: it may come from a CI artifact that anyone who can push a
branch can influence. Reading one checks, in order (docs/trust.md):

1. its syntax: JSON no deeper than jsontext allows, the format version, every key's type;
2. its `plan_digest`, which catches accidents (an edited or truncated file), not intent;
3. its `signature` (HMAC-SHA256 with RECONCILE_PLAN_KEY), when a key is set;
4. every operation against the endpoint table (endpoints.parse_operation).

Before the journal is opened, `check_made_for` checks that it was made for this team and this
journal location; then, under the journal's lock, `verify` checks it against the journal it
names: the same lineage, a plan id the journal has not applied yet, every `before` is the
journal's value, forget and unmanaged name what the journal has, and the
operations are exactly what the planner makes of the plan's own changes. Live values it
carries are facts to record, so the caller reads them again from Spike first (`stale_live`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice, zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import jsontext, redact
from .approvals import Approver, Needed
from .errors import InvalidPlanError, PlanError, ReconcileError, StalePlanError, printable
from .journal.records import is_plan_id
from .model import (
    FIELDS,
    LIVE_FIELDS,
    Change,
    Drift,
    Fields,
    IncidentMap,
    Operation,
    Unsafe,
    is_counter_id,
    is_desired_value,
    is_field_value,
)
from .planner import DEFAULT_BATCH_SIZE, DEFAULT_UNSAFE, Plan, plan, with_resolved
from .rules import is_rule_name

if TYPE_CHECKING:
    from .journal.records import Recorded

#: The plan file format this tool writes and reads (docs/plan-format.md) ...
FORMAT_VERSION = 1
#: ... and the format of a plan of the teams of reconcile.yaml: one section per team.
TEAMS_FORMAT_VERSION = 2

#: The environment variable holding the key that signs plan files (a secret).
KEY_ENV = "RECONCILE_PLAN_KEY"
#: A shorter key is refused: an HMAC is only as strong as its key.
MIN_KEY_LENGTH = 16
SIGNATURE_SCHEME = "hmac-sha256:"
#: Prefixed to the digest before signing, so the key signs plan files and nothing else.
_SIGNED_CONTEXT = b"spike-reconcile plan file\n"


def atomic_write(
    path: str | os.PathLike[str],
    produce: Callable[[Callable[[str], object]], None],
    mode: int | None = None,
) -> None:
    """Write a file whole or not at all (a temporary file, fsync, then a rename).

    `produce` is called with the write function of the temporary file. The file gets
    permission bits `mode` when given (the temporary file's 0600 otherwise). A target that
    exists and is not a regular file (`--out /dev/stdout`, a pipe, a device) is written
    into, never replaced: renaming over `/dev/full` replaced the device with a file.
    """
    target = Path(path)
    try:
        special = target.exists() and not stat.S_ISREG(target.stat().st_mode)
    except OSError:
        special = False  # what cannot be looked at is reported by the write below
    if special:
        try:
            with open(target, "w", encoding="utf-8") as handle:
                produce(handle.write)
        except OSError as exc:
            raise ReconcileError(
                f"{printable(str(target))}: cannot write: {exc.strerror}"
            ) from None
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    except OSError as exc:
        raise ReconcileError(f"{printable(str(target))}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            produce(handle.write)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise ReconcileError(f"{printable(str(target))}: cannot write: {exc.strerror}") from None
    finally:
        # Whatever stopped the write (Ctrl-C included), no half file is left beside the
        # target; after the rename there is nothing to remove.
        Path(tmp).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# The signing key and the signature


def plan_key() -> str | None:
    """RECONCILE_PLAN_KEY, registered as a secret (never shown); None when unset or empty."""
    key = os.environ.get(KEY_ENV) or None
    if key is None:
        return None
    if len(key) < MIN_KEY_LENGTH:
        # Not registered for redaction: it is refused, never used, and a short key would
        # garble this very message ("is ***er than" for the key "short").
        raise ReconcileError(
            f"{KEY_ENV} is shorter than {MIN_KEY_LENGTH} characters; use a random key "
            "(e.g. `openssl rand -hex 32`); its value is not shown"
        )
    redact.register(key)
    return key


def sign(plan_digest: str, key: str) -> str:
    """The signature of a plan file: an HMAC-SHA256 of its plan_digest under `key`."""
    mac = hmac.new(key.encode(), _SIGNED_CONTEXT + plan_digest.encode(), hashlib.sha256)
    return SIGNATURE_SCHEME + mac.hexdigest()


# ---------------------------------------------------------------------------------------------
# Content and digest


def _unmanaged_json(pair: tuple[str, str]) -> dict[str, str]:
    return {"incident": pair[0], "field": pair[1]}


@dataclass(frozen=True)
class Bound:
    """Where a plan was made for (docs/trust.md, Bound to where it was made for): the team id
    it would apply to (None: no SPIKE_TEAM_ID was set), its journal's location as given or
    configured (never with a password), and its random plan id."""

    team_id: str | None
    location: str
    plan_id: str


LAZY_CHUNK = 256


@dataclass(frozen=True)
class LazyList:
    """A long list of JSON objects, made LAZY_CHUNK items at a time."""

    items: Sequence[Any]
    encode: Callable[[Any], Any]

    def chunks(self) -> Iterator[list[Any]]:
        items = iter(self.items)
        while chunk := [self.encode(item) for item in islice(items, LAZY_CHUNK)]:
            yield chunk

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        for chunk in self.chunks():
            yield from chunk


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: Any) -> Iterator[str]:
    """json.dumps(value, sort_keys=True, separators=(",", ":")), in pieces."""
    if isinstance(value, LazyList):
        yield "["
        first = True
        for chunk in value.chunks():
            text = _CANONICAL.encode(chunk)[1:-1]
            yield text if first else "," + text
            first = False
        yield "]"
    elif isinstance(value, dict) and _has_lazy(value):
        yield "{"
        for n, key in enumerate(sorted(value)):
            yield ("," if n else "") + _CANONICAL.encode(key) + ":"
            yield from _canonical(value[key])
        yield "}"
    else:
        yield _CANONICAL.encode(value)


def _has_lazy(value: Mapping[str, Any]) -> bool:
    """Whether a LazyList is somewhere in `value` (a team's section holds them, one level
    down in a plan of teams)."""
    return any(
        isinstance(v, LazyList) or (isinstance(v, dict) and _has_lazy(v)) for v in value.values()
    )


#: Keys of a plan file outside its digest: the digest itself, when it was made, and the
#: signature (which signs the digest).
_NOT_DIGESTED = frozenset({"created_at", "plan_digest", "signature"})


def digest(body: Mapping[str, Any]) -> str:
    """sha256 of a plan's canonical JSON (sorted keys, no spaces), without created_at,
    plan_digest and signature. `apply` recomputes it from the parsed plan file."""
    content = {k: v for k, v in body.items() if k not in _NOT_DIGESTED}
    hasher = hashlib.sha256()
    for piece in _canonical(content):
        hasher.update(piece.encode())
    return "sha256:" + hasher.hexdigest()


class StreamingDigest:
    """digest(body), worked out while a writer takes body["changes"] chunk by chunk.

    The changes are the costly part of a plan to produce (ChangeView derives them again on
    each pass), so they are hashed as they are written instead of in a pass of their own;
    the keys before them in the canonical (sorted) order are hashed first, the rest at the end.
    """

    def __init__(self, body: Mapping[str, Any]) -> None:
        self._body = {k: v for k, v in body.items() if k not in _NOT_DIGESTED}
        keys = sorted(self._body)
        at = keys.index("changes")
        self._after = keys[at + 1 :]
        self._hasher = hashlib.sha256(b"{")
        for key in keys[:at]:
            self._member(key)
            self._hasher.update(b",")
        self._hasher.update(b'"changes":[')
        self._hashed = False
        self._digest: str | None = None

    def _member(self, key: str) -> None:
        self._hasher.update((_CANONICAL.encode(key) + ":").encode())
        for piece in _canonical(self._body[key]):
            self._hasher.update(piece.encode())

    def changes(self) -> Iterator[list[Any]]:
        """The chunks of body["changes"] (once), hashed as they go."""
        assert not self._hashed
        self._hashed = True
        first = True
        for chunk in self._body["changes"].chunks():
            text = _CANONICAL.encode(chunk)[1:-1]
            self._hasher.update((text if first else "," + text).encode())
            first = False
            yield chunk
        self._hasher.update(b"]")

    def hexdigest(self) -> str:
        """The plan digest; takes the changes first if no writer did."""
        if self._digest is None:
            if not self._hashed:
                for _ in self.changes():
                    pass
            for key in self._after:
                self._hasher.update(b",")
                self._member(key)
            self._hasher.update(b"}")
            self._digest = "sha256:" + self._hasher.hexdigest()
        return self._digest


def plan_content(
    plan: Plan,
    batch_size: int | None = None,
    with_digest: bool = True,
    bound: Bound | None = None,
) -> dict[str, Any]:
    """`plan`'s plan-file content (docs/plan-format.md) without created_at, with plan_digest
    (unless `with_digest` is False: see StreamingDigest). `bound` names where the plan is
    for: a plan file without it cannot be applied (its team id, journal location and plan id
    are not known).

    `batch_size`, when given, is the size the operations were batched with: apply
    batches the plan's changes again with it and requires the same operations
    (docs/trust.md). The long lists are LazyLists: a plan of 100k incidents never holds
    all its JSON objects at once.
    """
    body: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        **({"plan_id": bound.plan_id, "team_id": bound.team_id} if bound else {}),
        "journal": {
            **({"location": bound.location} if bound else {}),
            "lineage": plan.lineage,
            "serial": plan.serial,
        },
        **({"batch_size": batch_size} if batch_size is not None else {}),
        "inputs_digest": plan.inputs_digest,
        "changes": LazyList(plan.changes, Change.to_json),
        "forget": list(plan.forget),
        # Only when there are such forgets: every other plan file stays as it was.
        **({"forget_left_rule": dict(sorted(plan.left_rule.items()))} if plan.left_rule else {}),
        "unmanaged": LazyList(plan.unmanaged, _unmanaged_json),
        "operations": LazyList(plan.operations, Operation.to_json),
        "summary": plan.summary(),
        "drift": LazyList(plan.drift, Drift.to_json),
        "refresh": {cid: dict(fields) for cid, fields in sorted(plan.live_values.items())},
        "unsafe": plan.unsafe,
        "warnings": list(plan.warnings),
        # Only with approval rules: every other plan file stays as it was.
        **({"approvals": [n.to_json() for n in plan.approvals]} if plan.approvals else {}),
    }
    if with_digest:
        body["plan_digest"] = digest(body)
    return body


# ---------------------------------------------------------------------------------------------
# Writing


class PlanToWrite(Protocol):
    """What a plan file is written from (usecases.plan.MadePlan)."""

    plan: Plan
    created_at: str
    batch_size: int | None
    bound: Bound | None


def write_plan_json(made: PlanToWrite, write: Callable[[str], object]) -> None:
    """The plan file's text, signed when RECONCILE_PLAN_KEY is set."""

    key = plan_key()
    write_plan_text(
        made.plan,
        made.created_at,
        write,
        batch_size=made.batch_size,
        sign=(lambda plan_digest: sign(plan_digest, key)) if key else None,
        bound=made.bound,
    )


def write_plan(made: PlanToWrite, out: str) -> None:
    """Save a plan file, whole or not at all; a folder that does not exist is an error."""
    atomic_write(out, lambda write: write_plan_json(made, write))


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class SavedPlan:
    """A plan file, checked: digest, format, and every operation against the endpoint table."""

    path: str
    lineage: str | None
    serial: int
    digest: str
    unsafe: bool
    operations: list[Operation]
    forget: list[str]
    unmanaged: list[tuple[str, str]]
    refresh: dict[str, Fields]
    body: dict[str, Any]
    changes: list[Change]
    #: The batch size the operations were made with; None in plans older than the key.
    batch_size: int | None = None
    signature: str | None = None
    #: `forget_left_rule`: the forgets of incidents a rule resolved, with the rule.
    left_rule: dict[str, str] = field(default_factory=dict)
    #: Where it was made for (docs/trust.md): the team id (None: no SPIKE_TEAM_ID), the
    #: journal's location as the plan names it, and the plan's id.
    team_id: str | None = None
    location: str = ""
    plan_id: str = ""
    #: The approvals its changes need (docs/approvals.md); none without approval rules.
    approvals: list[Needed] = field(default_factory=list)


@dataclass
class SavedTeam:
    """One team's section of a plan of teams: its plan, and whose it is."""

    team_id: str
    #: The journal's location as the plan shows it (never with a password).
    journal: str
    plan: SavedPlan


@dataclass
class SavedTeamsPlan:
    """A plan file of format 2: a section per team (by name, sorted), one digest and one
    signature over all of them."""

    path: str
    digest: str
    unsafe: bool
    teams: dict[str, SavedTeam]
    body: dict[str, Any]
    signature: str | None = None
    plan_id: str = ""


def read_saved_plan(path: str) -> SavedPlan:
    """Load a plan file of one team (format 1); refuse (InvalidPlanError) anything edited,
    truncated or foreign, and a plan of teams (read those with read_plan_file)."""
    saved = read_plan_file(path)
    if isinstance(saved, SavedTeamsPlan):
        raise InvalidPlanError(
            f"{saved.path}: a plan of the teams of reconcile.yaml (format_version "
            f"{TEAMS_FORMAT_VERSION}); apply it where reconcile.yaml configures those teams"
        )
    return saved


def read_plan_file(path: str) -> SavedPlan | SavedTeamsPlan:
    """Load a plan file of either format; refuse (InvalidPlanError) anything edited,
    truncated or foreign.

    Checks the file on its own; `check_signature` and `verify` check it against the key and
    the journal (each team's section against that team's journal).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReconcileError(f"{printable(path)}: cannot read the plan: {exc.strerror}") from None
    # From here on the name is only shown (in messages, and as SavedPlan.path): a plan file
    # named with a newline and `::error` would otherwise forge a CI annotation.
    path = printable(path)
    try:
        body = jsontext.loads(data)
    except ValueError as exc:
        raise InvalidPlanError(f"{path}: not a plan file (invalid JSON: {exc})") from None
    if not isinstance(body, dict) or body.get("format_version") not in (
        FORMAT_VERSION,
        TEAMS_FORMAT_VERSION,
    ):
        raise InvalidPlanError(
            f"{path}: not a plan file of format_version {FORMAT_VERSION} or "
            f"{TEAMS_FORMAT_VERSION} (make it with `reconcile plan --out`)"
        )
    if type(body["format_version"]) is not int:  # true == 1 in Python, not in a plan
        raise InvalidPlanError(f"{path}: format_version must be a number")
    signature = body.get("signature")
    if signature is not None and not isinstance(signature, str):
        raise InvalidPlanError(f"{path}: signature must be a string")
    if body.get("plan_digest") != digest(body):
        raise InvalidPlanError(
            f"{path}: plan_digest does not match the content: the file was edited or truncated"
        )
    plan_id = body.get("plan_id")
    if plan_id is None:
        raise InvalidPlanError(
            f"{path}: a plan file of an earlier version, which names no plan id, team id or "
            "journal location: it cannot be bound to where it was made for, so it is not "
            "applied; plan again"
        )
    if not is_plan_id(plan_id):
        raise InvalidPlanError(f"{path}: plan_id must be a plan id (a random UUID)")
    if body["format_version"] == FORMAT_VERSION:
        team_id = body.get("team_id", ...)
        if team_id is not None and not (isinstance(team_id, str) and team_id):
            raise InvalidPlanError(f"{path}: team_id must be a string or null")
        return _section(path, body, body["plan_digest"], signature, team_id, plan_id)
    teams = body.get("teams")
    if not isinstance(teams, dict) or not teams:
        raise InvalidPlanError(f"{path}: teams must map team names to their plans")
    if not isinstance(body.get("unsafe"), bool):
        raise InvalidPlanError(f"{path}: unsafe must be true or false")
    import re

    from .config import TEAM_NAME_MAX, TEAM_NAME_PATTERN

    sections: dict[str, SavedTeam] = {}
    for name in sorted(teams):
        section = teams[name]
        where = f"{path} (team {printable(str(name))})"
        # Shown in the plan comment as written (its table, a <details> summary): a name of
        # reconcile.yaml's syntax holds no markup.
        if len(name) > TEAM_NAME_MAX or not re.fullmatch(TEAM_NAME_PATTERN, name):
            raise InvalidPlanError(f"{where}: not a team name")
        if not isinstance(section, dict):
            raise InvalidPlanError(f"{where}: not a team's plan")
        team_id, journal = section.get("team_id"), section.get("journal")
        if not isinstance(team_id, str) or not team_id:
            raise InvalidPlanError(f"{where}: team_id must be a string")
        if not isinstance(journal, dict) or not isinstance(journal.get("location"), str):
            raise InvalidPlanError(f"{where}: journal must be {{location, lineage, serial}}")
        plan = _section(where, section, body["plan_digest"], signature, team_id, plan_id)
        sections[name] = SavedTeam(team_id, journal["location"], plan)
    unsafe = body["unsafe"] or any(team.plan.unsafe for team in sections.values())
    return SavedTeamsPlan(path, body["plan_digest"], unsafe, sections, body, signature, plan_id)


def _section(
    path: str,
    body: dict[str, Any],
    plan_digest: str,
    signature: Any,
    team_id: str | None,
    plan_id: str,
) -> SavedPlan:
    """One journal's plan: a whole plan file of format 1, or one team's section of format 2."""
    from .endpoints import parse_operation

    journal = body.get("journal")
    if (
        not isinstance(journal, dict)
        or not isinstance(journal.get("location"), str)
        or not journal["location"]
        or not isinstance(journal.get("lineage"), str | type(None))
        or type(journal.get("serial")) is not int
    ):
        raise InvalidPlanError(f"{path}: journal must be {{location, lineage, serial}}")
    batch_size = body.get("batch_size")
    if batch_size is not None and (type(batch_size) is not int or batch_size < 1):
        raise InvalidPlanError(f"{path}: batch_size must be a whole number of at least 1")
    raw_ops = body.get("operations")
    forget = body.get("forget")
    unmanaged = body.get("unmanaged")
    if not isinstance(raw_ops, list) or not isinstance(forget, list):
        raise InvalidPlanError(f"{path}: operations and forget must be lists")
    operations = [parse_operation(op, f"{path}: operations[{n}]") for n, op in enumerate(raw_ops)]
    if not all(is_counter_id(cid) for cid in forget):
        raise InvalidPlanError(f"{path}: forget must list counter ids")
    if not isinstance(unmanaged, list) or not all(
        isinstance(u, dict)
        and set(u) == {"incident", "field"}
        and is_counter_id(u["incident"])
        and u["field"] in FIELDS
        for u in unmanaged
    ):
        raise InvalidPlanError(f"{path}: unmanaged must list {{incident, field}} objects")
    refresh = body.get("refresh", {})
    if not isinstance(refresh, dict) or not all(
        is_counter_id(cid)
        and isinstance(fields, dict)
        and all(k in LIVE_FIELDS and is_field_value(k, v) for k, v in fields.items())
        for cid, fields in refresh.items()
    ):
        raise InvalidPlanError(f"{path}: refresh must map counter ids to live field values")
    if not isinstance(body.get("unsafe"), bool):
        raise InvalidPlanError(f"{path}: unsafe must be true or false")
    left_rule = body.get("forget_left_rule", {})
    if not isinstance(left_rule, dict) or not all(
        cid in forget and is_rule_name(name) for cid, name in left_rule.items()
    ):
        raise InvalidPlanError(f"{path}: forget_left_rule must map forgotten ids to rule names")
    return SavedPlan(
        path=path,
        lineage=journal["lineage"],
        serial=journal["serial"],
        digest=plan_digest,
        unsafe=body["unsafe"],
        operations=operations,
        forget=list(forget),
        unmanaged=[(u["incident"], u["field"]) for u in unmanaged],
        refresh=refresh,
        body=body,
        changes=_changes(path, body.get("changes")),
        batch_size=batch_size,
        signature=signature,
        left_rule=dict(left_rule),
        team_id=team_id,
        location=journal["location"],
        plan_id=plan_id,
        approvals=_approvals(path, body.get("approvals", [])),
    )


def _approvals(path: str, raw: Any) -> list[Needed]:
    """The plan's `approvals`: rule names, approvers, counts and changes, all well formed."""
    if not isinstance(raw, list):
        raise InvalidPlanError(f"{path}: approvals must be a list")
    out = []
    for n, item in enumerate(raw):
        where = f"{path}: approvals[{n}] is malformed"
        if not (
            isinstance(item, dict)
            and set(item) == {"rule", "approvers", "count", "changes"}
            and is_rule_name(item["rule"])
            and type(item["count"]) is int
            and item["count"] >= 1
            and isinstance(item["approvers"], list)
            and item["approvers"]
            and all(isinstance(a, str) for a in item["approvers"])
        ):
            raise InvalidPlanError(f"{where}: not {{rule, approvers, count, changes}}")
        try:
            approvers = tuple(Approver.parse(a) for a in item["approvers"])
        except ValueError:
            raise InvalidPlanError(f"{where}: an approver is not a login or a team") from None
        changes = tuple(_changes(f"{path}: approvals[{n}]", item["changes"]))
        out.append(Needed(item["rule"], approvers, item["count"], changes))
    return out


def _changes(path: str, raw: Any) -> list[Change]:
    """The plan's changes, each a valid field and values (what they ask for is `verify`'s)."""
    if not isinstance(raw, list):
        raise InvalidPlanError(f"{path}: changes must be a list")
    changes: list[Change] = []
    for n, item in enumerate(raw):
        where = f"{path}: changes[{n}] is malformed"
        if not isinstance(item, dict) or not (
            {"incident", "field", "before", "after"}
            <= set(item)
            <= {"incident", "field", "before", "after", "before_known", "rule"}
        ):
            raise InvalidPlanError(f"{where}: not a change (incident, field, before, after)")
        cid, name, before, after = item["incident"], item["field"], item["before"], item["after"]
        known = item.get("before_known", True)
        rule = item.get("rule")
        if not is_counter_id(cid) or name not in FIELDS:
            raise InvalidPlanError(f"{where}: invalid incident id or field")
        if rule is not None and not is_rule_name(rule):
            raise InvalidPlanError(f"{where}: invalid rule name")
        if (
            not isinstance(known, bool)
            or not is_desired_value(name, after)
            or not (is_field_value(name, before) if known else before is None)
        ):
            raise InvalidPlanError(f"{where}: invalid value for {name}")
        changes.append(Change(cid, name, before, after, known, rule))
    return changes


def check_signature(saved: SavedPlan | SavedTeamsPlan) -> str | None:
    """Check the plan's signature against RECONCILE_PLAN_KEY; a warning when none can be done.

    With the key set, an unsigned or wrongly signed plan raises InvalidPlanError. Without
    it, a signed plan is applied with a warning: the signature could not be checked, and a
    job without the key would accept the same plan with its signature removed anyway.
    """
    key = plan_key()
    if key is None:
        if saved.signature is None:
            return None
        return f"{saved.path} is signed, but {KEY_ENV} is not set: its signature was not checked"
    if saved.signature is None:
        raise InvalidPlanError(
            f"{saved.path} is not signed, and {KEY_ENV} is set: only plans signed with that "
            f"key are applied (make it with `reconcile plan --out` where {KEY_ENV} is set)"
        )
    if not hmac.compare_digest(saved.signature, sign(saved.digest, key)):
        raise InvalidPlanError(
            f"{saved.path}: the signature does not match {KEY_ENV}: the plan was not made by a "
            "job holding this key, or was changed after it was signed"
        )
    return None


# ---------------------------------------------------------------------------------------------
# Checking against the journal


@dataclass(frozen=True)
class Verified:
    """What `verify` worked out: whether the plan is unsafe by the journal's numbers."""

    unsafe: bool


def check_made_for(saved: SavedPlan, team_id: str | None, location: str) -> None:
    """Refuse (InvalidPlanError), before the journal is opened, a plan made for another team
    than `team_id` (the one apply would call Spike as; None: none is set) or for another
    journal than the one at `location` (the one apply would write)."""
    if saved.team_id != team_id:
        raise InvalidPlanError(
            f"{saved.path} was made for another team: team id {_team(saved.team_id)}, not "
            f"{_team(team_id)}; plan again as the team it is to be applied to"
        )
    from .journal import same_journal

    if not same_journal(saved.location, location):
        raise InvalidPlanError(
            f"{saved.path} was made for another journal: {printable(saved.location)}, not "
            f"{printable(_shown(location))}; plan again against the journal it is to be "
            "applied to"
        )


def _team(team_id: str | None) -> str:
    return printable(team_id) if team_id is not None else "(none: SPIKE_TEAM_ID was not set)"


def _shown(location: str) -> str:
    from .journal import open_journal

    return open_journal(location).location  # a database URL without its credentials


def check_journal(saved: SavedPlan, state: Recorded) -> None:
    """Refuse (InvalidPlanError) a plan made for another journal than `state`'s (another
    lineage; a plan made before its journal existed applies only while it is still empty),
    or one this journal has applied already (its plan id is in an apply-start record)."""
    path = saved.path
    if saved.plan_id in state.applied_plans:
        raise InvalidPlanError(
            f"{path}: plan {saved.plan_id} was already applied to this journal; a plan is "
            "applied once. Plan again."
        )
    if saved.lineage != state.lineage:
        if saved.lineage is None:
            made = "before its journal existed, and applies only while that journal is still empty"
        else:
            made = f"against the journal of lineage {saved.lineage}"
        now = "has no records" if state.lineage is None else f"has lineage {state.lineage}"
        raise InvalidPlanError(
            f"{path} was made for another journal: it was made {made}; this journal {now}. "
            "Plan again."
        )


def verify(saved: SavedPlan, state: Recorded, unsafe: Unsafe = DEFAULT_UNSAFE) -> Verified:
    """Check the plan against the journal it was made from; raise before any call.

    InvalidPlanError when the journal is another one (another lineage: a plan made before
    the journal existed applies only while it is still empty) or has applied this plan
    already; StalePlanError when the journal moved on; InvalidPlanError when the plan asks for
    anything its own changes do not: forgetting an incident or field the journal lacks, a
    `before` that is not the journal's value, or operations other than the planner's for its
    changes (in the same order, with its batch size). The planner's refusals (reopening a
    resolved incident, escalating one) are refusals here too.
    """
    path = saved.path
    check_journal(saved, state)
    if saved.serial != state.serial:
        raise StalePlanError(
            f"{path} is stale: it was made against journal serial {saved.serial} "
            f"(lineage {saved.lineage}), the journal is now at serial {state.serial} "
            f"(lineage {state.lineage}). Plan again."
        )
    journal = state.incidents
    changed = {c.incident for c in saved.changes}
    for cid in saved.forget:
        if cid not in journal:
            raise InvalidPlanError(f"{path}: forget: incident {cid} is not in the journal")
        if cid in changed:
            raise InvalidPlanError(f"{path}: forget: incident {cid} also has changes")
    changed_fields = {(c.incident, c.field) for c in saved.changes}
    for cid, name in saved.unmanaged:
        if name == "escalations":
            # The count is kept through unmanaging (docs/state-files.md): the planner never
            # lists it, and journaling it would record an action that changed nothing.
            raise InvalidPlanError(
                f"{path}: unmanaged: incident {cid} escalations: the escalation count is "
                "never unmanaged"
            )
        if name not in journal.get(cid, {}):
            raise InvalidPlanError(
                f"{path}: unmanaged: the journal has no {name} for incident {cid}"
            )
        if (cid, name) in changed_fields:
            raise InvalidPlanError(f"{path}: unmanaged: incident {cid} {name} also has a change")
    # The state the plan was made against: the journal with the live values it carries.
    before: IncidentMap = dict(journal)
    for cid, fields in saved.refresh.items():
        before[cid] = {**journal.get(cid, {}), **fields}
    desired: IncidentMap = {}
    rules: dict[str, dict[str, str]] = {}
    for change in saved.changes:
        if change.rule is not None:
            rules.setdefault(change.incident, {})[change.field] = change.rule
        fields = desired.setdefault(change.incident, {})
        if change.field in fields:
            raise InvalidPlanError(
                f"{path}: changes: incident {change.incident} {change.field} changes twice"
            )
        fields[change.field] = change.after
    try:
        again = plan(
            desired,
            before,
            lineage=state.lineage,
            serial=state.serial,
            batch_size=saved.batch_size or _batch_size(saved.operations),
            # The forgets too (checked above: journaled, no change): the unsafe rule counts
            # them as a fresh plan does, and tells those a rule resolved from the journal.
            targets=sorted({*desired, *saved.forget}),
            kept=with_resolved(journal, state.kept),
            uncertain=state.uncertain,
            unsafe=unsafe,
            rules=rules,
            recorded=journal,
            owners=state.rules,
        )
    except PlanError as exc:
        raise InvalidPlanError(
            f"{path}: the journal refuses the plan's changes: " + "; ".join(exc.messages)
        ) from None
    # Compared as they come: a plan of 100k incidents never holds its changes twice.
    _same(path, "changes", saved.changes, again.changes, Change.to_json)
    _same(path, "operations", saved.operations, again.operations, Operation.to_json)
    if "forget_left_rule" in saved.body and saved.left_rule != again.left_rule:
        raise InvalidPlanError(
            f"{path}: forget_left_rule does not match the journal (the incidents a rule put "
            "there and that it records as resolved); plan again"
        )
    return Verified(unsafe=again.unsafe)


def _batch_size(operations: list[Operation]) -> int:
    """The batch size of a plan file older than the `batch_size` key: its largest batch.

    Exact, not a guess: a batch smaller than the size it was made with means its ids all
    fitted in one call, and batching with the largest batch found splits nothing else.
    """
    sizes = [len(op.ids) for op in operations if "ids" in op.body]
    return max(sizes, default=DEFAULT_BATCH_SIZE)


def _same(
    path: str,
    key: str,
    saved: Sequence[Any],
    derived: Iterable[Any],
    encode: Callable[[Any], Any],
) -> None:
    """Refuse the plan, naming the first difference, unless the two lists are equal."""
    missing = object()
    for index, (mine, theirs) in enumerate(zip_longest(saved, derived, fillvalue=missing)):
        if mine == theirs:
            continue
        if key == "changes":
            why = "does not match the journal it names (a before that is not the journal's value?)"
        else:
            why = "are not the calls its changes make"
        found = "nothing" if mine is missing else encode(mine)
        expected = "nothing" if theirs is missing else encode(theirs)
        raise InvalidPlanError(
            f"{path}: {key} {why}: {key}[{index}] is {found}, the planner makes {expected}; "
            "plan again"
        )


def stale_live(saved: SavedPlan, live: Mapping[str, Fields]) -> None:
    """Refuse (StalePlanError) a plan whose live values Spike no longer reports.

    `live` is what Spike says now for each incident of `saved.refresh`.
    """
    differ = [
        f"incident {cid} {name}: the plan has {value!r}, Spike now reports "
        f"{live.get(cid, {}).get(name, '(nothing)')!r}"
        for cid, fields in sorted(saved.refresh.items())
        for name, value in fields.items()
        if live.get(cid, {}).get(name, ...) != value
    ]
    if differ:
        raise StalePlanError(
            f"{saved.path} is stale: live values changed since the plan was made ("
            + "; ".join(differ)
            + "). Plan again with --refresh."
        )


# ---------------------------------------------------------------------------------------------
# Layout and showing


_LAYOUT = json.JSONEncoder(ensure_ascii=False)


def write_plan_text(
    plan: Plan,
    created_at: str,
    write: Callable[[str], object],
    *,
    batch_size: int | None = None,
    sign: Callable[[str], str] | None = None,
    bound: Bound | None = None,
) -> None:
    """The plan file: top-level keys one per line, each list item on its own line.

    One line per change or call reads well in a diff, and lets the C encoder do the work.
    With `sign`, a last key `signature` holds sign(plan_digest) (see planfile.sign).
    """
    body = plan_content(plan, batch_size, with_digest=False, bound=bound)
    digest = StreamingDigest(body)  # hashes the changes while they are written: one pass
    out: dict[str, Any] = {
        "format_version": body.pop("format_version"),
        "created_at": created_at,
        **body,
        "plan_digest": digest.hexdigest,
    }
    if sign is not None:
        out["signature"] = lambda: sign(digest.hexdigest())
    write("{\n")
    _write_members(out, write, "  ", {"changes": digest.changes})
    write("}\n")


def _write_members(
    out: Mapping[str, Any],
    write: Callable[[str], object],
    indent: str,
    streams: Mapping[str, Callable[[], Iterable[list[Any]]]],
) -> None:
    """Write the members of one JSON object, one per line; lists one item per line; a
    nested object (a team's section) the same way, indented; a callable value is called
    once its turn comes (the digest, known only after the changes were hashed)."""
    last = len(out) - 1
    for n, (key, value) in enumerate(out.items()):
        comma = "," if n < last else ""
        name = _LAYOUT.encode(key)
        if (isinstance(value, dict) and _has_lazy(value)) or key == "teams":
            write(f"{indent}{name}: {{\n")
            _write_members(value, write, indent + "  ", {})
            write(f"{indent}}}{comma}\n")
        elif isinstance(value, LazyList | list) and value:
            write(f"{indent}{name}: [\n")
            chunks = (
                streams[key]()
                if key in streams
                else value.chunks()
                if isinstance(value, LazyList)
                else [value]
            )
            inner = indent + "  "
            for i, chunk in enumerate(chunks):
                # Items hold no "}, {" and ids no quotes, so these are item boundaries.
                text = _LAYOUT.encode(chunk)[1:-1].replace("}, {", f"}},\n{inner}{{")
                if not chunk or not isinstance(chunk[0], dict):
                    text = f",\n{inner}".join(_LAYOUT.encode(item) for item in chunk)
                write((inner if i == 0 else f",\n{inner}") + text)
            write(f"\n{indent}]{comma}\n")
        else:
            plain = list(value) if isinstance(value, LazyList) else value  # [] when empty
            if callable(plain):
                plain = plain()
            write(f"{indent}{name}: {_LAYOUT.encode(plain)}{comma}\n")


class TeamPlanToWrite(Protocol):
    """One team's plan in a plan file of teams (usecases.plan.TeamPlan)."""

    @property
    def name(self) -> str: ...
    @property
    def team_id(self) -> str: ...
    @property
    def journal(self) -> str:
        """The journal's location as shown (never with a password)."""

    @property
    def made(self) -> PlanToWrite: ...


def teams_content(
    teams: Sequence[TeamPlanToWrite], total: Mapping[str, int], unsafe: bool, plan_id: str
) -> dict[str, Any]:
    """A plan of teams' content (docs/plan-format.md, format 2) without created_at and
    plan_digest: the plan's id, and a section per team, each a plan of format 1 but for its
    version and plan id, with the team's id and its journal's location."""
    sections: dict[str, Any] = {}
    for team in sorted(teams, key=lambda t: t.name):
        body = plan_content(team.made.plan, team.made.batch_size, with_digest=False)
        del body["format_version"]
        journal = body.pop("journal")
        sections[team.name] = {
            "team_id": team.team_id,
            "journal": {"location": team.journal, **journal},
            **body,
        }
    return {
        "format_version": TEAMS_FORMAT_VERSION,
        "plan_id": plan_id,
        "teams": sections,
        "summary": dict(total),
        "unsafe": unsafe,
    }


def write_teams_plan_json(
    teams: Sequence[TeamPlanToWrite],
    total: Mapping[str, int],
    unsafe: bool,
    created_at: str,
    write: Callable[[str], object],
    *,
    plan_id: str,
) -> None:
    """The plan file of teams' text, signed when RECONCILE_PLAN_KEY is set."""
    key = plan_key()
    body = teams_content(teams, total, unsafe, plan_id)
    plan_digest = digest(body)
    out: dict[str, Any] = {
        "format_version": body.pop("format_version"),
        "created_at": created_at,
        **body,
        "plan_digest": plan_digest,
    }
    if key:
        out["signature"] = sign(plan_digest, key)
    write("{\n")
    _write_members(out, write, "  ", {})
    write("}\n")


def write_teams_plan(
    teams: Sequence[TeamPlanToWrite],
    total: Mapping[str, int],
    unsafe: bool,
    created_at: str,
    out: str,
    *,
    plan_id: str,
) -> None:
    """Save a plan file of teams, whole or not at all."""
    atomic_write(
        out,
        lambda write: write_teams_plan_json(
            teams, total, unsafe, created_at, write, plan_id=plan_id
        ),
    )


def plan_from_saved(saved: SavedPlan) -> Plan:
    """A checked plan file (read_saved_plan) as a Plan, for plan_markdown.

    read_saved_plan checks what apply executes; changes and drift are only shown, but a plan
    file is untrusted input, so they are checked here before they reach a pull-request comment.
    """
    from .errors import InvalidPlanError

    summary = saved.body.get("summary")
    warnings = saved.body.get("warnings")
    if (
        not isinstance(summary, dict)
        or type(summary.get("incidents")) is not int
        or not isinstance(warnings, list)
        or not all(isinstance(w, str) for w in warnings)
    ):
        raise InvalidPlanError(f"{saved.path}: summary or warnings malformed")
    drift = _saved_items(saved, "drift", ("journaled", "live"), ("policy",))
    return Plan(
        lineage=saved.lineage,
        serial=saved.serial,
        inputs_digest=str(saved.body.get("inputs_digest", "")),
        incidents=summary["incidents"],
        changes=list(saved.changes),  # checked by read_saved_plan (_changes)
        forget=saved.forget,
        unmanaged=saved.unmanaged,
        operations=saved.operations,
        unsafe=saved.unsafe,
        left_rule=saved.left_rule,
        warnings=warnings,
        drift=[
            Drift(d["incident"], d["field"], d["journaled"], d["live"], d.get("policy", "revert"))
            for d in drift
        ],
        live_values=saved.refresh,
        approvals=saved.approvals,
    )


def _saved_items(
    saved: SavedPlan, key: str, values: tuple[str, ...], optional: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The list `key` of a plan file: {incident, field, *values} objects with valid values."""
    from .config import POLICIES
    from .errors import InvalidPlanError
    from .model import is_counter_id

    required = {"incident", "field", *values}
    items = saved.body.get(key, [])
    if not isinstance(items, list):
        raise InvalidPlanError(f"{saved.path}: {key} must be a list")
    for n, item in enumerate(items):
        if not (
            isinstance(item, dict)
            and required <= set(item) <= required | set(optional)
            and is_counter_id(item["incident"])
            and item["field"] in FIELDS
            # null: a value not known (before a first apply, or a field Spike left unset)
            and all(
                v is None or is_field_value(item["field"], v) for v in (item[n] for n in values)
            )
            and all(isinstance(item.get(name, True), bool) for name in optional if name != "policy")
            # a drift entry's policy (docs/plan-format.md); plans older than policies lack it
            and item.get("policy", "revert") in POLICIES
        ):
            raise InvalidPlanError(f"{saved.path}: {key}[{n}] is malformed")
    return items
