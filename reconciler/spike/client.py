"""The Spike API client: the only module that talks to Spike over HTTP (github.py is the other
httpx user, for GitHub).

One async client for every call this tool makes; the request bounds and the retry loop are
httpcall.py's, shared with the GitHub client. The API key goes only into the `x-api-key`
header and is registered with `redact`: it is in no message, log line or repr, even when a
server echoes request headers back in an error body.

What counts as success: a 2xx answer whose body is empty or JSON that is not
`{"success": false, ...}`. A 2xx with any other body (an HTML login page at a wrong
SPIKE_API_URL, a body over `RetryPolicy.max_body`, JSON nested too deep) is an ApiError and
never retried. 401/403 raise CredentialsError at once; any other 4xx raises ApiError at once,
with the API's message.

Retries, for a call that is idempotent (`endpoints.is_idempotent`: every call but escalate):
429, 500, 502, 503, 504 and every transport error (a failed connection, a timeout, a reset,
a protocol error) are retried with exponential backoff and full jitter, or after the server's
`Retry-After` (ASCII delta-seconds or an HTTP date; any other value is ignored). A call gives
up after `RetryPolicy.attempts` failed requests; 429s ("slow down") use up no attempt, only
time: no wait ends and no retry starts later than `RetryPolicy.total` seconds after the call
began (so a call lasts at most `total` plus one request's `deadline`), and a wait (backoff or
`Retry-After`) that would end past that budget makes the call give up at once instead of
sleeping for nothing.

Escalate is not idempotent: each call moves the incidents one level up. It is sent again only
when Spike surely did not act: after a 429 or a 503, or after httpx.ConnectError,
ConnectTimeout or PoolTimeout, the only errors httpx raises before any byte of the request was
written (the connection, its TLS handshake or a free connection could not be had). Anything
else after sending (500, 502, 504, a read or write timeout, a reset, a protocol error, the
request deadline, an interruption, a 2xx that is not a success) raises UncertainOutcomeError at
once: whether Spike escalated is unknown, and it is never retried blindly.

Bounds: one request, from connecting to the last byte of the answer, lasts at most
`RetryPolicy.deadline` seconds (each network step at most `RetryPolicy.timeout`), so a server
dripping bytes cannot hold an apply; a body is read as a stream and refused past
`RetryPolicy.max_body` bytes. When the stop event is set (SIGINT/SIGTERM), no request starts
(a first one or a retry: ApiError, nothing was sent) and requests in flight get
`RetryPolicy.grace` seconds to finish, then are cancelled: an idempotent call raises ApiError
("interrupted"), an escalate UncertainOutcomeError.

Outage: after `RetryPolicy.outage` requests in a row, across all calls, failed with a 5xx, a
transport error or a non-JSON answer, the client raises ApiUnavailableError for that call and
every later one instead of retrying each of them. 429s neither count nor reset that run; any
other answer resets it.

SPIKE_API_URL must be https (plain http only to a loopback host), without spaces or control
characters, user name, password, query or fragment; anything else is one ReconcileError.

Concurrency adapts: a 429 halves the calls in flight (never below 1), each full window of
successes grows it back by one, up to the parallelism asked for.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import re
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..endpoints import is_idempotent
from ..errors import (
    ApiError,
    ApiUnavailableError,
    CredentialsError,
    ReconcileError,
    UncertainOutcomeError,
    printable,
)
from ..httpcall import (
    NOT_ACTED_STATUS,
    RETRY_STATUS,
    Answer,
    Clock,
    Cut,
    Failed,
    NotRetried,
    Sleep,
    exchange,
    not_sent,
    retrying,
)

# Shared with the GitHub client (httpcall.py); callers of the Spike client name them here.
from ..httpcall import RetryPolicy as RetryPolicy
from ..httpcall import retry_after as retry_after
from ..jsontext import JsonTooDeepError, loads
from ..model import Operation, check_header_secret, is_loopback
from ..redact import clip, redact, register
from ..wording import counted
from . import DEFAULT_PARALLELISM

DEFAULT_URL = "https://api.spike.sh"
USER_AGENT = "spike-reconcile"
#: The organisation's team list: the only call that needs no x-team-id.
TEAMS_PATH = "/teams/get-all-teams"


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's own TLS settings (its CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR), made once per
    process: a client left to make them loads the CA bundle again (tens of milliseconds each
    time, for every team's client and every client the tests make)."""
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class SpikeConfig:
    """Where the API is and who we are. The key never leaves the x-api-key header.

    `team_id` is the x-team-id header; None sends none, which only the organisation's calls
    (the team list) accept.
    """

    base_url: str
    api_key: str = field(repr=False)
    team_id: str | None
    #: Where the key and the team id came from, for messages: the variable holding the key,
    #: and SPIKE_TEAM_ID or a team of reconcile.yaml.
    key_source: str = "SPIKE_API_KEY"
    team_source: str = "SPIKE_TEAM_ID"

    def __post_init__(self) -> None:
        check_url(self.base_url)
        check_header_secret(self.key_source, self.api_key)
        if self.team_id is not None:
            check_header_secret(self.team_source, self.team_id)
        register(self.api_key)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        team_required: bool = True,
        team_id: str | None = None,
        key_env: str = "SPIKE_API_KEY",
    ) -> SpikeConfig:
        """From SPIKE_API_URL, the key in `key_env` (SPIKE_API_KEY) and the team: `team_id`
        (a team of reconcile.yaml), else SPIKE_TEAM_ID; without `team_required`, an unset
        SPIKE_TEAM_ID is no team (None)."""
        env = os.environ if env is None else env
        needed = [key_env]
        if team_required and team_id is None:
            needed.append("SPIKE_TEAM_ID")
        missing = [n for n in needed if not env.get(n)]
        if missing:
            raise ReconcileError(
                f"{' and '.join(missing)} must be set to call the Spike API"
                + (" (planning needs no credentials; apply does)" if team_required else "")
            )
        return cls(
            base_url=env.get("SPIKE_API_URL") or DEFAULT_URL,
            api_key=env[key_env],
            team_id=team_id or env.get("SPIKE_TEAM_ID") or None,
            key_source=key_env,
            team_source="SPIKE_TEAM_ID"
            if team_id is None
            else "the team's team_id in reconcile.yaml",
        )


