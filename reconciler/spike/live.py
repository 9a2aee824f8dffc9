"""Reading live incidents from Spike: `GET /incidents/{counterId}` -> field values, and the
open-incident lists (`GET /incidents/triggered`, `/incidents/acknowledged`) -> the candidates
of rules.

The parser is tolerant of extra fields and strict about the ones it needs: a missing or
unrecognised status is an error naming the incident and the field, never a wrong plan.
Priority and severity may sit under `groupedIncident`; the incident object is the fallback.
Public sharing and the escalation count are not in the response: they keep journaled values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..errors import ApiError, ApiUnavailableError, LiveStateError, printable
from ..model import PRIORITIES, SEVERITIES, Fields, Value, is_counter_id
from ..redact import clip
from ..rules import OPEN_STATUSES, UNKNOWN, Candidate, Unknown
from .client import SpikeClient

STATUS_CODES = {"NACK": "triggered", "ACK": "acknowledged", "RES": "resolved"}


def _shown(value: object) -> str:
    """A value from a response, for a message: short, printable, redacted."""
    text = repr(value)
    return clip(printable(text), 57, "...")


def _said(readings: list[str] | None, reading: str) -> None:
    """Note which reading of a shape was used (`reconcile doctor` reports them)."""
    if readings is not None:
        readings.append(reading)


def parse_incident(counter_id: str, body: Any, readings: list[str] | None = None) -> Fields:
    """The status, priority and severity of one incident from Spike's response.

    With `readings`, each reading used is appended to it ("status from incident.status",
    "priority from groupedIncident.priority", ...): words about the shape, never a value."""
    where = f"incident {counter_id}"
    if not isinstance(body, Mapping) or not isinstance(body.get("incident"), Mapping):
        raise LiveStateError(f"{where}: the response has no 'incident' object")
    incident = body["incident"]
    grouped = body.get("groupedIncident")
    grouped = grouped if isinstance(grouped, Mapping) else {}
    code = incident.get("status")
    if code is None:
        raise LiveStateError(f"{where}: the response has no 'incident.status'")
    if not isinstance(code, str) or code not in STATUS_CODES:
        raise LiveStateError(
            f"{where}: unrecognised incident.status {_shown(code)} (expected NACK, ACK or RES)"
        )
    fields: Fields = {"status": STATUS_CODES[code]}
    _said(readings, "status from incident.status")
    for name, allowed in (("priority", PRIORITIES), ("severity", SEVERITIES)):
        source = grouped if name in grouped else incident
        if name not in source:
            _said(readings, f"{name} not reported (the journaled value is kept)")
            continue  # not reported: keep what the journal knows
        _said(
            readings, f"{name} from {'groupedIncident' if source is grouped else 'incident'}.{name}"
        )
        value: Value = source[name]
        if value in ("", None):
            value = None
        elif value not in allowed:
            raise LiveStateError(
                f"{where}: unrecognised {name} {_shown(value)} "
                f"(expected {', '.join(allowed)} or null)"
            )
        fields[name] = value
    return fields


async def read_incidents(
    client: SpikeClient, ids: Iterable[str], missing: list[str] | None = None
) -> dict[str, Fields]:
    """Read each incident concurrently (the client's limiter bounds calls in flight).

    Raises ReconcileError listing every incident that could not be read: 404 means deleted
    or in another team; other failures carry the API's message. Credentials refused or the
    API unavailable raise that one error at once. With a `missing` list, an incident that
    answers 404 is appended to it (in id order) instead: a report of drift shows it.
    """
    ordered = sorted(set(ids))
    results = await asyncio.gather(
        *(client.get_incident(cid) for cid in ordered), return_exceptions=True
    )
    live: dict[str, Fields] = {}
    problems: list[str] = []
    for cid, result in zip(ordered, results, strict=True):
        if isinstance(result, ApiError):
            if result.status_code in (401, 403) or isinstance(result, ApiUnavailableError):
                raise result
            if result.status_code == 404 and missing is not None:
                missing.append(cid)
            elif result.status_code == 404:
                problems.append(f"incident {cid}: not found in Spike (deleted, or another team)")
            else:
                problems.append(f"incident {cid}: could not be read: {result}")
        elif isinstance(result, BaseException):
            raise result
        else:
            try:
                live[cid] = parse_incident(cid, result)
            except LiveStateError as exc:
                problems.append(str(exc))
    if problems:
        raise LiveStateError("\n".join(problems))
    return live


# ---------------------------------------------------------------------------------------------
# Open incidents: the candidates of rules (docs/api-calls.md, Open incidents)

#: The open-incident lists and the status each lists.
OPEN_LISTS = {"/incidents/triggered": "triggered", "/incidents/acknowledged": "acknowledged"}
#: Items asked for per page (the most Spike's paginated lists are known to take).
PER_PAGE = 100
#: Where the items of a list answer may be, in the order looked at.
ITEM_KEYS = ("incidents", "data")
#: A list without page counts is walked page by page; this many pages is the end of trust.
MAX_PAGES = 10_000


def _items(where: str, body: Any, readings: list[str] | None = None) -> list[Any]:
    if isinstance(body, list):
        _said(readings, "items: the answer itself (a list)")
        return body
    if isinstance(body, Mapping):
        for key in ITEM_KEYS:
            if isinstance(body.get(key), list):
                _said(readings, f"items under '{key}'")
                return list(body[key])
    raise LiveStateError(
        f"{where}: the response has no list of incidents (looked for the answer itself, "
        f"{' and '.join(repr(k) for k in ITEM_KEYS)})"
    )


def _paging(
    where: str, body: Any, page: int, per_page: int, readings: list[str] | None = None
) -> tuple[int, int | None] | None:
    """The list's page count and, when it says so, its item count (`total`), from its
    `pagination` object; None when the answer carries none (the list is then walked page by
    page)."""
    if not isinstance(body, Mapping) or "pagination" not in body:
        _said(readings, "no pagination: the list is read page by page until an empty page")
        return None
    paging = body["pagination"]
    if not isinstance(paging, Mapping):
        raise LiveStateError(f"{where}: 'pagination' is not an object")
    said = paging.get("page")
    if said is not None and said != page:
        raise LiveStateError(
            f"{where}: pagination.page is {_shown(said)}, not the page asked for ({page})"
        )
    total, size = paging.get("total"), paging.get("perPage", per_page)
    if total is not None and not (type(total) is int and total >= 0):
        raise LiveStateError(f"{where}: pagination.total {_shown(total)} is not a whole number")
    pages = paging.get("totalPages")
    if type(pages) is int and pages >= 0:
        _said(readings, "page count from pagination.totalPages")
        return pages, total
    if total is not None and type(size) is int and size > 0:
        _said(
            readings,
            "page count from pagination.total / "
            + ("pagination.perPage" if "perPage" in paging else "the perPage asked for"),
        )
        return -(-total // size), total
    raise LiveStateError(
        f"{where}: 'pagination' has neither totalPages nor total (a whole number): "
        "the number of pages is unknown"
    )


def _optional(
    where: str,
    name: str,
    item: Mapping[str, Any],
    readings: list[str] | None = None,
    grouped: Any = None,
) -> Value | Unknown:
    """`name` (priority or severity) of a list item, from its `groupedIncident` (`grouped`,
    looked up when not given) when that holds it, else from the item; UNKNOWN when absent.
    `where` names the item in a message (built only for one)."""
    if grouped is None:
        grouped = item.get("groupedIncident")
    source = grouped if isinstance(grouped, Mapping) and name in grouped else item
    if name not in source:
        _said(readings, f"{name}: not in the item (read from the incident when a rule needs it)")
        return UNKNOWN
    if readings is not None:
        _said(readings, f"{name} from {'groupedIncident.' if source is grouped else ''}{name}")
    value = source[name]
    if value in ("", None):
        return None
    if value not in (PRIORITIES if name == "priority" else SEVERITIES):
        allowed = PRIORITIES if name == "priority" else SEVERITIES
        raise LiveStateError(
            f"{where}: unrecognised {name} {_shown(value)} (expected {', '.join(allowed)} or null)"
        )
    return value  # type: ignore[no-any-return]


def parse_list_item(where: str, status: str, item: Any) -> Candidate | None:
    """One item of an open-incident list as a Candidate; None when it says it is resolved.

    counterId is required; `status` (NACK/ACK/RES) when present wins over the list it came
    from (the incident moved while the list was read); the title is `title`, else (absent,
    empty or blank) `message`; the trigger time is `NACK_at` (ISO 8601); priority and
    severity, from the item or its `groupedIncident`, are UNKNOWN when absent."""
    return _parse_item(where, status, item)[1]


def parse_list_page(
    path: str, page: int, per_page: int, body: Any, readings: list[str] | None = None
) -> tuple[list[str], tuple[int, int | None] | None]:
    """One page of an open-incident list (`OPEN_LISTS`), read as `list_open` reads it: the
    counter ids of its items as answered (resolved ones too), and its page count and total
    (`_paging`; None: no pagination).

    Raises LiveStateError naming what was missing. With `readings`, the readings used are
    appended (each item's, once per item: callers keep the distinct ones)."""
    where = f"GET {path} page {page}"
    ids = [
        cid
        for cid, _ in (
            _parse_item(where, OPEN_LISTS[path], item, readings)
            for item in _items(where, body, readings)
        )
    ]
    return ids, _paging(where, body, page, per_page, readings)


def _parse_item(
    where: str, status: str, item: Any, readings: list[str] | None = None
) -> tuple[str, Candidate | None]:
    """parse_list_item, with the item's counter id even when it is resolved (the reader
    compares the ids of the pages as the list answered them)."""
    if not isinstance(item, Mapping):
        raise LiveStateError(f"{where}: an item is not an object")
    raw_id = item.get("counterId")
    counter_id = str(raw_id) if type(raw_id) is int else raw_id
    if not is_counter_id(counter_id):
        raise LiveStateError(f"{where}: an item has no valid counterId ({_shown(raw_id)})")
    assert isinstance(counter_id, str)
    where = f"{where}: incident {counter_id}"
    _said(readings, "counter id from counterId" + (" (a number)" if type(raw_id) is int else ""))
    code = item.get("status")
    if code is not None:
        if code not in STATUS_CODES:
            raise LiveStateError(
                f"{where}: unrecognised status {_shown(code)} (expected NACK, ACK or RES)"
            )
        _said(readings, "status from status")
        status = STATUS_CODES[code]
        if status == "resolved":
            return counter_id, None
    else:
        _said(readings, "status: not in the item (the list's own status)")
    title, message = item.get("title"), item.get("message")
    if not (isinstance(title, str) and title.strip()) and isinstance(message, str):
        title = message  # no title (absent, empty or blank): the message stands for it
        _said(readings, "title from message")
    elif not isinstance(title, str):
        title = None
        _said(readings, "title: none (neither title nor message)")
    else:
        _said(readings, "title from title")
    created = item.get("NACK_at")
    when: float | None = None
    if created is not None:
        try:
            if not isinstance(created, str):
                raise ValueError
            moment = datetime.fromisoformat(created)
            if moment.tzinfo is None:
                raise ValueError
            when = moment.timestamp()
        except ValueError:
            raise LiveStateError(
                f"{where}: NACK_at {_shown(created)} is not an ISO 8601 time with a zone"
            ) from None
    _said(readings, "creation time from NACK_at" if created is not None else "creation time: none")
    grouped = item.get("groupedIncident")
    return counter_id, Candidate(
        counter_id,
        status,
        title,
        when,
        _optional(where, "priority", item, readings, grouped),
        _optional(where, "severity", item, readings, grouped),
    )


async def list_open(client: SpikeClient, per_page: int = PER_PAGE) -> list[Candidate]:
    """Every open incident of the team: both lists, every page, sorted by counter id.

    The first page of each list says how many there are (`pagination`); the next pages are
    asked for with it, before it answers (`_read_list`), so a long list costs no extra round
    trip. A list whose answer has no page counts is read page by page until an empty page.
    What cannot be a whole list is an error, never a guess (`_read_list`). An incident
    listed in both lists (it moved between them while they were read) is taken from the
    later status (acknowledged)."""
    # The lists share the calls in flight: each asks for its share of pages ahead.
    ahead = max(1, client.limiter.maximum // len(OPEN_LISTS))
    pages = await asyncio.gather(
        *(_read_list(client, path, status, per_page, ahead) for path, status in OPEN_LISTS.items())
    )
    found: dict[str, Candidate] = {}
    for candidates in pages:  # triggered, then acknowledged: the later status wins
        for candidate in candidates:
            found[candidate.counter_id] = candidate
    return [found[cid] for cid in sorted(found)]


async def _read_list(
    client: SpikeClient, path: str, status: str, per_page: int, ahead: int = 1
) -> list[Candidate]:
    """The open incidents of one list, every page (resolved items left out).

    Pages 1 to `ahead` are asked for at once (a page past the end answers empty); once page
    1 tells the page count, every other page is asked for; a list without counts keeps
    `ahead` pages asked for beyond the one read. Pages are read in order, each once, and
    what was asked for beyond the end is dropped unread.

    Raises LiveStateError when the pages cannot be one whole list: more than MAX_PAGES
    pages (said, or walked); an empty page before the last one `pagination` stated; an
    incident on two pages (the list ignores `page`, or changed while it was read); fewer or
    more incidents than `pagination.total`. Ids are compared as the list answered them,
    resolved items included: an item resolved since is still an item of its page."""
    first_page: dict[str, int] = {}  # counter id -> the page that listed it first
    out: list[Candidate] = []
    asked: dict[int, asyncio.Future[Any]] = {}

    def ask(last: int) -> None:
        """Ask for every page up to `last` (at most MAX_PAGES) not asked for yet."""
        for page in range(len(asked) + 1, min(last, MAX_PAGES) + 1):
            asked[page] = asyncio.ensure_future(client.get_list_page(path, page, per_page))

    def take(page: int, body: Any, walking: bool) -> int:
        """Add one page's incidents; how many items it held."""
        where = f"GET {path} page {page}"
        parsed = [_parse_item(where, status, item) for item in _items(where, body)]
        if walking and parsed and all(cid in first_page for cid, _ in parsed):
            raise LiveStateError(
                f"{where}: the same incidents as before: the list seems to ignore `page`, "
                "so it cannot be read whole"
            )
        for cid, candidate in parsed:
            seen = first_page.get(cid)
            if seen == page:
                raise LiveStateError(f"{where}: the list answered incident {cid} twice")
            if seen is not None:
                raise LiveStateError(
                    f"GET {path}: the list answered incident {cid} on pages {seen} "
                    f"and {page} (it ignores `page`, or changed while it was read): run again"
                )
            first_page[cid] = page
            if candidate is not None:
                out.append(candidate)
        return len(parsed)

    try:
        ask(ahead)
        first = await asked[1]
        paging = _paging(f"GET {path} page 1", first, 1, per_page)
        if paging is None:
            # No counts: never guess the end from a short page (a list may ignore perPage);
            # only an empty page ends the list.
            page, body = 1, first
            while take(page, body, walking=True):
                page += 1
                if page > MAX_PAGES:
                    raise LiveStateError(f"GET {path}: more than {MAX_PAGES} pages without an end")
                ask(page + ahead - 1)
                body = await asked[page]
            return out
        count, total = paging
        if count > MAX_PAGES:
            raise LiveStateError(
                f"GET {path} page 1: pagination says {count} pages, more than the "
                f"{MAX_PAGES} reconcile reads"
            )
        for page in range(1, count + 1):
            if page == 1:
                body = first
            else:
                body = await asked[page]
                _paging(f"GET {path} page {page}", body, page, per_page)
            if not take(page, body, walking=False) and page < count:
                raise LiveStateError(
                    f"GET {path} page {page}: empty, yet pagination said {count} pages (the "
                    "list changed while it was read, or its counts are wrong): run again"
                )
            if page == 1:  # an empty first page of many: the others are not asked for
                ask(count)
        if total is not None and len(first_page) != total:
            raise LiveStateError(
                f"GET {path}: pagination.total is {total}, but the pages held "
                f"{len(first_page)} incidents (the list changed while it was read): run again"
            )
        return out
    finally:
        # Pages asked for beyond the end (or after an error): dropped, never read.
        left = [task for task in asked.values() if not task.done()]
        for task in left:
            task.cancel()
        if asked:
            await asyncio.gather(*asked.values(), return_exceptions=True)


async def complete(
    client: SpikeClient, candidates: Sequence[Candidate], ids: Iterable[str]
) -> list[Candidate]:
    """`candidates` with the incidents `ids` read again (GET /incidents/{counterId},
    concurrently) for what the list left out: priority and severity as the read reports
    them (still UNKNOWN when it does not), and the status (an incident resolved meanwhile,
    or gone: 404, is dropped)."""
    wanted = set(ids)
    if not wanted:
        return list(candidates)
    missing: list[str] = []
    live = await read_incidents(client, wanted, missing)
    out: list[Candidate] = []
    for candidate in candidates:
        cid = candidate.counter_id
        if cid not in wanted:
            out.append(candidate)
            continue
        if cid in missing or live[cid]["status"] not in OPEN_STATUSES:
            continue
        fields = live[cid]
        out.append(
            replace(
                candidate,
                status=str(fields["status"]),
                priority=fields.get("priority", candidate.priority),
                severity=fields.get("severity", candidate.severity),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# The activity log (docs/api-calls.md, Checking the readings): only `reconcile doctor` reads it

#: Where the entries of an activity log may be, in the order looked at.
ACTIVITY_KEYS = ("activities", "data")


def parse_activity_log(counter_id: str, body: Any, readings: list[str] | None = None) -> int:
    """How many entries `GET /incidents/{counterId}/activity-log` answered: the answer itself
    when it is a list, else the list under `activities`, else under `data`; each entry an
    object (its fields are undocumented and not read).

    Raises LiveStateError naming what was missing."""
    where = f"incident {counter_id}: the activity log"
    if isinstance(body, list):
        entries: list[Any] = body
        _said(readings, "entries: the answer itself (a list)")
    else:
        found = None
        if isinstance(body, Mapping):
            found = next((k for k in ACTIVITY_KEYS if isinstance(body.get(k), list)), None)
        if found is None:
            raise LiveStateError(
                f"{where} has no list of entries (looked for the answer itself, "
                f"{' and '.join(repr(k) for k in ACTIVITY_KEYS)})"
            )
        entries = body[found]
        _said(readings, f"entries under '{found}'")
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise LiveStateError(f"{where}: entry {number} is not an object")
    _said(readings, f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, each an object")
    return len(entries)
