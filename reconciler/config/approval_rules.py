"""The `approvals:` section of reconcile.yaml: its problems worded (what the schema finds and
what it cannot say: a value the field cannot have, a team not in `teams:`, a count more than
the approvers), and each validated rule as its value (docs/approvals.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..approvals import ApprovalRule, Approver, When
from ..errors import Problem
from .project import Project
from .schema import _APPROVAL_KEYS, _WHEN_KEYS, _invalid_name


def _describe_approval(at: Callable[..., Problem], loc: tuple[Any, ...], kind: str) -> Problem:
    """A problem of `approvals:` worded for reconcile.yaml."""
    from ..model import FIELDS, PRIORITIES, SEVERITIES
    from ..rules import RULE_NAME_MAX
    from ..states.problems import unknown_key

    if len(loc) == 1:
        return at(loc, "approvals must be a mapping of rule name -> rule")
    rule = f"approval rule {loc[1]}"
    if len(loc) == 3 and loc[2] == "[key]":
        return at(loc[:2], _invalid_name("approval rule", loc[1], RULE_NAME_MAX), at_key=True)
    if len(loc) == 2:
        return at(loc, f"{rule} must be a mapping with when and approvers")
    part = loc[2]
    if kind == "extra_forbidden" and len(loc) == 3:
        return at(loc, unknown_key(part, _APPROVAL_KEYS, f"in {rule}"), at_key=True)
    if kind == "extra_forbidden" and len(loc) == 4 and part == "when":
        return at(loc, unknown_key(loc[3], _WHEN_KEYS, f"in the when of {rule}"), at_key=True)
    if kind == "missing" and len(loc) == 3:
        what = "when (which changes it covers)" if part == "when" else "approvers (who approves)"
        return at(loc[:2], f"{rule}: {what} is required", at_key=True)
    if part == "count":
        return at(loc, f"{rule}: count must be a whole number, 1 or more")
    if part == "approvers" and len(loc) == 3:
        return at(loc, f"{rule}: approvers must be a list of one or more logins or teams")
    if part == "approvers":
        return at(
            loc,
            f"{rule}: approvers[{loc[3]}] must be a GitHub login (login or @login) or a team "
            "(@org/team)",
        )
    if len(loc) == 3:  # when
        return at(loc, f"{rule}: when must be a mapping with at least field")
    key = loc[3]
    if key == "field" and kind == "missing":
        return at(loc[:3], f"{rule}: when.field is required", at_key=True)
    if key == "field":
        return at(loc, f"{rule}: when.field must be one of {', '.join(FIELDS)}")
    if key in ("before", "after"):
        return at(
            loc[:4],
            f"{rule}: when.{key} must be a field's value (a string, true, false, a number or null)",
        )
    if key == "priority":
        return at(loc[:4], f"{rule}: when.priority must be a list of {', '.join(PRIORITIES)}")
    if key == "severity":
        return at(loc[:4], f"{rule}: when.severity must be a list of {', '.join(SEVERITIES)}")
    return at(loc[:4], f"{rule}: when.team must be a team name or a list of team names")


def _approval_problems(path: str, text: str, model: Any, project: Project) -> list[Problem]:
    """What the schema cannot say about `approvals:`: a value the field cannot have, a team
    that is not in `teams:`, a login too long, and a count more than its approvers (when
    they are all users; a team's size is known only to GitHub)."""
    from ..model import is_desired_value, is_field_value
    from ..states.problems import position, rt_positions

    problems: list[Problem] = []
    root = None

    def at(loc: tuple[Any, ...], message: str) -> None:
        nonlocal root
        if root is None:
            root = rt_positions(text)
        problems.append(Problem(path, *position(root, loc, at_key=False), message))

    for name, given in (model.approvals or {}).items():
        rule, when = f"approval rule {name}", given["when"]
        base = ("approvals", name)
        for key, valid in (("before", is_field_value), ("after", is_desired_value)):
            if key in when and not valid(when["field"], when[key]):
                at((*base, "when", key), f"{rule}: {when[key]!r} is not a value of {when['field']}")
        teams = [when["team"]] if isinstance(when.get("team"), str) else when.get("team", [])
        for n, team in enumerate(teams):
            if team not in project.teams:
                where = (*base, "when", "team") + ((n,) if isinstance(when["team"], list) else ())
                known = ", ".join(project.teams) or "none: reconcile.yaml has no teams"
                at(where, f"{rule}: team {team} is not a team of reconcile.yaml ({known})")
        approvers = []
        for n, text_ in enumerate(given["approvers"]):
            try:
                approvers.append(Approver.parse(text_))
            except ValueError:
                at(
                    (*base, "approvers", n),
                    f"{rule}: approvers[{n}]: a login is at most 39 characters",
                )
        count = given.get("count", 1)
        users = {a.login_or_slug.lower() for a in approvers if not a.is_team}
        if approvers and all(not a.is_team for a in approvers) and count > len(users):
            at(
                (*base, "count"),
                f"{rule}: count {count} is more than the {len(users)} distinct users among its "
                "approvers",
            )
    return problems


def _approval_rule(name: str, given: Mapping[str, Any]) -> ApprovalRule:
    """A validated rule of `approvals:` as its value (an approver `_approval_problems`
    refuses is left out here: that problem stops the load)."""
    when = given["when"]
    team = when.get("team", ())
    approvers = []
    for text in given["approvers"]:
        try:
            approvers.append(Approver.parse(text))
        except ValueError:
            continue
    return ApprovalRule(
        name,
        When(
            field=when["field"],
            before=(when["before"],) if "before" in when else None,
            after=(when["after"],) if "after" in when else None,
            priority=tuple(when.get("priority", ())),
            severity=tuple(when.get("severity", ())),
            team=(team,) if isinstance(team, str) else tuple(team),
        ),
        tuple(dict.fromkeys(approvers)),
        given.get("count", 1),
    )
