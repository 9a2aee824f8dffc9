"""The journal's views: the recorded state, its history, what refresh recorded."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import printable
from ..model import FIELDS, Drift, Value
from ..wording import counted, natural_sorted

if TYPE_CHECKING:
    from ..journal.records import Recorded
    from ..usecases.refresh import RefreshOutcome
from .text import (
    show_value,
)


def state_text(state: Recorded) -> str:
    """`reconcile show`: per incident, each field the journal knows; then the facts kept after
    forgetting or unmanaging, and the incidents whose last escalation is uncertain."""
    if state.lineage is None:
        return "The journal is empty: nothing has been applied yet.\n"
    incidents = state.incidents
    lines = [
        f"journal lineage {state.lineage}, serial {state.serial}, "
        f"{counted(len(incidents), 'incident')}",
        "",
    ]
    if state.retired is not None:
        to, at = (printable(part) for part in state.retired)
        lines[1:1] = [f"retired: migrated to {to} on {at}; nothing is written or planned here"]
    for cid in natural_sorted(incidents):
        fields = incidents[cid]
        shown = "  ".join(f"{f}={show_value(fields[f])}" for f in FIELDS if f in fields)
        lines.append(f"{cid}  {shown}" if shown else cid)
    if state.kept:
        lines += ["", "Kept after forgetting or unmanaging (Spike cannot undo these):"]
        for cid in natural_sorted(state.kept):
            facts = state.kept[cid]
            lines.append(
                f"{cid}  " + "  ".join(f"{f}={show_value(facts[f])}" for f in FIELDS if f in facts)
            )
    if state.uncertain:
        lines += [
            "",
            "Escalation outcome uncertain (record Spike's count with refresh --escalations):",
        ]
        lines += [f"{cid}  {state.uncertain[cid]}" for cid in natural_sorted(state.uncertain)]
    return "\n".join(lines) + "\n"


def state_json(state: Recorded) -> str:
    """`reconcile show --format json`: {lineage, serial, incidents, kept, uncertain}."""

    def ordered(incidents: Mapping[str, Mapping[str, Value]]) -> dict[str, dict[str, Value]]:
        return {
            cid: {f: incidents[cid][f] for f in FIELDS if f in incidents[cid]}
            for cid in sorted(incidents)
        }

    body = {
        "lineage": state.lineage,
        "serial": state.serial,
        "incidents": ordered(state.incidents),
        "kept": ordered(state.kept),
        "uncertain": {cid: state.uncertain[cid] for cid in sorted(state.uncertain)},
    }
    if state.retired is not None:
        body["retired"] = {"to": state.retired[0], "at": state.retired[1]}
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def history(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records grouped into entries: one per apply run, and one per record outside a run."""
    entries: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for record in records:
        kind = record["kind"]
        if kind == "apply-start":
            current = {
                "at": record["at"],
                "kind": "apply",
                "plan": record.get("plan"),
                "planned": record.get("operations"),
                "operations": [],
                "outcome": "interrupted",
            }
            if isinstance(record.get("audit"), dict):
                current["audit"] = record["audit"]
            entries.append(current)
        elif kind == "apply-end" and current is not None:
            current["outcome"] = record.get("outcome")
            current["finished"] = record["at"]
            current.update(
                {k: v for k, v in record.items() if k in ("applied", "failed", "skipped")}
            )
            current = None
        elif kind == "lineage":
            entries.append({"at": record["at"], "kind": "created", "lineage": record["lineage"]})
        elif kind == "retired":
            entries.append({"at": record["at"], "kind": "retired", "to": record["to"]})
        elif current is not None:
            current["operations"].append(_history_item(record))
        else:
            entries.append({"at": record["at"], "kind": kind, **_history_item(record)})
    return entries


def _history_item(record: Mapping[str, Any]) -> dict[str, Any]:
    kind = record["kind"]
    if kind == "op":
        return {
            "serial": record["serial"],
            "call": f"{record['method']} {record['path']}",
            "body": record["body"],
        }
    if kind == "intent":
        return {"serial": record["serial"], "intent": record["body"]["ids"]}
    if kind in ("uncertain", "not-sent"):
        return {"serial": record["serial"], kind: record["intent"], "reason": record["reason"]}
    if kind == "forget":
        return {"serial": record["serial"], "forget": record["ids"]}
    if kind == "unmanage":
        return {"serial": record["serial"], "unmanage": record["fields"]}
    return {
        "serial": record["serial"],
        "set": sorted(record["incidents"]),
        "source": record.get("source"),
    }


