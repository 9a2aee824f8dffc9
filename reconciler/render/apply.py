"""Apply results as text and JSON: the implicit team's result, or each team's."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import printable
from ..wording import counted, natural_sorted

if TYPE_CHECKING:
    from ..applier import ApplyResult
    from ..usecases.apply import ApplyOutcome
from .text import (
    styler,
)


def result_text(result: ApplyResult | None, color: bool = False) -> str:
    """What was applied to one team, what failed and why, and a summary line."""
    paint = styler(color)
    if result is None:
        return "No changes. Nothing to apply.\n"
    lines: list[str] = []
    for failure in result.failed:
        status = f" ({failure.status_code})" if failure.status_code else ""
        lines.append(
            paint(f"  ! {failure.incident}", "red")
            + f": {failure.operation.method} {failure.operation.path} failed{status}: "
            + failure.reason
        )
    failed = {f.incident for f in result.failed}
    # An incident counts once: one whose call failed is not counted again as skipped.
    skipped = natural_sorted({f.incident for f in result.skipped} - failed)
    if skipped:
        lines.append(
            paint("  - skipped", "yellow")
            + f" {counted(len(skipped), 'incident')}: {', '.join(skipped[:20])}"
            + (" ..." if len(skipped) > 20 else "")
            + f" ({result.skipped[0].reason})"
        )
    for failure in result.uncertain:
        lines.append(
            paint(f"  ? {failure.incident}", "red")
            + f": {failure.operation.method} {failure.operation.path}: {failure.reason}; "
            "check Spike's activity log, then record the count: "
            f"reconcile refresh --id {failure.incident} --escalations N"
        )
    if result.credentials_error:
        lines.append(paint("Credentials refused: ", "red") + result.credentials_error)
    if result.unavailable_error:
        lines.append(paint("Spike API unavailable: ", "red") + result.unavailable_error)
    if result.error:
        lines.append(paint("Apply stopped: ", "red") + result.error)
    parts = [f"{counted(len(result.applied), 'API call')} applied"]
    if result.failed:
        parts.append(f"{counted(len(failed), 'incident')} failed")
    if result.uncertain:
        uncertain = len({f.incident for f in result.uncertain})
        parts.append(f"{counted(uncertain, 'escalation')} uncertain")
    if skipped:
        parts.append(f"{len(skipped)} skipped")
    if result.forgotten:
        parts.append(f"{len(result.forgotten)} forgotten")
    if result.unmanaged:
        parts.append(f"{counted(len(result.unmanaged), 'field')} unmanaged")
    word = {
        "applied": "Apply complete",
        "failed": "Apply failed",
        "interrupted": "Interrupted",
        "aborted": "Apply aborted",
    }
    summary = f"{word[result.outcome]}: {', '.join(parts)}."
    if result.outcome != "applied" and not _only_refused(result, skipped):
        summary += " Run apply again to do the rest."
    elif result.outcome != "applied":
        summary += (
            " Spike refused these calls, and would again: fix or remove those incidents in "
            "the state files, then plan again."
        )
    tone = "green" if result.outcome == "applied" else "red"
    lines.append(paint(summary, tone))
    return "\n".join(lines) + "\n"


def _only_refused(result: ApplyResult, skipped: Sequence[str]) -> bool:
    """Whether every failure is Spike refusing the call (a 4xx such as an id it does not
    know), with nothing else left undone: running apply again would only repeat them."""
    return (
        bool(result.failed)
        and all(
            f.status_code is not None
            and 400 <= f.status_code < 500
            and f.status_code not in (408, 429)
            for f in result.failed
        )
        and not (skipped or result.uncertain or result.error)
        and not (result.credentials_error or result.unavailable_error)
        and result.outcome == "failed"
    )


def progress_line(done: int, total: int, seconds: float) -> str:
    """apply's progress on a terminal: calls done of all, the rate so far and the time left
    at that rate (none before a rate can be measured)."""
    line = f"  applied {done}/{counted(total, 'call')}"
    if done and seconds > 0:
        rate = done / seconds
        left = (total - done) / rate
        line += f" ({rate:.0f}/s, about {left:.0f} s left)" if done < total else f" ({rate:.0f}/s)"
    return line


def apply_refused_json(error: str, *, teams: bool = False, interrupted: bool = False) -> str:
    """The JSON result of an apply that stopped before it began (a refused plan, a lock held,
    a journal that cannot be read, bad input: `refused`), or that a signal stopped before it
    (`interrupted`): nothing was done."""
    body: dict[str, Any] = {"outcome": "interrupted" if interrupted else "refused", "error": error}
    if teams:
        body["teams"] = {}
    else:
        body.update(applied=[], failed=[], skipped=[], journal=None)
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def apply_stopped(result: ApplyResult) -> str:
    """Why an aborted apply stopped, and what of it may not be journaled (the error line)."""
    from ..endpoints import ESCALATE

    assert result.error is not None
    parts = [result.error]
    calls = [op for op in result.unjournaled if op.path != ESCALATE]
    if calls:
        shown = ", ".join(f"{op.method} {op.path} ({', '.join(op.ids)})" for op in calls[:10])
        more = f" and {len(calls) - 10} more" if len(calls) > 10 else ""
        parts.append(
            f"{len(calls)} call{'s' * (len(calls) != 1)} Spike confirmed may not be journaled: "
            f"{shown}{more}; the next plan makes them again"
        )
    escalated = sorted({cid for op in result.unjournaled if op.path == ESCALATE for cid in op.ids})
    if escalated:
        parts.append(
            f"the escalation of {', '.join(escalated)} was sent but may not be journaled: its "
            "intent is, so it is uncertain and never repeated; read the count in Spike's "
            "activity log, then record it: reconcile refresh --id ID --escalations N"
        )
    return printable("; ".join(parts))


def _apply_body(result: ApplyResult | None, lineage: str | None, serial: int) -> dict[str, Any]:
    if result is None:
        return {
            "outcome": "no-changes",
            "applied": [],
            "failed": [],
            "skipped": [],
            "journal": {"lineage": lineage, "serial": serial},
        }
    return result.to_json(lineage, serial)


def apply_text(outcome: ApplyOutcome, color: bool = False) -> str:
    """The implicit team's result alone; the teams of reconcile.yaml each under `Team NAME:`,
    then one line per team and the total."""
    if not outcome.named:
        return result_text(outcome.teams[0].result, color)
    paint = styler(color)
    lines: list[str] = []
    for team in outcome.teams:
        lines.append(paint(f"Team {team.name}:", "cyan"))
        if team.error is not None:
            body = paint("Apply stopped: ", "red") + printable(team.error) + "\n"
        else:
            body = result_text(team.result, color)
        lines.extend(f"  {line}" for line in body.rstrip("\n").split("\n"))
        lines.append("")
    failed = [team.name or "" for team in outcome.teams if team.failed]
    count = len(outcome.teams)
    if failed:
        lines.append(
            paint(
                f"Apply failed in {len(failed)} of {counted(count, 'team')}: {', '.join(failed)}.",
                "red",
            )
            + " Run apply again to do the rest."
        )
    else:
        lines.append(paint(f"Apply complete in {counted(count, 'team')}.", "green"))
    return "\n".join(lines) + "\n"


def apply_json(outcome: ApplyOutcome) -> str:
    """The implicit team's result; for the teams of reconcile.yaml {"outcome": "applied" |
    "failed" | "interrupted", "teams": {NAME: apply JSON}}, where a team stopped by an error
    has outcome "aborted", its error and what it did before (a team stopped by a bug: its
    error alone)."""
    if not outcome.named:
        (one,) = outcome.teams
        body = _apply_body(one.result, one.lineage, one.serial)
        return json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    teams: dict[str, Any] = {}
    for team in outcome.teams:
        if team.error is not None:
            teams[team.name or ""] = {"outcome": "aborted", "error": team.error}
            continue
        teams[team.name or ""] = _apply_body(team.result, team.lineage, team.serial)
    word = (
        "interrupted" if outcome.signal is not None else "failed" if outcome.failed else "applied"
    )
    return json.dumps({"outcome": word, "teams": teams}, indent=2, ensure_ascii=False) + "\n"
