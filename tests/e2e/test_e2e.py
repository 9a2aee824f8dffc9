"""`reconcile apply` end to end over real loopback HTTP against the sandbox.

The design card's property: applying brings every managed field to its desired value, a
second apply makes no API call, and a third plan has nothing to do; with injected faults too.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import KEY, TEAM, cli, command, env, live_matches, with_params, write_states
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.journal import open_journal
from reconciler.journal.file import FileJournal
from reconciler.sandbox import SandboxServer
from reconciler.spike.client import RetryPolicy
from reconciler.usecases.apply import ApplyRequest, run_apply

# ---------------------------------------------------------------------------------------------
# The property, with generated states

IDS = ["1", "116", "a-1", "prim-122", "x"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(starting sandbox incidents, desired states) that Spike can reach."""
    start: dict[str, dict[str, Any]] = {}
    desired: dict[str, dict[str, Any]] = {}
    for cid in draw(st.lists(st.sampled_from(IDS), min_size=1, unique=True)):
        status = draw(st.sampled_from(["NACK", "ACK", "RES"]))
        start[cid] = {
            "status": status,
            "priority": draw(st.sampled_from([None, "p1", "p3"])),
            "severity": draw(st.sampled_from([None, "sev2"])),
            "public_sharing": draw(st.booleans()),
        }
        if draw(st.booleans()):
            continue  # in Spike, not in the files
        fields: dict[str, Any] = {}
        # A resolved incident stays resolved and cannot be escalated.
        statuses = ["resolved"] if status == "RES" else ["triggered", "acknowledged", "resolved"]
        if draw(st.booleans()):
            fields["status"] = draw(st.sampled_from(statuses))
        if draw(st.booleans()):
            fields["priority"] = draw(st.sampled_from([None, "p1", "p2", "p5"]))
        if draw(st.booleans()):
            fields["severity"] = draw(st.sampled_from([None, "sev1", "sev3"]))
        if draw(st.booleans()):
            fields["public_sharing"] = draw(st.booleans())
        if status != "RES" and draw(st.booleans()):
            fields["escalations"] = draw(st.integers(0, 3))
        desired[cid] = fields
    return start, desired


# At 30% faults a property run sends a few hundred requests. 429s use up no attempt, so a
# call fails only on 12 non-429 faults in a row (odds below 1e-7 per call), and the outage
# breaker needs 16 failed requests in a row (below 1e-10 per request): no run fails by chance.
FAST_RETRY = RetryPolicy(attempts=12, base=0.01, cap=0.05, total=30, outage=16)
PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(scenario=scenarios(), batch=st.integers(1, 3))
def test_apply_converges_and_a_second_apply_makes_no_call(
    tmp_path_factory: pytest.TempPathFactory, scenario: Any, batch: int
) -> None:
    work = tmp_path_factory.mktemp("e2e")
    converges_then_idles(scenario, batch, work, str(work / "journal.jsonl"))


@PROPERTY
@given(scenario=scenarios(), batch=st.integers(1, 3))
def test_the_property_holds_with_the_postgresql_journal(
    tmp_path_factory: pytest.TempPathFactory, server_url: str, scenario: Any, batch: int
) -> None:
    journal = with_params(server_url, namespace=f"test-{uuid.uuid4()}")
    converges_then_idles(scenario, batch, tmp_path_factory.mktemp("pg"), journal)


