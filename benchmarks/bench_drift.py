"""`reconcile drift` against the sandbox with added latency, as a ratio measured in one run.

5,000 incidents applied once (so the journal knows them), then 500 of them changed behind
the tool's back; `reconcile drift --parallelism 8` reads every one (one GET each) with 20 ms
added to every API call. Prints its wall time (a fresh process: start-up, state files, journal
and report included) over the bound ceil(5000 / 8) x 20 ms (target <= 1.2).

Usage: python benchmarks/bench_drift.py [--incidents 5000] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.sandbox import SandboxServer

PARALLELISM = 8
KEY, TEAM = "bench-key", "bench-team"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    reconcile = shutil.which("reconcile") or sys.exit("install the package first: pip install .")
    latency = args.latency_ms / 1000
    ids = [f"inc-{n}" for n in range(args.incidents)]
    desired = {
        cid: {"status": "acknowledged", "priority": ("p1", "p2", "p3")[n % 3]}
        for n, cid in enumerate(ids)
    }
    with tempfile.TemporaryDirectory() as tmp:
        states, journal = Path(tmp) / "states.yaml", str(Path(tmp) / "journal.jsonl")
        states.write_text(json.dumps({"version": 1, "incidents": desired}))
        seed = {cid: {"status": "NACK"} for cid in ids}
        with SandboxServer(seed, api_key=KEY, team_id=TEAM, latency=latency, max_batch=1000) as sbx:
            env = dict(os.environ, SPIKE_API_URL=sbx.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM)
            applied = subprocess.run(
                [reconcile, "apply", str(states), "--journal", journal, "--auto-approve"],
                env=env,
                capture_output=True,
                text=True,
            )
            if applied.returncode != 0:
                raise SystemExit(f"apply failed:\n{applied.stderr[-3000:]}")
            sbx.set_incidents({cid: {"priority": "p5"} for cid in ids[::10]})
            sbx.clear_calls()
            argv = [reconcile, "drift", str(states), "--journal", journal, "--format", "json"]
            started = time.perf_counter()
            proc = subprocess.run(
                [*argv, "--parallelism", str(PARALLELISM), "--detailed-exitcode"],
                env=env,
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - started
            if proc.returncode != 2:
                raise SystemExit(f"drift failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            reads = len(sbx.calls)
    summary = json.loads(proc.stdout)["summary"]
    assert reads == args.incidents, f"{reads} calls for {args.incidents} incidents"
    bound = math.ceil(args.incidents / PARALLELISM) * latency
    print(f"incidents: {args.incidents}, latency {args.latency_ms:g} ms, parallelism 8")
    print(f"drift report: {summary['fields']} drifted fields, {reads} reads (one per incident)")
    print(
        f"reconcile drift: {elapsed:.2f} s over the bound {bound:.2f} s = {elapsed / bound:.2f} "
        "(target <= 1.2)"
    )


if __name__ == "__main__":
    main()
