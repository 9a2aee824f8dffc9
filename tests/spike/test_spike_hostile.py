"""The API client against hostile or broken servers: what it sends, retries and reports.

Exact behaviour over httpx.MockTransport; a real loopback socket where one matters (a server
that drips its answer a byte at a time).
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from reconciler.endpoints import is_idempotent
from reconciler.errors import (
    ApiError,
    ApiUnavailableError,
    LiveStateError,
    ReconcileError,
    UncertainOutcomeError,
)
from reconciler.model import Operation
from reconciler.spike.client import RetryPolicy, SpikeClient, SpikeConfig, check_url, retry_after
from reconciler.spike.live import read_incidents

SECRET = "sk-live-HOSTILE-0000-9999"
CONFIG = SpikeConfig("https://api.spike.sh", SECRET, "team-1")
FAST = RetryPolicy(attempts=4, base=0.0, cap=0.0, total=5.0)
ACK = Operation("POST", "/incidents/acknowledge", {"ids": ["1", "2"]})
ESCALATE = Operation("POST", "/incidents/escalate", {"ids": ["7"]})

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class Clock:
    """A clock that only the fake sleep moves: time budgets without waiting or timing."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def client_for(
    handler: Handler,
    *,
    retry: RetryPolicy = FAST,
    clock: Clock | None = None,
    parallelism: int = 4,
    stop: asyncio.Event | None = None,
    observe: Callable[[str], None] | None = None,
) -> SpikeClient:
    clock = clock or Clock()
    return SpikeClient(
        CONFIG,
        transport=httpx.MockTransport(handler),
        retry=retry,
        sleep=clock.sleep,
        clock=clock,
        rng=random.Random(1),
        parallelism=parallelism,
        stop=stop,
        observe=observe,
    )


def call(handler: Handler, op: Operation = ACK, **kwargs: Any) -> tuple[Any, SpikeClient]:
    async def go() -> tuple[Any, SpikeClient]:
        async with client_for(handler, **kwargs) as client:
            return await client.call(op), client

    return asyncio.run(go())


def failing(op: Operation, handler: Handler, **kwargs: Any) -> tuple[ApiError, int]:
    """The error `op` ends in, and how many requests the client sent."""
    client = client_for(handler, **kwargs)

    async def go() -> None:
        async with client:
            await client.call(op)

    with pytest.raises(ApiError) as info:
        asyncio.run(go())
    return info.value, client.requests


