"""SpikeClient.get_teams over httpx.MockTransport: the headers sent (x-team-id only when there is
a team), retries like every idempotent read, a 401 as the usual credentials error; and the
configuration that lets SPIKE_TEAM_ID be unset for it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconciler.errors import ApiError, CredentialsError, ReconcileError
from reconciler.spike.client import RetryPolicy, SpikeClient, SpikeConfig
from reconciler.spike.teams import SpikeTeam, read_teams

SECRET = "sk-live-teams-DO-NOT-LEAK-77"
FAST = RetryPolicy(attempts=3, base=0.0, cap=0.0, total=5.0)
BODY = {"teams": [{"_id": "t1", "name": "Payments"}]}


def run(
    handler: Callable[[httpx.Request], httpx.Response], team_id: str | None
) -> tuple[list[SpikeTeam], int]:
    config = SpikeConfig("https://api.spike.sh", SECRET, team_id)

    async def no_sleep(seconds: float) -> None:
        pass

    async def go() -> tuple[list[SpikeTeam], int]:
        client = SpikeClient(
            config,
            transport=httpx.MockTransport(handler),
            retry=FAST,
            sleep=no_sleep,
            rng=random.Random(1),
        )
        async with client:
            return await read_teams(client), client.requests

    return asyncio.run(go())


@pytest.mark.parametrize("team_id", [None, "team-1"])
def test_sends_the_key_and_the_team_only_when_there_is_one(team_id: str | None) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=BODY)

    teams, requests = run(handler, team_id)
    assert teams == [SpikeTeam("t1", "Payments")]
    assert requests == 1
    (request,) = seen
    assert (request.method, str(request.url)) == ("GET", "https://api.spike.sh/teams/get-all-teams")
    assert request.headers["x-api-key"] == SECRET
    assert request.headers.get("x-team-id") == team_id
    assert request.content == b""


def test_retried_like_every_read() -> None:
    answers = [httpx.Response(503), httpx.Response(429), httpx.Response(200, json=BODY)]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    teams, requests = run(handler, None)
    assert teams == [SpikeTeam("t1", "Payments")]
    assert requests == 3


def test_gives_up_after_the_attempts() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"message": "boom"})

    with pytest.raises(ApiError) as caught:
        run(handler, None)
    assert str(caught.value) == (
        "GET /teams/get-all-teams: gave up after 3 attempts; last: 500 boom"
    )


def test_a_refused_key_is_the_credentials_error_without_the_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        echoed = request.headers["x-api-key"]
        return httpx.Response(401, json={"message": f"bad key {echoed}", "error": "Unauthorized"})

    with pytest.raises(CredentialsError) as caught:
        run(handler, None)
    assert str(caught.value) == (
        "GET /teams/get-all-teams: the Spike API answered 401 (bad key ***: Unauthorized): "
        "check SPIKE_API_KEY and SPIKE_TEAM_ID"
    )


def test_config_without_a_team() -> None:
    env: dict[str, Any] = {"SPIKE_API_KEY": SECRET}
    config = SpikeConfig.from_env(env, team_required=False)
    assert (config.base_url, config.team_id) == ("https://api.spike.sh", None)
    assert SpikeConfig.from_env({**env, "SPIKE_TEAM_ID": "t"}, team_required=False).team_id == "t"
    with pytest.raises(ReconcileError) as caught:
        SpikeConfig.from_env({"SPIKE_TEAM_ID": "t"}, team_required=False)
    assert str(caught.value) == "SPIKE_API_KEY must be set to call the Spike API"
    # Every other command still needs the team.
    with pytest.raises(ReconcileError, match=r"^SPIKE_TEAM_ID must be set to call the Spike API"):
        SpikeConfig.from_env(env)
