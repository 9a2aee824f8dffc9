"""The account and the repository: the teams the key sees, doctor's checks, what import
and init wrote."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..errors import printable
from ..wording import counted

if TYPE_CHECKING:
    from ..usecases.approvals import ApprovalsOutcome
    from ..usecases.doctor import DoctorOutcome, TeamChecks
    from ..usecases.files import ImportOutcome
    from ..usecases.init import InitOutcome
    from ..usecases.teams import TeamsOutcome
from .text import (
    markdown_text,
)

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


def import_text(outcome: ImportOutcome) -> str:
    """What `reconcile import` prints: which file got which ids, the journal's serial."""
    lines = [
        f"Imported {counted(len(ids), 'incident')} into {printable(path)}: " + ", ".join(ids)
        for path, ids in outcome.files.items()
    ]
    lines.append(f"Recorded their live values in the journal (serial {outcome.serial}).")
    return "\n".join(lines) + "\n"


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
