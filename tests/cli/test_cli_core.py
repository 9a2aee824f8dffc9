"""The network-free commands (docs/cli.md): validate, plan, show, log, schema.

In-process through reconciler.cli.main (stdout and stderr apart), plus real processes of the
installed `reconcile` for the end-to-end path and for color on a terminal.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import RECONCILE, CliRun, cli, plan

from reconciler.github import COMMENT_LIMIT as GITHUB_COMMENT_LIMIT
from reconciler.journal.file import FileJournal
from reconciler.model import Operation
from reconciler.planfile import digest
from reconciler.states.loader import load

REPO = Path(__file__).resolve().parents[2]
STATES = REPO / "states"
ANSI = "\x1b["


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes a journal it did not make, whatever the caller's env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILE_JOURNAL", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)


def write_states(folder: Path, incidents: dict[str, dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "s.yaml").write_text(json.dumps({"incidents": incidents}))  # JSON is YAML
    return folder


def apply_all(states: Path, journal: Path) -> None:
    """Journal a plan of `states` as if every call succeeded (what apply records)."""
    state = FileJournal(journal).read()
    made = plan(load([states]).incidents, state.incidents)
    with FileJournal(journal).open_for_apply(0, "test") as writer:
        for op in made.operations:
            writer.applied(op, "sha256:test")
        writer.forget(made.forget, "sha256:test")
        writer.unmanage(made.unmanaged, "sha256:test")


def plan_cli(*args: str, journal: Path) -> CliRun:
    return cli("plan", *args, "--journal", str(journal))


# ---------------------------------------------------------------------------------------------
# validate


def test_validate_defaults_to_states_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    result = cli("validate")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == "4 files, 40 incidents: valid.\n"


def test_validate_reports_problems_on_stderr_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("incidents:\n  a:\n    status: open\n")
    result = cli("validate", str(tmp_path / "s.yaml"))
    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"{tmp_path / 's.yaml'}:3:13: incident a: status must be one of triggered, "
        "acknowledged, resolved\nerror: 1 problem in the state files\n"
    )


# ---------------------------------------------------------------------------------------------
# plan: formats


def test_plan_text_on_the_bundled_states(tmp_path: Path) -> None:
    result = plan_cli(str(STATES), journal=tmp_path / "j.jsonl")
    assert (result.code, result.stderr) == (0, "")
    out = result.stdout
    assert out.startswith("Changes to incidents (before -> after):\n\n  ~ incident 0042  (")
    assert f"  ~ incident pay-101  ({STATES / 'payments.yaml'})\n" in out
    assert "      status:         (unknown) -> acknowledged\n" in out
    assert "      priority:       (unknown) -> none\n" in out  # pay-105: priority null
    assert "API calls, in order:\n   1. POST /incidents/acknowledge  ids=[0042, " in out
    assert re.search(r"\n  \d+\. POST /incidents/resolve  ids=\[116, 204, chk-203, ", out)
    assert out.endswith("Plan: 135 changes on 39 of 40 incidents, 36 API calls.\n")
    assert ANSI not in out


def test_plan_json_is_the_plan_file_format(tmp_path: Path) -> None:
    result = plan_cli(str(STATES), "--format", "json", journal=tmp_path / "j.jsonl")
    assert result.code == 0
    body = json.loads(result.stdout)
    assert list(body)[:2] == ["format_version", "created_at"]
    assert body["format_version"] == 1
    assert body["journal"] == {"location": str(tmp_path / "j.jsonl"), "lineage": None, "serial": 0}
    assert body["inputs_digest"] == load([STATES]).inputs_digest
    assert body["summary"] == {
        "incidents": 40,
        "changed_incidents": 39,
        "changes": 135,
        "operations": 36,
    }
    assert body["plan_digest"] == digest(body)
    assert body["changes"][0] == {
        "incident": "0042",
        "field": "status",
        "before": None,
        "after": "acknowledged",
        "before_known": False,
    }
    assert body["operations"][0] == {
        "method": "POST",
        "path": "/incidents/acknowledge",
        "body": {"ids": sorted(body["operations"][0]["body"]["ids"])},
    }
    assert (body["unsafe"], body["warnings"], body["forget"]) == (False, [], [])


def test_plan_json_is_byte_identical_but_for_created_at_and_plan_id(tmp_path: Path) -> None:
    from reconciler.planfile import digest

    journal = tmp_path / "j.jsonl"
    first = plan_cli(str(STATES), "--format", "json", journal=journal).stdout
    second = plan_cli(str(STATES), "--format", "json", journal=journal).stdout
    # The plan id is random, and the digest covers it (docs/plan-format.md, Determinism).
    strip = re.compile(r'^  "(created_at|plan_id|plan_digest)": ".*",?\n', re.MULTILINE)
    assert strip.sub("", first) == strip.sub("", second)
    assert len(strip.findall(first)) == 3
    one, two = json.loads(first), json.loads(second)
    assert one["plan_id"] != two["plan_id"]
    assert digest({**two, "plan_id": one["plan_id"]}) == one["plan_digest"]


def test_plan_markdown(tmp_path: Path) -> None:
    result = plan_cli(str(STATES), "--format", "markdown", journal=tmp_path / "j.jsonl")
    assert result.code == 0
    out = result.stdout
    assert out.startswith(
        "### spike-reconcile plan\n\n**Plan: 135 changes on 39 of 40 incidents, 36 API calls.**\n"
    )
    assert "| incident | field | before | after |\n| --- | --- | --- | --- |\n" in out
    assert "| `pay-105` | priority | (unknown) | none |\n" in out
    assert "<details><summary>36 API calls, in order</summary>\n" in out
    assert "1. `POST /incidents/acknowledge  ids=[0042, " in out
    assert out.endswith("</details>\n")
    assert "Truncated" not in out


def test_a_markdown_plan_of_20000_changes_fits_a_github_comment(tmp_path: Path) -> None:
    incidents = {
        f"inc-{n:05}": {
            "status": "acknowledged",
            "priority": "p2",
            "severity": "sev3",
            "public_sharing": False,
            "escalations": 1,
        }
        for n in range(4000)
    }
    states = write_states(tmp_path / "states", incidents)
    result = plan_cli(str(states), "--format", "markdown", journal=tmp_path / "j.jsonl")
    assert result.code == 0
    out = result.stdout
    assert "**Plan: 20000 changes on 4000 of 4000 incidents, 4160 API calls.**" in out
    assert len(out) < GITHUB_COMMENT_LIMIT
    shown = out.count("\n| `inc-")
    assert 100 < shown < 20000
    assert (
        f"_Truncated to fit a GitHub comment: {20000 - shown} more rows not shown; "
        "the full plan is in the plan file._\n"
    ) in out
    # The calls are still there, folded, and truncated in their turn.
    assert "<details><summary>4160 API calls, in order</summary>" in out
    shown_calls = len([line for line in out.splitlines() if line[:1].isdigit() and ". `" in line])
    assert 10 < shown_calls < 4160
    assert out.endswith(
        f"_Truncated to fit a GitHub comment: {4160 - shown_calls} more calls not shown; "
        "the full plan is in the plan file._\n\n</details>\n"
    )


def test_out_saves_the_json_plan(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = plan_cli(str(STATES), "--format", "json", "--out", str(out), journal=tmp_path / "j")
    assert result.code == 0
    assert out.read_text() == result.stdout

    text = plan_cli(str(STATES), "--out", str(out), "-v", journal=tmp_path / "j")
    assert text.code == 0
    assert text.stdout.endswith(
        f"\nSaved the plan to {out}. Apply exactly it with: reconcile apply {out} "
        f"--journal {tmp_path / 'j'}\n"
    )
    assert f"saved the plan to {out}" in text.stderr
    saved = json.loads(out.read_text())
    assert saved["plan_digest"] == digest(saved)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".plan")] == []


# ---------------------------------------------------------------------------------------------
# plan: exit codes, targets, batch size, journal


def test_detailed_exitcode_is_2_with_changes_0_without_and_1_on_error(tmp_path: Path) -> None:
    states = write_states(tmp_path / "states", {"a": {"status": "acknowledged"}, "b": {}})
    journal = tmp_path / "j.jsonl"
    changed = plan_cli(str(states), "--detailed-exitcode", journal=journal)
    assert changed.code == 2
    assert changed.stdout.endswith("Plan: 1 change on 1 of 2 incidents, 1 API call.\n")

    assert plan_cli(str(states), journal=journal).code == 0  # without the flag: 0

    apply_all(states, journal)
    same = plan_cli(str(states), "--detailed-exitcode", journal=journal)
    assert same.code == 0
    assert same.stdout == "No changes. 2 incidents match the journal.\n"

    # Journal-only changes count as changes: an incident removed from every file is forgotten.
    write_states(states, {"b": {}})
    forget = plan_cli(str(states), "--detailed-exitcode", journal=journal)
    assert forget.code == 2
    assert "  - forget a  (in no state file any more)\n" in forget.stdout
    assert forget.stdout.endswith("Plan: 0 changes on 0 of 1 incident, 0 API calls, 1 to forget.\n")

    (states / "s.yaml").write_text("incidents: [")
    broken = plan_cli(str(states), "--detailed-exitcode", journal=journal)
    assert broken.code == 1
    assert "YAML syntax" in broken.stderr and broken.stdout == ""


def test_removed_field_is_listed_as_unmanaged(tmp_path: Path) -> None:
    states = write_states(tmp_path / "s", {"a": {"status": "acknowledged", "priority": "p1"}})
    journal = tmp_path / "j.jsonl"
    apply_all(states, journal)
    write_states(states, {"a": {"status": "acknowledged"}})
    result = plan_cli(str(states), "--format", "json", "--detailed-exitcode", journal=journal)
    assert result.code == 2
    body = json.loads(result.stdout)
    assert body["unmanaged"] == [{"incident": "a", "field": "priority"}]
    assert body["operations"] == [] and body["changes"] == []


def test_target_limits_the_plan(tmp_path: Path) -> None:
    result = plan_cli(
        str(STATES),
        "--target",
        "pay-101",
        "--target",
        "116",
        "--format",
        "json",
        journal=tmp_path / "j",
    )
    assert result.code == 0
    body = json.loads(result.stdout)
    assert {c["incident"] for c in body["changes"]} == {"pay-101", "116"}
    assert {i for op in body["operations"] for i in op["body"].get("ids", [])} == {"pay-101", "116"}
    assert body["summary"]["incidents"] == 2


def test_an_invalid_target_is_an_error(tmp_path: Path) -> None:
    result = plan_cli(str(STATES), "--target", "pay_101", journal=tmp_path / "j")
    assert result.code == 1
    assert result.stderr == "error: --target: invalid incident id 'pay_101'\n"
    assert result.stdout == ""


def test_batch_size_chunks_the_calls(tmp_path: Path) -> None:
    incidents = {f"i{n}": {"status": "resolved"} for n in range(5)}
    states = write_states(tmp_path / "s", incidents)
    result = plan_cli(str(states), "--batch-size", "2", "--format", "json", journal=tmp_path / "j")
    assert result.code == 0
    assert [op["body"]["ids"] for op in json.loads(result.stdout)["operations"]] == [
        ["i0", "i1"],
        ["i2", "i3"],
        ["i4"],
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["plan", "--batch-size", "0"],
            "Invalid value for '--batch-size': 0 is not in the range x>=1",
        ),
        (["plan", "--format", "yaml"], "Invalid value for '--format'"),
        (["plan", "--no-such-option"], "No such option '--no-such-option'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["validate", "--verbose=yes"], "Option '--verbose' does not take a value"),
    ],
)
def test_usage_errors_exit_1(args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.code == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_reopening_a_resolved_incident_is_an_error(tmp_path: Path) -> None:
    states = write_states(tmp_path / "s", {"a": {"status": "resolved"}})
    journal = tmp_path / "j.jsonl"
    apply_all(states, journal)
    write_states(states, {"a": {"status": "triggered"}})
    before = journal.read_bytes()
    result = plan_cli(str(states), journal=journal)
    assert result.code == 1
    assert result.stderr == (
        f"error: {states / 's.yaml'}: incident a: status: resolved incidents are terminal "
        "in Spike; it cannot become triggered\n"
    )
    assert journal.read_bytes() == before


def test_an_unsafe_plan_still_succeeds_and_says_so(tmp_path: Path) -> None:
    incidents = {f"i{n}": {"priority": "p3"} for n in range(10)}
    states = write_states(tmp_path / "s", incidents)
    journal = tmp_path / "j.jsonl"
    apply_all(states, journal)
    write_states(states, {**incidents, **{f"i{n}": {"priority": "p1"} for n in range(4)}})
    result = plan_cli(str(states), journal=journal)
    assert result.code == 0
    assert (
        "warning: unsafe plan: it changes or forgets recorded values on 4 of 10 journaled "
        "incidents "
        "(more than 30%); apply refuses it without --force\n"
    ) in result.stdout


def test_plan_uses_the_journal_from_the_environment(tmp_path: Path) -> None:
    states = write_states(tmp_path / "s", {"a": {"status": "acknowledged"}})
    journal = tmp_path / "elsewhere.jsonl"
    apply_all(states, journal)
    result = cli("plan", str(states), env={"RECONCILE_JOURNAL": str(journal)})
    assert result.stdout == "No changes. 1 incident matches the journal.\n"
    assert cli("plan", str(states)).stdout.startswith("Changes to incidents")


def test_a_torn_journal_warns_and_a_corrupt_one_is_an_error(tmp_path: Path) -> None:
    states = write_states(tmp_path / "s", {"a": {"status": "acknowledged"}})
    journal = tmp_path / "j.jsonl"
    apply_all(states, journal)
    with journal.open("a") as handle:
        handle.write('{"kind":"op"')
    torn = plan_cli(str(states), journal=journal)
    assert torn.code == 0
    assert torn.stderr == (
        f"warning: {journal}:3: ignoring a torn last line (an interrupted write); "
        "the next apply re-issues that call\n"
    )
    assert torn.stdout == "No changes. 1 incident matches the journal.\n"

    journal.write_text(journal.read_text() + "\n")
    corrupt = plan_cli(str(states), journal=journal)
    assert corrupt.code == 1
    assert corrupt.stderr.startswith(f"error: {journal}:3: corrupt journal line (not JSON)")


# ---------------------------------------------------------------------------------------------
# color


def _on_a_terminal(*args: str, env: dict[str, str]) -> str:
    """Run the installed `reconcile` with stdout on a pseudo-terminal; return what it wrote."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(RECONCILE), *args], stdout=follower, stderr=subprocess.PIPE, env=env, cwd=REPO
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return b"".join(chunks).decode()


