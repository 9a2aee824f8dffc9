"""The API client over httpx.MockTransport: retries, Retry-After, credentials, the secret."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import Callable

import httpx
import pytest

from reconciler.errors import ApiError, CredentialsError, ReconcileError
from reconciler.model import Operation
from reconciler.spike.client import (
    AdaptiveLimiter,
    RetryPolicy,
    SpikeClient,
    SpikeConfig,
    check_url,
    retry_after,
)

SECRET = "sk-live-DO-NOT-LEAK-1234"
CONFIG = SpikeConfig("https://api.spike.sh", SECRET, "team-1")
FAST = RetryPolicy(attempts=4, base=0.0, cap=0.0, total=5.0)
ACK = Operation("POST", "/incidents/acknowledge", {"ids": ["1", "2"]})


def run(
    handler: Callable[[httpx.Request], httpx.Response],
    op: Operation = ACK,
    retry: RetryPolicy = FAST,
    sleeps: list[float] | None = None,
) -> tuple[object, SpikeClient]:
    async def fake_sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    async def go() -> tuple[object, SpikeClient]:
        client = SpikeClient(
            CONFIG,
            transport=httpx.MockTransport(handler),
            retry=retry,
            sleep=fake_sleep,
            rng=random.Random(1),
        )
        async with client:
            return await client.call(op), client

    return asyncio.run(go())


def test_sends_headers_and_body_and_parses_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    result, client = run(handler)
    assert result == {"ok": True}
    assert client.requests == 1
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://api.spike.sh/incidents/acknowledge"
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["x-team-id"] == "team-1"
    assert json.loads(request.content) == {"ids": ["1", "2"]}


def test_retries_5xx_and_429_then_succeeds() -> None:
    answers = iter([503, 429, 500, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), json={"message": "busy"})

    result, client = run(handler)
    assert result == {"message": "busy"}
    assert client.requests == 4


def test_honours_retry_after_seconds() -> None:
    answers = iter([(429, {"Retry-After": "7"}), (200, {})])
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status, headers = next(answers)
        return httpx.Response(status, headers=headers, json={})

    run(handler, retry=RetryPolicy(attempts=3, base=0, cap=0, total=60), sleeps=sleeps)
    assert sleeps == [7.0]


def test_gives_up_when_retry_after_exceeds_the_total_budget() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3600"}, json={})

    with pytest.raises(ApiError, match="gave up after 1 attempts"):
        run(handler, retry=RetryPolicy(attempts=5, base=0, cap=0, total=10))


def test_retry_after_http_date() -> None:
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert retry_after("garbage") is None
    assert retry_after(None) is None
    assert retry_after("12") == 12.0


def test_connection_errors_are_retried_and_bounded() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(
        ApiError, match=r"could not connect to https://api.spike.sh \(4 attempts over 0 s: "
    ):
        run(handler)
    assert len(calls) == 4


def test_backoff_is_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0)
    rng = random.Random(5)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        draws = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8  # full jitter spans the whole range


@pytest.mark.parametrize("status", [401, 403])
def test_credentials_stop_at_once_without_the_key(status: int) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, json={"message": "Invalid API key", "error": "Unauthorized"})

    with pytest.raises(CredentialsError) as info:
        run(handler)
    assert len(calls) == 1
    assert "SPIKE_API_KEY" in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_other_4xx_is_not_retried_and_carries_the_api_message() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"message": "unknown incident ids: 2", "error": "Bad"})

    with pytest.raises(ApiError) as info:
        run(handler)
    assert len(calls) == 1
    assert info.value.status_code == 400
    assert info.value.api_message == "unknown incident ids: 2: Bad"


def test_non_json_success_and_error_bodies() -> None:
    result, _ = run(lambda request: httpx.Response(200, content=b""))
    assert result == {}
    with pytest.raises(ApiError, match="not JSON"):  # a login page is no success
        run(lambda request: httpx.Response(200, content=b"<html>"))
    with pytest.raises(ApiError, match="418 teapot"):
        run(lambda request: httpx.Response(418, content=b"teapot"))


def test_the_key_never_appears_in_reprs() -> None:
    assert SECRET not in repr(CONFIG)
    assert SECRET not in repr(SpikeClient(CONFIG))


def test_plain_http_only_for_loopback() -> None:
    for ok in (
        "https://api.spike.sh",
        "http://127.0.0.1:8787",
        "http://localhost:1",
        "http://[::1]:2",
    ):
        check_url(ok)
    for bad in ("http://api.spike.sh", "http://10.0.0.1", "ftp://127.0.0.1", "https://"):
        with pytest.raises(ReconcileError, match="only https"):
            check_url(bad)


def test_config_from_env_requires_key_and_team() -> None:
    with pytest.raises(ReconcileError, match="SPIKE_API_KEY and SPIKE_TEAM_ID must be set"):
        SpikeConfig.from_env({})
    config = SpikeConfig.from_env({"SPIKE_API_KEY": SECRET, "SPIKE_TEAM_ID": "t"})
    assert config.base_url == "https://api.spike.sh"
    assert SECRET not in repr(config)


def test_limiter_halves_on_429_and_grows_back_after_a_window() -> None:
    async def go() -> list[int]:
        limiter = AdaptiveLimiter(8)
        seen = [limiter.limit]
        await limiter.acquire()
        await limiter.release(throttled=True)
        seen.append(limiter.limit)
        await limiter.acquire()
        await limiter.release(throttled=True)
        seen.append(limiter.limit)
        for _ in range(2):  # a window of 2 successes grows 2 -> 3
            await limiter.acquire()
            await limiter.release(succeeded=True)
        seen.append(limiter.limit)
        for _ in range(50):
            await limiter.acquire()
            await limiter.release(succeeded=True)
        seen.append(limiter.limit)
        for _ in range(5):
            await limiter.acquire()
            await limiter.release(throttled=True)
        seen.append(limiter.limit)
        return seen

    assert asyncio.run(go()) == [8, 4, 2, 3, 8, 1]


def test_limiter_bounds_calls_in_flight() -> None:
    async def go() -> int:
        limiter = AdaptiveLimiter(3)
        peak = 0

        async def one() -> None:
            nonlocal peak
            await limiter.acquire()
            peak = max(peak, limiter.in_flight)
            await asyncio.sleep(0.001)
            await limiter.release(succeeded=True)

        await asyncio.gather(*(one() for _ in range(20)))
        return peak

    assert asyncio.run(go()) == 3


@pytest.mark.parametrize("bad", [SECRET + "\n", " " + SECRET, "sécret-key", ""])
def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it(bad: str) -> None:
    with pytest.raises(ReconcileError) as info:
        SpikeConfig.from_env({"SPIKE_API_KEY": bad or "x", "SPIKE_TEAM_ID": bad or "t\tx"})
    assert "cannot be sent in an HTTP header" in str(info.value)
    assert SECRET not in str(info.value) and "sécret" not in str(info.value)


def test_transport_errors_are_named_by_type_only() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value {SECRET!r}")

    with pytest.raises(ApiError) as info:
        run(handler)
    assert str(info.value).endswith("last: LocalProtocolError")
    assert SECRET not in str(info.value)


def test_clients_of_one_process_share_one_tls_context() -> None:
    # Making one loads the CA bundle, tens of milliseconds: an apply of many teams (and the
    # tests, which make hundreds of clients) would pay it for every client.
    async def go() -> list[object]:
        contexts = []
        for _ in range(3):
            async with SpikeClient(CONFIG) as client:
                contexts.append(client._client._transport._pool._ssl_context)  # type: ignore[union-attr]
        return contexts

    contexts = asyncio.run(go())
    assert all(isinstance(ctx, ssl.SSLContext) for ctx in contexts)
    assert len({id(ctx) for ctx in contexts}) == 1
