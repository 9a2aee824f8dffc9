"""The Spike API client: the only module that imports httpx.

One async client for every call this tool makes. Retries 429/500/502/503/504, connection
errors and timeouts with exponential backoff and full jitter (honouring Retry-After), bounded
in attempts and total time. Concurrency adapts: a 429 halves the calls in flight, each full
window of successes grows it back by one. The API key goes only into the `x-api-key` header:
it is in no message, log line or repr.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from .model import (
    ApiError,
    CredentialsError,
    Operation,
    ReconcileError,
    check_header_secret,
    is_loopback,
)

DEFAULT_URL = "https://api.spike.sh"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "spike-reconcile"


@dataclass(frozen=True)
class SpikeConfig:
    """Where the API is and who we are. The key never leaves the x-api-key header."""

    base_url: str
    api_key: str = field(repr=False)
    team_id: str

    def __post_init__(self) -> None:
        check_url(self.base_url)
        check_header_secret("SPIKE_API_KEY", self.api_key)
        check_header_secret("SPIKE_TEAM_ID", self.team_id)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SpikeConfig:
        env = os.environ if env is None else env
        missing = [n for n in ("SPIKE_API_KEY", "SPIKE_TEAM_ID") if not env.get(n)]
        if missing:
            raise ReconcileError(
                f"{' and '.join(missing)} must be set to call the Spike API "
                "(planning needs no credentials; apply does)"
            )
        return cls(
            base_url=env.get("SPIKE_API_URL") or DEFAULT_URL,
            api_key=env["SPIKE_API_KEY"],
            team_id=env["SPIKE_TEAM_ID"],
        )


def check_url(url: str) -> None:
    """Refuse anything but https, except plain http to a loopback host (the sandbox)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and is_loopback(host):
        return
    raise ReconcileError(
        f"SPIKE_API_URL {parts.scheme}://{host}: only https:// is allowed "
        "(plain http:// only to a loopback host such as 127.0.0.1)"
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one call: attempts, backoff base and cap, total time (seconds)."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 20.0
    total: float = 120.0
    timeout: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** (attempt - 1)))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class AdaptiveLimiter:
    """At most `limit` calls in flight; 429 halves the limit, a window of successes adds one.

    Spike publishes no rate limit, so the limit is found at run time, and a burst of 429s
    never becomes a retry storm.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.in_flight = 0
        self._successes = 0
        # First come, first served; a release wakes only as many waiters as may start, so
        # thousands of queued calls cost nothing while they wait.
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the releaser counted us in flight already
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.in_flight -= 1  # woken and cancelled at once: give the slot back
                self._wake()
            else:
                self._waiters.remove(waiter)
            raise

    async def release(self, *, throttled: bool = False, succeeded: bool = False) -> None:
        self.in_flight -= 1
        if throttled:
            self.limit = max(1, self.limit // 2)
            self._successes = 0
        elif succeeded:
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.maximum:
                self.limit += 1
                self._successes = 0
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)


Sleep = Callable[[float], Awaitable[None]]
Observer = Callable[[str], None]


def _api_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("message", "error") if body.get(k)]
        if parts:
            return ": ".join(dict.fromkeys(parts))
    return str(body)[:200]


class SpikeClient:
    """Makes Operations happen. Use as `async with SpikeClient(config) as client:`."""

    def __init__(
        self,
        config: SpikeConfig,
        *,
        parallelism: int = 4,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        observe: Observer | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.config = config
        self.retry = retry or RetryPolicy()
        self.limiter = AdaptiveLimiter(parallelism)
        self._transport = transport
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._observe = observe
        #: Set when the apply is interrupted: no retry starts after it.
        self._stop = stop
        self._client: httpx.AsyncClient | None = None
        #: Every HTTP request sent, retries included (for results and benchmarks).
        self.requests = 0

    def __repr__(self) -> str:
        return f"SpikeClient({self.config.base_url!r}, team {self.config.team_id!r})"

    async def __aenter__(self) -> SpikeClient:
        limits = httpx.Limits(
            max_connections=self.limiter.maximum, max_keepalive_connections=self.limiter.maximum
        )
        self._client = httpx.AsyncClient(
            base_url=self.config.base_url,
            headers={
                "x-api-key": self.config.api_key,
                "x-team-id": self.config.team_id,
                "user-agent": USER_AGENT,
                "accept": "application/json",
            },
            timeout=self.retry.timeout,
            limits=limits,
            transport=self._transport,
            follow_redirects=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(self, op: Operation) -> Any:
        """Send one operation, retrying what is safe to retry; the parsed JSON response.

        Raises CredentialsError on 401/403 at once, ApiError on any other refusal or when the
        retries are used up.
        """
        body = dict(op.body) if op.body else None
        return await self._request(op.method, op.path, body)

    async def get_incident(self, counter_id: str) -> Any:
        """GET /incidents/{counterId}: the live incident, as Spike returns it."""
        return await self._request("GET", f"/incidents/{counter_id}", None)

    async def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        assert self._client is not None, "use SpikeClient as an async context manager"
        deadline = time.monotonic() + self.retry.total
        last = ""
        for attempt in range(1, self.retry.attempts + 1):
            wait: float | None = None
            await self.limiter.acquire()
            throttled = succeeded = False
            try:
                self.requests += 1
                started = time.monotonic()
                response = await self._client.request(method, path, json=body)
            except httpx.TransportError as exc:
                # The type only: some of httpx's messages quote request headers.
                last = type(exc).__name__
                self._note(f"{method} {path}: {last} (attempt {attempt})")
            else:
                status = response.status_code
                elapsed = (time.monotonic() - started) * 1000
                self._note(f"{method} {path} -> {status} in {elapsed:.0f} ms (attempt {attempt})")
                if 200 <= status < 300:
                    succeeded = True
                    return _json_or_empty(response)
                message = _api_message(response)
                if status in (401, 403):
                    raise CredentialsError(
                        f"{method} {path}: the Spike API answered {status} ({message}): check "
                        "SPIKE_API_KEY and SPIKE_TEAM_ID",
                        method=method,
                        path=path,
                        status_code=status,
                        api_message=message,
                    )
                if status not in RETRY_STATUS:
                    raise ApiError(
                        f"{method} {path}: {status} {message}",
                        method=method,
                        path=path,
                        status_code=status,
                        api_message=message,
                    )
                throttled = status == 429
                wait = retry_after(response.headers.get("retry-after"))
                last = f"{status} {message}"
            finally:
                await self.limiter.release(throttled=throttled, succeeded=succeeded)
            if wait is None:
                wait = self.retry.backoff(attempt, self._rng)
            if attempt == self.retry.attempts or time.monotonic() + wait > deadline:
                break
            if await self._stopped_during(wait):
                raise ApiError(
                    f"{method} {path}: not retried, apply was interrupted; last: {last}",
                    method=method,
                    path=path,
                )
        raise ApiError(
            f"{method} {path}: gave up after {attempt} attempts; last: {last}",
            method=method,
            path=path,
        )

    async def _stopped_during(self, seconds: float) -> bool:
        """Wait `seconds` before a retry; True at once if the apply is stopped meanwhile."""
        if self._stop is None:
            await self._sleep(seconds)
            return False
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waiter = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()
        return self._stop.is_set()

    def _note(self, message: str) -> None:
        if self._observe is not None:
            self._observe(message)


def _json_or_empty(response: httpx.Response) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        return {}
