"""A plan file's shown values (changes and drift, for the pull-request comment) are checked
with the one validator of field values, model.is_field_value (docs/plan-format.md, Keys)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import InvalidPlanError
from reconciler.planfile import digest, read_saved_plan, section_plan


def write(tmp_path: Path, drift: list[dict[str, Any]]) -> str:
    body: dict[str, Any] = {
        "format_version": 1,
        "created_at": "2026-01-01T00:00:00.000Z",
        "plan_id": "00000000-0000-4000-8000-000000000000",
        "team_id": None,
        "journal": {"location": "journal.jsonl", "lineage": None, "serial": 0},
        "inputs_digest": "sha256:x",
        "changes": [],
        "forget": [],
        "unmanaged": [],
        "operations": [],
        "summary": {"incidents": 1, "changed_incidents": 0, "changes": 0, "operations": 0},
        "drift": drift,
        "refresh": {},
        "unsafe": False,
        "warnings": [],
    }
    body["plan_digest"] = digest(body)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_a_drift_value_valid_for_its_field_is_shown(tmp_path: Path) -> None:
    drift = [{"incident": "a-1", "field": "priority", "journaled": "p2", "live": None}]
    plan = section_plan(read_saved_plan(write(tmp_path, drift)))
    assert [(d.incident, d.journaled, d.live) for d in plan.drift] == [("a-1", "p2", None)]


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "p1"), ("priority", "sev1"), ("severity", "resolved"), ("escalations", -1)],
)
def test_a_drift_value_of_another_field_is_refused(tmp_path: Path, field: str, value: Any) -> None:
    drift = [{"incident": "a-1", "field": field, "journaled": None, "live": value}]
    with pytest.raises(InvalidPlanError, match=r"drift\[0\] is malformed"):
        section_plan(read_saved_plan(write(tmp_path, drift)))


def test_a_drift_policy_is_shown_and_read_as_revert_when_absent(tmp_path: Path) -> None:
    drift = [
        {"incident": "a-1", "field": "status", "journaled": "acknowledged", "live": "triggered"},
        {"incident": "b-2", "field": "priority", "journaled": "p1", "live": "p3", "policy": "warn"},
    ]
    plan = section_plan(read_saved_plan(write(tmp_path, drift)))
    assert [d.policy for d in plan.drift] == ["revert", "warn"]


@pytest.mark.parametrize("policy", ["ignore", None, 1, "REVERT"])
def test_an_unknown_drift_policy_is_refused(tmp_path: Path, policy: Any) -> None:
    drift = [{"incident": "a-1", "field": "priority", "journaled": "p1", "live": "p3"}]
    drift[0]["policy"] = policy
    with pytest.raises(InvalidPlanError, match=r"drift\[0\] is malformed"):
        section_plan(read_saved_plan(write(tmp_path, drift)))
