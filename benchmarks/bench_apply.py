"""Apply and refresh against the sandbox with added latency, as ratios measured in one run.

5,000 incidents with mixed changes (status, priority, severity, escalations, and 500
public-sharing toggles), `--parallelism 8`, 20 ms added to every API call. Prints:

- the operation count beside the minimum (must be equal) and beside what a naive
  per-incident, per-field script would send;
- apply wall time over the lower bound: sum over waves of ceil(ops / 8) x 20 ms, where the
  escalate wave runs one call at a time (target <= 1.3);
- with --postgres URL: the same apply with the PostgreSQL journal, and its extra cost per
  journaled operation (target <= 2 ms);
- refresh of all 5,000 incidents (`plan --refresh`) over the bound ceil(5000 / 8) x 20 ms;
- with --scenario sharing: 2,000 incidents of which 1,000 change public sharing (one call
  each), the whole `reconcile apply` command beside a bare script that sends the same calls
  with 8 threads on one `httpx.Client` (the floor: no journal, no checks), both over the bound
  (targets: whole command <= 1.25 x the bound and <= 1.1 x the bare client), and the same apply
  with every fsync slowed by 5 ms (a slower disk than this one).

Usage: python benchmarks/bench_apply.py [--incidents 5000] [--latency-ms 20]
       [--postgres postgresql://postgres@127.0.0.1:5432/test] [--scenario mixed|sharing]
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
import uuid
from pathlib import Path
from typing import Any

from reconciler.endpoints import wave_of
from reconciler.model import Operation
from reconciler.sandbox import SandboxServer

PARALLELISM = 8


def desired_states(count: int, rng: random.Random) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for n in range(count):
        fields: dict[str, Any] = {}
        roll = rng.random()
        if roll < 0.4:
            fields["status"] = "acknowledged"
        elif roll < 0.6:
            fields["status"] = "resolved"
        if rng.random() < 0.5:
            fields["priority"] = rng.choice(["p1", "p2", "p3", "p4", "p5", None])
        if rng.random() < 0.3:
            fields["severity"] = rng.choice(["sev1", "sev2", "sev3", None])
        if n < 500:
            fields["public_sharing"] = True
        if rng.random() < 0.1:
            fields["escalations"] = rng.randint(1, 3)
        out[f"inc-{n}"] = fields
    return out


def sharing_states(count: int, rng: random.Random) -> dict[str, dict[str, Any]]:
    """Half the incidents turn public sharing on; all get a status, some a priority."""
    out: dict[str, dict[str, Any]] = {}
    for n in range(count):
        fields: dict[str, Any] = {"status": "acknowledged" if n % 3 else "resolved"}
        if n % 4 == 0:
            fields["priority"] = rng.choice(["p1", "p2", "p3", "p4", "p5"])
        if n < count // 2:
            fields["public_sharing"] = True
        out[f"inc-{n}"] = fields
    return out


#: A bare client: the same calls, wave by wave, 8 threads on one httpx.Client, nothing else.
BARE_CLIENT = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
started = time.perf_counter()
import httpx
plan = json.load(open(sys.argv[1]))
waves = {}
for op in plan["operations"]:
    path = op["path"]
    wave = (1 if path.endswith("acknowledge") else 3 if path.endswith("escalate")
            else 4 if path.endswith("resolve") else 2)
    waves.setdefault(wave, []).append(op)
headers = {"x-api-key": "dev", "x-team-id": "dev"}
with httpx.Client(base_url=sys.argv[2], headers=headers,
                  limits=httpx.Limits(max_connections=8)) as client:
    def send(op):
        client.request(op["method"], op["path"], json=op["body"]).raise_for_status()
    with ThreadPoolExecutor(8) as pool:
        for wave in sorted(waves):
            workers = 1 if wave == 3 else 8
            if workers == 1:
                for op in waves[wave]:
                    send(op)
            else:
                list(pool.map(send, waves[wave]))
print(time.perf_counter() - started)
"""

