"""The composite action (action.yml): its steps' scripts run with bash as the runner runs them
(`bash --noprofile --norc -eo pipefail`), with the env the step declares, against the sandbox
and the fake GitHub. The install step is not run (it would build the package); its venv is a
link to the reconcile under test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github_fake import MARK, REPO, TOKEN, FakeGitHub, serve_fake_github
from helpers import KEY, TEAM, write_states
from ruamel.yaml import YAML

from reconciler.planfile import read_saved_plan
from reconciler.sandbox import SandboxServer

ROOT = Path(__file__).resolve().parents[2]
ACTION = YAML(typ="safe").load((ROOT / "action.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def step(name: str) -> dict[str, Any]:
    [found] = [s for s in ACTION["runs"]["steps"] if s["name"] == name]
    return dict(found)


class Runner:
    """A job's files and variables: RUNNER_TEMP, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.temp = root / "runner-temp"
        (self.temp / "spike-reconcile-venv" / "bin").mkdir(parents=True)
        (self.temp / "spike-reconcile-venv" / "bin" / "reconcile").symlink_to(
            Path(sys.executable).with_name("reconcile")
        )
        self.output = root / "github-output"
        self.summary = root / "step-summary"
        self.output.touch()
        self.summary.touch()
        self.workspace = root / "workspace"
        self.workspace.mkdir()
        self.pull_request = True  # the event: pull_request, or push when False

    def run(
        self, name: str, inputs: dict[str, str], extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run step `name`: its env evaluated from `inputs` (and a pull_request event)."""
        spec = step(name)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.root),
            "RUNNER_TEMP": str(self.temp),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            **(extra_env or {}),
        }
        for key, value in spec.get("env", {}).items():
            env[key] = EXPRESSION.sub(lambda m: self.evaluate(m[1], inputs), value)
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", spec["run"]],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def evaluate(self, expression: str, inputs: dict[str, str]) -> str:
        """The few expressions the action's env uses."""
        event = {
            "github.event.pull_request.number": "7",
            "github.event.pull_request.head.sha": "c0ffee" * 6 + "c0ff",
        }
        context = {
            **(event if self.pull_request else {}),
            "github.action_path": str(ROOT),
            **{f"inputs.{k}": v for k, v in inputs.items()},
            **{f"steps.plan.outputs.{k}": v for k, v in self.outputs().items()},
        }
        alternatives = [part.strip() for part in expression.split("||")]
        defaults = {f"inputs.{k}": v.get("default", "") for k, v in ACTION["inputs"].items()}
        for part in alternatives:
            value = context.get(part, defaults.get(part, ""))
            if value:
                return value
        return ""

    def outputs(self) -> dict[str, str]:
        lines = self.output.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_fake_github() as fake:
        yield fake


def test_no_step_interpolates_an_expression_into_a_script() -> None:
    for spec in ACTION["runs"]["steps"]:
        assert "${{" not in spec.get("run", ""), spec["name"]
        assert spec["shell"] == "bash"


def tiny_wheel(folder: Path) -> Path:
    """A wheel with one empty module: something pip installs offline, fast."""
    import base64
    import hashlib
    import zipfile

    files = {
        "tiny/__init__.py": b"",
        "tiny-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tiny\nVersion: 0.1\n",
        "tiny-0.1.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for name, data in files.items()
    ]
    files["tiny-0.1.dist-info/RECORD"] = "\n".join(
        [*record, "tiny-0.1.dist-info/RECORD,,"]
    ).encode()
    wheel = folder / "tiny-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def test_the_install_step_never_runs_python_files_of_the_checked_out_repository(
    runner: Runner,
) -> None:
    # The step runs in the workspace, the repository under review: `python3 -m venv` there
    # would import its venv.py, and `python -m pip` its pip.py.
    for name in ("venv", "pip"):
        (runner.workspace / f"{name}.py").write_text(
            f"open('ran-{name}.py', 'w').close()\nraise SystemExit(3)\n"
        )
    done = install(runner)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "does not provide the extra" not in done.stderr
    assert sorted(p.name for p in runner.workspace.iterdir()) == ["pip.py", "venv.py"]
    venv_python = runner.temp / "fresh" / "spike-reconcile-venv" / "bin" / "python"
    assert subprocess.run([venv_python, "-c", "import tiny"], check=False).returncode == 0