def test_color_only_on_a_terminal_and_never_with_no_color(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["RECONCILE_JOURNAL"] = str(tmp_path / "j.jsonl")
    args = ("plan", str(STATES), "--target", "pay-101")
    colored = _on_a_terminal(*args, env=env)
    assert ANSI in colored
    assert "incident pay-101" in colored
    assert ANSI not in _on_a_terminal(*args, env={**env, "NO_COLOR": "1"})
    plain = _on_a_terminal(*args, "--no-color", env=env)
    assert ANSI not in plain
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored) == plain
    # Off a terminal (a pipe), no color either.
    piped = subprocess.run(
        [str(RECONCILE), *args], capture_output=True, text=True, env=env, check=True
    )
    assert piped.stdout.replace("\n", "\r\n") == plain


# ---------------------------------------------------------------------------------------------
# show, log, schema


def test_show_and_log_on_an_empty_journal(tmp_path: Path) -> None:
    journal = str(tmp_path / "j.jsonl")
    show = cli("show", "--journal", journal)
    assert (show.code, show.stdout) == (0, "The journal is empty: nothing has been applied yet.\n")
    log = cli("log", "--journal", journal)
    assert (log.code, log.stdout) == (0, "The journal is empty: nothing has been applied yet.\n")
    assert json.loads(cli("log", "--journal", journal, "--format", "json").stdout) == []
    shown = json.loads(cli("show", "--journal", journal, "--format", "json").stdout)
    assert shown == {"lineage": None, "serial": 0, "incidents": {}, "kept": {}, "uncertain": {}}