def history_text(entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return "The journal is empty: nothing has been applied yet.\n"
    lines: list[str] = []
    for entry in entries:
        kind = entry["kind"]
        if kind == "apply":
            ops = entry["operations"]
            applied = sum("call" in o for o in ops)
            lines.append(
                f"{entry['at']}  apply {entry['plan'] or '(no plan digest)'}  "
                f"{entry['outcome']}: {applied} of {counted(entry['planned'], 'call')} applied"
            )
            lines.extend(f"    {line}" for line in _audit_lines(entry.get("audit")))
            for item in ops:
                lines.append("    " + _item_text(item))
        elif kind == "created":
            lines.append(f"{entry['at']}  journal created, lineage {entry['lineage']}")
        elif kind == "retired":
            lines.append(f"{entry['at']}  journal retired: migrated to {printable(entry['to'])}")
        else:
            lines.append(f"{entry['at']}  {_item_text(entry)}")
    return "\n".join(lines) + "\n"


def _audit_lines(audit: Any) -> list[str]:
    """Who and why of one apply (docs/approvals.md), as `reconcile log` shows it."""
    if not isinstance(audit, dict):
        return []
    lines = []
    source = " ".join(
        part
        for part in (
            f"commit {audit['commit']}" if "commit" in audit else "",
            f"of {audit['repository']}" if "repository" in audit else "",
            f"pull request #{audit['pull_request']}" if "pull_request" in audit else "",
            f"by {audit['author']}" if "author" in audit else "",
        )
        if part
    )
    if source:
        lines.append(source)
    approvals = audit.get("approvals")
    if isinstance(approvals, list) and approvals:
        lines.append(
            "approved by "
            + ", ".join(
                f"{a.get('login')} ({a.get('at')})" for a in approvals if isinstance(a, dict)
            )
        )
    if "run_url" in audit:
        lines.append(f"run {audit['run_url']}")
    if "user" in audit:
        lines.append(f"by local user {audit['user']}")
    if "force_approvals" in audit:
        lines.append(f"approvals forced: {audit['force_approvals']}")
    return [printable(str(line)) for line in lines]


def _item_text(item: Mapping[str, Any]) -> str:
    serial = f"#{item['serial']} "
    if "call" in item:
        body = item["body"]
        ids = body.get("ids")
        extra = "".join(f" {k}={show_value(v)}" for k, v in body.items() if k != "ids")
        target = (
            f"{len(ids)} ids: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}" if ids else ""
        )
        return f"{serial}{item['call']}{extra}  {target}".rstrip()
    if "intent" in item:
        return f"{serial}about to escalate {', '.join(item['intent'])}"
    if "uncertain" in item:
        return f"{serial}escalate of #{item['uncertain']}: outcome unknown ({item['reason']})"
    if "not-sent" in item:
        return f"{serial}escalate of #{item['not-sent']} not sent ({item['reason']})"
    if "forget" in item:
        return f"{serial}forget {', '.join(item['forget'])}"
    if "unmanage" in item:
        return f"{serial}stop managing " + ", ".join(f"{i} {f}" for i, f in item["unmanage"])
    if item.get("source") == "activity-log":
        return f"{serial}recorded the escalation count of {', '.join(item['set'])} (activity log)"
    return f"{serial}recorded live values of {', '.join(item['set'])} ({item.get('source')})"


def refresh_text(outcome: RefreshOutcome) -> str:
    counts = [(cid, v) for cid, v in outcome.recorded.items() if set(v) == {"escalations"}]
    if counts and not outcome.drift and len(counts) == len(outcome.recorded):
        return "".join(
            f"Recorded {show_value(v['escalations'])} escalations of {cid} from Spike's activity "
            f"log (journal serial {outcome.serial}); its escalations are no longer uncertain. "
            "Nothing was changed in Spike.\n"
            for cid, v in counts
        )
    lines = ["Changed outside reconcile (journal -> live):"] if outcome.drift else []
    lines += [
        f"  ! {d.incident} {d.field} {show_value(d.journaled)} -> {show_value(d.live)}"
        + _held_note(d, outcome.recorded)
        for d in outcome.drift
    ]
    count = len(outcome.recorded)
    if not count and not outcome.read:
        lines.append(
            "Nothing to refresh: the journal records none of the incidents of the state files. "
            "Adopt incidents with `reconcile apply`, `reconcile refresh --id ID...` (their live "
            "values, into the journal) or `reconcile import ID... --to FILE` (into a state file "
            "too)."
        )
        return "\n".join(lines) + "\n"
    lines.append(
        f"Recorded live values of {counted(count, 'incident')} "
        f"(journal serial {outcome.serial}); nothing was changed in Spike."
        if count
        else "The journal already matches Spike; nothing recorded."
    )
    return "\n".join(lines) + "\n"


def _held_note(drift: Drift, recorded: Mapping[str, Mapping[str, Value]]) -> str:
    """Why a drifted field was not recorded: its policy (docs/drift.md, Policies)."""
    if drift.field in recorded.get(drift.incident, {}):
        return ""
    return f"  (policy {drift.policy}: not recorded, the journal keeps its value)"


def refresh_json(outcome: RefreshOutcome) -> str:
    body = {
        "drift": [d.to_json() for d in outcome.drift],
        "recorded": outcome.recorded,
        "journal": {"lineage": outcome.lineage, "serial": outcome.serial},
    }
    return json.dumps(body, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
