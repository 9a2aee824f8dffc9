"""Reading the open-incident lists over httpx.MockTransport (docs/api-calls.md, Open
incidents): every page, pages in any order give the same candidates, an answer not understood
is an error naming what is missing, and an incident is read one by one only when a rule needs
a field its list item lacks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import LiveStateError
from reconciler.rules import UNKNOWN, Candidate, Rule, undecided
from reconciler.spike.client import RetryPolicy, SpikeClient, SpikeConfig
from reconciler.spike.live import complete, list_open, parse_list_item

FAST = RetryPolicy(attempts=2, base=0.0, cap=0.0, total=5.0)
T = "2026-11-01T08:00:00.000Z"


def item(cid: str, status: str = "NACK", **extra: Any) -> dict[str, Any]:
    return {"counterId": cid, "status": status, "title": f"t {cid}", "NACK_at": T, **extra}


def run(
    handler: Callable[[httpx.Request], httpx.Response],
    then: Callable[[SpikeClient, list[Candidate]], Any] | None = None,
    per_page: int = 3,
) -> Any:
    config = SpikeConfig("https://api.spike.sh", "sk-test", "team-1")

    async def no_sleep(seconds: float) -> None:
        pass

    async def go() -> Any:
        client = SpikeClient(
            config,
            transport=httpx.MockTransport(handler),
            retry=FAST,
            sleep=no_sleep,
            rng=random.Random(1),
            parallelism=4,
        )
        async with client:
            found = await list_open(client, per_page)
            return found if then is None else await then(client, found)

    return asyncio.run(go())


def paged(lists: dict[str, list[dict[str, Any]]], shape: str = "pagination") -> Any:
    """A handler serving `lists` by path, `perPage` items a page, in the given shape."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.path}?{request.url.query.decode()}")
        items = lists.get(request.url.path)
        if items is None:
            return httpx.Response(404, json={"message": "not found", "error": "Not Found"})
        query = parse_qs(request.url.query.decode())
        page, size = int(query["page"][0]), int(query["perPage"][0])
        chunk = items[(page - 1) * size : page * size]
        if shape == "bare":
            return httpx.Response(200, json=chunk)
        body: dict[str, Any] = {"incidents": chunk}
        if shape == "pagination":
            total_pages = -(-len(items) // size)
            body["pagination"] = {
                "page": page,
                "perPage": size,
                "total": len(items),
                "totalPages": total_pages,
            }
        elif shape == "total-only":
            body["pagination"] = {"total": len(items), "perPage": size}
        return httpx.Response(200, json=body)

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


TRIGGERED = [item(f"t-{n}") for n in range(7)]
ACKED = [item(f"a-{n}", "ACK", priority="p4") for n in range(4)]


@pytest.mark.parametrize("shape", ["pagination", "total-only", "none", "bare"])
def test_every_page_of_both_lists_is_read(shape: str) -> None:
    handler = paged({"/incidents/triggered": TRIGGERED, "/incidents/acknowledged": ACKED}, shape)
    found = run(handler)
    assert sorted(c.counter_id for c in found) == sorted(
        [f"t-{n}" for n in range(7)] + [f"a-{n}" for n in range(4)]
    )
    by_id = {c.counter_id: c for c in found}
    assert by_id["a-1"].status == "acknowledged" and by_id["a-1"].priority == "p4"
    assert by_id["t-1"].priority is UNKNOWN and by_id["t-1"].title == "t t-1"
    assert by_id["t-1"].created == 1_793_520_000.0
    # Pages counted by the answer: 3 + 2; walked without counts: until a short page.
    triggered = [p for p in handler.seen if p.startswith("/incidents/triggered")]
    assert len(triggered) == 3


def test_a_page_that_repeats_means_the_list_ignores_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"incidents": [item("x-1"), item("x-2"), item("x-3")]})

    with pytest.raises(LiveStateError, match="page 2: the same incidents as before"):
        run(handler)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"items": []}, "the response has no list of incidents"),
        ({"incidents": [{"status": "NACK"}]}, "an item has no valid counterId"),
        ({"incidents": [item("x-1", "OPEN")]}, "incident x-1: unrecognised status 'OPEN'"),
        ({"incidents": [item("x-1", NACK_at=1700000000)]}, "NACK_at 1700000000 is not an ISO"),
        ({"incidents": [item("x-1", priority="urgent")]}, "unrecognised priority 'urgent'"),
        ({"incidents": [], "pagination": {"page": 1}}, "neither totalPages nor total"),
        ({"incidents": [], "pagination": {"page": 4, "totalPages": 9}}, "pagination.page is 4"),
        ({"incidents": [], "pagination": "1/3"}, "'pagination' is not an object"),
    ],
)
def test_an_answer_not_understood_names_what_is_missing(body: Any, message: str) -> None:
    with pytest.raises(LiveStateError, match=message) as caught:
        run(lambda request: httpx.Response(200, json=body))
    assert str(caught.value).startswith("GET /incidents/")


