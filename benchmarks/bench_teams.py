"""Many teams, as ratios measured in one run on this machine (docs/teams.md).

- Apply: 4 teams of 1,000 incidents each (mixed changes as in bench_apply.py), one sandbox
  serving the four team ids with 20 ms added to every call, `--parallelism 8` in total.
  The whole `reconcile apply` command (a fresh process) over the lower bound
  sum over waves of ceil(calls of that wave in all teams / 8) x 20 ms (target <= 1.3; each
  team sends its escalate calls one at a time, so that wave is slower than the bound says).
- Plan: 4 teams of 10,000 incidents (block style, 1,000 a file), `reconcile plan` of every
  team over the bare ruamel.yaml safe parse of the same files (target <= 1.1), best of
  --repeat runs, both as fresh processes.

Usage: python benchmarks/bench_teams.py [--teams 4] [--apply-incidents 1000]
       [--plan-incidents 10000] [--latency-ms 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_apply import desired_states
from bench_plan import BARE_PARSE, generate

from reconciler.endpoints import wave_of
from reconciler.model import Operation
from reconciler.sandbox import SandboxServer

PARALLELISM = 8


def write_project(root: Path, names: list[str]) -> Path:
    lines = ["version: 1", "teams:"]
    for n, name in enumerate(names):
        lines += [f"  {name}:", f"    team_id: team-{n}"]
    config = root / "reconcile.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 2):
        raise SystemExit(f"{argv[1:3]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def bound(operations_by_team: dict[str, list[Operation]], latency: float) -> float:
    """sum over waves of ceil(calls of that wave in all teams / 8) x latency."""
    waves: dict[int, int] = {}
    for operations in operations_by_team.values():
        for op in operations:
            waves[wave_of(op)] = waves.get(wave_of(op), 0) + 1
    return sum(math.ceil(n / PARALLELISM) for n in waves.values()) * latency


def apply_figures(reconcile: str, args: argparse.Namespace) -> None:
    names = [f"team{n}" for n in range(args.teams)]
    latency = args.latency_ms / 1000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_project(root, names)
        seed = {}
        for n, name in enumerate(names):
            desired = desired_states(args.apply_incidents, random.Random(11 + n))
            folder = root / "teams" / name
            folder.mkdir(parents=True)
            body = {"version": 1, "incidents": desired}
            (folder / "incidents.yaml").write_text(json.dumps(body))
            seed[f"team-{n}"] = {cid: {"status": "NACK"} for cid in desired}
        with SandboxServer(teams=seed, latency=latency, max_batch=1000) as server:
            env = {**os.environ, "SPIKE_API_URL": server.url, "SPIKE_API_KEY": "dev"}
            env.pop("SPIKE_TEAM_ID", None)
            plan_file = root / "plan.json"
            timed([reconcile, "plan", "--config", str(config), "--out", str(plan_file)], env, root)
            plan = json.loads(plan_file.read_text())
            operations = {
                name: [Operation(o["method"], o["path"], o["body"]) for o in team["operations"]]
                for name, team in plan["teams"].items()
            }
            argv = [reconcile, "apply", "--config", str(config), str(plan_file)]
            elapsed, _ = timed([*argv, "--parallelism", str(PARALLELISM)], env, root)
            total = sum(len(ops) for ops in operations.values())
            assert len(server.calls) == total, "apply sent extra calls"
    floor = bound(operations, latency)
    print(
        f"apply: {args.teams} teams x {args.apply_incidents} incidents, {total} calls, "
        f"latency {args.latency_ms:g} ms, --parallelism {PARALLELISM} in total"
    )
    print(
        f"  whole command {elapsed:.2f} s over the bound {floor:.2f} s = "
        f"{elapsed / floor:.2f} (target <= 1.3)"
    )


def plan_figures(reconcile: str, args: argparse.Namespace) -> None:
    names = [f"team{n}" for n in range(args.teams)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_project(root, names)
        for n, name in enumerate(names):
            generate(root / "teams" / name, args.plan_incidents, seed=7 + n)
        env = dict(os.environ)
        parse = [sys.executable, "-c", BARE_PARSE, str(root / "teams")]
        plan = [reconcile, "plan", "--config", str(config)]
        best_parse = min(timed(parse, env, root)[0] for _ in range(args.repeat))
        best_plan = min(timed(plan, env, root)[0] for _ in range(args.repeat))
    print(f"plan: {args.teams} teams x {args.plan_incidents} incidents (best of {args.repeat})")
    print(
        f"  reconcile plan {best_plan:.2f} s over the bare parse {best_parse:.2f} s = "
        f"{best_plan / best_parse:.2f} (target <= 1.1)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=4)
    parser.add_argument("--apply-incidents", type=int, default=1000)
    parser.add_argument("--plan-incidents", type=int, default=10000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    reconcile = shutil.which("reconcile") or sys.exit("install the package first: pip install .")
    apply_figures(reconcile, args)
    plan_figures(reconcile, args)


if __name__ == "__main__":
    main()
