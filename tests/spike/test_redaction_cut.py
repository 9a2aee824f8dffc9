"""A server that pads its echo of our headers so a message's cut falls inside the secret must
still not get the secret's head shown: messages are redacted before they are cut
(docs/api-calls.md, Headers; found by a hostile review)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from reconciler.errors import ApiError, LiveStateError, ReconcileError
from reconciler.github import GitHubClient, GitHubConfig
from reconciler.model import Operation
from reconciler.redact import clip, register
from reconciler.spike.client import RetryPolicy, SpikeClient, SpikeConfig
from reconciler.spike.live import read_incidents

KEY = "SUPERSECRETKEY0123456789"
TOKEN = "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
FAST = RetryPolicy(attempts=1, base=0.0, cap=0.0, total=5.0)


def spike(handler: httpx.MockTransport) -> SpikeClient:
    return SpikeClient(
        SpikeConfig("https://api.spike.sh", KEY, "team"), transport=handler, retry=FAST
    )


def test_clip_redacts_before_it_cuts() -> None:
    register(KEY)
    assert clip("A" * 190 + KEY, 200) == "A" * 190 + "***"
    assert clip("A" * 195 + KEY, 200, "...") == "A" * 195 + "***"


@pytest.mark.parametrize("pad", [180, 190, 199])
@pytest.mark.parametrize("as_json", [True, False])
def test_an_error_echo_padded_to_the_cut_shows_no_part_of_the_key(pad: int, as_json: bool) -> None:
    text = "A" * pad + KEY
    content = json.dumps({"message": text}).encode() if as_json else text.encode()
    transport = httpx.MockTransport(lambda request: httpx.Response(400, content=content))

    async def go() -> None:
        async with spike(transport) as client:
            await client.call(Operation("POST", "/incidents/acknowledge", {"ids": ["1"]}))

    with pytest.raises(ApiError) as info:
        asyncio.run(go())
    assert KEY[:6] not in str(info.value)
    assert KEY[:6] not in (info.value.api_message or "")


def test_a_live_value_padded_to_the_cut_shows_no_part_of_the_key() -> None:
    body = {"incident": {"counterId": "1", "status": "S" * 40 + KEY}}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))

    async def go() -> None:
        async with spike(transport) as client:
            await read_incidents(client, ["1"])

    with pytest.raises(LiveStateError) as info:
        asyncio.run(go())
    assert "unrecognised incident.status" in str(info.value)
    assert KEY[:6] not in str(info.value)


def test_a_github_error_padded_to_the_cut_shows_no_part_of_the_token() -> None:
    message = "B" * 280 + "Bearer " + TOKEN
    transport = httpx.MockTransport(lambda request: httpx.Response(422, json={"message": message}))
    config = GitHubConfig("https://api.github.com", "o/r", TOKEN)
    register(TOKEN)

    async def go() -> None:
        async with GitHubClient(config, transport) as client:
            await client.create_comment(1, "hello")

    with pytest.raises(ReconcileError) as info:
        asyncio.run(go())
    assert TOKEN[:8] not in str(info.value)
