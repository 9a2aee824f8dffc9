"""One HTTP request within its bounds, and one call's retries: the mechanism the Spike client
(spike/client.py) and the GitHub client (github.py) share, so that both follow one rule.

Each client keeps what is its own (its credentials, which calls are idempotent, its messages
and error types, Spike's outage count and adaptive concurrency); this module holds the rest:

- `RetryPolicy`: the bounds and the backoff (exponential, full jitter).
- `retry_after`: a `Retry-After` header read as seconds (ASCII delta-seconds or an HTTP date).
- `exchange`: one request, from connecting to the last byte of its answer, within a deadline,
  its body read as a stream and cut past `RetryPolicy.max_body` bytes, cancelled a grace after
  a stop event is set. A server dripping bytes, or sending a body of 100 MB, holds nothing.
- `retrying`: one call's retry loop. A request the client judged retryable (`Failed`) is sent
  again after the backoff or the server's wait, unless the call is not idempotent and the
  server may have acted on it, the failures used up `RetryPolicy.attempts` (throttles use up
  no attempt, only time), the wait would end past the call's time budget, or the stop event
  came; then `NotRetried` says which, and the client turns it into its own error.

It imports httpx only to type its arguments and in `not_sent`, so that a module importing it
(github.py, through render.py) costs the CLI nothing until a request is made.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .errors import ReconcileError

if TYPE_CHECKING:
    import httpx

#: Answers retried for a call that may be sent again.
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
#: Answers after which the server surely did not act: even a non-idempotent call may be sent
#: again.
NOT_ACTED_STATUS = frozenset({429, 503})


def not_sent(exc: Exception) -> bool:
    """True for the only httpx errors raised before any byte of the request was written (the
    connection, its TLS handshake or a free connection could not be had). Everything else
    (ReadTimeout, WriteTimeout, ReadError, WriteError, RemoteProtocolError, which is also what a
    reused keep-alive connection closed by the server gives, ...) may come after the server got
    the request."""
    import httpx

    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one call, and the bounds of each request (seconds, bytes).

    `attempts`: failed requests per call (429s not counted); `base`, `cap`: the backoff;
    `total`: one call, all its requests and waits; `timeout`: one network step (connect, a
    read, a write, a wait for a pooled connection); `deadline`: one request from connecting
    to the last byte of its answer; `max_body`: the largest answer read; `outage`: failed
    requests in a row, across calls, after which the client stops; `grace`: how long requests
    in flight may still finish once the stop event is set.
    """

    attempts: int = 6
    base: float = 0.5
    cap: float = 20.0
    total: float = 120.0
    timeout: float = 30.0
    deadline: float = 60.0
    max_body: int = 1 << 20
    outage: int = 8
    grace: float = 3.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** min(attempt - 1, 64)))


# ASCII digits only: str.isdigit() also accepts "²", which float() then refuses.
_DELTA_SECONDS = re.compile(r"[0-9]+")


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None for an
    absent or unreadable value."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000": UTC, with no claim about the sender's zone
            when = when.replace(tzinfo=timezone.utc)
        stamp = when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, stamp - (time.time() if now is None else now))


@dataclass(frozen=True)
class Answer:
    """An HTTP answer read within the bounds: at most max_body bytes of its body."""

    status: int
    headers: httpx.Headers
    body: bytes
    too_large: bool


@dataclass(frozen=True)
class Failed:
    """A request that failed in a way a retry may cure."""

    last: str  # what happened, for messages: "503 busy", "ReadTimeout"
    maybe_acted: bool  # the server may have acted on it: never resend a non-idempotent call
    throttled: bool = False  # "slow down": uses up no attempt, only time
    wait: float | None = None  # the server's (Retry-After); None: the backoff


class Cut(ReconcileError):
    """A request stopped by its client: its deadline passed, or the stop event was set."""

    def __init__(self, reason: str, *, interrupted: bool) -> None:
        super().__init__(reason)
        self.interrupted = interrupted