def answers(*items: int | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """A handler giving these statuses (or raising these errors) in turn, then 200 {}."""
    queue = list(items)

    def handler(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if queue else 200
        if isinstance(item, Exception):
            raise item
        return httpx.Response(item, json={"message": f"answer {item}"})

    return handler


# ---------------------------------------------------------------------------------------------
# 1. Escalate is sent again only when Spike surely did not act


def test_only_escalate_is_not_idempotent() -> None:
    assert not is_idempotent(ESCALATE)
    assert is_idempotent(ACK)
    assert is_idempotent(Operation("POST", "/incidents/priority", {"priority": "p1", "ids": ["1"]}))
    assert is_idempotent(Operation("PATCH", "/incidents/7/public-sharing", {"publicSharing": True}))


def _request_of(exc_type: type[httpx.RequestError]) -> httpx.RequestError:
    return exc_type("boom", request=httpx.Request("POST", "https://api.spike.sh/x"))


@pytest.mark.parametrize(
    "failure",
    [
        500,
        502,
        504,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.ReadError,
        httpx.WriteError,
        httpx.RemoteProtocolError,
    ],
)
def test_escalate_after_an_ambiguous_failure_is_uncertain_and_not_resent(
    failure: int | type[httpx.RequestError],
) -> None:
    item = failure if isinstance(failure, int) else _request_of(failure)
    error, requests = failing(ESCALATE, answers(item))
    assert type(error) is UncertainOutcomeError
    assert requests == 1
    assert str(error).startswith("POST /incidents/escalate: ")
    assert "may or may not have acted" in str(error)


@pytest.mark.parametrize(
    "failure", [429, 503, httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout]
)
def test_escalate_is_resent_when_spike_surely_did_not_act(
    failure: int | type[httpx.RequestError],
) -> None:
    item = failure if isinstance(failure, int) else _request_of(failure)
    result, client = call(answers(item, item), ESCALATE)
    assert result == {"message": "answer 200"}
    assert client.requests == 3


@pytest.mark.parametrize("status", [500, 502, 504])
def test_idempotent_calls_still_retry_every_5xx(status: int) -> None:
    result, client = call(answers(status, status))
    assert result == {"message": "answer 200"}
    assert client.requests == 3


def test_escalate_with_a_non_json_2xx_is_uncertain() -> None:
    error, requests = failing(
        ESCALATE, lambda request: httpx.Response(200, html="<html>Sign in</html>")
    )
    assert type(error) is UncertainOutcomeError
    assert requests == 1


# ---------------------------------------------------------------------------------------------
# 2. What a success is


def test_a_login_page_answer_is_an_error_naming_the_url_setting_and_not_retried() -> None:
    error, requests = failing(
        ACK, lambda request: httpx.Response(200, html="<html><form>Sign in</form></html>")
    )
    assert type(error) is ApiError
    assert requests == 1
    assert str(error) == (
        "POST /incidents/acknowledge: 200, but the answer is not JSON "
        "(text/html; charset=utf-8): check SPIKE_API_URL points at Spike's API"
    )


def test_success_false_is_an_error_with_the_api_message() -> None:
    error, requests = failing(
        ACK, lambda request: httpx.Response(200, json={"success": False, "message": "locked"})
    )
    assert type(error) is ApiError
    assert requests == 1
    assert str(error) == "POST /incidents/acknowledge: 200, but the API reported failure: locked"


@pytest.mark.parametrize(
    ("content", "value"),
    [
        (b"", {}),
        (b'{"success": true}', {"success": True}),
        (b'{"success": "false"}', {"success": "false"}),
        (b"[1, 2]", [1, 2]),
        (b'{"ok": 1}', {"ok": 1}),
    ],
)
def test_empty_or_json_answers_are_successes(content: bytes, value: Any) -> None:
    result, client = call(
        lambda request: httpx.Response(204 if not content else 200, content=content)
    )
    assert result == value
    assert client.requests == 1


# ---------------------------------------------------------------------------------------------
# 3. Retry-After


@pytest.mark.parametrize("value", ["²", "٣", "1.5", "-1", "0x10", "soon", "Wed, 99 Oct 2015"])
def test_retry_after_reads_only_ascii_seconds_or_a_date(value: str) -> None:
    assert retry_after(value) is None


def test_retry_after_http_date_without_zone_is_utc() -> None:
    assert retry_after("Wed, 21 Oct 2015 07:28:00 -0000", now=1445412470.0) == 10.0


def test_an_unreadable_retry_after_falls_back_to_the_backoff() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if len(seen) < 2:
            seen.append(1)
            return httpx.Response(429, headers={"Retry-After": "²".encode()})
        return httpx.Response(200, json={})

    seen: list[int] = []
    clock = Clock()
    result, client = call(handler, retry=RetryPolicy(base=1, cap=1), clock=clock)
    assert result == {}
    assert client.requests == 3
    assert len(clock.sleeps) == 2 and all(0 <= s <= 1 for s in clock.sleeps)


def test_a_retry_after_past_the_budget_gives_up_without_waiting() -> None:
    clock = Clock()
    error, requests = failing(
        ACK,
        lambda request: httpx.Response(429, headers={"Retry-After": "9" * 400}),
        retry=RetryPolicy(total=60),
        clock=clock,
    )
    assert requests == 1
    assert clock.sleeps == []
    assert str(error).startswith("POST /incidents/acknowledge: gave up after 1 attempts; last: 429")


# ---------------------------------------------------------------------------------------------
# 4. SPIKE_API_URL


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://api.spike.sh\n", "spaces or control characters"),
        ("https://api.spike.sh ", "spaces or control characters"),
        ("https://api .spike.sh", "spaces or control characters"),
        ("\x1b[31mhttps://api.spike.sh", "spaces or control characters"),
        ("https://api.spike.sh:65536", "not a valid URL"),
        ("https://api.spike.sh:port", "not a valid URL"),
        ("https://[::1", "not a valid URL"),
        ("https://user:pa55word-secret@api.spike.sh", "user name or password"),
        ("https://api.spike.sh/?team=1", "query"),
        ("https://api.spike.sh/#top", "fragment"),
        ("https://api.spike.sh?", "query"),
        ("api.spike.sh", "only https://"),
        ("::::", "not a valid URL"),
        ("", "only https://"),
    ],
)
def test_a_malformed_url_is_one_clean_error(url: str, reason: str) -> None:
    with pytest.raises(ReconcileError) as info:
        SpikeConfig.from_env(
            {"SPIKE_API_URL": url or "https://", "SPIKE_API_KEY": SECRET, "SPIKE_TEAM_ID": "t"}
        )
    message = str(info.value)
    assert type(info.value) is ReconcileError
    assert message.startswith("SPIKE_API_URL ")
    assert reason in message
    assert message.isprintable()  # no newline or escape sequence reaches the terminal
    assert "pa55word-secret" not in message and SECRET not in message