def test_show_prints_the_last_applied_state(tmp_path: Path) -> None:
    states = write_states(
        tmp_path / "s",
        {
            "b": {"status": "resolved", "public_sharing": True},
            "a": {"priority": None, "escalations": 2},
        },
    )
    journal = tmp_path / "j.jsonl"
    apply_all(states, journal)
    lineage = FileJournal(journal).read().lineage
    text = cli("show", "--journal", str(journal))
    assert text.code == 0
    assert text.stdout == (
        f"journal lineage {lineage}, serial 5, 2 incidents\n\n"
        "a  priority=none  escalations=2\n"
        "b  status=resolved  public_sharing=true\n"
    )
    as_json = json.loads(cli("show", "--journal", str(journal), "--format", "json").stdout)
    assert as_json == {
        "lineage": lineage,
        "serial": 5,
        "incidents": {
            "a": {"priority": None, "escalations": 2},
            "b": {"status": "resolved", "public_sharing": True},
        },
        "kept": {},
        "uncertain": {},
    }


def test_log_shows_the_history(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    with FileJournal(journal).open_for_apply(0, "test") as writer:
        writer.start("sha256:abc", 2)
        writer.applied(
            Operation("POST", "/incidents/priority", {"priority": "p1", "ids": ["116", *"abcde"]}),
            "sha256:abc",
        )
        writer.end("sha256:abc", "failed", applied=1, failed=1)
        writer.forget(["gone"], None)
    lineage = FileJournal(journal).read().lineage
    text = cli("log", "--journal", str(journal)).stdout
    lines = [line.split("  ", 1)[1] if line[0] != " " else line for line in text.splitlines()]
    assert lines == [
        f"journal created, lineage {lineage}",
        "apply sha256:abc  failed: 1 of 2 calls applied",
        "    #1 POST /incidents/priority priority=p1  6 ids: 116, a, b, c, d ...",
        "#2 forget gone",
    ]
    entries = json.loads(cli("log", "--journal", str(journal), "--format", "json").stdout)
    assert [e["kind"] for e in entries] == ["created", "apply", "forget"]
    assert entries[1]["outcome"] == "failed" and entries[1]["failed"] == 1
    assert entries[1]["operations"][0]["call"] == "POST /incidents/priority"


def test_schema_is_the_bundled_schema_file() -> None:
    result = cli("schema")
    assert result.code == 0
    assert result.stdout == (REPO / "schema" / "state-file.json").read_text()
    schema = json.loads(result.stdout)
    incident = schema["$defs"]["IncidentSpec"]
    assert incident["additionalProperties"] is False
    assert set(incident["properties"]) == {
        "status",
        "priority",
        "severity",
        "public_sharing",
        "escalations",
    }


@pytest.mark.parametrize("command", ["validate", "plan", "show", "log", "schema"])
def test_every_command_has_help_verbose_and_no_color(command: str) -> None:
    result = cli(command, "--help")
    assert result.code == 0
    assert f"Usage: reconcile {command} " in result.stdout
    assert "-v, --verbose" in result.stdout and "--no-color" in result.stdout


# ---------------------------------------------------------------------------------------------
# the installed command, as a real process


def test_the_installed_command_plans_the_bundled_states(tmp_path: Path) -> None:
    env = {**os.environ, "RECONCILE_JOURNAL": str(tmp_path / "journal.jsonl")}
    done = subprocess.run(
        [str(RECONCILE), "plan", "--format", "json", "--detailed-exitcode"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == ""
    body = json.loads(done.stdout)
    assert body["summary"]["incidents"] == 40
    assert body["plan_digest"] == digest(body)
    assert not (tmp_path / "journal.jsonl").exists()  # planning writes nothing


def test_a_markdown_plan_of_only_forgets_still_has_its_table_header() -> None:
    from helpers import plan

    from reconciler.render import section_markdown

    out = section_markdown(plan({}, {"old-1": {"status": "resolved"}}))
    assert "| incident | field | before | after |\n| --- | --- | --- | --- |\n" in out
    assert "| `old-1` | _forget_ | journaled | _not in any file_ |" in out