_USERINFO = re.compile(r"^([^:/?#]*:?//)[^/?#]*@")


def check_url(url: str) -> None:
    """Refuse anything but a plain https URL, or http to a loopback host (the sandbox).

    Every malformed value (spaces or control characters, a bad port or host, a user name or
    password, a query or fragment) is one ReconcileError that shows the URL escaped, with any
    user information masked.
    """
    shown = redact(printable(_USERINFO.sub(r"\1***@", url)))

    def refused(why: str) -> ReconcileError:
        return ReconcileError(f"SPIKE_API_URL {shown!r}: {why}")

    if any(c.isspace() or not c.isprintable() for c in url):
        raise refused("contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or over 65535
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise refused("is not a valid URL (check the host and port)") from None
    if "@" in parts.netloc:
        raise refused("must not contain a user name or password (the key is SPIKE_API_KEY)")
    if "?" in url or "#" in url:
        raise refused("must not have a query (?...) or a fragment (#...)")
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and is_loopback(host):
        return
    raise refused(
        "only https:// is allowed (plain http:// only to a loopback host such as 127.0.0.1)"
    )


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


Observer = Callable[[str], None]
#: How the note of a retry about to be made begins: the CLI shows these without -v too, so
#: that a call retried for seconds is never silence.
RETRY_NOTE = "retrying "


class _NotSuccess(ReconcileError):
    """A 2xx answer that does not say the call succeeded."""

    def __init__(self, reason: str, *, outage: bool) -> None:
        super().__init__(reason)
        self.outage = outage  # no answer from a working Spike API: counts toward an outage


def _api_message(answer: Answer) -> str:
    """The API's message from an error answer, short, printable and redacted."""
    text = ""
    try:
        body = loads(answer.body)
    except ValueError:
        text = answer.body[:4096].decode("utf-8", "replace").strip()
    else:
        if isinstance(body, dict):
            parts = [str(body[k]) for k in ("message", "error") if body.get(k)]
            text = ": ".join(dict.fromkeys(parts))
        if not text:
            text = str(body)
    # Redacted before it is cut: a cut inside the key would leave its head unmatched.
    text = clip(printable(text), 200) or httpx.codes.get_reason_phrase(answer.status)
    return text


def _success_value(answer: Answer, max_body: int) -> Any:
    """The parsed body of a 2xx answer; _NotSuccess unless it says the call succeeded."""
    if answer.too_large:
        raise _NotSuccess(f"the answer is larger than {max_body} bytes", outage=True)
    if not answer.body:
        return {}
    try:
        value = loads(answer.body)
    except JsonTooDeepError as exc:
        raise _NotSuccess(f"the answer's JSON is {exc}", outage=True) from None
    except ValueError:
        kind = clip(printable(answer.headers.get("content-type", "no content type")), 80)
        raise _NotSuccess(
            f"the answer is not JSON ({kind}): check SPIKE_API_URL points at Spike's API",
            outage=True,
        ) from None
    if isinstance(value, dict) and value.get("success") is False:
        raise _NotSuccess(f"the API reported failure: {_api_message(answer)}", outage=False)
    return value


def _connect_reason(exc: httpx.RequestError) -> str:
    """Why a connection failed, in the OS's words ("connection refused"), from the OSError
    under httpx's exception; "timed out" for a connect timeout."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and (cause.errno or cause.strerror):
            # asyncio's strerror quotes the address ("Connect call failed (...)"): the errno's
            # own words say why.
            said = os.strerror(cause.errno) if cause.errno else str(cause.strerror)
            return said[:1].lower() + said[1:]
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


class SpikeClient:
    """Makes Operations happen. Use as `async with SpikeClient(config) as client:`.

    The retry, idempotence and bound rules are the module's docstring.
    """

    def __init__(
        self,
        config: SpikeConfig,
        *,
        parallelism: int = DEFAULT_PARALLELISM,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        observe: Observer | None = None,
        stop: asyncio.Event | None = None,
        clock: Clock = time.monotonic,
        limiter: AdaptiveLimiter | None = None,
    ) -> None:
        self.config = config
        self.retry = retry or RetryPolicy()
        #: Shared by the clients of every team of one apply: one key, one rate limit, so a
        #: 429 slows them all and `parallelism` is their total.
        self.limiter = limiter or AdaptiveLimiter(parallelism)
        self._transport = transport
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._observe = observe
        #: Set when the apply is interrupted: no retry starts after it, and requests in flight
        #: are cancelled after the grace.
        self._stop = stop
        self._stopped: asyncio.Future[Any] | None = None
        #: Measures each call's time budget (RetryPolicy.total).
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        #: Every HTTP request sent, retries included (for results and benchmarks).
        self.requests = 0
        #: Requests in a row that failed (5xx, transport error, non-JSON answer), across calls.
        self._failures_in_row = 0
        #: Why the client stopped sending, once `RetryPolicy.outage` is reached.
        self._unavailable: str | None = None
        #: The HTTP status of the last answer received (`reconcile doctor`, which sends one
        #: request at a time, reports it); None before any.
        self.last_status: int | None = None

    def __repr__(self) -> str:
        return f"SpikeClient({self.config.base_url!r}, team {self.config.team_id!r})"

    async def __aenter__(self) -> SpikeClient:
        limits = httpx.Limits(
            max_connections=self.limiter.maximum, max_keepalive_connections=self.limiter.maximum
        )
        headers = {
            "x-api-key": self.config.api_key,
            "user-agent": USER_AGENT,
            "accept": "application/json",
        }
        if self.config.team_id is not None:
            headers["x-team-id"] = self.config.team_id
        self._client = httpx.AsyncClient(
            base_url=self.config.base_url,
            headers=headers,
            timeout=self.retry.timeout,
            limits=limits,
            transport=self._transport,
            follow_redirects=False,
            verify=_tls(),
        )
        # One waiter on the stop event for every request (a task per request cost a few
        # percent of a large apply's time on the event loop).
        if self._stop is not None:
            self._stopped = asyncio.ensure_future(self._stop.wait())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stopped is not None:
            self._stopped.cancel()
            self._stopped = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(self, op: Operation) -> Any:
        """Send one operation, retrying only what is safe to retry; the parsed JSON response.

        Raises CredentialsError on 401/403 at once, UncertainOutcomeError when an escalate may
        or may not have happened, ApiUnavailableError once too many requests in a row failed,
        ApiError on any other refusal or when the retries are used up.
        """
        body = dict(op.body) if op.body else None
        return await self._request(op.method, op.path, body, idempotent=is_idempotent(op))

    async def get_incident(self, counter_id: str) -> Any:
        """GET /incidents/{counterId}: the live incident, as Spike returns it."""
        return await self._request("GET", f"/incidents/{counter_id}", None, idempotent=True)

    async def get_list_page(self, path: str, page: int, per_page: int) -> Any:
        """GET one page of an open-incident list (`/incidents/triggered`,
        `/incidents/acknowledged`), as Spike returns it (`spike.live.list_open` reads it)."""
        return await self._request(
            "GET", f"{path}?page={page}&perPage={per_page}", None, idempotent=True
        )

    async def get_activity_log(self, counter_id: str) -> Any:
        """GET /incidents/{counterId}/activity-log: what happened to the incident, as Spike
        returns it (only `reconcile doctor` reads it: `spike.live.parse_activity_log`)."""
        return await self._request(
            "GET", f"/incidents/{counter_id}/activity-log", None, idempotent=True
        )

    async def get_teams(self) -> Any:
        """GET /teams/get-all-teams: the organisation's teams, as Spike returns them (the
        shape is undocumented: `spike.teams.parse_teams` reads it)."""
        return await self._request("GET", TEAMS_PATH, None, idempotent=True)

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None, *, idempotent: bool
    ) -> Any:
        where = f"{method} {path}"
        started = self._clock()
        try:
            return await retrying(
                lambda: self._once(where, method, path, body, idempotent=idempotent),
                policy=self.retry,
                idempotent=idempotent,
                until=self._clock() + self.retry.total,
                clock=self._clock,
                rng=self._rng,
                sleep=self._sleep,
                stop=self._stop,
                check=lambda: self._check_available(where),
                retry_note=lambda attempt, wait, last: self._note(
                    f"{RETRY_NOTE}{where} in {wait:.1f} s (attempt {attempt}, at most "
                    f"{self.retry.attempts}): {last}"
                ),
            )
        except NotRetried as ended:
            if ended.why == "acted":
                raise UncertainOutcomeError(
                    f"{where}: {ended.last}: Spike may or may not have acted on it, so it is "
                    "not sent again",
                    method=method,
                    path=path,
                ) from None
            unreachable = self._unreachable()
            if ended.why == "exhausted" and ended.last.startswith(unreachable):
                # Nothing answered: say where it was sent and what was tried (never the key).
                spent = self._clock() - started
                message = (
                    f"{where}: {unreachable.rstrip(': ')} ({counted(ended.tried, 'attempt')} "
                    f"over {spent:.0f} s: {ended.last[len(unreachable) :]})"
                )
            elif ended.why == "exhausted":
                message = f"{where}: gave up after {ended.tried} attempts; last: {ended.last}"
            else:
                message = f"{where}: not retried, apply was interrupted; last: {ended.last}"
            raise ApiError(message, method=method, path=path) from None

    async def _once(
        self,
        where: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        idempotent: bool,
    ) -> Any:
        """One request: its value, a Failed to retry or not, or an ApiError to raise."""
        await self.limiter.acquire()
        throttled = succeeded = False
        try:
            if self._stop is not None and self._stop.is_set():
                # Queued behind the limiter when the stop came: nothing was sent.
                raise ApiError(
                    f"{where}: not sent, apply was interrupted", method=method, path=path
                )
            assert self._client is not None, "use SpikeClient as an async context manager"
            self.requests += 1
            started = self._clock()
            try:
                answer = await exchange(self._client, method, path, body, self.retry, self._stopped)
            except Cut as cut:
                if cut.interrupted:
                    error = ApiError if idempotent else UncertainOutcomeError
                    raise error(f"{where}: {cut}", method=method, path=path) from None
                self._failed(where, str(cut))
                return Failed(str(cut), maybe_acted=True)
            except httpx.RequestError as exc:
                # The type only: some of httpx's messages quote request headers; a failed
                # connection says where to and why (the OS's reason, which quotes nothing).
                last = (
                    self._unreachable() + _connect_reason(exc)
                    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                    else type(exc).__name__
                )
                self._failed(where, last)
                return Failed(last, maybe_acted=not not_sent(exc))
            status = self.last_status = answer.status
            if self._observe is not None:  # --verbose: the line is built only to be shown
                elapsed = (self._clock() - started) * 1000
                self._note(f"{where} -> {status} in {elapsed:.0f} ms")
            if 200 <= status < 300:
                try:
                    value = _success_value(answer, self.retry.max_body)
                except _NotSuccess as exc:
                    if exc.outage:
                        self._failed(where, str(exc))
                    else:
                        self._failures_in_row = 0
                    error = ApiError if idempotent else UncertainOutcomeError
                    raise error(
                        f"{where}: {status}, but {exc}",
                        method=method,
                        path=path,
                        status_code=status,
                    ) from None
                self._failures_in_row = 0
                succeeded = True
                return value
            message = _api_message(answer)
            if answer.too_large:
                message += f" (answer cut at {self.retry.max_body} bytes)"
            if status in RETRY_STATUS:
                throttled = status == 429
                if not throttled:
                    self._failed(where, f"{status} {message}")
                return Failed(
                    f"{status} {message}",
                    maybe_acted=status not in NOT_ACTED_STATUS,
                    throttled=throttled,
                    wait=retry_after(answer.headers.get("retry-after")),
                )
            self._failures_in_row = 0
            if status in (401, 403):
                raise CredentialsError(
                    f"{where}: the Spike API answered {status} ({message}): check "
                    f"{self.config.key_source} and {self.config.team_source}",
                    method=method,
                    path=path,
                    status_code=status,
                    api_message=message,
                )
            raise ApiError(
                f"{where}: {status} {message}",
                method=method,
                path=path,
                status_code=status,
                api_message=message,
            )
        finally:
            await self.limiter.release(throttled=throttled, succeeded=succeeded)

    def _unreachable(self) -> str:
        """How a request that reached nothing begins its reason."""
        return f"could not connect to {self.config.base_url}: "

    def _failed(self, where: str, last: str) -> None:
        """Count one failed request toward an outage; past RetryPolicy.outage, stop sending."""
        self._note(f"{where}: {last}")
        self._failures_in_row += 1
        if self._failures_in_row >= self.retry.outage and self._unavailable is None:
            self._unavailable = (
                f"{self._failures_in_row} requests in a row failed (last: {where}: {last}); "
                "the Spike API looks unavailable, or SPIKE_API_URL is wrong"
            )

    def _check_available(self, where: str) -> None:
        if self._unavailable is not None:
            method, _, path = where.partition(" ")
            raise ApiUnavailableError(
                f"{where}: not sent: {self._unavailable}", method=method, path=path
            )

    def _note(self, message: str) -> None:
        if self._observe is not None:
            self._observe(redact(message))
