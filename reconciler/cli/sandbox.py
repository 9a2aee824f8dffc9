"""`reconcile sandbox`: the launcher of the local Spike-compatible API (reconciler.sandbox),
on loopback addresses only."""

from __future__ import annotations

import os
import time
from typing import Any

import click

from . import core


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="A loopback address only: the control endpoints have no auth.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option(
    "--seed",
    "seed_paths",
    multiple=True,
    type=click.Path(exists=True),
    help="State files or folders: each incident in them exists, triggered.",
)
@click.option(
    "--seed-json",
    type=click.Path(exists=True, dir_okay=False),
    help='A JSON file {"incidents": {id: {status: NACK, title: ..., age: "3d", ...}}}.',
)
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="Milliseconds per call.")
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of API calls answered with an injected 429/500/503.",
)
@click.option("--fault-seed", type=int, default=0, show_default=True)
@click.option("--calls-file", type=click.Path(dir_okay=False), help="Append each call as JSON.")
@click.option(
    "--ack-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Acknowledged incidents return to triggered this long after acknowledging.",
)
@click.option(
    "--team",
    "team_seeds",
    multiple=True,
    metavar="ID=PATH",
    help="Serve team ID (an x-team-id value), seeded from the state files at PATH (as "
    "--seed); repeatable. Without it: one team, SPIKE_TEAM_ID.",
)
@core.common
def sandbox(
    host: str,
    port: int,
    seed_paths: tuple[str, ...],
    seed_json: str | None,
    latency: float,
    fault_rate: float,
    fault_seed: int,
    calls_file: str | None,
    ack_timeout: float | None,
    team_seeds: tuple[str, ...],
    verbose: bool,
    no_color: bool,
) -> None:
    """Run a local Spike-compatible API for trying apply (key and team: SPIKE_API_KEY and
    SPIKE_TEAM_ID, default "dev"; --team serves several teams instead). Ctrl-C stops it (exit
    130; SIGTERM: 143).

    It listens on loopback addresses only: its control endpoints (/_sandbox/) change
    incidents without any auth, and its credentials default to "dev", so it is never served
    to a network.
    """
    from ..errors import ReconcileError
    from ..model import is_loopback
    from ..sandbox.incidents import seed_from_json, seed_from_paths
    from ..sandbox.server import SandboxServer
    from ..wording import counted

    if not is_loopback(host):
        raise ReconcileError(
            f"--host {host}: the sandbox listens on loopback addresses only (127.0.0.1, ::1, "
            "localhost): its /_sandbox/ control endpoints change incidents without auth and "
            'its key and team default to "dev"; run it on the machine (or in the container) '
            "that runs reconcile"
        )
    incidents: dict[str, Any] = {}
    if seed_paths:
        incidents.update(seed_from_paths(list(seed_paths)))
    if seed_json:
        incidents.update(seed_from_json(seed_json))
    teams = _seeds_by_team(team_seeds, seed_paths, seed_json) if team_seeds else None
    server = SandboxServer(
        None if teams is not None else incidents,
        teams=teams,
        host=host,
        port=port,
        api_key=os.environ.get("SPIKE_API_KEY") or "dev",
        team_id=os.environ.get("SPIKE_TEAM_ID") or "dev",
        latency=latency / 1000,
        fault_rate=fault_rate,
        fault_seed=fault_seed,
        calls_file=calls_file,
        ack_timeout=ack_timeout,
    )
    try:
        server.start()
    except OSError as exc:
        if calls_file is not None and exc.filename == calls_file:
            raise ReconcileError(f"--calls-file {calls_file}: {exc.strerror}") from None
        raise ReconcileError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
    if teams is None:
        click.echo(
            f"Spike sandbox on {server.url} with {counted(len(incidents), 'incident')}", err=True
        )
    else:
        count = sum(len(seed) for seed in teams.values())
        click.echo(
            f"Spike sandbox on {server.url} with {counted(count, 'incident')} in "
            f"{counted(len(teams), 'team')}: " + ", ".join(teams),
            err=True,
        )
    click.echo(f"  export SPIKE_API_URL={server.url}", err=True)
    try:
        while True:
            time.sleep(3600)
    finally:  # Ctrl-C or SIGTERM: close the port and the calls file, then exit 130 or 143
        server.stop()


def _seeds_by_team(
    team_seeds: tuple[str, ...], seed_paths: tuple[str, ...], seed_json: str | None
) -> dict[str, dict[str, Any]]:
    """`--team ID=PATH` options as `{team id: incidents}`, in the order given; a team given
    twice is seeded from all its paths."""
    from ..errors import ReconcileError
    from ..sandbox.incidents import seed_from_paths

    if seed_paths or seed_json:
        raise ReconcileError(
            "--team seeds each team from its PATH: use it instead of --seed and --seed-json"
        )
    paths: dict[str, list[str]] = {}
    for option in team_seeds:
        team, sep, path = option.partition("=")
        if not sep or not team or not path:
            raise ReconcileError(f"--team {option}: expected ID=PATH, e.g. team-a=states/a")
        if not os.path.exists(path):
            raise ReconcileError(f"--team {option}: {path} does not exist")
        paths.setdefault(team, []).append(path)
    return {team: seed_from_paths(team_paths) for team, team_paths in paths.items()}