def install(
    runner: Runner, journal: str = "", config: str = ""
) -> subprocess.CompletedProcess[str]:
    """The install step, run for real with a tiny wheel for the action (the action itself
    would take a build)."""
    spec = step("Install reconcile")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(runner.root),
        "RUNNER_TEMP": str(runner.temp / "fresh"),
        "ACTION_PATH": str(tiny_wheel(runner.root)),
        "RECONCILE_JOURNAL": journal,
        "RECONCILE_CONFIG": config,
    }
    assert set(spec["env"]) == {"ACTION_PATH", "RECONCILE_JOURNAL", "RECONCILE_CONFIG"}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", spec["run"]],
        cwd=runner.workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_project_file_with_a_postgresql_journal_installs_the_postgres_extra(
    runner: Runner,
) -> None:
    (runner.workspace / "ops").mkdir()
    (runner.workspace / "ops" / "reconcile.yaml").write_text(
        "version: 1\nteams:\n  a:\n    team_id: x\n    journal: postgresql://db/spike\n"
    )
    done = install(runner, config="ops/reconcile.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    # The tiny wheel has no such extra: pip says it was asked for.
    assert "tiny 0.1 does not provide the extra 'postgres'" in done.stderr


def test_an_unknown_command_stops_the_action(runner: Runner) -> None:
    done = runner.run("Check the inputs", {"command": "destroy"})
    assert done.returncode == 1
    assert done.stdout == "::error::command must be plan, apply, comment or approvals\n"
    done = runner.run("Check the inputs", {"command": "comment"})
    assert done.returncode == 1
    assert done.stdout == "::error::command: comment needs plan-file\n"
    runner.pull_request = False
    done = runner.run("Check the inputs", {"command": "comment", "plan-file": "p.json"})
    assert done.returncode == 1
    assert done.stdout == "::error::command: comment runs only for pull_request events\n"
    runner.pull_request = True
    assert runner.run("Check the inputs", {"command": "plan"}).returncode == 0


def test_plan_saves_the_plan_writes_the_summary_and_sets_the_outputs(runner: Runner) -> None:
    write_states(runner.workspace / "states", {"a-1": {"status": "acknowledged"}})
    done = runner.run("Plan", {"command": "plan"})
    assert done.returncode == 0, done.stderr
    plan_file = runner.temp / "spike-reconcile-plan.json"
    assert runner.outputs() == {"has-changes": "true", "plan-file": str(plan_file)}
    assert read_saved_plan(str(plan_file)).operations[0].path == "/incidents/acknowledge"
    summary = runner.summary.read_text()
    assert summary.startswith("### spike-reconcile plan\n")
    assert "| `a-1` | status | (unknown) | acknowledged |" in summary
    assert done.stdout == summary  # the log shows what the summary shows


def test_plan_without_changes_says_false(runner: Runner) -> None:
    write_states(runner.workspace / "states", {})
    done = runner.run("Plan", {"command": "plan", "plan-file": "p.json"})
    assert done.returncode == 0, done.stderr
    assert runner.outputs() == {"has-changes": "false", "plan-file": "p.json"}
    assert "**No changes. 0 incidents match the journal.**" in runner.summary.read_text()


def test_plan_passes_paths_and_args_as_words_never_as_code(runner: Runner) -> None:
    write_states(runner.workspace / "one", {"a-1": {"priority": "p1"}, "b-2": {"priority": "p2"}})
    done = runner.run(
        "Plan",
        {"command": "plan", "paths": "one", "args": "--target b-2 --batch-size 5"},
    )
    assert done.returncode == 0, done.stderr
    plan = read_saved_plan(runner.outputs()["plan-file"])
    assert [op.body for op in plan.operations] == [{"ids": ["b-2"], "priority": "p2"}]

    hostile = "one $(touch pwned) `touch pwned2`; touch pwned3"
    done = runner.run("Plan", {"command": "plan", "paths": hostile})
    assert done.returncode == 1
    assert not list(runner.workspace.glob("pwned*"))


def test_a_bad_state_file_fails_the_plan_step_with_its_position(runner: Runner) -> None:
    (runner.workspace / "states").mkdir()
    (runner.workspace / "states" / "a.yaml").write_text("incidents:\n  a-1:\n    status: open\n")
    done = runner.run("Plan", {"command": "plan"})
    assert done.returncode == 1
    assert "states/a.yaml:3:13: " in done.stderr
    assert runner.outputs() == {}


def test_plan_then_comment_creates_one_comment_and_updates_it(
    runner: Runner, github: FakeGitHub
) -> None:
    env = {"GITHUB_API_URL": github.url, "GITHUB_REPOSITORY": REPO}
    inputs = {"command": "plan", "github-token": TOKEN}
    write_states(runner.workspace / "states", {"a-1": {"severity": "sev1"}})
    assert runner.run("Plan", inputs).returncode == 0
    done = runner.run("Comment on the pull request", inputs, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Created the plan comment on #7: ")

    write_states(runner.workspace / "states", {"a-1": {"severity": "sev2"}})
    assert runner.run("Plan", inputs).returncode == 0
    done = runner.run("Comment on the pull request", inputs, env)
    assert done.returncode == 0, done.stderr
    [comment] = github.ours(7)
    assert comment["body"].startswith(MARK)
    assert "| `a-1` | severity | (unknown) | sev2 |" in comment["body"]
    assert "commit `c0ffeec0ffee`" in comment["body"]
    assert TOKEN not in done.stdout + done.stderr
    # The first run lists again right before it creates; the second asks whose the marked
    # comment is (GET /user: 403 for the Actions token).
    assert [(m, p.split("?")[0]) for m, p, _ in github.requests] == [
        ("GET", "/repos/octo/states/issues/7/comments"),
        ("GET", "/repos/octo/states/issues/7/comments"),
        ("POST", "/repos/octo/states/issues/7/comments"),
        ("GET", "/repos/octo/states/issues/7/comments"),
        ("GET", "/user"),
        ("PATCH", f"/repos/octo/states/issues/comments/{comment['id']}"),
    ]


def test_the_approvals_command_checks_the_plan_on_the_pull_request(
    runner: Runner, github: FakeGitHub
) -> None:
    (runner.workspace / "reconcile.yaml").write_text(
        "version: 1\napprovals:\n  public:\n"
        "    when: {field: public_sharing, after: true}\n    approvers: [dana]\n"
    )
    write_states(runner.workspace / "states", {"a-1": {"public_sharing": True}})
    env = {"GITHUB_API_URL": github.url, "GITHUB_REPOSITORY": REPO}
    inputs = {"command": "approvals", "github-token": TOKEN, "plan-file": "p.json"}
    planned = runner.run("Plan", {"command": "plan", "paths": "states", "plan-file": "p.json"})
    assert planned.returncode == 0, planned.stderr
    github.add_pull(7, "erin")
    done = runner.run("Check the approvals", inputs, env)
    assert done.returncode == 1
    assert "  public: not met: 0 of 1 approval on the head commit; 1 more from: dana" in done.stdout
    github.review(7, "dana", "APPROVED")
    done = runner.run("Check the approvals", inputs, env)
    assert done.returncode == 0, done.stderr
    assert "  public: met, approved by dana" in done.stdout
    assert TOKEN not in done.stdout + done.stderr


def test_apply_applies_the_saved_plan_and_writes_the_result(runner: Runner) -> None:
    write_states(runner.workspace / "states", {"a-1": {"status": "resolved"}})
    # A plan is for the team it is planned as (docs/trust.md): the plan step gets the team id.
    planned = runner.run("Plan", {"command": "plan"}, {"SPIKE_TEAM_ID": TEAM})
    assert planned.returncode == 0
    plan_file = runner.outputs()["plan-file"]
    with SandboxServer({"a-1": {}}, api_key=KEY, team_id=TEAM) as server:
        spike = {"SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY, "SPIKE_TEAM_ID": TEAM}
        done = runner.run("Apply", {"command": "apply", "plan-file": plan_file}, spike)
        assert done.returncode == 0, done.stderr
        assert server.incidents()["a-1"]["status"] == "RES"
        again = runner.run("Apply", {"command": "apply", "plan-file": plan_file}, spike)
    assert "Apply complete: 1 API call applied." in done.stdout
    summary = runner.summary.read_text()
    assert "### spike-reconcile apply\n\n```\n" in summary
    assert "Apply complete: 1 API call applied.\n```\n" in summary
    journal = runner.workspace / ".reconcile" / "journal.jsonl"
    assert '"path": "/incidents/resolve"' in journal.read_text().replace('":"', '": "')
    # The journal recorded the plan: it is applied once; the step fails and the summary says why.
    assert again.returncode == 1
    assert "was already applied to this journal" in again.stdout
    assert f"error: {plan_file}: plan " in runner.summary.read_text()
    assert KEY not in done.stdout + done.stderr + runner.summary.read_text()


def test_apply_without_a_plan_file_plans_the_paths_and_applies(runner: Runner) -> None:
    write_states(runner.workspace / "states", {"a-1": {"priority": "p4"}})
    with SandboxServer({"a-1": {}}, api_key="wrong", team_id=TEAM) as server:
        spike = {"SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY, "SPIKE_TEAM_ID": TEAM}
        done = runner.run("Apply", {"command": "apply"}, spike)
    # Credentials refused: the step fails, and the summary still tells what happened.
    assert done.returncode == 1
    summary = runner.summary.read_text()
    assert summary.startswith("### spike-reconcile apply\n\n```\n")
    assert "Credentials refused" in summary
    assert KEY not in summary + done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# With a project file (docs/teams.md): no default path, so every team is planned and applied


def recording_reconcile(runner: Runner) -> Path:
    """Replace the venv's reconcile with a script that records its arguments (one a line)
    and RECONCILE_CONFIG, and succeeds: what the steps pass, whatever the CLI does with it."""
    record = runner.root / "argv"
    fake = runner.temp / "spike-reconcile-venv" / "bin" / "reconcile"
    fake.unlink()
    fake.write_text(
        "#!/bin/bash\n"
        f"printf '%s\\n' \"$@\" > '{record}'\n"
        f"printf 'config=%s\\n' \"${{RECONCILE_CONFIG-unset}}\" >> '{record}'\n"
    )
    fake.chmod(0o755)
    return record


def passed(record: Path) -> list[str]:
    return record.read_text().splitlines()


def test_without_a_project_file_the_default_path_is_states(runner: Runner) -> None:
    record = recording_reconcile(runner)
    assert runner.run("Plan", {"command": "plan"}).returncode == 0
    assert passed(record)[:2] == ["plan", "states"]
    assert runner.run("Apply", {"command": "apply"}).returncode == 0
    assert passed(record) == ["apply", "states", "--auto-approve", "--no-color", "config="]


def test_a_reconcile_yaml_plans_and_applies_every_team(runner: Runner) -> None:
    record = recording_reconcile(runner)
    (runner.workspace / "reconcile.yaml").write_text("version: 1\n")
    assert runner.run("Plan", {"command": "plan"}).returncode == 0
    plan_file = str(runner.temp / "spike-reconcile-plan.json")
    assert passed(record) == [
        "plan",
        "--out",
        plan_file,
        "--format",
        "markdown",
        "--detailed-exitcode",
        "--no-color",
        "config=",
    ]
    assert runner.run("Apply", {"command": "apply"}).returncode == 0
    assert passed(record) == ["apply", "--auto-approve", "--no-color", "config="]
    # Paths given on purpose still narrow the run.
    assert runner.run("Apply", {"command": "apply", "paths": "teams/payments"}).returncode == 0
    assert passed(record) == ["apply", "teams/payments", "--auto-approve", "--no-color", "config="]


def test_the_config_input_reaches_reconcile_as_a_variable_never_as_code(runner: Runner) -> None:
    record = recording_reconcile(runner)
    assert runner.run("Plan", {"command": "plan", "config": "ops/reconcile.yaml"}).returncode == 0
    assert passed(record)[:2] == ["plan", "--out"]
    assert passed(record)[-1] == "config=ops/reconcile.yaml"
    hostile = "x.yaml $(touch pwned) `touch pwned2`; touch pwned3"
    assert runner.run("Apply", {"command": "apply", "config": hostile}).returncode == 0
    assert passed(record) == ["apply", "--auto-approve", "--no-color", f"config={hostile}"]
    assert not list(runner.workspace.glob("pwned*"))