def test_items_are_read_tolerantly() -> None:
    where = "GET /incidents/triggered page 1"
    got = parse_list_item(
        where,
        "triggered",
        {"counterId": 116, "message": "m", "groupedIncident": {"severity": "sev2"}, "priority": ""},
    )
    assert got == Candidate("116", "triggered", "m", None, None, "sev2")
    assert parse_list_item(where, "triggered", item("x", "RES")) is None
    assert parse_list_item(where, "triggered", item("x", "ACK")).status == "acknowledged"  # type: ignore[union-attr]


@settings(max_examples=40, deadline=None)
@given(order=st.permutations(range(4)), moved=st.booleans())
def test_the_order_of_the_pages_does_not_change_the_candidates(
    order: Sequence[int], moved: bool
) -> None:
    """Pages answered in any order (they are read concurrently), and an incident listed in
    both lists (it moved while they were read), give the same candidates."""
    pages = [[item(f"t-{3 * p + n}") for n in range(3)] for p in range(4)]
    acked = [item("a-1", "ACK")] + ([item("t-0", "ACK")] if moved else [])
    delays = {page + 1: order[page] for page in range(4)}

    async def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        page = int(query["page"][0])
        if request.url.path == "/incidents/acknowledged":
            return httpx.Response(200, json={"incidents": acked if page == 1 else []})
        await asyncio.sleep(delays[page] * 0.001)
        body = {"incidents": pages[page - 1], "pagination": {"page": page, "totalPages": 4}}
        return httpx.Response(200, json=body)

    found = run(handler)
    assert [c.counter_id for c in found] == sorted([f"t-{n}" for n in range(12)] + ["a-1"])
    assert {c.counter_id: c.status for c in found}["t-0"] == (
        "acknowledged" if moved else "triggered"
    )


def test_incidents_are_read_one_by_one_only_for_what_a_rule_needs() -> None:
    lists = {
        "/incidents/triggered": [item("x-1"), item("x-2", priority="p5"), item("x-3")],
        "/incidents/acknowledged": [],
    }
    serve = paged(lists)
    reads: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/incidents/x-"):
            cid = request.url.path.rsplit("/", 1)[1]
            reads.append(cid)
            status = "RES" if cid == "x-3" else "NACK"
            return httpx.Response(
                200,
                json={
                    "incident": {"counterId": cid, "status": status},
                    "groupedIncident": {"priority": None},
                },
            )
        return serve(request)

    by_priority = Rule(
        "p", "s.yaml", frozenset(["triggered"]), {"priority": "p5"}, priority=frozenset([None])
    )
    plain = Rule("q", "s.yaml", frozenset(["triggered"]), {"priority": "p5"})

    async def then(
        rules: list[Rule], client: SpikeClient, found: list[Candidate]
    ) -> list[Candidate]:
        return await complete(client, found, undecided(rules, found, 2e9))

    assert [c.priority for c in run(handler, lambda c, f: then([plain], c, f))] == [
        UNKNOWN,
        "p5",
        UNKNOWN,
    ]
    assert reads == []
    done = run(handler, lambda c, f: then([by_priority], c, f))
    assert sorted(reads) == ["x-1", "x-3"]  # x-2's item carried its priority
    # x-3 was resolved meanwhile: dropped.
    assert [(c.counter_id, c.priority) for c in done] == [("x-1", None), ("x-2", "p5")]