def test_the_url_is_shown_escaped_and_without_user_information() -> None:
    with pytest.raises(ReconcileError) as info:
        check_url("https://api.spike.sh\n")
    assert str(info.value).startswith("SPIKE_API_URL 'https://api.spike.sh\\\\n': ")
    with pytest.raises(ReconcileError) as info:
        check_url("https://me:pw-1234@api.spike.sh")
    assert str(info.value).startswith("SPIKE_API_URL 'https://***@api.spike.sh': ")


# ---------------------------------------------------------------------------------------------
# 5. Bounds: a request's time, an answer's size, the stop signal


class DrippingServer:
    """A loopback HTTP server that announces a large body and sends one byte at a time."""

    def __init__(self, every: float = 0.02) -> None:
        self.every = every
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        with self.sock:
            while not self.closed.is_set():
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: 1000000\r\n\r\n["
                    )
                    try:
                        while not self.closed.wait(self.every):
                            conn.sendall(b" ")
                    except OSError:
                        pass  # the client hung up: what the test wants

    def __enter__(self) -> DrippingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def dripping() -> Iterator[DrippingServer]:
    with DrippingServer() as server:
        yield server


@pytest.mark.parametrize(("op", "error_type"), [(ACK, ApiError), (ESCALATE, UncertainOutcomeError)])
def test_a_dripping_server_is_cut_at_the_request_deadline(
    dripping: DrippingServer, op: Operation, error_type: type[ApiError]
) -> None:
    config = SpikeConfig(dripping.url, SECRET, "team-1")
    client = SpikeClient(config, retry=RetryPolicy(attempts=1, timeout=10, deadline=0.3))

    async def go() -> None:
        async with client:
            await client.call(op)

    with pytest.raises(ApiError) as info:
        asyncio.run(go())
    assert type(info.value) is error_type
    assert "no complete answer within 0.3 s" in str(info.value)
    assert client.requests == 1


def test_a_huge_answer_is_read_only_up_to_the_limit() -> None:
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(400 * 16):  # 400 MiB, 64 KiB at a time
            pulled.append(1)
            yield b" " * 65536

    error, requests = failing(ACK, lambda request: httpx.Response(200, content=body()))
    assert type(error) is ApiError
    assert str(error) == (
        "POST /incidents/acknowledge: 200, but the answer is larger than 1048576 bytes"
    )
    assert requests == 1
    assert len(pulled) <= 17  # 1 MiB and one chunk past it, not 400 MiB


def test_a_huge_error_answer_keeps_its_status() -> None:
    error, requests = failing(
        ACK, lambda request: httpx.Response(400, content=b"x" * (3 << 20)), retry=FAST
    )
    assert requests == 1
    assert error.status_code == 400
    assert (
        str(error) == f"POST /incidents/acknowledge: 400 {'x' * 200} (answer cut at 1048576 bytes)"
    )


