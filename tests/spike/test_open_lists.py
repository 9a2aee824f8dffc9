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
    # Pages counted by the answer: 3; walked without counts: until an empty page (one more).
    triggered = [p for p in handler.seen if p.startswith("/incidents/triggered")]
    assert len(triggered) == (3 if shape in ("pagination", "total-only") else 4)


def test_a_page_that_repeats_means_the_list_ignores_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"incidents": [item("x-1"), item("x-2"), item("x-3")]})

    with pytest.raises(LiveStateError, match="page 2: the same incidents as before"):
        run(handler)


class OneList:
    """A handler answering `/incidents/triggered` page N with `triggered(N, perPage)`, and the
    acknowledged list with an empty list; every request is noted in `seen`."""

    def __init__(self, triggered: Callable[[int, int], Any]) -> None:
        self.triggered = triggered
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.url.path}?{request.url.query.decode()}")
        if request.url.path == "/incidents/acknowledged":
            return httpx.Response(200, json={"incidents": []})
        query = parse_qs(request.url.query.decode())
        body = self.triggered(int(query["page"][0]), int(query["perPage"][0]))
        return httpx.Response(200, json=body)


@pytest.mark.parametrize("paging", [{"totalPages": 200_000}, {"total": 20_000_000, "perPage": 100}])
def test_stated_page_counts_have_the_same_limit_as_a_walk(paging: dict[str, int]) -> None:
    """A page count beyond MAX_PAGES is refused before any page but those asked for ahead
    of the first (parallelism 4, two lists: two pages each) is asked for."""
    handler = OneList(lambda page, size: {"incidents": [item("x-1")], "pagination": paging})
    with pytest.raises(LiveStateError, match="pagination says 200000 pages, more than the 10000"):
        run(handler, per_page=100)
    assert sorted(p for p in handler.seen if "triggered" in p) == [
        "/incidents/triggered?page=1&perPage=100",
        "/incidents/triggered?page=2&perPage=100",
    ]


@pytest.mark.parametrize("empty", [1, 2])
def test_an_empty_page_before_the_stated_last_is_an_error(empty: int) -> None:
    def triggered(page: int, size: int) -> Any:
        chunk = [] if page == empty else [item(f"x-{3 * page + n}") for n in range(3)]
        return {"incidents": chunk, "pagination": {"page": page, "totalPages": 3}}

    handler = OneList(triggered)
    with pytest.raises(
        LiveStateError, match=f"triggered page {empty}: empty, yet pagination said 3"
    ):
        run(handler)
    # An empty first page of three: the third is not asked for (the second was, with it);
    # after an empty second page the third may have been asked for already, or not.
    asked = sum("triggered" in p for p in handler.seen)
    assert asked == 2 if empty == 1 else asked in (2, 3)


def test_an_empty_last_page_is_an_end() -> None:
    def triggered(page: int, size: int) -> Any:
        chunk = [] if page == 2 else [item("x-1")]
        return {"incidents": chunk, "pagination": {"page": page, "totalPages": 2}}

    assert [c.counter_id for c in run(OneList(triggered))] == ["x-1"]


@pytest.mark.parametrize("bare", [False, True])
def test_a_list_without_counts_that_ignores_per_page_is_read_to_an_empty_page(
    bare: bool,
) -> None:
    """A short page is not taken for the last one: the list may serve fewer than asked."""
    every = [item(f"x-{n:02}") for n in range(45)]

    def triggered(page: int, size: int) -> Any:
        chunk = every[(page - 1) * 20 : page * 20]  # 20 a page, whatever perPage says
        return chunk if bare else {"incidents": chunk}

    handler = OneList(triggered)
    assert [c.counter_id for c in run(handler, per_page=100)] == [f"x-{n:02}" for n in range(45)]
    assert sum("triggered" in p for p in handler.seen) == 4  # 20, 20, 5, then empty


def test_a_list_without_counts_that_ignores_page_and_per_page_is_an_error() -> None:
    handler = OneList(lambda page, size: {"incidents": [item(f"x-{n}") for n in range(20)]})
    with pytest.raises(LiveStateError, match="page 2: the same incidents as before"):
        run(handler, per_page=100)


def test_a_page_of_incidents_resolved_since_is_not_a_repeat() -> None:
    """Pages are compared by the ids the list answered, resolved items included."""

    def triggered(page: int, size: int) -> Any:
        if page == 1:
            return {"incidents": [item(f"x-{n}") for n in range(3)]}
        if page == 2:
            return {"incidents": [item(f"x-{n}", "RES") for n in range(3, 6)]}
        return {"incidents": []}

    assert [c.counter_id for c in run(OneList(triggered))] == ["x-0", "x-1", "x-2"]


@pytest.mark.parametrize("counted", [False, True])
def test_a_counted_list_that_ignores_page_is_an_error(counted: bool) -> None:
    """The same items on every page, no pagination.page: never de-duplicated into a list."""
    paging: dict[str, int] = {"totalPages": 3}
    if counted:
        paging["total"] = 9

    def triggered(page: int, size: int) -> Any:
        return {"incidents": [item(f"x-{n}") for n in range(3)], "pagination": paging}

    with pytest.raises(
        LiveStateError,
        match=r"GET /incidents/triggered: the list answered incident x-0 on pages 1 and 2 "
        r"\(it ignores `page`, or changed while it was read\): run again",
    ):
        run(OneList(triggered))


