"""Messages that lead somewhere (docs/cli.md): counted nouns, ids in a person's order,
lower-case `warning:`, and errors that say what to do next.

In-process through reconciler.cli.main; apply and refresh against the sandbox over loopback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import cli

from reconciler.wording import counted, natural_sorted


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("RECONCILE_JOURNAL", "RECONCILE_CONFIG", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


def write_states(incidents: dict[str, dict[str, Any]], folder: str = "states") -> Path:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / "s.yaml").write_text(json.dumps({"version": 1, "incidents": incidents}))
    return path


def test_counted_nouns_and_a_persons_order() -> None:
    assert [counted(n, "API call") for n in (0, 1, 2)] == [
        "0 API calls",
        "1 API call",
        "2 API calls",
    ]
    assert natural_sorted(["b-100", "b-10", "b-2", "b-1", "b-0"]) == [
        "b-0",
        "b-1",
        "b-2",
        "b-10",
        "b-100",
    ]


def test_validate_and_plan_count_one_thing_as_one() -> None:
    write_states({"b-1": {"status": "acknowledged"}})
    assert cli("validate") == (0, "1 file, 1 incident: valid.\n", "")
    _, out, _ = cli("plan")
    assert out.endswith("Plan: 1 change on 1 of 1 incident, 1 API call.\n")


def test_plan_text_lists_incidents_as_a_person_sorts_them() -> None:
    write_states({cid: {"status": "resolved"} for cid in ("b-100", "b-10", "b-2", "b-1", "b-0")})
    _, out, _ = cli("plan")
    blocks = [line.split()[2] for line in out.splitlines() if line.startswith("  ~ incident")]
    assert blocks == ["b-0", "b-1", "b-2", "b-10", "b-100"]


@pytest.mark.parametrize("flags", [(), ("--auto-approve",)])
def test_apply_of_a_missing_plan_file_says_so(flags: tuple[str, ...]) -> None:
    write_states({"b-1": {"status": "acknowledged"}})
    result = cli("apply", "nope.json", *flags)
    assert result == (1, "", "error: no such plan file: nope.json\n")
    assert not Path(".reconcile").exists()


#: Credentials for a Spike that is not there: a command that sends nothing needs no server.
NOWHERE = {"SPIKE_API_URL": "http://127.0.0.1:9/", "SPIKE_API_KEY": "k", "SPIKE_TEAM_ID": "t"}


def test_refresh_with_nothing_journaled_says_how_to_adopt_incidents() -> None:
    write_states({"b-1": {"status": "acknowledged"}})
    assert cli("refresh", env=NOWHERE) == (
        0,
        "Nothing to refresh: the journal records none of the incidents of the state files. "
        "Adopt incidents with `reconcile apply`, `reconcile refresh --id ID...` (their live "
        "values, into the journal) or `reconcile import ID... --to FILE` (into a state file "
        "too).\n",
        "",
    )
