"""Reading plan files: syntax, format version, every key's type, the digest, every operation
against the endpoint table; and a checked file as the Plan it holds (for its markdown)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import jsontext
from ..approvals import Approver, Needed
from ..errors import InvalidPlanError, ReconcileError, printable
from ..journal.records import is_plan_id
from ..model import (
    FIELDS,
    LIVE_FIELDS,
    Change,
    Drift,
    Fields,
    Operation,
    is_counter_id,
    is_desired_value,
    is_field_value,
)
from ..planner import Plan
from ..rules import is_rule_name
from .content import FORMAT_VERSION, TEAMS_FORMAT_VERSION, digest

if TYPE_CHECKING:
    pass


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
    return one_team(read_plan_file(path))


def one_team(saved: SavedPlan | SavedTeamsPlan) -> SavedPlan:
    """A plan file read for the one implicit team: refused when it is a plan of teams."""
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

    from ..config import TEAM_NAME_MAX, TEAM_NAME_PATTERN

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
    from ..endpoints import parse_operation

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


def section_plan(saved: SavedPlan) -> Plan:
    """A checked plan file of one team, or one team's section, as a Plan, for its markdown.

    read_saved_plan checks what apply executes; changes and drift are only shown, but a plan
    file is untrusted input, so they are checked here before they reach a pull-request comment.
    """
    from ..errors import InvalidPlanError

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
    from ..config import POLICIES
    from ..errors import InvalidPlanError
    from ..model import is_counter_id

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