@pytest.mark.parametrize("shape", ["counted", "none"])
def test_an_incident_on_two_pages_is_an_error(shape: str) -> None:
    """A list that changed while it was read (a new incident pushed x-2 onto page 2)."""
    pages = {1: ["x-0", "x-1", "x-2"], 2: ["x-2", "x-3", "x-4"], 3: []}

    def triggered(page: int, size: int) -> Any:
        body: dict[str, Any] = {"incidents": [item(cid) for cid in pages[page]]}
        if shape == "counted":
            body["pagination"] = {"page": page, "totalPages": 2, "total": 6}
        return body

    with pytest.raises(LiveStateError, match="incident x-2 on pages 1 and 2"):
        run(OneList(triggered))


def test_an_incident_twice_on_one_page_is_an_error() -> None:
    body = {"incidents": [item("x-1"), item("x-1")], "pagination": {"totalPages": 1}}
    with pytest.raises(
        LiveStateError, match="triggered page 1: the list answered incident x-1 twice"
    ):
        run(OneList(lambda page, size: body))


@pytest.mark.parametrize("total", [5, 7])
def test_a_count_of_incidents_other_than_the_stated_total_is_an_error(total: int) -> None:
    """An incident resolved while the list was read moves the others up a place: one of
    them is never seen. The stated total tells; a partial list is never planned on."""
    pages = {1: ["x-0", "x-1", "x-2"], 2: ["x-4", "x-5", "x-6"]}

    def triggered(page: int, size: int) -> Any:
        paging = {"page": page, "totalPages": 2, "total": total}
        return {"incidents": [item(cid) for cid in pages[page]], "pagination": paging}

    with pytest.raises(
        LiveStateError,
        match=f"pagination.total is {total}, but the pages held 6 incidents "
        r"\(the list changed while it was read\): run again",
    ):
        run(OneList(triggered))


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
        ({"incidents": [], "pagination": {"totalPages": 1, "total": "7"}}, "total '7' is not a"),
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
    # An empty or blank title is no title: the message stands for it (docs/rules.md).
    for blank in ("", "  \t"):
        got = parse_list_item(where, "triggered", item("x", title=blank, message="disk full"))
        assert got is not None and got.title == "disk full"
        got = parse_list_item(where, "triggered", {"counterId": "x", "title": blank})
        assert got is not None and got.title == blank  # nothing better to search
    got = parse_list_item(where, "triggered", item("x", title="t", message="m"))
    assert got is not None and got.title == "t"
    assert parse_list_item(where, "triggered", item("x", "ACK")).status == "acknowledged"  # type: ignore[union-attr]


@pytest.mark.parametrize("shape", ["pagination", "none"])
def test_the_next_pages_are_asked_for_before_the_first_answers(shape: str) -> None:
    """The page count is known only from page 1, so page 2 (the share of the parallelism
    each list asks ahead: 4 / 2 lists) is asked for with it: page 1 answers only once page 2
    was asked for, and a long list costs no extra round trip."""
    asked_for_page_2 = asyncio.Event()
    seen: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/incidents/acknowledged":
            return httpx.Response(200, json={"incidents": []})
        page = int(parse_qs(request.url.query.decode())["page"][0])
        seen.append(page)
        if page == 2:
            asked_for_page_2.set()
        if page == 1:
            await asyncio.wait_for(asked_for_page_2.wait(), 2.0)
        chunk = TRIGGERED[(page - 1) * 3 : page * 3]
        body: dict[str, Any] = {"incidents": chunk}
        if shape == "pagination":
            body["pagination"] = {"page": page, "totalPages": 3}
        return httpx.Response(200, json=body)

    found = run(handler)
    assert sorted(c.counter_id for c in found) == sorted(f"t-{n}" for n in range(7))
    assert seen[:2] == [1, 2]
    # Counted: pages 1-3; walked: to the empty page 4 (page 5, asked ahead, never answers
    # before the end is found: it is dropped).
    assert sorted(set(seen)) == ([1, 2, 3] if shape == "pagination" else [1, 2, 3, 4])


def test_a_page_asked_for_ahead_past_the_stated_end_is_dropped_unread() -> None:
    """One page stated: page 2, asked for ahead of it, is never read (whatever it holds)."""

    def triggered(page: int, size: int) -> Any:
        if page == 1:
            return {"incidents": [item("x-1")], "pagination": {"page": 1, "totalPages": 1}}
        return {"nothing": "a list"}  # would be an error if it were read

    handler = OneList(triggered)
    assert [c.counter_id for c in run(handler)] == ["x-1"]
    assert sorted(p for p in handler.seen if "triggered" in p) == [
        "/incidents/triggered?page=1&perPage=3",
        "/incidents/triggered?page=2&perPage=3",
    ]


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