@pytest.mark.parametrize(("op", "error_type"), [(ACK, ApiError), (ESCALATE, UncertainOutcomeError)])
def test_the_stop_signal_cancels_a_request_in_flight_after_the_grace(
    op: Operation, error_type: type[ApiError]
) -> None:
    async def go() -> tuple[ApiError, int]:
        stop = asyncio.Event()

        async def hang(request: httpx.Request) -> httpx.Response:
            stop.set()  # the signal arrives while the request is in flight
            await asyncio.Event().wait()
            raise AssertionError("never answered")

        client = client_for(hang, stop=stop, retry=RetryPolicy(grace=0.05))
        async with client:
            with pytest.raises(ApiError) as info:
                await client.call(op)
        return info.value, client.requests

    error, requests = asyncio.run(go())
    assert type(error) is error_type
    assert requests == 1
    assert "interrupted: no answer within 0.05 s of the stop signal" in str(error)


def test_no_request_starts_once_the_stop_signal_is_set() -> None:
    async def go() -> tuple[ApiError, int]:
        stop = asyncio.Event()
        stop.set()
        client = client_for(answers(), stop=stop)
        async with client:
            with pytest.raises(ApiError) as info:
                await client.call(ESCALATE)
        return info.value, client.requests

    error, requests = asyncio.run(go())
    assert type(error) is ApiError  # surely not sent: not uncertain
    assert str(error) == "POST /incidents/escalate: not sent, apply was interrupted"
    assert requests == 0


def test_a_request_answered_within_the_grace_succeeds() -> None:
    async def go() -> Any:
        stop = asyncio.Event()

        async def slow(request: httpx.Request) -> httpx.Response:
            stop.set()
            await asyncio.sleep(0)
            return httpx.Response(200, json={"done": True})

        async with client_for(slow, stop=stop, retry=RetryPolicy(grace=30)) as client:
            return await client.call(ESCALATE)

    assert asyncio.run(go()) == {"done": True}


# ---------------------------------------------------------------------------------------------
# 6. An outage stops the client


