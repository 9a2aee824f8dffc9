"""Independent references for the tests: a reading of docs/api-calls.md (Endpoints)
and docs/state-files.md (Keys).

Written from the docs' endpoint table, not from planner.py: it predicts which fields change, which
incidents cannot be planned, the minimum number of API calls, and what applying a list of
operations leaves behind. It shares no code with the planner.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Fields = dict[str, Any]
States = dict[str, Fields]

_STATUS_CALL = {
    "acknowledged": "/incidents/acknowledge",
    "triggered": "/incidents/unacknowledge",
    "resolved": "/incidents/resolve",
}


@dataclass
class Expected:
    """What a correct plan of (desired, journal) contains."""

    #: (incident, field, before, after, before_known)
    changes: set[tuple[str, str, Any, Any, bool]] = field(default_factory=set)
    #: incidents that cannot be planned (re-opening a resolved one, bad escalation counts)
    errors: set[str] = field(default_factory=set)
    forget: set[str] = field(default_factory=set)
    unmanaged: set[tuple[str, str]] = field(default_factory=set)
    #: the minimum number of API calls
    minimum: int = 0


def expect(
    desired: Mapping[str, Fields],
    journal: Mapping[str, Fields],
    batch: int,
    targets: Iterable[str] | None = None,
) -> Expected:
    out = Expected()
    if targets is None:
        scope = set(desired)
        out.forget = set(journal) - set(desired)
    else:
        scope = set(targets) & set(desired)
        out.forget = (set(targets) & set(journal)) - set(desired)
    groups: Counter[tuple[str, Any]] = Counter()
    sharing_calls = 0
    escalate: list[int] = []
    for cid in scope:
        want, have = desired[cid], journal.get(cid, {})
        journal_resolved = have.get("status") == "resolved"
        for name in ("status", "priority", "severity", "public_sharing"):
            if name not in want:
                if name in have:
                    out.unmanaged.add((cid, name))
                continue
            if name in have and have[name] == want[name]:
                continue
            if name == "status" and journal_resolved:
                out.errors.add(cid)
                continue
            out.changes.add((cid, name, have.get(name), want[name], name in have))
            if name == "status":
                groups[(_STATUS_CALL[want[name]], None)] += 1
            elif name == "public_sharing":
                sharing_calls += 1
            else:
                groups[(name, want[name])] += 1
        if "escalations" in want:
            done = have.get("escalations", 0)
            more = want["escalations"] - done
            if more < 0 or (more > 0 and journal_resolved):
                out.errors.add(cid)
            elif more > 0:
                escalate.append(more)
                before = have.get("escalations")
                after = want["escalations"]
                out.changes.add((cid, "escalations", before, after, "escalations" in have))
    out.minimum = sum(math.ceil(n / batch) for n in groups.values()) + sharing_calls
    if escalate:
        out.minimum += max(max(escalate), math.ceil(sum(escalate) / batch))
    return out


def apply_operations(journal: Mapping[str, Fields], operations: Iterable[Any]) -> States:
    """The last-applied state after `operations` (model.Operation or their JSON) succeed."""
    state: States = copy.deepcopy(dict(journal))
    for op in operations:
        raw = op if isinstance(op, Mapping) else op.to_json()
        method, path, body = raw["method"], raw["path"], raw["body"]
        if path.endswith("/public-sharing"):
            cid = path.split("/")[2]
            state.setdefault(cid, {})["public_sharing"] = body["publicSharing"]
            continue
        for cid in body["ids"]:
            fields = state.setdefault(cid, {})
            if path == "/incidents/escalate":
                fields["escalations"] = fields.get("escalations", 0) + 1
            elif path in _STATUS_CALL.values():
                fields["status"] = next(s for s, p in _STATUS_CALL.items() if p == path)
            else:
                name = path.split("/")[2]
                fields[name] = None if method == "DELETE" else body[name]
    return state


def forget_and_unmanage(state: States, forget: Iterable[str], unmanaged: Iterable[Any]) -> States:
    """The journal-only part of an apply: drop forgotten incidents and unmanaged fields."""
    out = copy.deepcopy(state)
    for cid in forget:
        out.pop(cid, None)
    for cid, name in unmanaged:
        if name != "escalations" and cid in out:
            out[cid].pop(name, None)
    return out


# ---------------------------------------------------------------------------------------------
# Running the command line the way a user does, in-process
