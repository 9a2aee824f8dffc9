"""Plans as text and markdown: the implicit team's plan as its one section, the teams of
reconcile.yaml a section each with their totals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import printable
from ..model import FIELDS, Change, Drift
from ..planner import Plan
from ..redact import clip
from ..wording import counted, natural_sorted

if TYPE_CHECKING:
    from ..approvals import Needed
    from ..usecases.plan import ProjectPlan
from .text import (
    MARKDOWN_BUDGET,
    WARNING_CHARS,
    describe_operation,
    fill,
    markdown_text,
    show_before,
    show_value,
    styler,
)


def plan_summary(plan: Plan) -> str:
    parts = [
        f"{counted(len(plan.changes), 'change')} "
        f"on {plan.changed_incidents} of {counted(plan.incidents, 'incident')}",
        counted(len(plan.operations), "API call"),
    ]
    if plan.forget:
        parts.append(f"{len(plan.forget)} to forget")
    if plan.unmanaged:
        parts.append(f"{counted(len(plan.unmanaged), 'field')} unmanaged")
    if plan.drift:
        parts.append(f"{len(plan.drift)} changed outside reconcile")
    if plan.live_values:
        parts.append(f"live values of {counted(len(plan.live_values), 'incident')} to record")
    if not plan.has_changes:
        noun = "incident matches" if plan.incidents == 1 else "incidents match"
        return f"No changes. {plan.incidents} {noun} the journal."
    return "Plan: " + ", ".join(parts) + "."


def forget_reason(plan: Plan, cid: str) -> str:
    """Why the plan forgets `cid`: a rule resolved it (docs/rules.md), or no file names it."""
    if cid in plan.left_rule:
        return f"resolved, left rule {plan.left_rule[cid]}"
    return "in no state file any more"


def drift_policy_note(drift: Drift) -> str:
    """What the plan does with a drifted field, by its policy (docs/drift.md, Policies)."""
    if drift.policy == "revert":
        return "policy revert: planned against live"
    return f"policy {drift.policy}: not reverted, only reported"


def _grouped(changes: Iterable[Change]) -> dict[str, list[Change]]:
    out: dict[str, list[Change]] = {}
    for change in changes:
        out.setdefault(change.incident, []).append(change)
    return out


#: Past this many changed incidents, a text plan summarizes its changes and calls (one line
#: per field transition and per endpoint) unless asked for in full (`--full`).
SUMMARY_PAST = 200


def summarized_changes(plan: Plan) -> list[str]:
    """A big plan's changes and calls in a few lines: each field transition with the number
    of incidents making it, each endpoint with its calls and ids."""
    transitions: dict[tuple[str, str, str], int] = {}
    for c in plan.changes:
        key = (c.field, show_before(c), show_value(c.after))
        transitions[key] = transitions.get(key, 0) + 1
    lines = [
        f"Changes to incidents, summarized ({counted(plan.changed_incidents, 'incident')}; "
        "--full lists each):",
        "",
    ]
    shown = {key: f"{key[0]}: {key[1]} -> {key[2]}" for key in transitions}
    width = max(len(text) for text in shown.values())
    lines += [
        f"  {shown[key].ljust(width)}  {counted(n, 'incident')}"
        for key, n in sorted(transitions.items(), key=lambda item: (-item[1], item[0]))
    ]
    endpoints: dict[str, list[int]] = {}
    for op in plan.operations:
        ids = op.body.get("ids")
        tally = endpoints.setdefault(f"{op.method} {op.path}", [0, 0])
        tally[0] += 1
        tally[1] += len(ids) if isinstance(ids, list) else 0
    if endpoints:
        width = max(len(name) for name in endpoints)
        lines += ["", "API calls, by endpoint:"]
        lines += [
            f"  {name.ljust(width)}  {counted(calls, 'call')}, {counted(ids, 'id')}"
            for name, (calls, ids) in endpoints.items()
        ]
    return [*lines, ""]


def plan_text(plan: ProjectPlan, color: bool = False, full: bool = False) -> str:
    """The plan of the implicit team as its section alone; the teams of reconcile.yaml a
    section per team headed `Team NAME:` (the team's plan, indented), then one summary line
    per team and the total."""
    if not plan.named:
        return section_text(plan.only.plan, plan.only.sources, color, full)
    paint = styler(color)
    out: list[str] = []
    for team in plan.teams:
        out.append(paint(f"Team {team.name}:", "cyan"))
        body = section_text(team.made.plan, team.made.sources, color, full)
        out.extend(f"  {line}" if line else "" for line in body.rstrip("\n").split("\n"))
        out.append("")
    width = max((len(team.name or "") for team in plan.teams), default=0) + 1
    out.append("Summary:")
    out.extend(
        f"  {((team.name or '') + ':').ljust(width)} {plan_summary(team.made.plan)}"
        + (paint("  (unsafe)", "red") if team.made.plan.unsafe else "")
        for team in plan.teams
    )
    out.append(paint(teams_total(plan), "cyan"))
    return "\n".join(out) + "\n"


def section_text(
    plan: Plan,
    sources: Mapping[str, str] | None = None,
    color: bool = False,
    full: bool = False,
) -> str:
    """One team's plan, Terraform-style: a block per incident, the calls in order, a summary
    line. Past SUMMARY_PAST changed incidents, unless `full`, the blocks and calls are
    summarized."""
    paint = styler(color)
    sources = sources or {}
    lines: list[str] = []
    summarize = plan.changed_incidents > SUMMARY_PAST and not full
    width = max(len(f) for f in FIELDS) + 1
    if plan.drift:
        lines.append("Changed outside reconcile (journal -> live):")
        lines.extend(
            paint(f"  ! {d.incident} {d.field}", "magenta")
            + f" {show_value(d.journaled)} -> {show_value(d.live)}  ({drift_policy_note(d)})"
            for d in plan.drift
        )
        lines.append("")
    if summarize:
        lines += summarized_changes(plan)
    elif plan.changes:
        lines.append("Changes to incidents (before -> after):")
        lines.append("")
        grouped = _grouped(plan.changes)
        for cid in natural_sorted(grouped):
            changes = grouped[cid]
            where = f"  ({printable(sources[cid])})" if cid in sources else ""
            lines.append(paint(f"  ~ incident {cid}", "yellow") + where)
            for c in changes:
                before = show_before(c)
                lines.append(
                    f"      {(c.field + ':').ljust(width)} "
                    + paint(before, "red")
                    + " -> "
                    + paint(show_value(c.after), "green")
                    + (f"  (rule {c.rule})" if c.rule else "")
                )
            lines.append("")
    if plan.forget or plan.unmanaged:
        lines.append("Journal only (no API call):")
        lines.extend(
            paint(f"  - forget {cid}", "red") + f"  ({forget_reason(plan, cid)})"
            for cid in natural_sorted(plan.forget)
        )
        lines.extend(
            paint(f"  - stop managing {cid} {name}", "red") + "  (removed from the state file)"
            for cid, name in plan.unmanaged
        )
        lines.append("")
    if plan.operations and not summarize:
        lines.append("API calls, in order:")
        digits = len(str(len(plan.operations)))
        lines.extend(
            f"  {str(n).rjust(digits)}. {describe_operation(op)}"
            for n, op in enumerate(plan.operations, start=1)
        )
        lines.append("")
    lines.extend(paint(f"warning: {printable(w)}", "yellow") for w in plan.warnings)
    if plan.approvals:
        lines.append("Needs approval (reconcile approvals checks the pull request's reviews):")
        for need in plan.approvals:
            lines.append(paint(f"  ! {printable(need.rule)}: {_needs(need)}", "yellow"))
            lines.append("      " + ", ".join(_change_short(c) for c in need.changes[:10]))
            if len(need.changes) > 10:
                lines.append(f"      ... and {len(need.changes) - 10} more")
        lines.append("")
    lines.append(paint(plan_summary(plan), "cyan"))
    return "\n".join(lines) + "\n"


def _needs(need: Needed) -> str:
    """`1 approval of @acme/comms, dana`."""
    return f"{need.count} approval{'s' * (need.count != 1)} of " + ", ".join(
        str(a) for a in need.approvers
    )


def _change_short(change: Change) -> str:
    return f"{change.incident} {change.field} {show_before(change)} -> {show_value(change.after)}"


#: Changes listed per rule in the markdown comment's "Needs approval" (the plan file has all).
_NEEDS_SHOWN = 20


def approvals_markdown(needs: Sequence[Needed]) -> str:
    """The "Needs approval" section at the top of a plan comment: each rule, who may approve
    it and the changes it covers; every text through markdown_text (an approver is shown,
    never @mentioned)."""
    if not needs:
        return ""
    lines = [
        "> [!IMPORTANT]",
        "> **Needs approval** (a review of this pull request's head commit):",
    ]
    for need in needs:
        lines.append(f"> - **{markdown_text(need.rule)}**: {markdown_text(_needs(need))}")
        shown = [
            f"`{c.incident}` {markdown_text(_change_short(c).split(' ', 1)[1])}"
            for c in need.changes[:_NEEDS_SHOWN]
        ]
        lines.append(">   " + "; ".join(shown))
        if len(need.changes) > _NEEDS_SHOWN:
            lines.append(f">   ... and {len(need.changes) - _NEEDS_SHOWN} more (see the plan file)")
    return "\n".join(lines) + "\n\n"


def section_markdown(plan: Plan, budget: int = MARKDOWN_BUDGET, heading: bool = True) -> str:
    """One team's plan for a pull-request comment: summary, warnings, a table of changes,
    the calls folded.

    Truncated with a note so that the whole stays below GitHub's comment limit. Without
    `heading`, no title (a team's section of a plan of teams has its own).
    """
    head: list[str] = ["### spike-reconcile plan", ""] if heading else []
    if heading and plan.approvals:  # a team's section: the comment's top has them all
        head += [*approvals_markdown(plan.approvals).rstrip("\n").split("\n"), ""]
    head += [f"**{plan_summary(plan)}**", ""]
    # Warnings can be many (one per unknown --target) and, from a plan file, of any length:
    # together they get at most a quarter of the budget, each at most WARNING_CHARS.
    room = budget // 4
    for n, warning in enumerate(plan.warnings):
        text = clip(printable(warning), WARNING_CHARS, " ...")
        # Escaped after the cut (never half an escape), the ellipsis after that.
        cut = len(text) > WARNING_CHARS
        text = markdown_text(text[:-4]) + " ..." if cut else markdown_text(text)
        room -= len(text) + 16
        if room < 0:
            more = len(plan.warnings) - n
            head += ["> [!WARNING]", f"> ... and {more} more warnings (see the plan file)", ""]
            break
        head += ["> [!WARNING]", f"> {text}", ""]
    if plan.drift:
        head += [
            "> [!WARNING]",
            f"> {counted(len(plan.drift), 'field')} changed outside reconcile:",
        ]
        head += [
            f"> - `{d.incident}` {d.field}: {show_value(d.journaled)} -> {show_value(d.live)}"
            f" ({drift_policy_note(d)})"
            for d in plan.drift[:50]
        ]
        if len(plan.drift) > 50:
            head.append(f"> - ... and {len(plan.drift) - 50} more (see the plan file)")
        head.append("")
    tail_note = (
        "\n_Truncated to fit a GitHub comment: {n} more {what} not shown; "
        "the full plan is in the plan file._\n"
    )
    out = "\n".join(head) + "\n"
    rows = [
        f"| `{c.incident}` | {c.field} | {show_before(c)} | {show_value(c.after)}"
        + (f" (rule `{c.rule}`) |" if c.rule else " |")
        for c in plan.changes
    ]
    rows += [
        f"| `{cid}` | _forget_ | journaled | _resolved, left rule `{plan.left_rule[cid]}`_ |"
        if cid in plan.left_rule
        else f"| `{cid}` | _forget_ | journaled | _not in any file_ |"
        for cid in plan.forget
    ]
    rows += [f"| `{cid}` | {f} | managed | _unmanaged_ |" for cid, f in plan.unmanaged]
    calls = [f"{n}. `{describe_operation(op)}`" for n, op in enumerate(plan.operations, 1)]
    folded_open = f"\n<details><summary>{counted(len(calls), 'API call')}, in order</summary>\n\n"
    folded_close = "\n</details>\n"
    # Room for the header row, the folded block's tags and two truncation notes.
    room = budget - len(out) - 2 * (len(tail_note) + 100) - len(folded_open) - 100
    rows_size = sum(len(r) + 1 for r in rows)
    calls_size = sum(len(c) + 1 for c in calls)
    # When both do not fit, the calls keep up to a third of the room: a reviewer sees some
    # of each, and the truncation notes say how much more the plan file has.
    calls_room = calls_size if rows_size + calls_size <= room else min(calls_size, room // 3)
    if rows:
        out += "| incident | field | before | after |\n| --- | --- | --- | --- |\n"
        out, shown = fill(out, rows, len(out) + room - calls_room)
        if shown < len(rows):
            out += tail_note.format(n=len(rows) - shown, what="rows")
    if calls:
        out += folded_open
        out, shown = fill(out, calls, len(out) + calls_room)
        if shown < len(calls):
            out += tail_note.format(n=len(calls) - shown, what="calls")
        out += folded_close
    return out


def teams_total(plan: ProjectPlan) -> str:
    """The last line of a plan of teams: every team's changes added up."""
    total, teams = plan.summary(), len(plan.teams)
    noun = counted(teams, "team")
    if not plan.has_changes:
        return f"Total: no changes in {noun} ({counted(total.get('incidents', 0), 'incident')})."
    return (
        f"Total: {counted(total.get('changes', 0), 'change')} on "
        f"{total.get('changed_incidents', 0)} of {counted(total.get('incidents', 0), 'incident')}"
        f" in {noun}, {counted(total.get('operations', 0), 'API call')}."
    )


#: A team's section gets its whole plan only with at least this much room; with less, its
#: summary line alone (the plan file has the rest).
_TEAM_SECTION_MIN = 1_500


def plan_markdown(plan: ProjectPlan, budget: int = MARKDOWN_BUDGET) -> str:
    """The plan's pull-request comment: the implicit team's section alone; for the teams of
    reconcile.yaml a table of per-team totals, then one collapsible section per team, each
    within its share of GitHub's limit.

    Whatever the number of teams: the table takes at most a third of the budget, a section
    whose plan does not fit its share shows its summary line alone, and teams beyond the
    budget are counted in a closing note.
    """
    if not plan.named:
        return section_markdown(plan.only.plan, budget)
    note = "\n_{n} more teams not shown to fit a GitHub comment; the plan file has them._\n"
    from ..approvals import merge_needed

    out = "### spike-reconcile plan\n\n"
    out += approvals_markdown(merge_needed(team.made.plan.approvals for team in plan.teams))
    out += f"**{teams_total(plan)}**\n\n"
    rows = []
    for team in plan.teams:
        numbers = team.made.plan.summary()
        flag = "unsafe" if team.made.plan.unsafe else ""
        rows.append(
            f"| {team.name} | {numbers['changes']} | {numbers['changed_incidents']} | "
            f"{numbers['operations']} | {len(team.made.plan.forget)} | {flag} |"
        )
    out += "| team | changes | incidents changed | API calls | to forget | |\n"
    out += "| --- | ---: | ---: | ---: | ---: | --- |\n"
    out, shown = fill(out, rows, len(out) + budget // 3)
    if shown < len(rows):
        out += note.format(n=len(rows) - shown).replace("teams", "teams in the table")
    reserve = len(note) + 20
    for n, team in enumerate(plan.teams):
        left = len(plan.teams) - n
        room = budget - len(out) - reserve
        opened = " open" if team.made.plan.has_changes else ""
        summary = (
            f"\n<details{opened}><summary>Team {team.name}: "
            f"{plan_summary(team.made.plan)}</summary>\n\n"
        )
        closing = "\n</details>\n"
        bare = summary.replace(f"<details{opened}>", "<details>") + "_(shown in the plan file)_\n"
        if len(bare) + len(closing) > room:
            return out + note.format(n=left)
        share = room // left - len(summary) - len(closing)
        section = section_markdown(team.made.plan, share, heading=False) if share > 0 else ""
        if share < _TEAM_SECTION_MIN or len(section) > share:
            out += bare + closing
        else:
            out += summary + section + closing
    return out