def test_an_outage_stops_every_later_call_after_eight_failed_requests() -> None:
    sent: list[str] = []

    def down(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(503, json={"message": "down"})

    async def go() -> list[ApiError]:
        errors: list[ApiError] = []
        async with client_for(down, retry=RetryPolicy(attempts=6, base=0, cap=0)) as client:
            for i in range(48):
                with pytest.raises(ApiError) as info:
                    await client.call(
                        Operation("POST", "/incidents/acknowledge", {"ids": [str(i)]})
                    )
                errors.append(info.value)
        return errors

    errors = asyncio.run(go())
    assert len(sent) == 8
    assert str(errors[0]) == "POST /incidents/acknowledge: gave up after 6 attempts; last: 503 down"
    assert all(type(e) is ApiUnavailableError for e in errors[1:])
    assert str(errors[1]).startswith(
        "POST /incidents/acknowledge: not sent: 8 requests in a row failed "
        "(last: POST /incidents/acknowledge: 503 down)"
    )


def test_a_wrong_url_answering_html_stops_the_client() -> None:
    def login(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, html="<html>login</html>")

    async def go() -> list[type[ApiError]]:
        kinds: list[type[ApiError]] = []
        async with client_for(login) as client:
            for _ in range(10):
                try:
                    await client.get_incident("1")
                except ApiError as exc:
                    kinds.append(type(exc))
        assert client.requests == 8
        return kinds

    assert asyncio.run(go()) == [ApiError] * 8 + [ApiUnavailableError] * 2


def test_429s_and_answers_do_not_trip_the_breaker() -> None:
    # 7 failures, a 4xx (the API works), 7 more failures, throttles between: no outage.
    script: list[int] = [503] * 7 + [404] + [429, 503] * 7 + [200]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(script.pop(0), json={})

    async def go() -> Any:
        policy = RetryPolicy(attempts=20, base=0, cap=0)
        async with client_for(handler, retry=policy) as client:
            with pytest.raises(ApiError) as info:
                await client.call(ACK)
            assert info.value.status_code == 404
            return await client.call(ACK)

    assert asyncio.run(go()) == {}
    assert script == []


# ---------------------------------------------------------------------------------------------
# 7. 429 means slow down: time, not attempts


def test_429s_use_no_attempt() -> None:
    result, client = call(answers(*[429] * 10, 500), retry=RetryPolicy(attempts=2, base=0, cap=0))
    assert result == {"message": "answer 200"}
    assert client.requests == 12


def test_429s_are_bounded_by_the_total_time() -> None:
    clock = Clock()
    error, requests = failing(
        ACK,
        lambda request: httpx.Response(429, headers={"Retry-After": "10"}),
        retry=RetryPolicy(attempts=2, total=95),
        clock=clock,
    )
    assert clock.sleeps == [10.0] * 9
    assert requests == 10
    assert (
        str(error)
        == "POST /incidents/acknowledge: gave up after 10 attempts; last: 429 Too Many Requests"
    )


def test_parallelism_8_converges_against_an_api_that_throttles_above_2_in_flight() -> None:
    in_flight = 0
    statuses: list[int] = []

    async def throttling(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight
        in_flight += 1
        try:
            await asyncio.sleep(0.001)
            status = 429 if in_flight > 2 else 200
            statuses.append(status)
            return httpx.Response(status, json={})
        finally:
            in_flight -= 1

    async def go() -> list[Any]:
        async with client_for(
            throttling, parallelism=8, retry=RetryPolicy(attempts=2, base=0.001, cap=0.004)
        ) as client:
            ops = [
                Operation("POST", "/incidents/acknowledge", {"ids": [str(i)]}) for i in range(60)
            ]
            return await asyncio.gather(*(client.call(op) for op in ops))

    assert asyncio.run(go()) == [{}] * 60
    assert statuses.count(200) == 60
    assert 429 in statuses  # the API did throttle


# ---------------------------------------------------------------------------------------------
# 8. The key is never shown; deep JSON is a clean error


def test_an_error_body_echoing_the_key_is_redacted_everywhere() -> None:
    notes: list[str] = []
    echo = {"message": f"bad request, headers: x-api-key={SECRET}"}
    for status in (400, 500):

        def handler(_request: httpx.Request, s: int = status) -> httpx.Response:
            return httpx.Response(s, json=echo)

        error, _ = failing(ACK, handler, observe=notes.append)
        assert SECRET not in str(error) and SECRET not in (error.api_message or "")
        assert "x-api-key=***" in str(error)
    error, _ = failing(
        ACK,
        lambda request: httpx.Response(200, json={"success": False, **echo}),
        observe=notes.append,
    )
    assert "x-api-key=***" in str(error) and SECRET not in str(error)
    assert notes and not any(SECRET in note for note in notes)


def test_a_deep_live_answer_is_an_error_naming_the_incident() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000

    async def go() -> None:
        async with client_for(lambda request: httpx.Response(200, content=deep)) as client:
            await read_incidents(client, ["116"])

    with pytest.raises(LiveStateError) as info:
        asyncio.run(go())
    assert str(info.value) == (
        "incident 116: could not be read: GET /incidents/116: 200, but the answer's JSON is "
        "nested too deeply"
    )


def test_a_deep_error_answer_is_a_clean_error() -> None:
    deep = b'{"message":' * 100_000
    error, _ = failing(ACK, lambda request: httpx.Response(400, content=deep))
    assert error.status_code == 400
    assert str(error).startswith('POST /incidents/acknowledge: 400 {"message":{"message":')


def test_an_outage_during_a_live_read_is_one_error() -> None:
    async def go() -> None:
        async with client_for(lambda request: httpx.Response(502)) as client:
            await read_incidents(client, [str(i) for i in range(20)])

    with pytest.raises(ApiUnavailableError, match="requests in a row failed"):
        asyncio.run(go())
