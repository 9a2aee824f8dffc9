"""Plans say who must approve (docs/approvals.md, docs/plan-format.md): the plan JSON's
`approvals` (format 1 and format 2, only with approval rules), under the digest and the
signature; the text plan's short section; the comment's "Needs approval" at the top, escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli

from reconciler.errors import InvalidPlanError
from reconciler.planfile import digest, read_plan_file, read_saved_plan

RULES = """\
approvals:
  public-pages:
    when: {field: public_sharing, after: true}
    approvers: ["@acme/comms", "dana"]
  close-p1:
    when: {field: status, after: resolved, priority: [p1, p2]}
    approvers: ["@acme/incident-commanders"]
    count: 1
"""
STATES = """\
incidents:
  a-1: {public_sharing: true, priority: p1, status: resolved}
  a-2: {status: resolved, priority: p4}
"""
NEEDS = [
    {
        "rule": "close-p1",
        "approvers": ["@acme/incident-commanders"],
        "count": 1,
        "changes": [
            {
                "incident": "a-1",
                "field": "status",
                "before": None,
                "after": "resolved",
                "before_known": False,
            }
        ],
    },
    {
        "rule": "public-pages",
        "approvers": ["@acme/comms", "dana"],
        "count": 1,
        "changes": [
            {
                "incident": "a-1",
                "field": "public_sharing",
                "before": None,
                "after": True,
                "before_known": False,
            }
        ],
    },
]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("RECONCILE_JOURNAL", "RECONCILE_CONFIG", "RECONCILE_PLAN_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPIKE_TEAM_ID", "T1")
    (tmp_path / "states").mkdir()
    (tmp_path / "states" / "s.yaml").write_text(STATES)
    return tmp_path


def test_a_plan_names_the_approvals_its_changes_need(here: Path) -> None:
    (here / "reconcile.yaml").write_text("version: 1\n" + RULES)
    code, out, err = cli("plan", "--out", "plan.json", "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["approvals"] == NEEDS
    saved = read_saved_plan("plan.json")
    assert [n.to_json() for n in saved.approvals] == NEEDS


def test_without_approval_rules_the_plan_is_byte_identical(here: Path) -> None:
    _, without, _ = cli("plan", "--format", "json")
    (here / "reconcile.yaml").write_text(
        "version: 1\napprovals:\n  r: {when: {field: severity}, approvers: [dana]}\n"
    )
    _, with_rules, _ = cli("plan", "--format", "json")
    assert "approvals" not in json.loads(without)
    # A rule that covers no change adds nothing either.
    assert _stable(with_rules) == _stable(without)


def _stable(text: str) -> list[str]:
    """A plan's lines but those that differ between two plans (its time, id and digest)."""
    return [
        line for line in text.splitlines() if '"created_at"' not in line and "plan_" not in line
    ]


def test_the_approvals_are_under_the_digest(here: Path) -> None:
    (here / "reconcile.yaml").write_text("version: 1\n" + RULES)
    cli("plan", "--out", "plan.json")
    body = json.loads((here / "plan.json").read_text())
    assert body["plan_digest"] == digest(body)
    body["approvals"] = body["approvals"][1:]  # drop the close-p1 approval
    (here / "plan.json").write_text(json.dumps(body))
    with pytest.raises(InvalidPlanError, match="plan_digest does not match"):
        read_saved_plan("plan.json")
    body["approvals"] = [{**NEEDS[0], "approvers": ["x/y"]}]
    body["plan_digest"] = digest(body)
    (here / "plan.json").write_text(json.dumps(body))
    with pytest.raises(InvalidPlanError, match=r"approvals\[0\] is malformed: an approver"):
        read_saved_plan("plan.json")


def test_a_plan_of_teams_carries_each_teams_approvals(here: Path) -> None:
    (here / "teams" / "web").mkdir(parents=True)
    (here / "teams" / "ops").mkdir()
    (here / "states" / "s.yaml").rename(here / "teams" / "web" / "s.yaml")
    (here / "reconcile.yaml").write_text(
        "version: 1\nteams:\n  web: {team_id: T1}\n  ops: {team_id: T2}\n"
        + RULES.replace("priority: [p1, p2]}", "priority: [p1, p2], team: ops}")
    )
    code, _, err = cli("plan", "--out", "plan.json")
    assert code == 0, err
    saved = read_plan_file("plan.json")
    assert [n.rule for n in saved.teams["web"].plan.approvals] == ["public-pages"]  # type: ignore[union-attr]
    body = json.loads((here / "plan.json").read_text())
    # close-p1 is for team ops only: web's resolve of a p1 needs no incident commander.
    assert body["teams"]["web"]["approvals"] == NEEDS[1:]
    assert "approvals" not in body["teams"]["ops"]
    markdown = cli("plan", "--format", "markdown").stdout
    # At the top of the comment, once, not in the team's section.
    top, rest = markdown.split("**Plan: ", 1)
    assert "> - **public-pages**: 1 approval of \\@\u200bacme/comms, dana\n" in top
    assert "Needs approval" not in rest and "close-p1" not in markdown


def test_text_and_markdown_show_who_and_which_changes(here: Path) -> None:
    (here / "reconcile.yaml").write_text("version: 1\n" + RULES)
    text = cli("plan").stdout
    assert text.split("Needs approval", 1)[1] == (
        " (reconcile approvals checks the pull request's reviews):\n"
        "  ! close-p1: 1 approval of @acme/incident-commanders\n"
        "      a-1 status (unknown) -> resolved\n"
        "  ! public-pages: 1 approval of @acme/comms, dana\n"
        "      a-1 public_sharing (unknown) -> true\n"
        "\n"
        "Plan: 5 changes on 2 of 2 incidents, 4 API calls.\n"
    )
    markdown = cli("plan", "--format", "markdown").stdout
    head = markdown.split("**Plan: 5 changes", 1)[0]
    assert head == (
        "### spike-reconcile plan\n\n"
        "> [!IMPORTANT]\n"
        "> **Needs approval** (a review of this pull request's head commit):\n"
        "> - **close-p1**: 1 approval of \\@\u200bacme/incident-commanders\n"
        ">   `a-1` status \\(unknown\\) -\\> resolved\n"
        "> - **public-pages**: 1 approval of \\@\u200bacme/comms, dana\n"
        ">   `a-1` public\\_sharing \\(unknown\\) -\\> true\n"
        "\n"
    )
    # The approvers are shown, never @mentioned: no team is pinged by a plan comment.
    assert "@acme" not in markdown