def converges_then_idles(scenario: Any, batch: int, work: Path, journal: str) -> None:
    """Apply, then: every managed field is as desired, a second apply sends nothing, and
    plan --detailed-exitcode says there is nothing to do. The key appears nowhere."""
    start, desired = scenario
    write_states(work / "states", desired)
    with (
        SandboxServer(start, api_key=KEY, team_id=TEAM) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        base = ["--journal", journal]
        states = str(work / "states")
        code, out, err = cli("apply", states, "--auto-approve", "--batch-size", str(batch), *base)
        assert code == 0, out + err
        live_matches(server, desired)
        for cid, fields in desired.items():
            assert server.incidents()[cid]["escalations"] == fields.get("escalations", 0)
        calls = len(server.calls)
        code, out, _ = cli("apply", states, "--auto-approve", *base)
        assert code == 0
        assert "No changes" in out
        assert len(server.calls) == calls  # the second apply made no API call
        code, out, _ = cli("plan", states, "--detailed-exitcode", *base)
        assert code == 0, out
        records = json.dumps(open_journal(journal).records())
        for text in (out, err, records):
            assert KEY not in text


_NACK = {"status": "NACK", "priority": None, "severity": None, "public_sharing": False}


@PROPERTY
@given(scenario=scenarios(), fault_seed=st.integers(0, 10_000))
# Eight 429s in a row once used up every attempt of one call: a 429 must cost time, not attempts.
@example(
    scenario=(
        {"1": _NACK, "116": _NACK, "a-1": _NACK},
        {
            "1": {},
            "116": {"status": "triggered", "severity": None},
            "a-1": {"public_sharing": False},
        },
    ),
    fault_seed=3600,
)
def test_apply_converges_in_one_run_under_thirty_percent_faults(
    tmp_path_factory: pytest.TempPathFactory, scenario: Any, fault_seed: int
) -> None:
    start, desired = scenario
    work = tmp_path_factory.mktemp("faults")
    write_states(work / "states", desired)
    journal = str(work / "journal.jsonl")
    # After a 500 an escalate is uncertain and never resent, so one run converges only if
    # every fault is one after which Spike surely did not act.
    escalates = any(fields.get("escalations") for fields in desired.values())
    with (
        SandboxServer(
            start,
            api_key=KEY,
            team_id=TEAM,
            fault_rate=0.3,
            fault_codes=(429, 503) if escalates else (429, 500, 503),
            fault_seed=fault_seed,
        ) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        outcome = run_apply(
            [ApplyRequest(paths=[str(work / "states")], journal_location=journal, batch_size=2)],
            confirm=lambda made: True,
            retry=FAST_RETRY,
        )
        assert outcome.made is not None
        planned = outcome.made.only.plan.operations
        (team,) = outcome.teams
        assert (team.result is None) == (not planned)
        assert team.result is None or team.result.outcome == "applied"
        live_matches(server, desired)
        succeeded = [c for c in server.calls if c["status"] == 200]
        assert len(succeeded) == len(planned)
        code, out, _ = cli(
            "plan", str(work / "states"), "--detailed-exitcode", "--journal", journal
        )
        assert code == 0, out


# ---------------------------------------------------------------------------------------------
# Saved plans, failures and the secret


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    incidents = {cid: {"status": "NACK"} for cid in ("116", "prim-122", "db-7")}
    with (
        SandboxServer(incidents, api_key=KEY, team_id=TEAM) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        yield server


def test_saved_plan_applies_exactly_once_and_another_then_is_stale(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    desired = {
        "116": {"status": "acknowledged", "priority": "p2"},
        "prim-122": {"status": "resolved"},
    }
    journal = str(tmp_path / "j.jsonl")
    write_states(tmp_path / "states", {"116": {"severity": "sev2"}})
    assert cli("apply", str(tmp_path / "states"), "--auto-approve", "--journal", journal)[0] == 0
    write_states(tmp_path / "states", {**desired, "116": {**desired["116"], "severity": "sev2"}})
    plan_file = str(tmp_path / "plan.json")
    other_file = str(tmp_path / "other.json")
    for out_file in (plan_file, other_file):
        code, _, _ = cli("plan", str(tmp_path / "states"), "--out", out_file, "--journal", journal)
        assert code == 0
    code, out, err = cli("apply", plan_file, "--journal", journal, "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["outcome"] == "applied"
    assert [op["path"] for op in result["applied"]] == [
        "/incidents/acknowledge",
        "/incidents/priority",
        "/incidents/resolve",
    ]
    live_matches(sandbox, desired)
    calls = len(sandbox.calls)
    code, _, err = cli("apply", plan_file, "--journal", journal)
    assert code == 1
    assert "was already applied to this journal" in err
    # A plan made at the same time, never applied: the journal moved on since.
    code, _, err = cli("apply", other_file, "--journal", journal)
    assert code == 1
    assert "stale" in err and "serial 1" in err and "serial 4" in err
    assert len(sandbox.calls) == calls
    assert KEY not in Path(plan_file).read_text() + Path(journal).read_text()


def test_edited_or_foreign_plans_are_refused_before_any_call(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    write_states(tmp_path / "states", {"116": {"status": "resolved"}})
    plan_file = tmp_path / "plan.json"
    journal = str(tmp_path / "j.jsonl")
    cli("plan", str(tmp_path / "states"), "--out", str(plan_file), "--journal", journal)
    body = json.loads(plan_file.read_text())
    edited = tmp_path / "edited.json"
    edited.write_text(plan_file.read_text().replace("resolve", "acknowledge"))
    code, _, err = cli("apply", str(edited), "--journal", journal)
    assert code == 1 and "plan_digest does not match" in err
    # A digest only catches accidents: a re-digested plan with a foreign call is refused too.
    from reconciler.planfile import digest

    body["operations"] = [{"method": "DELETE", "path": "/incidents/116", "body": {}}]
    body["plan_digest"] = digest(body)
    edited.write_text(json.dumps(body))
    code, _, err = cli("apply", str(edited), "--journal", journal)
    assert code == 1 and "DELETE /incidents/116 is not a call this tool makes" in err
    edited.write_text(plan_file.read_text()[:100])
    code, _, err = cli("apply", str(edited), "--journal", journal)
    assert code == 1 and "not a plan file" in err
    assert sandbox.calls == []
    assert not Path(journal).exists() or "op" not in Path(journal).read_text()


def test_an_unknown_id_is_reported_and_the_rest_applied(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    desired = {cid: {"status": "acknowledged"} for cid in ("116", "ghost-1", "prim-122")}
    write_states(tmp_path / "states", desired)
    journal = str(tmp_path / "j.jsonl")
    code, out, _ = cli("apply", str(tmp_path / "states"), "--auto-approve", "--journal", journal)
    assert code == 1
    assert "ghost-1" in out and "unknown incident ids: ghost-1" in out
    assert sandbox.incidents()["116"]["status"] == "ACK"
    assert sandbox.incidents()["prim-122"]["status"] == "ACK"
    # A rerun does only what is left: the one call that still fails.
    calls = len(sandbox.calls)
    code, out, _ = cli("apply", str(tmp_path / "states"), "--auto-approve", "--journal", journal)
    assert code == 1
    assert [c["body"]["ids"] for c in sandbox.calls[calls:]] == [["ghost-1"]]


def test_a_wrong_key_stops_at_once_and_is_never_shown(tmp_path: Path) -> None:
    write_states(tmp_path / "states", {"116": {"status": "acknowledged", "priority": "p1"}})
    wrong = "sk-wrong-key-0000"
    with (
        SandboxServer({"116": {"status": "NACK"}}, api_key=KEY, team_id=TEAM) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=wrong, SPIKE_TEAM_ID=TEAM),
    ):
        journal = tmp_path / "j.jsonl"
        code, out, err = cli(
            "apply", str(tmp_path / "states"), "--auto-approve", "--journal", str(journal)
        )
        assert code == 1
        assert len(server.calls) <= 2
        assert "SPIKE_API_KEY" in out + err
        assert wrong not in out + err + journal.read_text()


def test_apply_needs_credentials_only_for_calls(tmp_path: Path) -> None:
    write_states(tmp_path / "states", {"116": {"status": "acknowledged"}})
    with env(SPIKE_API_KEY="", SPIKE_TEAM_ID=""):
        code, _, err = cli(
            "apply", str(tmp_path / "states"), "--auto-approve", "--journal", str(tmp_path / "j")
        )
    assert code == 1 and "SPIKE_API_KEY and SPIKE_TEAM_ID must be set" in err


def test_plain_http_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    write_states(tmp_path / "states", {"116": {"status": "acknowledged"}})
    with env(SPIKE_API_URL="http://api.spike.sh", SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM):
        code, _, err = cli(
            "apply", str(tmp_path / "states"), "--auto-approve", "--journal", str(tmp_path / "j")
        )
    assert code == 1 and "only https://" in err and KEY not in err


def test_off_a_tty_apply_needs_auto_approve(tmp_path: Path) -> None:
    write_states(tmp_path / "states", {"116": {"status": "acknowledged"}})
    code, _, err = cli("apply", str(tmp_path / "states"), "--journal", str(tmp_path / "j"))
    assert code == 1 and "--auto-approve" in err


def test_unsafe_plans_need_force(tmp_path: Path, sandbox: SandboxServer) -> None:
    ids = [f"inc-{n}" for n in range(12)]
    sandbox.set_incidents({cid: {"status": "NACK"} for cid in ids})
    journal = str(tmp_path / "j.jsonl")
    write_states(tmp_path / "states", {cid: {"priority": "p1"} for cid in ids})
    assert cli("apply", str(tmp_path / "states"), "--auto-approve", "--journal", journal)[0] == 0
    write_states(tmp_path / "states", {cid: {"priority": "p2"} for cid in ids})
    code, out, _ = cli("plan", str(tmp_path / "states"), "--journal", journal)
    assert code == 0 and "unsafe plan" in out
    code, _, err = cli("apply", str(tmp_path / "states"), "--auto-approve", "--journal", journal)
    assert code == 1 and "--force" in err
    code, _, _ = cli(
        "apply", str(tmp_path / "states"), "--auto-approve", "--force", "--journal", journal
    )
    assert code == 0
    assert {sandbox.incidents()[cid]["priority"] for cid in ids} == {"p2"}


# ---------------------------------------------------------------------------------------------
# Real processes: kill -9 and two applies at once


def slow_sandbox_case(tmp_path: Path, count: int) -> tuple[dict[str, Any], Path]:
    ids = [f"inc-{n}" for n in range(count)]
    desired = {cid: {"status": "acknowledged", "escalations": 1} for cid in ids}
    write_states(tmp_path / "states", desired)
    return {cid: {"status": "NACK"} for cid in ids}, tmp_path / "states"


def test_kill_9_at_random_moments_loses_no_successful_call(tmp_path: Path) -> None:
    start, states = slow_sandbox_case(tmp_path, 40)
    rng = random.Random(42)
    for trial in range(4):
        journal = tmp_path / f"j{trial}.jsonl"
        with (
            SandboxServer(start, api_key=KEY, team_id=TEAM, latency=0.02) as server,
            env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
        ):
            args = ["apply", str(states), "--auto-approve", "--batch-size", "1"]
            proc = subprocess.Popen(
                command(*args, "--journal", str(journal)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # A moment in the apply, not after a time: a process slow to start (a busy
            # machine) would be killed before its first call, a fast one after its last.
            # 80 calls: 40 acknowledges, then 40 escalations.
            after = rng.randint(1, 75)
            deadline = time.monotonic() + 20
            while len(server.calls) < after and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.02))  # mid-call, mid-sync, between calls
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            time.sleep(0.1)  # let the server finish what was in flight
            assert proc.returncode == -signal.SIGKILL
            server.latency = 0  # only there to kill the apply midway
            succeeded = sum(1 for c in server.calls if c["status"] == 200)
            journaled = sum(1 for r in FileJournal(journal).records() if r["kind"] == "op")
            # At most 2 x parallelism (4) calls are unjournaled: in flight, or being synced.
            assert succeeded - 8 <= journaled <= succeeded
            code, out, err = cli("apply", str(states), "--auto-approve", "--journal", str(journal))
            assert code == 0, out + err
            assert all(i["status"] == "ACK" for i in server.incidents().values())
            # An escalation in flight at the kill is uncertain, never re-issued: each incident
            # is escalated at most once (its file asks 1), and one not escalated is uncertain.
            uncertain = FileJournal(journal).read().uncertain
            live = server.incidents()
            assert all(i["escalations"] <= 1 for i in live.values())
            assert all(cid in uncertain for cid, i in live.items() if i["escalations"] == 0)
            assert (
                cli("plan", str(states), "--detailed-exitcode", "--journal", str(journal))[0] == 0
            )


@pytest.fixture(params=["file", "postgresql"])
def journal_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return str(tmp_path / "j.jsonl")
    server_url = request.getfixturevalue("server_url")
    return with_params(server_url, namespace=f"test-{uuid.uuid4()}")


def test_two_applies_at_once_one_fails_naming_the_lock(
    tmp_path: Path, journal_location: str
) -> None:
    start, states = slow_sandbox_case(tmp_path, 30)
    journal = journal_location
    with (
        SandboxServer(start, api_key=KEY, team_id=TEAM, latency=0.05) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        args = ["apply", str(states), "--auto-approve", "--batch-size", "1", "--journal"]
        first = subprocess.Popen(
            command(*args, str(journal)), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while not server.calls:  # the first apply is calling: it holds the lock
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = subprocess.run(command(*args, str(journal)), capture_output=True, text=True)
        assert second.returncode == 1
        assert f"locked by another apply: pid {first.pid}" in second.stderr
        waiting = subprocess.run(
            command(*args, str(journal), "--lock-timeout", "60"), capture_output=True, text=True
        )
        assert first.wait(30) == 0
        assert first.stdout is not None and first.stderr is not None
        first.stdout.close()
        first.stderr.close()
        assert waiting.returncode == 0, waiting.stderr
        assert "No changes" in waiting.stdout
        assert all(i["escalations"] == 1 for i in server.incidents().values())
        # 30 acknowledges, and 30 escalations each an intent and its outcome
        assert open_journal(journal).read().serial == 90


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_new_calls_and_journals_the_ones_in_flight(
    tmp_path: Path, signum: int, code: int
) -> None:
    start, states = slow_sandbox_case(tmp_path, 40)
    journal = tmp_path / "j.jsonl"
    with (
        SandboxServer(start, api_key=KEY, team_id=TEAM, latency=0.03) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        args = ["apply", str(states), "--auto-approve", "--batch-size", "1"]
        proc = subprocess.Popen(
            command(*args, "--journal", str(journal)), stdout=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 10
        while len(server.calls) < 5:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == code
        assert "Interrupted" in out
        succeeded = sum(1 for c in server.calls if c["status"] == 200)
        records = FileJournal(journal).records()
        # Every call that succeeded was journaled: the in-flight ones finished first.
        assert sum(1 for r in records if r["kind"] == "op") == succeeded
        assert succeeded < 80
        assert records[-1]["kind"] == "apply-end" and records[-1]["outcome"] == "interrupted"
        code_again, out, _ = cli("apply", str(states), "--auto-approve", "--journal", str(journal))
        assert code_again == 0, out
        assert all(i["escalations"] == 1 for i in server.incidents().values())


def test_apply_json_output_is_the_result_alone(tmp_path: Path, sandbox: SandboxServer) -> None:
    write_states(tmp_path / "states", {"116": {"status": "acknowledged"}, "db-7": {}})
    journal = str(tmp_path / "j.jsonl")
    args = ("apply", str(tmp_path / "states"), "--auto-approve", "--journal", journal)
    code, out, err = cli(*args, "--format", "json")
    assert code == 0
    result = json.loads(out)  # the plan shown before applying went to stderr
    assert result["outcome"] == "applied"
    assert result["applied"] == [
        {"method": "POST", "path": "/incidents/acknowledge", "body": {"ids": ["116"]}}
    ]
    assert result["journal"]["serial"] == 1
    assert "API calls, in order" in err
    code, out, _ = cli(*args, "--format", "json")
    assert json.loads(out)["outcome"] == "no-changes"


def test_a_saved_plan_cannot_switch_the_safety_guard_off(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    ids = [f"inc-{n}" for n in range(12)]
    sandbox.set_incidents({cid: {"status": "NACK"} for cid in ids})
    journal = str(tmp_path / "j.jsonl")
    write_states(tmp_path / "states", {cid: {"priority": "p1"} for cid in ids})
    assert cli("apply", str(tmp_path / "states"), "--auto-approve", "--journal", journal)[0] == 0
    write_states(tmp_path / "states", {cid: {"priority": "p5"} for cid in ids})
    plan_file = tmp_path / "plan.json"
    cli("plan", str(tmp_path / "states"), "--journal", journal, "--out", str(plan_file))
    from reconciler.planfile import digest

    body = json.loads(plan_file.read_text())
    assert body["unsafe"] is True
    body["unsafe"] = False
    body["warnings"] = []
    body["plan_digest"] = digest(body)
    plan_file.write_text(json.dumps(body))
    calls = len(sandbox.calls)
    code, _, err = cli("apply", str(plan_file), "--journal", journal)
    assert code == 1 and "--force" in err
    assert len(sandbox.calls) == calls
    assert cli("apply", str(plan_file), "--journal", journal, "--force")[0] == 0
    assert {sandbox.incidents()[cid]["priority"] for cid in ids} == {"p5"}


def test_a_signal_cuts_retry_backoff_short(tmp_path: Path) -> None:
    start, states = slow_sandbox_case(tmp_path, 4)
    with (
        SandboxServer(start, api_key=KEY, team_id=TEAM, fault_rate=1.0, fault_codes=(503,)) as s,
        env(SPIKE_API_URL=s.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        proc = subprocess.Popen(
            command("apply", str(states), "--auto-approve", "--journal", str(tmp_path / "j")),
            stdout=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 10
        while not s.calls:  # retrying with backoff from now on
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        # Six attempts of backoff would take seconds; the signal ends the waiting at once.
        assert time.monotonic() - signalled < 2.0
        assert proc.returncode == 130
        assert "not retried, apply was interrupted" in out


def test_bad_state_files_leave_no_journal_behind(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("incidents:\n  a-1:\n    priorty: p1\n")
    journal = tmp_path / "deep" / "journal.jsonl"
    code, _, err = cli(
        "apply", str(tmp_path / "bad.yaml"), "--auto-approve", "--journal", str(journal)
    )
    assert code == 1 and "did you mean 'priority'" in err
    assert not (tmp_path / "deep").exists()


def test_a_deeply_nested_plan_file_is_refused_cleanly(tmp_path: Path) -> None:
    plan_file = tmp_path / "deep.plan"
    plan_file.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = cli("apply", str(plan_file), "--journal", str(tmp_path / "j"))
    assert code == 1 and "not a plan file" in err