#: `reconcile` in a fresh process with every fsync slowed by `sys.argv[1]` seconds.
SLOW_FSYNC = """
import os, sys, time
delay = float(sys.argv[1])
real_fsync = os.fsync
def slow_fsync(fd):
    time.sleep(delay)
    real_fsync(fd)
os.fsync = slow_fsync
from reconciler.cli import main
sys.exit(main(sys.argv[2:]))
"""


def sharing_scenario(reconcile: str, args: argparse.Namespace) -> None:
    """Whole `apply` beside the bare-client floor, plain and with a slow fsync."""
    latency = args.latency_ms / 1000
    count = args.incidents if args.incidents != 5000 else 2000
    desired = sharing_states(count, random.Random(7))
    start = {cid: {"status": "NACK"} for cid in desired}
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        states = Path(tmp) / "states"
        states.mkdir()
        (states / "incidents.yaml").write_text(json.dumps({"version": 1, "incidents": desired}))
        operations: list[Operation] = []
        for kind in ("bare", "apply", "slow-fsync"):
            with SandboxServer(start, latency=latency, max_batch=1000) as server:
                env = sandbox_env(server)
                journal = str(Path(tmp) / f"journal-{kind}.jsonl")
                plan_file = str(Path(tmp) / f"plan-{kind}.json")
                run([reconcile, "plan", str(states), "--journal", journal, "--out", plan_file], env)
                plan = json.loads(Path(plan_file).read_text())
                operations = [
                    Operation(o["method"], o["path"], o["body"]) for o in plan["operations"]
                ]
                apply_args = [plan_file, "--journal", journal, "--parallelism", "8"]
                if kind == "bare":
                    argv = [sys.executable, "-c", BARE_CLIENT, plan_file, server.url]
                elif kind == "apply":
                    argv = [reconcile, "apply", *apply_args]
                else:
                    argv = [sys.executable, "-c", SLOW_FSYNC, "0.005", "apply", *apply_args]
                figures[kind] = run(argv, env)
                assert len(server.calls) == len(operations), f"{kind} sent extra calls"
    bound = lower_bound(operations, latency)
    print(
        f"sharing scenario: {count} incidents, {len(operations)} calls, "
        f"latency {args.latency_ms:g} ms, parallelism 8; bound {bound:.2f} s"
    )
    print(
        f"bare client (8 threads, one httpx.Client): {figures['bare']:.2f} s = "
        f"{figures['bare'] / bound:.2f} x the bound"
    )
    print(
        f"reconcile apply, whole command: {figures['apply']:.2f} s = "
        f"{figures['apply'] / bound:.2f} x the bound (target <= 1.25), "
        f"{figures['apply'] / figures['bare']:.2f} x the bare client (target <= 1.1)"
    )
    print(
        f"the same with a 5 ms fsync: {figures['slow-fsync']:.2f} s = "
        f"{figures['slow-fsync'] / bound:.2f} x the bound"
    )


def minimum_operations(desired: dict[str, dict[str, Any]], batch: int) -> int:
    """The fewest calls for an empty journal, computed apart from the planner."""
    groups: dict[tuple[str, Any], int] = {}
    escalations = [f["escalations"] for f in desired.values() if f.get("escalations")]
    calls = sum(1 for f in desired.values() if "public_sharing" in f)
    for fields in desired.values():
        for name in ("status", "priority", "severity"):
            if name in fields:
                groups[(name, fields[name])] = groups.get((name, fields[name]), 0) + 1
    calls += sum(math.ceil(n / batch) for n in groups.values())
    if escalations:
        calls += max(max(escalations), math.ceil(sum(escalations) / batch))
    return calls


def naive_operations(desired: dict[str, dict[str, Any]]) -> int:
    """One call per incident and field, one per escalation."""
    return sum(
        sum(v for k, v in f.items() if k == "escalations") + sum(k != "escalations" for k in f)
        for f in desired.values()
    )


def lower_bound(operations: list[Operation], latency: float) -> float:
    waves: dict[int, int] = {}
    for op in operations:
        waves[wave_of(op)] = waves.get(wave_of(op), 0) + 1
    return sum(
        (n if wave == 3 else math.ceil(n / PARALLELISM)) * latency for wave, n in waves.items()
    )


