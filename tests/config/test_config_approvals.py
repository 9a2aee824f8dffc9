"""reconcile.yaml's `approvals:` (docs/approvals.md): a valid file loads as ApprovalRule
values; every malformed rule is an exact reconcile.yaml:LINE:COLUMN message, unknown keys
with a suggestion; the JSON Schema describes the section."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from reconciler.approvals import ApprovalRule, Approver, When
from reconciler.config import json_schema, load_project
from reconciler.errors import StateFileError


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


VALID = """\
version: 1
teams:
  ops: {team_id: T1}
approvals:
  public-pages:
    when: {field: public_sharing, after: true}
    approvers: ["@acme/comms", "@acme/legal", "dana", "@dana"]
  close-p1:
    when: {field: status, before: triggered, after: resolved, priority: [p1, p2], team: ops}
    approvers: ["@acme/incident-commanders"]
    count: 2
"""


def test_a_valid_section_loads_as_rules_in_name_order(here: Path) -> None:
    (here / "reconcile.yaml").write_text(VALID)
    project = load_project("reconcile.yaml")
    assert project.approvals == (
        ApprovalRule(
            "close-p1",
            When("status", ("triggered",), ("resolved",), ("p1", "p2"), (), ("ops",)),
            (Approver("incident-commanders", "acme"),),
            2,
        ),
        ApprovalRule(
            "public-pages",
            When("public_sharing", after=(True,)),
            # @dana and dana are one approver
            (Approver("comms", "acme"), Approver("legal", "acme"), Approver("dana")),
            1,
        ),
    )


def test_without_the_section_there_are_no_rules(here: Path) -> None:
    (here / "reconcile.yaml").write_text("version: 1\n")
    assert load_project("reconcile.yaml").approvals == ()


MALFORMED: dict[str, tuple[str, list[str]]] = {
    "schema": (
        """\
version: 1
approvals:
  bad:
    whem: {}
    approvers: ["x/y", "@ok"]
  Bad-Name: {when: {field: status}, approvers: [a]}
  wrong:
    when: {field: sharing, after: [1], priorty: [p1], severity: [sev9], team: [1]}
    approvers: []
    count: 0
  nothing: {}
""",
        [
            "3:3: approval rule bad: when (which changes it covers) is required",
            "4:5: unknown key 'whem' in approval rule bad; did you mean 'when'? "
            "(valid: when, approvers, count)",
            "5:17: approval rule bad: approvers[0] must be a GitHub login (login or @login) "
            "or a team (@org/team)",
            "6:3: invalid approval rule name 'Bad-Name': names are lowercase letters and "
            "digits, groups joined by single hyphens, at most 64 characters",
            "8:19: approval rule wrong: when.field must be one of status, priority, severity, "
            "public_sharing, escalations",
            "8:35: approval rule wrong: when.after must be a field's value (a string, true, "
            "false, a number or null)",
            "8:40: unknown key 'priorty' in the when of approval rule wrong; did you mean "
            "'priority'? (valid: field, before, after, priority, severity, team)",
            "8:65: approval rule wrong: when.severity must be a list of sev1, sev2, sev3",
            "8:79: approval rule wrong: when.team must be a team name or a list of team names",
            "9:16: approval rule wrong: approvers must be a list of one or more logins or teams",
            "10:12: approval rule wrong: count must be a whole number, 1 or more",
            "11:3: approval rule nothing: approvers (who approves) is required",
            "11:3: approval rule nothing: when (which changes it covers) is required",
        ],
    ),
    "values": (
        """\
version: 1
teams:
  ops: {team_id: T1}
approvals:
  wrong:
    when: {field: public_sharing, after: resolved, team: web}
    approvers: [dana, "@Dana"]
    count: 2
  values:
    when: {field: escalations, after: 1000, before: -1, team: [ops, x]}
    approvers: [aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, "@a/b"]
    count: 3
""",
        [
            "6:42: approval rule wrong: 'resolved' is not a value of public_sharing",
            "6:58: approval rule wrong: team web is not a team of reconcile.yaml (ops)",
            "8:12: approval rule wrong: count 2 is more than the 1 distinct users among its "
            "approvers",
            "10:39: approval rule values: 1000 is not a value of escalations",
            "10:53: approval rule values: -1 is not a value of escalations",
            "10:69: approval rule values: team x is not a team of reconcile.yaml (ops)",
            "11:17: approval rule values: approvers[0]: a login is at most 39 characters",
        ],
    ),
    "team-without-teams": (
        "version: 1\napprovals:\n  r: {when: {field: status, team: ops}, approvers: [a]}\n",
        [
            "3:35: approval rule r: team ops is not a team of reconcile.yaml (none: "
            "reconcile.yaml has no teams)"
        ],
    ),
    "not-a-mapping": (
        "version: 1\napprovals: [a]\n",
        ["2:12: approvals must be a mapping of rule name -> rule"],
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_rules_are_every_problem_at_its_place(here: Path, case: str) -> None:
    text, expected = MALFORMED[case]
    (here / "reconcile.yaml").write_text(text)
    with pytest.raises(StateFileError) as caught:
        load_project("reconcile.yaml")
    assert str(caught.value).splitlines() == [f"reconcile.yaml:{line}" for line in expected]


def test_the_schema_accepts_the_valid_section_and_refuses_a_bad_approver() -> None:
    from ruamel.yaml import YAML

    schema = json_schema()
    jsonschema.validate(YAML(typ="safe").load(VALID), schema)
    bad = YAML(typ="safe").load(VALID.replace('"dana"', '"x/y"'))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    rules = schema["properties"]["approvals"]["anyOf"][0]
    assert rules["additionalProperties"] == {"$ref": "#/$defs/Approval"}
    assert json.dumps(schema["$defs"]["Approval"]["required"]) == '["when", "approvers"]'
