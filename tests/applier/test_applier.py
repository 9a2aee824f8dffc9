"""The applier over httpx.MockTransport: waves, journaling, bisection, skipping, stopping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx

from reconciler.applier import Applier, ApplyResult
from reconciler.journal.file import FileJournal
from reconciler.model import Operation
from reconciler.spike.client import RetryPolicy, SpikeClient, SpikeConfig

CONFIG = SpikeConfig("https://api.spike.sh", "secret-key", "team")
FAST = RetryPolicy(attempts=2, base=0.0, cap=0.0, total=5.0)


def apply(
    tmp_path: Path,
    operations: list[Operation],
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    stop_after: int | None = None,
    forget: tuple[str, ...] = (),
) -> tuple[ApplyResult, FileJournal]:
    journal = FileJournal(tmp_path / "journal.jsonl")

    async def go() -> ApplyResult:
        stop = asyncio.Event()
        sent = 0

        def counting(request: httpx.Request) -> httpx.Response:
            nonlocal sent
            sent += 1
            if stop_after is not None and sent >= stop_after:
                stop.set()
            return handler(request)

        client = SpikeClient(
            CONFIG, transport=httpx.MockTransport(counting), retry=FAST, parallelism=2
        )
        with journal.open_for_apply(0, "test") as writer:
            async with client:
                applier = Applier(client, writer, plan_digest="sha256:x", stop=stop)
                return await applier.run(operations, forget)

    return asyncio.run(go()), journal


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={})


def test_every_success_is_journaled_in_wave_order(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={})

    ops = [
        Operation("POST", "/incidents/resolve", {"ids": ["a"]}),
        Operation("POST", "/incidents/escalate", {"ids": ["a", "b"]}),
        Operation("POST", "/incidents/priority", {"priority": "p2", "ids": ["a", "b"]}),
        Operation("POST", "/incidents/acknowledge", {"ids": ["b"]}),
    ]
    result, journal = apply(tmp_path, ops, handler, forget=("old",))
    assert result.outcome == "applied"
    assert seen == [
        "/incidents/acknowledge",
        "/incidents/priority",
        "/incidents/escalate",
        "/incidents/resolve",
    ]
    state = journal.read()
    assert state.incidents == {
        "a": {"priority": "p2", "escalations": 1, "status": "resolved"},
        "b": {"status": "acknowledged", "priority": "p2", "escalations": 1},
    }
    kinds = [r["kind"] for r in journal.records()]
    assert kinds == [
        *("lineage", "apply-start", "forget", "op", "op", "intent", "op", "op", "apply-end")
    ]
    assert journal.records()[-1]["outcome"] == "applied"


def test_a_rejected_id_is_bisected_out_and_skipped_later(tmp_path: Path) -> None:
    bodies: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["ids"]
        bodies.append(ids)
        if "bad" in ids:
            return httpx.Response(400, json={"message": "unknown incident ids: bad"})
        return httpx.Response(200, json={})

    ops = [
        Operation("POST", "/incidents/acknowledge", {"ids": ["a", "b", "bad", "c"]}),
        Operation("POST", "/incidents/resolve", {"ids": ["a", "bad"]}),
    ]
    result, journal = apply(tmp_path, ops, handler)
    assert result.outcome == "failed"
    assert [(f.incident, f.status_code, f.reason) for f in result.failed] == [
        ("bad", 400, "unknown incident ids: bad")
    ]
    assert [(f.incident, f.operation.path) for f in result.skipped] == [
        ("bad", "/incidents/resolve")
    ]
    # The bad id never reaches the resolve call; everything else is applied and journaled.
    assert bodies[-1] == ["a"]
    state = journal.read().incidents
    assert state["a"]["status"] == "resolved"
    assert state["b"]["status"] == state["c"]["status"] == "acknowledged"
    assert "bad" not in state


def test_server_errors_after_retries_fail_the_whole_call(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/public-sharing"):
            return httpx.Response(503, json={"message": "down"})
        return httpx.Response(200, json={})

    ops = [
        Operation("PATCH", "/incidents/a/public-sharing", {"publicSharing": True}),
        Operation("POST", "/incidents/escalate", {"ids": ["a", "b"]}),
    ]
    result, journal = apply(tmp_path, ops, handler)
    assert [f.incident for f in result.failed] == ["a"]
    assert "gave up after 2 attempts" in result.failed[0].reason
    assert [op.body for op in result.applied] == [{"ids": ["b"]}]
    assert journal.read().incidents == {"b": {"escalations": 1}}


def test_credentials_refused_stop_everything(tmp_path: Path) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(401, json={"message": "bad key"})

    ops = [
        Operation("POST", "/incidents/acknowledge", {"ids": ["a"]}),
        Operation("POST", "/incidents/resolve", {"ids": ["b"]}),
    ]
    result, journal = apply(tmp_path, ops, handler)
    assert calls == ["/incidents/acknowledge"]
    assert result.credentials_error is not None
    assert "secret-key" not in result.credentials_error
    assert result.outcome == "failed"
    assert journal.read().incidents == {}


def test_a_stop_lets_the_call_in_flight_finish_and_journals_it(tmp_path: Path) -> None:
    ops = [Operation("POST", "/incidents/escalate", {"ids": ["a"]}) for _ in range(5)]
    result, journal = apply(tmp_path, ops, ok, stop_after=2)
    assert result.outcome == "interrupted"
    assert len(result.applied) == 2
    assert journal.read().incidents == {"a": {"escalations": 2}}
    assert journal.records()[-1]["outcome"] == "interrupted"
