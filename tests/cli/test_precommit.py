"""The pre-commit hook (.pre-commit-hooks.yaml): its entry run as pre-commit runs it, in a
states repository, against good and bad files."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def hook() -> dict[str, Any]:
    hooks = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())
    [found] = [h for h in hooks if h["id"] == "reconcile-validate"]
    return dict(found)


def run_hook(repo: Path, staged: list[str]) -> subprocess.CompletedProcess[str]:
    """What pre-commit does: entry + args (+ the staged files that match `files`, when it
    passes file names), run at the repository root with the hook's environment on PATH."""
    spec = hook()
    matching = [f for f in staged if re.search(spec["files"], f)]
    assert matching, "pre-commit would not run the hook at all"
    command = shlex.split(spec["entry"]) + list(spec.get("args", []))
    if spec.get("pass_filenames", True):
        command += matching
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", NO_COLOR="1")
    return subprocess.run(
        command, cwd=repo, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_hook_is_declared_as_the_issue_asks() -> None:
    spec = hook()
    assert spec["entry"] == "reconcile validate"
    assert spec["language"] == "python"
    pattern = re.compile(spec["files"])
    assert pattern.search("states/payments.yaml")
    assert pattern.search("states/team/a.yml")
    assert not pattern.search("other/payments.yaml")
    assert not pattern.search("states/README.md")
    assert not pattern.search(".github/workflows/plan.yml")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "states" / "team").mkdir(parents=True)
    (tmp_path / "states" / "a.yaml").write_text(
        "incidents:\n  pay-1:\n    status: acknowledged\n    priority: p2\n"
    )
    (tmp_path / "states" / "team" / "b.yml").write_text(
        "incidents:\n  '116':\n    severity: null\n"
    )
    return tmp_path


def test_good_files_pass(repo: Path) -> None:
    done = run_hook(repo, ["states/a.yaml"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2 files, 2 incidents: valid.\n"


def test_a_bad_file_fails_with_its_position(repo: Path) -> None:
    (repo / "states" / "a.yaml").write_text("incidents:\n  pay-1:\n    priorty: p2\n")
    done = run_hook(repo, ["states/a.yaml"])
    assert done.returncode == 1
    assert "states/a.yaml:3:5: " in done.stderr
    assert "priority" in done.stderr  # the nearest valid key
    assert "Traceback" not in done.stderr


def test_a_duplicate_id_in_an_unstaged_file_is_caught(repo: Path) -> None:
    """Only b.yml is staged, but the id it adds is already in a.yaml: both places named."""
    (repo / "states" / "team" / "b.yml").write_text("incidents:\n  pay-1:\n    status: resolved\n")
    done = run_hook(repo, ["states/team/b.yml"])
    assert done.returncode == 1
    assert "states/a.yaml:2:3" in done.stderr
    assert "states/team/b.yml:2:3" in done.stderr
