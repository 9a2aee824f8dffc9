"""Escalations are sent at most once and never more than the files ask (docs/journal.md).

An intent is journaled before each escalate call, its outcome after; a call whose outcome is
unknown leaves the incident uncertain until the operator records the count from Spike's
activity log. Also the apply's other failure modes: refused batches, an unavailable API, a
journal that cannot be written, a holder killed mid-call.

The client's contract for escalate (reconciler/spike/client.py): one attempt, and an ambiguous
failure (500, 502, 504, a transport error after sending) raises UncertainOutcomeError.
`OnceClient` below keeps that contract over any transport, so these tests hold whatever the
retry policy of the real client for other calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import DISK_FULL, KEY, RECONCILE, TEAM, cli, env, plan, write_states
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.applier import Applier, ApplyResult
from reconciler.endpoints import ESCALATE
from reconciler.errors import (
    ApiError,
    ApiUnavailableError,
    JournalError,
    LockHeldError,
    ReconcileError,
    UncertainOutcomeError,
)
from reconciler.journal.base import JournalWriter
from reconciler.journal.file import FileJournal
from reconciler.journal.postgres import PostgresJournal
from reconciler.journal.records import Recorded
from reconciler.model import Operation
from reconciler.planfile import digest
from reconciler.sandbox import SandboxServer
from reconciler.spike.client import RetryPolicy, SpikeClient, SpikeConfig

CONFIG = SpikeConfig("https://api.spike.sh", "secret-key", "team")
FAST = RetryPolicy(attempts=2, base=0.0, cap=0.0, total=5.0)
PLAN = "sha256:test"


class OnceClient(SpikeClient):
    """The real client, with the escalate contract: one attempt, ambiguity reported."""

    async def call(self, op: Operation) -> Any:
        if op.path != ESCALATE:
            return await super().call(op)
        assert self._client is not None
        self.requests += 1
        response = await self._client.request(op.method, op.path, json=dict(op.body))
        status = response.status_code
        if status in (500, 502, 504):
            raise UncertainOutcomeError(
                f"POST {ESCALATE}: {status}", method="POST", path=ESCALATE, status_code=status
            )
        if status >= 400:
            message = response.json().get("message", "")
            raise ApiError(
                f"POST {ESCALATE}: {status} {message}",
                method="POST",
                path=ESCALATE,
                status_code=status,
                api_message=message,
            )
        return {}


def run(
    journal: FileJournal,
    operations: list[Operation],
    handler: Callable[[httpx.Request], httpx.Response],
    client_class: type[SpikeClient] = OnceClient,
) -> ApplyResult:
    async def go() -> ApplyResult:
        client = client_class(
            CONFIG, transport=httpx.MockTransport(handler), retry=FAST, parallelism=2
        )
        with journal.open_for_apply(0, "test") as writer:
            async with client:
                return await Applier(client, writer, plan_digest=PLAN).run(operations)

    return asyncio.run(go())


def kinds(journal: FileJournal) -> list[str]:
    return [r["kind"] for r in journal.records()]


def escalate(*ids: str) -> Operation:
    return Operation("POST", ESCALATE, {"ids": list(ids)})


# ---------------------------------------------------------------------------------------------
# the applier


def test_an_ambiguous_failure_is_journaled_uncertain_and_never_resent(tmp_path: Path) -> None:
    spike: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["ids"]
        if request.url.path == ESCALATE:
            spike.update(ids)  # Spike acted, then the gateway failed
            return httpx.Response(502, json={"message": "bad gateway"})
        return httpx.Response(200, json={})

    journal = FileJournal(tmp_path / "j.jsonl")
    ops = [
        escalate("a", "b"),
        escalate("a"),
        Operation("POST", "/incidents/resolve", {"ids": ["c"]}),
    ]
    result = run(journal, ops, handler)
    # The first call's outcome is unknown: a and b are never escalated again in this apply.
    assert spike == {"a": 1, "b": 1}
    assert result.outcome == "failed"
    assert [(f.incident, f.status_code) for f in result.uncertain] == [("a", 502), ("b", 502)]
    assert [(f.incident, f.reason) for f in result.skipped] == [
        ("a", "skipped: an earlier operation failed for this incident")
    ]
    records = journal.records()
    assert [r["kind"] for r in records] == [
        *("lineage", "apply-start", "intent", "uncertain", "op", "apply-end")
    ]
    intent, outcome, end = records[2], records[3], records[-1]
    assert intent["body"] == {"ids": ["a", "b"]}
    assert (outcome["intent"], outcome["ids"]) == (intent["serial"], ["a", "b"])
    assert "502" in outcome["reason"]
    assert (end["outcome"], end["uncertain"], end["applied"]) == ("failed", 2, 1)
    state = journal.read()
    assert sorted(state.uncertain) == ["a", "b"]
    assert state.incidents == {"c": {"status": "resolved"}}  # no count for a or b


def test_an_intent_is_on_disk_before_the_call_is_sent(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path / "j.jsonl")
    seen: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        # What a crash at this moment would leave: the intent, no outcome.
        seen.append(kinds(FileJournal(journal.path)))
        assert sorted(FileJournal(journal.path).read().uncertain) == ["a"]
        return httpx.Response(200, json={})

    result = run(journal, [escalate("a")], handler)
    assert result.outcome == "applied"
    assert seen == [["lineage", "apply-start", "intent"]]
    state = journal.read()
    assert (state.incidents, state.uncertain, state.intents) == ({"a": {"escalations": 1}}, {}, {})
    assert journal.records()[3]["intent"] == journal.records()[2]["serial"]


def test_a_refused_escalate_batch_is_not_bisected_and_its_ids_are_uncertain(
    tmp_path: Path,
) -> None:
    sent: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["ids"])
        return httpx.Response(400, json={"message": "unknown incident ids: bad"})

    journal = FileJournal(tmp_path / "j.jsonl")
    result = run(journal, [escalate("a", "b", "bad", "c")], handler)
    assert sent == [["a", "b", "bad", "c"]]  # once; a bisection would escalate a, b, c again
    assert [f.incident for f in result.uncertain] == ["a", "b", "bad", "c"]
    assert kinds(journal)[2:4] == ["intent", "uncertain"]
    assert sorted(journal.read().uncertain) == ["a", "b", "bad", "c"]


def test_credentials_refused_on_escalate_are_journaled_not_sent(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "bad key"})

    journal = FileJournal(tmp_path / "j.jsonl")
    result = run(journal, [escalate("a"), escalate("b")], handler, SpikeClient)
    assert result.credentials_error is not None
    assert [f.incident for f in result.failed] == ["a"]
    assert [(f.incident, f.reason) for f in result.skipped] == [
        ("b", "not started: credentials were refused")
    ]
    assert kinds(journal)[2:] == ["intent", "not-sent", "apply-end"]
    assert journal.read().uncertain == {}


def test_a_404_on_a_batch_endpoint_fails_the_batch_at_once(tmp_path: Path) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(404, json={"message": "Cannot POST /incidents/acknowledge"})

    ids = [f"i{n}" for n in range(100)]
    journal = FileJournal(tmp_path / "j.jsonl")
    result = run(journal, [Operation("POST", "/incidents/acknowledge", {"ids": ids})], handler)
    assert sent == ["/incidents/acknowledge"]  # not 199 requests
    assert len(result.failed) == 100
    assert {(f.status_code, f.reason) for f in result.failed} == {
        (404, "Cannot POST /incidents/acknowledge")
    }


def test_a_422_is_bisected_like_a_400(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["ids"]
        if "bad" in ids:
            return httpx.Response(422, json={"message": "unknown id bad"})
        return httpx.Response(200, json={})

    journal = FileJournal(tmp_path / "j.jsonl")
    ops = [Operation("POST", "/incidents/acknowledge", {"ids": ["a", "bad"]})]
    result = run(journal, ops, handler)
    assert [f.incident for f in result.failed] == ["bad"]
    assert journal.read().incidents == {"a": {"status": "acknowledged"}}


class UnavailableClient(SpikeClient):
    """The client after too many consecutive failures: it stops sending."""

    async def call(self, op: Operation) -> Any:
        if op.path == "/incidents/acknowledge":
            raise ApiUnavailableError("the Spike API failed 10 calls in a row; stopping")
        return await super().call(op)


def test_an_unavailable_api_stops_the_apply_like_refused_credentials(tmp_path: Path) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json={})

    ops = [
        Operation("POST", "/incidents/acknowledge", {"ids": ["a"]}),
        Operation("POST", "/incidents/priority", {"priority": "p1", "ids": ["b"]}),
        escalate("c"),
        Operation("POST", "/incidents/resolve", {"ids": ["d"]}),
    ]
    journal = FileJournal(tmp_path / "j.jsonl")
    result = run(journal, ops, handler, UnavailableClient)
    assert sent == []
    assert result.outcome == "failed"
    assert result.unavailable_error == "the Spike API failed 10 calls in a row; stopping"
    assert [f.incident for f in result.failed] == ["a"]
    assert [(f.incident, f.reason) for f in result.skipped] == [
        ("b", "not started: the Spike API is unavailable"),
        ("c", "not started: the Spike API is unavailable"),
        ("d", "not started: the Spike API is unavailable"),
    ]
    assert result.to_json(None, 0)["error"] == result.unavailable_error
    assert journal.records()[-1]["outcome"] == "failed"


class BrokenClient(SpikeClient):
    async def call(self, op: Operation) -> Any:
        raise ReconcileError("the client broke")


def test_the_end_record_says_aborted_when_the_apply_dies(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path / "j.jsonl")
    with pytest.raises(ReconcileError, match="the client broke"):
        run(
            journal,
            [Operation("POST", "/incidents/resolve", {"ids": ["a"]})],
            lambda r: httpx.Response(200),  # never called: the client breaks first
            BrokenClient,
        )
    end = journal.records()[-1]
    assert (end["kind"], end["outcome"], end["applied"], end["error"]) == (
        "apply-end",
        "aborted",
        0,
        "the client broke",
    )


# ---------------------------------------------------------------------------------------------
# the journal: a kill in flight, the operator's count, plans


def uncertain_journal(path: Path, *, outcome: bool = True) -> FileJournal:
    """`a` escalated once (confirmed), then a second escalation of unknown outcome."""
    journal = FileJournal(path)
    with journal.open_for_apply(0, "test") as writer:
        writer.start(PLAN, 2)
        first = writer.intent(escalate("a"), PLAN)
        writer.applied(escalate("a"), PLAN, first)
        second = writer.intent(escalate("a", "b"), PLAN)
        if outcome:
            writer.uncertain(second, "502 bad gateway", PLAN)
            writer.end(PLAN, "failed", applied=1, uncertain=2)
    return journal


def test_an_intent_without_outcome_is_uncertain_and_the_unfinished_apply_is_named(
    tmp_path: Path,
) -> None:
    journal = uncertain_journal(tmp_path / "j.jsonl", outcome=False)
    state = journal.read()
    assert sorted(state.uncertain) == ["a", "b"]
    assert state.incidents == {"a": {"escalations": 1}}
    assert len(state.warnings) == 1
    warning = state.warnings[0]
    assert warning.startswith(f"{journal.path}:2: the apply started at ")
    assert "never ended: it was killed, or it is still running" in warning
    assert "escalations of a, b may have been sent and are uncertain" in warning


def test_plans_warn_about_uncertain_escalations_and_plan_none(tmp_path: Path) -> None:
    journal = uncertain_journal(tmp_path / "j.jsonl")
    states = tmp_path / "states"
    write_states(states, {"a": {"escalations": 3}, "b": {"escalations": 1, "priority": "p2"}})
    code, out, err = cli("plan", str(states), "--journal", str(journal.path), "--format", "json")
    assert code == 0, err
    body = json.loads(out)
    assert [op["path"] for op in body["operations"]] == ["/incidents/priority"]
    notes = [w for w in body["warnings"] if "escalations" in w]
    assert [n.split(":")[0] for n in notes] == ["incident a", "incident b"]
    assert "the outcome of an escalate call is unknown (502 bad gateway" in notes[0]
    assert notes[0].endswith("activity log: reconcile refresh --id a --escalations N")
    for fmt in ("text", "markdown"):
        code, out, _ = cli("plan", str(states), "--journal", str(journal.path), "--format", fmt)
        assert code == 0
        assert "reconcile refresh --id a --escalations N" in out
        assert "reconcile refresh --id b --escalations N" in out
        assert "POST /incidents/escalate" not in out

    # The operator reads 2 escalations of a in Spike's activity log (the second happened).
    code, out, err = cli(
        "refresh", "--id", "a", "--escalations", "2", "--journal", str(journal.path)
    )
    assert code == 0, err
    assert out.startswith("Recorded 2 escalations of a from Spike's activity log")
    code, out, _ = cli("plan", str(states), "--journal", str(journal.path), "--format", "json")
    body = json.loads(out)
    # a: 2 -> 3, one call; b stays uncertain until its count is recorded too.
    assert [op["body"] for op in body["operations"] if op["path"] == ESCALATE] == [{"ids": ["a"]}]
    assert [w.split(":")[0] for w in body["warnings"]] == ["incident b"]
    assert journal.read().incidents["a"]["escalations"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--escalations", "-1", "--id", "a"], "Invalid value for '--escalations'"),
        (["--escalations", "1.5", "--id", "a"], "Invalid value for '--escalations'"),
        (["--escalations", "1"], "--escalations needs exactly one --id"),
        (["--escalations", "1", "--id", "a", "--id", "b"], "--escalations needs exactly one --id"),
        (["--escalations", "1", "--id", "a", "states"], "--escalations takes no PATH"),
        (["--escalations", "0", "--id", "a"], "--escalations 0 is below the 1 escalations of a"),
        (["--escalations", "1", "--id", "a b"], "--target: invalid incident id 'a b'"),
    ],
)
def test_refresh_escalations_is_checked(tmp_path: Path, args: list[str], message: str) -> None:
    journal = uncertain_journal(tmp_path / "j.jsonl")
    before = journal.path.read_bytes()
    code, _, err = cli("refresh", *args, "--journal", str(journal.path))
    assert code == 1
    assert message in err
    assert journal.path.read_bytes() == before


def test_a_saved_plan_never_escalates_an_uncertain_incident(tmp_path: Path) -> None:
    journal = uncertain_journal(tmp_path / "j.jsonl")
    states = tmp_path / "states"
    write_states(states, {"a": {"escalations": 3}})
    plan_file = tmp_path / "plan.json"
    assert cli("plan", str(states), "--journal", str(journal.path), "--out", str(plan_file))[0] == 0
    body = json.loads(plan_file.read_text())
    body["operations"] = [{"method": "POST", "path": ESCALATE, "body": {"ids": ["a"]}}]
    body["plan_digest"] = digest(body)
    plan_file.write_text(json.dumps(body))
    code, _, err = cli("apply", str(plan_file), "--journal", str(journal.path))
    assert code == 1
    assert "escalates a, whose last escalation has an unknown outcome" in err


def test_a_killed_apply_leaves_its_escalation_uncertain(tmp_path: Path) -> None:
    """kill -9 while an escalate call is in flight: the next plan does not escalate again."""
    states = tmp_path / "states"
    write_states(states, {"a": {"escalations": 1}})
    journal = tmp_path / "j.jsonl"
    reconcile = RECONCILE
    with SandboxServer({"a": {}}, api_key=KEY, team_id=TEAM, latency=2.0) as server:
        environ = {**os.environ, "SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY}
        environ["SPIKE_TEAM_ID"] = TEAM
        proc = subprocess.Popen(
            [str(reconcile), "apply", str(states), "--auto-approve", "--journal", str(journal)],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not (journal.exists() and b'"kind":"intent"' in journal.read_bytes()):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    code, out, err = cli("plan", str(states), "--journal", str(journal), "--format", "json")
    assert code == 0
    assert json.loads(out)["operations"] == []
    assert "never ended: it was killed, or it is still running" in err
    assert "escalations of a may have been sent" in err
    assert "reconcile refresh --id a --escalations N" in json.loads(out)["warnings"][0]


# ---------------------------------------------------------------------------------------------
# the journal cannot be written


def test_a_full_disk_is_a_clean_error_and_keeps_what_was_journaled(tmp_path: Path) -> None:
    states = tmp_path / "states"
    write_states(states, {f"i{n}": {"public_sharing": True} for n in range(12)})
    journal = tmp_path / "j.jsonl"
    with FileJournal(journal).open_for_apply(0, "create") as writer:
        writer.forget(["x"], None)
    room = journal.stat().st_size + 700  # the start record and a few calls
    with SandboxServer({f"i{n}": {} for n in range(12)}, api_key=KEY, team_id=TEAM) as server:
        environ = {**os.environ, "SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY}
        environ["SPIKE_TEAM_ID"] = TEAM
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                DISK_FULL,
                str(room),
                "apply",
                str(states),
                "--auto-approve",
                "--journal",
                str(journal),
                "--parallelism",
                "1",
            ],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {journal}: cannot write the journal: File too large")
    state = FileJournal(journal).read()  # every line reads back: the failed one was cut
    assert state.warnings[0].endswith(
        "never ended: it was killed, or it is still running; "
        "calls it made are journaled, a call in flight is planned again"
    )
    assert 1 <= len(state.incidents) < 12
    assert journal.read_bytes().endswith(b"\n")


# ---------------------------------------------------------------------------------------------
# property: never more than the files ask, even with ambiguous failures


class FakeSpike:
    """Spike's escalation counters behind a transport that fails some calls ambiguously.

    `faults` says, per escalate call in order, what goes wrong: None (nothing), "after" (Spike
    acts, the answer is a 500), "before" (a 502 before Spike acts), "refused" (a 400).
    """

    def __init__(self, faults: list[str | None]) -> None:
        self.escalations: Counter[str] = Counter()
        self.faults = iter(faults)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content).get("ids", [])
        if request.url.path != ESCALATE:
            return httpx.Response(200, json={})
        fault = next(self.faults, None)
        if fault == "before":
            return httpx.Response(502, json={"message": "bad gateway"})
        if fault == "refused":
            return httpx.Response(400, json={"message": "refused"})
        self.escalations.update(ids)
        return httpx.Response(500 if fault == "after" else 200, json={})


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    wanted=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 4), min_size=1, max_size=4
    ),
    faults=st.lists(st.sampled_from([None, None, "after", "before", "refused"]), max_size=12),
    batch=st.integers(1, 3),
)
def test_no_incident_is_escalated_more_than_its_file_asks(
    tmp_path_factory: pytest.TempPathFactory,
    wanted: dict[str, int],
    faults: list[str | None],
    batch: int,
) -> None:
    journal = FileJournal(tmp_path_factory.mktemp("prop") / "j.jsonl")
    spike = FakeSpike(faults)
    desired = {cid: {"escalations": n} for cid, n in wanted.items()}
    for _ in range(4):  # apply until nothing is left to do (or only uncertainty)
        state = journal.read()
        made = plan(
            desired, state.incidents, batch_size=batch, kept=state.kept, uncertain=state.uncertain
        )
        if not made.operations:
            break
        run(journal, made.operations, spike)
    state = journal.read()
    for cid, n in wanted.items():
        assert spike.escalations[cid] <= n
        confirmed = state.escalations(cid) or 0
        assert confirmed <= spike.escalations[cid]
        if cid not in state.uncertain:
            assert confirmed == spike.escalations[cid] == n

    # The operator records what the activity log shows; then the files are met exactly.
    for cid in sorted(state.uncertain):
        with journal.open_for_apply(0, "operator") as writer:
            writer.set_values({cid: {"escalations": spike.escalations[cid]}}, "activity-log")
    spike.faults = iter([])
    state = journal.read()
    made = plan(
        desired, state.incidents, batch_size=batch, kept=state.kept, uncertain=state.uncertain
    )
    run(journal, made.operations, spike)
    assert {cid: spike.escalations[cid] for cid in wanted} == wanted
    # Applying the same plan's inputs again changes nothing.
    state = journal.read()
    again = plan(
        desired, state.incidents, batch_size=batch, kept=state.kept, uncertain=state.uncertain
    )
    assert (again.operations, again.forget, again.unmanaged) == ([], [], [])
    assert state.uncertain == {}


# ---------------------------------------------------------------------------------------------
# the journal file: what is a record, what is damage, who holds the lock

LINEAGE = '{"kind":"lineage","lineage":"L","format":1,"at":"t"}\n'
ACK = (
    '{"kind":"op","serial":1,"at":"t","plan":null,"method":"POST",'
    '"path":"/incidents/acknowledge","body":{"ids":["a"]}}'
)


def test_a_complete_last_line_without_its_newline_is_a_record(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(LINEAGE + ACK)  # e.g. written by hand, or by an editor that strips it
    state = FileJournal(path).read()
    assert (state.serial, state.warnings) == (1, [])
    assert state.incidents == {"a": {"status": "acknowledged"}}
    with FileJournal(path).open_for_apply(0, "test") as writer:
        writer.applied(Operation("POST", "/incidents/resolve", {"ids": ["a"]}), None)
    text = path.read_text()
    assert text.startswith(LINEAGE + ACK + "\n{")
    assert text.endswith("\n")
    assert FileJournal(path).read().incidents == {"a": {"status": "resolved"}}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (ACK.replace('"serial":1', '"serial":true'), "serial True does not follow 0"),
        (ACK.replace('"serial":1', '"serial":1.0'), "serial 1.0 does not follow 0"),
        ('{"kind":"apply-start","at":"t","plan":null,"operations":true}', "malformed apply-start"),
        ('{"kind":"apply-end","at":"t","plan":null,"outcome":"ok","applied":1.0}', "malformed"),
        (
            '{"kind":"set","serial":1,"at":"t","source":"x","incidents":{"a":{"escalations":true}}}',
            "malformed set record",
        ),
        (
            '{"kind":"uncertain","serial":1,"at":"t","plan":null,"intent":1,"ids":["a"],"reason":""}',
            "uncertain names intent 1, which is not a pending escalate intent",
        ),
        (
            '{"kind":"intent","serial":1,"at":"t","plan":null,"method":"POST",'
            '"path":"/incidents/resolve","body":{"ids":["a"]}}',
            "an intent record for a call other than escalate",
        ),
    ],
)
def test_numbers_must_be_integers_and_outcomes_must_name_an_intent(
    tmp_path: Path, record: str, message: str
) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(LINEAGE + record + "\n")
    with pytest.raises(JournalError, match=rf"j\.jsonl:2: {re.escape(message)}"):
        FileJournal(path).read()


def test_a_lineage_format_of_true_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(LINEAGE.replace('"format":1', '"format":true'))
    with pytest.raises(JournalError, match=r"j\.jsonl:1: unsupported journal format True"):
        FileJournal(path).read()


@pytest.mark.parametrize("last", [False, True])
def test_deeply_nested_lines_are_refused_naming_the_line(tmp_path: Path, last: bool) -> None:
    path = tmp_path / "j.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text(LINEAGE + deep + ("" if last else "\n" + ACK + "\n"))
    for action in (FileJournal(path).read, FileJournal(path).records):
        with pytest.raises(
            JournalError, match=r"j\.jsonl:2: corrupt journal line .*nested too deeply"
        ):
            action()


HOLD = """
import sys, time
from reconciler.journal.file import FileJournal
with FileJournal(sys.argv[1]).open_for_apply(0, "holder through the link"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_journal_reached_through_a_symlink_is_locked_at_its_real_path(tmp_path: Path) -> None:
    real = tmp_path / "real" / "journal.jsonl"
    real.parent.mkdir()
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(link)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        with pytest.raises(LockHeldError, match=rf"pid {proc.pid} .*\(holder through the link\)"):
            FileJournal(real).open_for_apply(0, "test").__enter__()
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert not (tmp_path / "link.jsonl.lock").exists()


def test_a_deeply_nested_holder_file_names_no_holder(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        (tmp_path / "journal.jsonl.lock.holder").write_text("[" * 100_000 + "]" * 100_000)
        with pytest.raises(LockHeldError, match="locked by another apply: holder unknown"):
            FileJournal(path).open_for_apply(0, "test").__enter__()
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_deeply_nested_postgresql_record_is_refused_naming_it(url: str, admin: Any) -> None:
    journal = PostgresJournal(url)
    with journal.open_for_apply(0, "test") as writer:
        writer.start(PLAN, 0)
    namespace = journal.namespace
    deep = "[" * 5_000 + "]" * 5_000
    admin.execute(
        "INSERT INTO reconcile_journal (namespace, position, record) VALUES (%s, 3, %s)",
        (namespace, deep),
    )
    with pytest.raises(JournalError, match=r"record 3: corrupt record \(JSON nested too deeply"):
        journal.read()


def test_postgresql_replays_intents_and_warns_about_an_unfinished_apply(url: str) -> None:
    journal = PostgresJournal(url)
    with journal.open_for_apply(0, "test") as writer:
        writer.start(PLAN, 1)
        writer.intent(escalate("a"), PLAN)
    state = journal.read()
    assert list(state.uncertain) == ["a"]
    assert "escalations of a may have been sent" in state.warnings[0]
    assert state.warnings[0].startswith(f"{journal.location}: record 2: the apply started")


def test_apply_exits_1_naming_the_uncertain_incidents(tmp_path: Path) -> None:
    """End to end: a refused escalate batch is sent once, reported, and not planned again."""
    states = tmp_path / "states"
    write_states(states, {"a": {"escalations": 1}, "ghost": {"escalations": 1}})
    journal = str(tmp_path / "j.jsonl")
    with (
        SandboxServer({"a": {}}, api_key=KEY, team_id=TEAM) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        code, out, err = cli("apply", str(states), "--auto-approve", "--journal", journal)
        assert code == 1, err
        assert [c["path"] for c in server.calls if c["method"] == "POST"] == [ESCALATE]
        assert server.incidents()["a"]["escalations"] == 0
        for cid in ("a", "ghost"):
            assert (
                f"  ? {cid}: POST /incidents/escalate: outcome unknown: unknown incident ids: "
                "ghost: Bad Request; check Spike's activity log, then record the count: "
                f"reconcile refresh --id {cid} --escalations N\n"
            ) in out
        assert out.endswith(
            "Apply failed: 0 API calls applied, 2 escalations uncertain. "
            "Run apply again to do the rest.\n"
        )
        code, out, err = cli("apply", str(states), "--auto-approve", "--journal", journal)
        assert (code, out) == (0, "No changes. Nothing to apply.\n")
        assert "reconcile refresh --id ghost --escalations N" in err
        assert len(server.calls) == 1


# ---------------------------------------------------------------------------------------------
# group commit


class CountingWriter(JournalWriter):
    """A journal backend in memory that counts its syncs (each one a disk flush)."""

    def __init__(self) -> None:
        super().__init__(Recorded())
        self.records: list[dict[str, Any]] = []
        self.syncs = 0
        self.durable = 0  # records made durable so far

    def _store(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if not self._grouped:
            self._sync()

    def _sync(self) -> None:
        time.sleep(0.005)  # a slow disk: calls finishing meanwhile join the next group
        self.syncs += 1
        self.durable = len(self.records)


def test_calls_that_finish_together_share_one_sync(tmp_path: Path) -> None:
    writer = CountingWriter()
    parallelism = 4
    worst = 0

    async def go() -> ApplyResult:
        nonlocal worst
        waiting: list[asyncio.Event] = []

        async def handler(request: httpx.Request) -> httpx.Response:
            nonlocal worst
            # Sent calls whose op record is not durable yet, this one included.
            sent = len(waiting) + 1
            durable = sum(r["kind"] == "op" for r in writer.records[: writer.durable])
            worst = max(worst, sent - durable)
            release = asyncio.Event()
            waiting.append(release)
            if len(waiting) % parallelism == 0:  # four in flight: all answer at once
                for event in waiting[-parallelism:]:
                    event.set()
            await release.wait()
            return httpx.Response(200, json={})

        client = SpikeClient(
            CONFIG, transport=httpx.MockTransport(handler), retry=FAST, parallelism=parallelism
        )
        ops = [Operation("POST", "/incidents/acknowledge", {"ids": [f"i{n}"]}) for n in range(16)]
        async with client:
            return await Applier(client, writer, plan_digest=PLAN).run(ops)

    result = asyncio.run(go())
    assert len(result.applied) == 16
    ops = [r for r in writer.records if r["kind"] == "op"]
    assert [r["serial"] for r in ops] == list(range(1, 17))
    assert writer.state.incidents == {f"i{n}": {"status": "acknowledged"} for n in range(16)}
    # lineage, start and end are synced alone; the 16 op records in fewer groups than calls
    assert writer.syncs - 3 < 16
    assert worst <= 2 * parallelism


def test_a_postgresql_group_is_one_transaction(url: str) -> None:
    journal = PostgresJournal(url)
    ack = Operation("POST", "/incidents/acknowledge", {"ids": ["a"]})
    with journal.open_for_apply(0, "test") as writer:
        writer.start(PLAN, 2)
        with writer.group():
            writer.applied(ack, PLAN)
            writer.applied(escalate("b"), PLAN)
            # Another session sees none of the group before its commit.
            assert PostgresJournal(url).read().serial == 0
        assert PostgresJournal(url).read().incidents == {
            "a": {"status": "acknowledged"},
            "b": {"escalations": 1},
        }
        writer.end(PLAN, "applied")
    assert [r["kind"] for r in journal.records()] == [
        *("lineage", "apply-start", "op", "op", "apply-end")
    ]


# Derandomized: the seeds, and so the faults, are the same on every run (a call that meets
# six faults in a row would fail its retries, which is not what this test is about).
@settings(max_examples=10, deadline=None, derandomize=True)
@given(
    wanted=st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.integers(1, 3), min_size=1, max_size=3
    ),
    fault_seed=st.integers(0, 10_000),
)
def test_escalations_through_the_sandbox_under_faults_spike_did_not_act_on(
    tmp_path_factory: pytest.TempPathFactory, wanted: dict[str, int], fault_seed: int
) -> None:
    """429 and 503 (retried: Spike did not act) never make an incident escalate twice."""
    work = tmp_path_factory.mktemp("sandbox")
    write_states(work / "states", {cid: {"escalations": n} for cid, n in wanted.items()})
    journal = str(work / "j.jsonl")
    with (
        SandboxServer(
            {cid: {} for cid in wanted},
            api_key=KEY,
            team_id=TEAM,
            fault_rate=0.3,
            fault_codes=(429, 503),
            fault_seed=fault_seed,
            retry_after=None,
        ) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        for _ in range(2):  # the second apply finds nothing to do
            code, out, err = cli(
                "apply", str(work / "states"), "--auto-approve", "--journal", journal
            )
            assert code == 0, out + err
        live = server.incidents()
        assert {cid: live[cid]["escalations"] for cid in wanted} == wanted
    state = FileJournal(journal).read()
    assert (state.uncertain, state.intents) == ({}, {})
    assert {cid: state.escalations(cid) for cid in wanted} == wanted
