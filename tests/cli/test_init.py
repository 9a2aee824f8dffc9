"""`reconcile init`: what it writes validates and plans (with and without teams), it never
overwrites a file, bad team names write nothing, and the packaged workflows are
examples/github's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli

REPO = Path(__file__).resolve().parents[2]
ENV: dict[str, str | None] = {"RECONCILE_CONFIG": None, "RECONCILE_JOURNAL": None}


def files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_init_writes_an_example_that_validates_and_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("init", env=ENV)
    assert (code, err) == (0, "")
    assert out == (
        "wrote states/example.yaml\n"
        "wrote schema/state-file.json\n"
        "Next: run `reconcile validate` and `reconcile plan`.\n"
    )
    example = (tmp_path / "states/example.yaml").read_text()
    assert example.startswith("# yaml-language-server: $schema=../schema/state-file.json\n")
    assert "#   pay-101:\n#     status: acknowledged" in example
    assert json.loads((tmp_path / "schema/state-file.json").read_text()) == json.loads(
        cli("schema").stdout
    )
    assert cli("validate", env=ENV) == (0, "1 file, 0 incidents: valid.\n", "")
    assert cli("plan", env=ENV) == (0, "No changes. 0 incidents match the journal.\n", "")
    assert cli("fmt", "--check", env=ENV).code == 0


def test_init_with_teams_and_github_validates_and_plans_every_team(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("init", "--teams", "payments, search", "--github", env=ENV)
    assert (code, err) == (0, "")
    assert out.splitlines()[:-1] == [
        "wrote reconcile.yaml",
        "wrote teams/payments/example.yaml",
        "wrote teams/search/example.yaml",
        "wrote schema/state-file.json",
        "wrote schema/reconcile.json",
        "wrote .github/workflows/reconcile-plan.yml",
        "wrote .github/workflows/reconcile-apply.yml",
        "wrote .pre-commit-config.yaml",
    ]
    project = (tmp_path / "reconcile.yaml").read_text()
    assert project.startswith("# yaml-language-server: $schema=schema/reconcile.json\n")
    assert "  search:\n    team_id: replace-with-the-search-team-id\n" in project
    example = (tmp_path / "teams/search/example.yaml").read_text()
    assert example.startswith("# yaml-language-server: $schema=../../schema/state-file.json\n")
    assert (tmp_path / ".github/workflows/reconcile-plan.yml").read_text() == (
        REPO / "examples/github/plan.yml"
    ).read_text()
    hooks = (tmp_path / ".pre-commit-config.yaml").read_text()
    assert "      - id: reconcile-validate\n        files: ^teams/.*\\.ya?ml$\n" in hooks
    assert cli("validate", env=ENV) == (0, "2 files, 0 incidents: valid.\n", "")
    code, out, err = cli("plan", env=ENV)
    assert (code, err) == (0, "")
    assert out.endswith("Total: no changes in 2 teams (0 incidents).\n")


def test_init_never_overwrites_a_file_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "states").mkdir()
    (tmp_path / "states/example.yaml").write_text("version: 1\n# mine\n")
    code, out, err = cli("init", env=ENV)
    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == [
        "wrote schema/state-file.json",
        "kept states/example.yaml (it exists)",
    ]
    assert (tmp_path / "states/example.yaml").read_text() == "version: 1\n# mine\n"
    before = files(tmp_path)
    code, out, _ = cli("init", env=ENV)
    assert code == 0
    assert out.splitlines()[:2] == [
        "kept states/example.yaml (it exists)",
        "kept schema/state-file.json (it exists)",
    ]
    assert files(tmp_path) == before


def test_github_after_init_in_a_teams_repository_adds_only_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("init", "--teams", "payments", env=ENV).code == 0
    code, out, _ = cli("init", "--github", env=ENV)
    assert code == 0
    # reconcile.yaml owns the state files: no states/ example beside the teams.
    assert not (tmp_path / "states").exists()
    assert "wrote .pre-commit-config.yaml" in out
    assert "files: ^teams/" in (tmp_path / ".pre-commit-config.yaml").read_text()
    assert cli("plan", env=ENV).code == 0


@pytest.mark.parametrize(
    ("teams", "message"),
    [
        ("Payments", "--teams: 'Payments' is not a team name: lowercase letters and digits"),
        ("a,,b", "--teams: '' is not a team name"),
        ("a,b,a", "--teams: a given twice"),
    ],
)
def test_a_bad_team_name_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, teams: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("init", "--teams", teams, env=ENV)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {message}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["plan.yml", "apply.yml"])
def test_the_packaged_workflows_are_the_examples(name: str) -> None:
    packaged = REPO / "reconciler/templates/github" / name
    assert packaged.read_text() == (REPO / "examples/github" / name).read_text()
