"""Plans, journal views and apply results -> text, JSON and markdown. Formats; writes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import printable
from .github import COMMENT_LIMIT
from .model import FIELDS, Change, Drift, Operation, Value
from .planner import Plan
from .redact import clip
from .wording import counted, natural_sorted

if TYPE_CHECKING:
    from .applier import ApplyResult
    from .approvals import Needed
    from .journal.records import Recorded
    from .usecases.accept import AcceptOutcome
    from .usecases.apply import TeamsApplyOutcome
    from .usecases.approvals import ApprovalsOutcome
    from .usecases.comment import CommentResult
    from .usecases.doctor import DoctorOutcome, TeamChecks
    from .usecases.drift import DriftEntry, DriftReport
    from .usecases.files import ImportOutcome
    from .usecases.init import InitOutcome
    from .usecases.issue import IssueOutcome
    from .usecases.plan import TeamsPlan
    from .usecases.refresh import RefreshOutcome
    from .usecases.teams import TeamsOutcome

#: GitHub refuses comments longer than this; markdown plans stay below it with room to spare.
MARKDOWN_BUDGET = COMMENT_LIMIT - 2_000
#: A longer warning (only a plan file can hold one) is cut in markdown.
WARNING_CHARS = 1_000

Styler = Callable[[str, str], str]
#: ANSI foreground codes of the colors the views use (click is the CLI's alone).
_ANSI = {"red": 31, "green": 32, "yellow": 33, "magenta": 35, "cyan": 36}


def styler(color: bool) -> Styler:
    """A function painting text in a named color, or leaving it alone."""
    if not color:
        return lambda text, _color: text
    return lambda text, fg: f"\x1b[{_ANSI[fg]}m{text}\x1b[0m"  # as click.style(text, fg=fg)


#: The ASCII punctuation that can open markup inside a line: emphasis, code, links, images,
#: HTML and entities, table cells, strikethrough, math, escapes. (A backslash before any ASCII
#: punctuation shows it as itself, CommonMark says; `- . : ' , / = ? ; % "` open nothing
#: within a line and are left as they are, so commands and paths stay readable.)
_MARKUP = re.compile(r"""([!#$&()*+<>@\[\\\]^_`{|}~])""")
#: What can open a block at the start of a line (a list, a heading, a quote, a rule, a
#: setext underline): the first character, or the `.` / `)` after leading digits (an
#: ordered list). Leading spaces (an indented block) get a zero-width space before them.
_BLOCK_START = re.compile(r"""^(?:\d+(?=[.)])|(?=[!-/:-@\[-`{-~]))""")
#: What GitHub links after rendering, in text itself (a backslash escape does not stop it):
#: @mentions, #references, URLs and www. links; a zero-width space after each breaks them.
_GITHUB_LINKS = re.compile(r"@|#|:(?=//)|(?i:www)(?=\.)")


def markdown_text(text: str) -> str:
    """`text` (a file or folder name, a warning naming one, a rule name, an incident title,
    anything Spike or a plan file says) for markdown outside code spans and HTML: shown as
    the same characters, never as markup. No @mention, link, image, HTML tag, table cell
    break, heading, list, code span or fence can be formed from it; control characters are
    escaped as `printable` does, so it stays on one line. The one escaping function of the
    markdown views."""
    shown = _GITHUB_LINKS.sub(lambda m: m.group() + "\u200b", printable(text))
    shown = _MARKUP.sub(r"\\\1", shown)
    if shown.startswith(" "):  # indented: a list or a code block; not after a character
        return "\u200b" + shown
    start = _BLOCK_START.match(shown)
    if start is not None and not shown.startswith("\\", start.end()):
        at = start.end()
        shown = shown[:at] + "\\" + shown[at:]
    return shown


def show_value(value: Value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def show_before(change: Change) -> str:
    return show_value(change.before) if change.before_known else "(unknown)"


def describe_operation(op: Operation) -> str:
    """One line: the method, the path and the body, ids listed in full."""
    body = ", ".join(
        f"{k}=[{', '.join(v)}]" if isinstance(v, list) else f"{k}={show_value(v)}"
        for k, v in op.body.items()
    )
    return f"{op.method} {op.path}  {body}"


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


def plan_text(
    plan: Plan,
    sources: Mapping[str, str] | None = None,
    color: bool = False,
    full: bool = False,
) -> str:
    """Terraform-style: a block per incident, the calls in order, a summary line. Past
    SUMMARY_PAST changed incidents, unless `full`, the blocks and calls are summarized."""
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


def plan_markdown(plan: Plan, budget: int = MARKDOWN_BUDGET, heading: bool = True) -> str:
    """For a pull-request comment: summary, warnings, a table of changes, the calls folded.

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
        out, shown = _fill(out, rows, len(out) + room - calls_room)
        if shown < len(rows):
            out += tail_note.format(n=len(rows) - shown, what="rows")
    if calls:
        out += folded_open
        out, shown = _fill(out, calls, len(out) + calls_room)
        if shown < len(calls):
            out += tail_note.format(n=len(calls) - shown, what="calls")
        out += folded_close
    return out


def teams_total(plan: TeamsPlan) -> str:
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


def teams_plan_text(plan: TeamsPlan, color: bool = False, full: bool = False) -> str:
    """A section per team headed `Team NAME:` (the team's plan, indented), then one summary
    line per team and the total."""
    paint = styler(color)
    out: list[str] = []
    for team in plan.teams:
        out.append(paint(f"Team {team.name}:", "cyan"))
        body = plan_text(team.made.plan, team.made.sources, color, full)
        out.extend(f"  {line}" if line else "" for line in body.rstrip("\n").split("\n"))
        out.append("")
    width = max((len(team.name) for team in plan.teams), default=0) + 1
    out.append("Summary:")
    out.extend(
        f"  {(team.name + ':').ljust(width)} {plan_summary(team.made.plan)}"
        + (paint("  (unsafe)", "red") if team.made.plan.unsafe else "")
        for team in plan.teams
    )
    out.append(paint(teams_total(plan), "cyan"))
    return "\n".join(out) + "\n"


#: A team's section gets its whole plan only with at least this much room; with less, its
#: summary line alone (the plan file has the rest).
_TEAM_SECTION_MIN = 1_500


def teams_plan_markdown(plan: TeamsPlan, budget: int = MARKDOWN_BUDGET) -> str:
    """One pull-request comment for every team: a table of per-team totals, then one
    collapsible section per team, each within its share of GitHub's limit.

    Whatever the number of teams: the table takes at most a third of the budget, a section
    whose plan does not fit its share shows its summary line alone, and teams beyond the
    budget are counted in a closing note.
    """
    note = "\n_{n} more teams not shown to fit a GitHub comment; the plan file has them._\n"
    from .approvals import merge_needed

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
    out, shown = _fill(out, rows, len(out) + budget // 3)
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
        section = plan_markdown(team.made.plan, share, heading=False) if share > 0 else ""
        if share < _TEAM_SECTION_MIN or len(section) > share:
            out += bare + closing
        else:
            out += summary + section + closing
    return out


def _fill(out: str, lines: Sequence[str], budget: int) -> tuple[str, int]:
    """Append whole lines while they fit in `budget` characters."""
    parts = [out]
    size = len(out)
    for shown, line in enumerate(lines):
        if size + len(line) + 1 > budget:
            return "".join(parts), shown
        parts.append(line + "\n")
        size += len(line) + 1
    return "".join(parts), len(lines)


# ---------------------------------------------------------------------------------------------
# The journal


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


# ---------------------------------------------------------------------------------------------
# Apply results


def apply_text(result: ApplyResult | None, color: bool = False) -> str:
    """What was applied, what failed and why, and a summary line."""
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


def apply_json(result: ApplyResult | None, lineage: str | None, serial: int) -> str:
    body = _apply_body(result, lineage, serial)
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


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
    from .endpoints import ESCALATE

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


def teams_apply_text(outcome: TeamsApplyOutcome, color: bool = False) -> str:
    """Each team's result under `Team NAME:`, then one line per team and the total."""
    paint = styler(color)
    lines: list[str] = []
    for team in outcome.teams:
        lines.append(paint(f"Team {team.name}:", "cyan"))
        if team.error is not None:
            body = paint("Apply stopped: ", "red") + printable(team.error) + "\n"
        else:
            assert team.outcome is not None
            body = apply_text(team.outcome.result, color)
        lines.extend(f"  {line}" for line in body.rstrip("\n").split("\n"))
        lines.append("")
    failed = [team.name for team in outcome.teams if team.failed]
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


def teams_apply_json(outcome: TeamsApplyOutcome) -> str:
    """{"outcome": "applied" | "failed" | "interrupted", "teams": {NAME: apply JSON}}; a team
    stopped by an error has outcome "aborted", its error and what it did before (a team
    stopped by a bug: its error alone)."""
    teams: dict[str, Any] = {}
    for team in outcome.teams:
        if team.error is not None or team.outcome is None:
            teams[team.name] = {"outcome": "aborted", "error": team.error}
            continue
        done = team.outcome
        teams[team.name] = _apply_body(done.result, done.lineage, done.serial)
    word = (
        "interrupted" if outcome.signal is not None else "failed" if outcome.failed else "applied"
    )
    return json.dumps({"outcome": word, "teams": teams}, indent=2, ensure_ascii=False) + "\n"


def by_team_text(parts: Mapping[str, str]) -> str:
    """Each team's text (show, log, refresh, import) under `Team NAME:`, indented."""
    lines: list[str] = []
    for name, text in parts.items():
        lines.append(f"Team {name}:")
        lines.extend(f"  {line}" if line else "" for line in text.rstrip("\n").split("\n"))
        lines.append("")
    return "\n".join(lines[:-1]) + "\n" if lines else ""


def by_team_json(parts: Mapping[str, str]) -> str:
    """Each team's JSON document (show, log, refresh) as {"teams": {NAME: document}}."""
    teams = {name: json.loads(text) for name, text in parts.items()}
    return json.dumps({"teams": teams}, indent=2, ensure_ascii=False) + "\n"


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


# ---------------------------------------------------------------------------------------------
# Teams

#: How a team Spike lists without a name is shown in text.
NO_NAME = "(no name)"


def teams_text(outcome: TeamsOutcome) -> str:
    """What `reconcile teams` prints: a table of name, id and whether configured."""
    if not outcome.teams:
        return "The API key sees no teams.\n"
    rows = [("NAME", "ID", "CONFIGURED")] + [
        (
            printable(t.name) if t.name is not None else NO_NAME,
            printable(t.id),
            "yes" if t.configured else "no",
        )
        for t in outcome.teams
    ]
    name_width = max(len(r[0]) for r in rows)
    id_width = max(len(r[1]) for r in rows)
    return "".join(f"{n.ljust(name_width)}  {i.ljust(id_width)}  {c}\n" for n, i, c in rows)


def teams_json(outcome: TeamsOutcome) -> str:
    """`{"teams": [{"id", "name", "configured"}]}`; a team without a name has name null."""
    body = {
        "teams": [{"id": t.id, "name": t.name, "configured": t.configured} for t in outcome.teams]
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Import and comment


def import_text(outcome: ImportOutcome) -> str:
    """What `reconcile import` prints: which file got which ids, the journal's serial."""
    lines = [
        f"Imported {counted(len(ids), 'incident')} into {printable(path)}: " + ", ".join(ids)
        for path, ids in outcome.files.items()
    ]
    lines.append(f"Recorded their live values in the journal (serial {outcome.serial}).")
    return "\n".join(lines) + "\n"


def accept_text(outcome: AcceptOutcome) -> str:
    """What `reconcile accept` prints: each file rewritten with the fields accepted into it."""
    if not outcome.files:
        return "Nothing to accept: no drifted field was selected.\n"
    lines: list[str] = []
    for path, entries in outcome.files.items():
        lines.append(printable(path))
        lines.extend(
            f"  {e.incident} {e.field}: {show_value(e.desired)} -> {show_value(e.live)}"
            for e in entries
        )
    count = sum(len(entries) for entries in outcome.files.values())
    files = len(outcome.files)
    lines.append(
        f"Accepted {counted(count, 'live value')} into {counted(files, 'file')}"
        f"; recorded in the journal (serial {outcome.serial})."
    )
    return "\n".join(lines) + "\n"


def accept_json(outcome: AcceptOutcome) -> str:
    """`reconcile accept --format json` (docs/drift.md, Accepting live values)."""
    body = {
        "files": {
            path: [
                {"incident": e.incident, "field": e.field, "was": e.desired, "live": e.live}
                for e in entries
            ]
            for path, entries in outcome.files.items()
        },
        "journal": {"lineage": outcome.lineage, "serial": outcome.serial},
        "warnings": outcome.warnings,
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def comment_text(result: CommentResult, pr: int) -> str:
    """What `reconcile comment` prints: what happened to the plan comment on #pr."""
    if result.action == "skipped":
        return f"No changes and no plan comment on #{pr} yet: nothing posted."
    url = result.comment.url if result.comment else ""
    said = {
        "created": "Created the plan comment",
        "updated": "Updated the plan comment",
        "unchanged": "The plan comment already shows this plan",
    }[result.action]
    return f"{said} on #{pr}" + (f": {url}" if url else ".")


# ---------------------------------------------------------------------------------------------
# The drift report


def drift_json(report: DriftReport) -> str:
    """The report's JSON (docs/drift.md): what `drift --format json` prints and --out saves."""
    body = {
        "format_version": 1,
        "checked_at": report.checked_at,
        "drift": [
            {
                "team": e.team,
                "incident": e.incident,
                "field": e.field,
                "desired": e.desired,
                "journaled": e.journaled,
                "live": e.live,
                "policy": e.policy,
                "kind": e.kind,
            }
            for e in report.entries
        ],
        "summary": {
            "incidents": report.incidents,
            "drifted_incidents": report.drifted_incidents,
            "fields": report.fields,
        },
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def drift_summary(report: DriftReport) -> str:
    checked = f"{counted(report.incidents, 'incident')} checked"
    if not report.has_drift:
        return f"No drift: {checked}, all match the state files."
    parts = []
    if report.fields:
        parts.append(f"{counted(report.fields, 'field')} drifted")
    if report.missing:
        parts.append(f"{counted(report.missing, 'incident')} missing")
    drifted = report.drifted_incidents
    return f"Drift: {' and '.join(parts)} in {counted(drifted, 'incident')} ({checked})."


def _drift_line(entry: DriftEntry) -> str:
    if entry.field is None:
        return "not found in Spike (deleted, or another team)"
    return (
        f"{entry.field}: desired {show_value(entry.desired)}, live {show_value(entry.live)} "
        f"(journaled {_journaled(entry)}; {entry.kind}, policy {entry.policy})"
    )


def drift_text(report: DriftReport, color: bool = False) -> str:
    """Terraform-like: each drifted incident with its fields, then a summary line."""
    paint = styler(color)
    lines: list[str] = []
    if report.has_drift:
        lines += [f"Live values that differ from the state files (checked {report.checked_at}):"]
        lines.append("")
    incident: tuple[str | None, str] | None = None
    for entry in report.entries:
        if (entry.team, entry.incident) != incident:
            incident = entry.team, entry.incident
            shown = (
                entry.incident if entry.team is None else f"{entry.incident} (team {entry.team})"
            )
            if entry.field is None:
                lines.append(paint(f"  - {shown}: {_drift_line(entry)}", "red"))
                continue
            lines.append(f"  ~ {shown}")
        lines.append(paint(f"      {_drift_line(entry)}", "yellow"))
    if report.has_drift:
        lines.append("")
    lines.append(paint(drift_summary(report), "cyan"))
    return "\n".join(lines) + "\n"


def drift_markdown(report: DriftReport, budget: int = MARKDOWN_BUDGET) -> str:
    """For an issue body: the summary and a table, cut with a note to stay below GitHub's
    limit (the JSON report, from --out, holds every entry)."""
    out = "\n".join(
        [
            "### spike-reconcile drift report",
            "",
            f"**{drift_summary(report)}**",
            "",
            f"Checked at {report.checked_at}.",
            "",
        ]
    )
    if not report.has_drift:
        return out
    note = (
        "\n_Truncated to fit a GitHub issue: {n} more rows not shown; the JSON report "
        "(`--out`) has them all._\n"
    )
    teams = any(e.team is not None for e in report.entries)
    rows = [
        (f"| {e.team} " if teams else "")
        + f"| `{e.incident}` | {e.field or '_missing_'} | {_cell(e, e.desired)} | "
        f"{_journaled(e) if e.field else ''} | {_cell(e, e.live)} | {e.kind} | {e.policy} |"
        for e in report.entries
    ]
    out += (
        "\n"
        + ("| team " if teams else "")
        + "| incident | field | desired | journaled | live | kind | policy |\n"
        + ("| --- " if teams else "")
        + "| --- | --- | --- | --- | --- | --- | --- |\n"
    )
    out, shown = _fill(out, rows, budget - len(note) - 100)
    if shown < len(rows):
        out += note.format(n=len(rows) - shown)
    return out


def _cell(entry: DriftEntry, value: Value) -> str:
    return "" if entry.field is None else show_value(value)


def _journaled(entry: DriftEntry) -> str:
    return show_value(entry.journaled) if entry.journaled_known else "(unknown)"


# ---------------------------------------------------------------------------------------------
# The drift issue


def issue_text(outcome: IssueOutcome) -> str:
    """What `reconcile issue` prints: what happened to the drift issue, in one line."""
    if outcome.issue is None:
        return "No drift and no open drift issue: nothing to do.\n"
    number = f"#{outcome.issue.number}"
    said = {
        "created": f"Created drift issue {number}",
        "updated": f"Updated drift issue {number}",
        "unchanged": f"Drift issue {number} already shows this report",
        "closed": f"Closed drift issue {number}: the drift is resolved",
        "nothing": f"Left drift issue {number} alone",
    }[outcome.action]
    url = printable(outcome.issue.url)
    return f"{said}" + (f": {url}" if url else ".") + "\n"


def issue_json(outcome: IssueOutcome) -> str:
    """`reconcile issue --format json`: the action, the issue (or null), the report's counts."""
    issue = outcome.issue
    report = outcome.report
    body = {
        "action": outcome.action,
        "issue": None if issue is None else {"number": issue.number, "url": issue.url},
        "checked_at": report.checked_at,
        "summary": {
            "incidents": report.incidents,
            "drifted_incidents": report.drifted_incidents,
            "fields": report.fields,
        },
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Doctor


def _doctor_team(team: TeamChecks) -> str:
    """Which team, and where its key and id come from (names of variables, never values)."""
    who = "SPIKE_TEAM_ID's team" if team.team is None else f"team {printable(team.team)}"
    return f"{who} (key from {team.key_source})"


def doctor_text(outcome: DoctorOutcome) -> str:
    """What `reconcile doctor` prints: per team, each request, its status and outcome, then
    the readings it used or what was missing; a last line counting the endpoints understood."""
    import textwrap

    lines: list[str] = []
    for team in outcome.teams:
        lines.append(_doctor_team(team))
        for check in team.checks:
            request = printable(check.request or check.endpoint)
            status = "" if check.status is None else f"{check.status}, "
            lines.append(f"  {request}: {status}{check.outcome}")
            said = check.problem if check.problem is not None else "; ".join(check.readings)
            lines.extend(
                textwrap.wrap(printable(said), 96, initial_indent="    ", subsequent_indent="    ")
            )
    checks = list(outcome.checks)
    understood = sum(check.understood for check in checks)
    if understood == len(checks):
        lines.append(f"All {len(checks)} endpoints understood.")
    else:
        lines.append(f"{understood} of {len(checks)} endpoints understood: see above.")
    return "\n".join(lines) + "\n"


def doctor_json(outcome: DoctorOutcome) -> str:
    """`{"understood", "teams": [{"team", "key_source", "team_source", "checks": [{"endpoint",
    "request", "status", "outcome", "readings", "problem"}]}]}`; team null: SPIKE_TEAM_ID's."""
    body = {
        "understood": outcome.understood,
        "teams": [
            {
                "team": team.team,
                "key_source": team.key_source,
                "team_source": team.team_source,
                "checks": [
                    {
                        "endpoint": c.endpoint,
                        "request": c.request,
                        "status": c.status,
                        "outcome": c.outcome,
                        "readings": list(c.readings),
                        "problem": c.problem,
                    }
                    for c in team.checks
                ],
            }
            for team in outcome.teams
        ],
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Init


def init_text(outcome: InitOutcome) -> str:
    """What `reconcile init` prints: each file written or kept, then what to do next."""
    lines = [f"wrote {printable(path)}" for path in outcome.written]
    lines += [f"kept {printable(path)} (it exists)" for path in outcome.kept]
    if outcome.teams:
        lines.append(
            "Next: replace each team_id in reconcile.yaml (`reconcile teams` lists them), "
            "then run `reconcile validate` and `reconcile plan`."
        )
    else:
        lines.append("Next: run `reconcile validate` and `reconcile plan`.")
    return "\n".join(lines) + "\n"


def approvals_text(outcome: ApprovalsOutcome) -> str:
    """`reconcile approvals`: one line per rule, and what GitHub would not say."""
    if outcome.pull is None:
        return "The plan needs no approval.\n"
    pull = outcome.pull
    lines = [f"Pull request #{pull.number} by {printable(pull.author)}, head {pull.head_sha[:12]}:"]
    lines += [f"  {printable(s.line(pull.author))}" for s in outcome.statuses]
    if outcome.unseen and not outcome.met:
        lines.append(
            f"Note: GitHub answered 404 for the membership of {', '.join(outcome.unseen)}: not "
            "a member, or a team the token cannot see (the Actions GITHUB_TOKEN cannot read "
            "team membership; a token with read:org or Members: read can)"
        )
    met = len(outcome.statuses) - len(outcome.unmet)
    lines.append(f"Approvals: {met} of {len(outcome.statuses)} rules met.")
    return "\n".join(lines) + "\n"


def approvals_markdown_summary(outcome: ApprovalsOutcome) -> str:
    """The step summary of `reconcile approvals` (GITHUB_STEP_SUMMARY)."""
    if outcome.pull is None:
        return "### spike-reconcile approvals\n\nThe plan needs no approval.\n"
    pull = outcome.pull
    lines = [
        "### spike-reconcile approvals",
        "",
        f"Pull request #{pull.number}, head commit `{pull.head_sha[:12]}`",
        "",
        "| rule | | approvals |",
        "| --- | --- | --- |",
    ]
    for status in outcome.statuses:
        mark = "met" if status.met else "**not met**"
        lines.append(
            f"| {markdown_text(status.need.rule)} | {mark} | "
            f"{markdown_text(status.line(pull.author).split(': ', 1)[1])} |"
        )
    return "\n".join(lines) + "\n"
