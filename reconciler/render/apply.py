"""Apply results as text and JSON: the implicit team's result, or each team's."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import printable

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
    skipped = sorted({f.incident for f in result.skipped})
    if skipped:
        lines.append(
            paint("  - skipped", "yellow")
            + f" {len(skipped)} incidents: {', '.join(skipped[:20])}"
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
    parts = [f"{len(result.applied)} API calls applied"]
    if result.failed:
        parts.append(f"{len({f.incident for f in result.failed})} incidents failed")
    if result.uncertain:
        parts.append(f"{len({f.incident for f in result.uncertain})} escalations uncertain")
    if skipped:
        parts.append(f"{len(skipped)} skipped")
    if result.forgotten:
        parts.append(f"{len(result.forgotten)} forgotten")
    if result.unmanaged:
        parts.append(f"{len(result.unmanaged)} fields unmanaged")
    word = {
        "applied": "Apply complete",
        "failed": "Apply failed",
        "interrupted": "Interrupted",
        "aborted": "Apply aborted",
    }
    summary = f"{word[result.outcome]}: {', '.join(parts)}."
    if result.outcome != "applied":
        summary += " Run apply again to do the rest."
    tone = "green" if result.outcome == "applied" else "red"
    lines.append(paint(summary, tone))
    return "\n".join(lines) + "\n"


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
            paint(f"Apply failed in {len(failed)} of {count} teams: {', '.join(failed)}.", "red")
            + " Run apply again to do the rest."
        )
    else:
        lines.append(paint(f"Apply complete in {count} team{'s' * (count != 1)}.", "green"))
    return "\n".join(lines) + "\n"


def apply_json(outcome: ApplyOutcome) -> str:
    """The implicit team's result; for the teams of reconcile.yaml {"outcome": "applied" |
    "failed" | "interrupted", "teams": {NAME: apply JSON}}, where a team stopped by an error
    has outcome "aborted" and its error."""
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