class NotRetried(ReconcileError):
    """A call's retries ended without an answer: `why` says how, `last` what happened last.

    "acted": not idempotent, and the server may have acted on it; "exhausted": the attempts or
    the time budget are used up; "interrupted": the stop event came during a wait.
    """

    def __init__(
        self, why: Literal["acted", "exhausted", "interrupted"], last: str, tried: int
    ) -> None:
        super().__init__(f"{why}: {last}")
        self.why = why
        self.last = last
        self.tried = tried


async def exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: Any,
    policy: RetryPolicy,
    stopped: asyncio.Future[Any] | None,
    deadline: float | None = None,
) -> Answer:
    """One request within `deadline` seconds (default RetryPolicy.deadline), its body read as
    a stream and cut past RetryPolicy.max_body bytes, cancelled RetryPolicy.grace seconds after
    `stopped` is done.

    Raises Cut when the deadline or the stop ended it, httpx.RequestError when the network did.
    """
    limit = policy.deadline if deadline is None else max(0.0, deadline)
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    task = asyncio.ensure_future(_read(client, method, url, body, policy.max_body))
    try:
        waiting = {task} if stopped is None else {task, stopped}
        await asyncio.wait(waiting, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and stopped is not None and stopped.done():
            grace = max(0.0, min(policy.grace, end - loop.time()))
            await asyncio.wait({task}, timeout=grace)
            if not task.done():
                raise Cut(
                    f"interrupted: no answer within {policy.grace:g} s of the stop signal",
                    interrupted=True,
                )
        if not task.done():
            raise Cut(f"no complete answer within {limit:g} s", interrupted=False)
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})


async def _read(client: httpx.AsyncClient, method: str, url: str, body: Any, limit: int) -> Answer:
    """Send and read the answer as a stream, stopping past `limit` bytes."""
    async with client.stream(method, url, json=body) as response:
        chunks: list[bytes] = []
        size = 0
        too_large = False
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                too_large = True
                chunks.append(chunk[: max(0, limit - (size - len(chunk)))])
                break
            chunks.append(chunk)
        return Answer(response.status_code, response.headers, b"".join(chunks), too_large)


T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


async def retrying(
    once: Callable[[], Awaitable[T | Failed]],
    *,
    policy: RetryPolicy,
    idempotent: bool,
    until: float,
    clock: Clock,
    rng: random.Random,
    sleep: Sleep,
    stop: asyncio.Event | None,
    check: Callable[[], None] = lambda: None,
    retry_note: Callable[[int, float, str], None] | None = None,
) -> T:
    """`once()` until it gives a value, by the rule of this module's docstring.

    `until` is the clock time after which no wait ends and no retry starts (the call's budget);
    `check` runs before each request and after each failure (Spike's outage stop raises there).
    `retry_note(attempt, wait, last)` is told of each retry before its wait (the attempt
    about to be made, counting from 1). Raises NotRetried, or whatever `once` or `check` raise.
    """
    failures = throttles = 0
    while True:
        check()
        outcome = await once()
        if not isinstance(outcome, Failed):
            return outcome
        if outcome.maybe_acted and not idempotent:
            raise NotRetried("acted", outcome.last, failures + throttles + 1)
        check()
        if outcome.throttled:
            throttles += 1
        else:
            failures += 1
        tried = failures + throttles
        wait = outcome.wait
        if wait is None:
            wait = policy.backoff(tried, rng)
        if failures >= policy.attempts or clock() + wait > until:
            raise NotRetried("exhausted", outcome.last, tried)
        if retry_note is not None:
            retry_note(tried + 1, wait, outcome.last)
        if await _stopped_during(wait, stop, sleep):
            raise NotRetried("interrupted", outcome.last, tried)


async def _stopped_during(seconds: float, stop: asyncio.Event | None, sleep: Sleep) -> bool:
    """Wait `seconds` before a retry; True at once if the stop event is set meanwhile."""
    if stop is None:
        await sleep(seconds)
        return False
    if stop.is_set():
        return True
    sleeper = asyncio.ensure_future(sleep(seconds))
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        waiter.cancel()
    return stop.is_set()