def sandbox_env(server: SandboxServer) -> dict[str, str]:
    """This process's environment pointed at the sandbox, with its credentials."""
    return {
        **os.environ,
        "SPIKE_API_URL": server.url,
        "SPIKE_API_KEY": "dev",
        "SPIKE_TEAM_ID": "dev",
    }


def run(argv: list[str], env: dict[str, str], out: Path | None = None) -> float:
    """Wall time of one command (a fresh process); its stdout goes to `out`."""
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 2):
        raise SystemExit(f"{argv[1:3]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    if out is not None:
        out.write_text(proc.stdout)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--postgres", help="also measure the PostgreSQL journal at this URL")
    parser.add_argument("--scenario", choices=["mixed", "sharing"], default="mixed")
    args = parser.parse_args()
    reconcile = shutil.which("reconcile") or sys.exit("install the package first: pip install .")
    if args.scenario == "sharing":
        sharing_scenario(reconcile, args)
        return
    latency = args.latency_ms / 1000
    desired = desired_states(args.incidents, random.Random(11))
    start = {cid: {"status": "NACK"} for cid in desired}
    with tempfile.TemporaryDirectory() as tmp:
        states = Path(tmp) / "states"
        states.mkdir()
        body = {"version": 1, "incidents": desired}
        (states / "incidents.yaml").write_text(json.dumps(body))
        journals = {"file": str(Path(tmp) / "journal.jsonl")}
        if args.postgres:
            sep = "&" if "?" in args.postgres else "?"
            journals["postgresql"] = f"{args.postgres}{sep}namespace=bench-{uuid.uuid4().hex[:8]}"
        times: dict[str, float] = {}
        calls_s: dict[str, float] = {}
        operations: list[Operation] = []
        for kind, journal in journals.items():
            with SandboxServer(start, latency=latency, max_batch=1000) as server:
                env = sandbox_env(server)
                plan_file = str(Path(tmp) / f"plan-{kind}.json")
                run([reconcile, "plan", str(states), "--journal", journal, "--out", plan_file], env)
                plan = json.loads(Path(plan_file).read_text())
                operations = [
                    Operation(o["method"], o["path"], o["body"]) for o in plan["operations"]
                ]
                result_file = Path(tmp) / f"result-{kind}.json"
                times[kind] = run(
                    [
                        reconcile,
                        "apply",
                        plan_file,
                        "--journal",
                        journal,
                        "--parallelism",
                        "8",
                        "--format",
                        "json",
                    ],
                    env,
                    result_file,
                )
                calls_s[kind] = json.loads(result_file.read_text())["seconds"]
                assert len(server.calls) == len(operations), "apply sent extra calls"
                if kind == "file":
                    refresh_s = run(
                        [
                            reconcile,
                            "plan",
                            str(states),
                            "--journal",
                            journal,
                            "--refresh",
                            "--parallelism",
                            "8",
                        ],
                        env,
                    )
        bound = lower_bound(operations, latency)
        print(f"incidents: {args.incidents}, latency {args.latency_ms:g} ms, parallelism 8")
        print(
            f"operations: {len(operations)} (minimum {minimum_operations(desired, 100)}, "
            f"naive per-incident script {naive_operations(desired)})"
        )
        print(
            f"apply (file journal): calls {calls_s['file']:.2f} s over the lower bound "
            f"{bound:.2f} s = {calls_s['file'] / bound:.2f}; whole command "
            f"{times['file']:.2f} s = {times['file'] / bound:.2f} (with start-up and checks)"
        )
        if "postgresql" in times:
            extra = (calls_s["postgresql"] - calls_s["file"]) / len(operations) * 1000
            print(
                f"apply (PostgreSQL journal): calls {calls_s['postgresql']:.2f} s, "
                f"{extra:+.2f} ms per operation over the file journal "
                f"(whole command {times['postgresql']:.2f} s)"
            )
        refresh_bound = math.ceil(args.incidents / PARALLELISM) * latency
        print(
            f"plan --refresh of {args.incidents}: {refresh_s:.2f} s, bound {refresh_bound:.2f} s, "
            f"ratio {refresh_s / refresh_bound:.2f}"
        )


if __name__ == "__main__":
    main()
