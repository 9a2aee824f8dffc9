"""`reconcile plan --refresh` expanding a rule over 10,000 open incidents, against the sandbox
with added latency, as ratios measured in one run.

The sandbox runs in its own process (Spike is remote: its work must not share the measured
interpreter) and serves 10,000 triggered incidents (100 pages of 100 in `GET /incidents/triggered`,
one empty page of `/incidents/acknowledged`), 20 ms added to every API call; the command runs
with `--parallelism 8`. Two scenarios:

- `carried`: every list item carries its priority and severity, and the rule matches on
  priority: no incident is read one by one (checked from the sandbox's calls log);
- `missing`: the items carry no priority (the sandbox leaves out an unset one), the rule
  matches on priority and on a title that one incident in ten has: those 1,000 are read with
  GET /incidents/{counterId}, the others are ruled out by their title without a read.

Each prints the command's wall time (a fresh process: start-up, state files, journal, the
reads, the plan and its JSON) over the bound ceil((list pages + per-incident reads) / 8) x
20 ms (target <= 1.3), the list pages being those the lists hold (the few asked for ahead,
past the end, are counted apart), and the same for evaluating the rule in this process (the
list pages, the per-incident reads and the expansion, as `plan --refresh` does them; target
<= 1.5 for `carried`, 1.3 for `missing`; --repeat N times it N times), which leaves out the
interpreter's start-up and the 10,000-change plan: at 260 ms the bound of the `carried`
scenario is shorter than those alone.

Usage: python benchmarks/bench_rules.py [--incidents 10000] [--latency-ms 20] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PARALLELISM = 8
KEY, TEAM = "bench-key", "bench-team"

RULE = """\
rules:
  noisy-check-p5:
    match:
      status: [triggered, acknowledged]
      priority: [p4, null]
      title: "{title}"
    set:
      priority: p5
    max_matches: {max_matches}
"""


def scenario(name: str, reconcile: str, count: int, latency: float, repeat: int = 1) -> None:
    seed: dict[str, dict[str, Any]] = {}
    for n in range(count):
        noisy = n % 10 == 0
        incident: dict[str, Any] = {
            "title": f"check-api {n}" if noisy else f"disk usage {n}",
            "age": "2d",
        }
        if name == "carried":
            incident.update(priority="p4", severity="sev3")
        seed[f"inc-{n:05}"] = incident
    title = "" if name == "carried" else "^check-api"
    expected = count if name == "carried" else count // 10
    with tempfile.TemporaryDirectory() as tmp:
        states, journal = Path(tmp) / "rules.yaml", str(Path(tmp) / "journal.jsonl")
        states.write_text(RULE.format(title=title, max_matches=count))
        seed_file, calls_file = Path(tmp) / "seed.json", Path(tmp) / "calls.jsonl"
        seed_file.write_text(json.dumps({"incidents": seed}))
        with sandbox(reconcile, seed_file, calls_file, latency) as url:
            env = dict(os.environ, SPIKE_API_URL=url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM)
            argv = [reconcile, "plan", str(states), "--refresh", "--journal", journal]
            started = time.perf_counter()
            proc = subprocess.run(
                [*argv, "--parallelism", str(PARALLELISM), "--format", "json"],
                env=env,
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - started
            if proc.returncode != 0:
                raise SystemExit(f"plan failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            calls = [json.loads(line) for line in calls_file.read_text().splitlines()]
            # The reads alone, in this process: list pages and per-incident reads, then the
            # expansion (no interpreter start-up, no state files, no plan output).
            from reconciler.spike.client import SpikeConfig
            from reconciler.states.loader import load
            from reconciler.usecases.rules import evaluate_rules

            rules = load([str(states)]).rules
            readings: list[float] = []
            for _ in range(repeat):
                began = time.perf_counter()
                evaluation = evaluate_rules(
                    rules, {}, PARALLELISM, config=SpikeConfig(url, KEY, TEAM)
                )
                readings.append(time.perf_counter() - began)
                assert len(evaluation.expansion.incidents) == expected
    plan = json.loads(proc.stdout)
    # The calls of the command only (the in-process evaluation came after).
    calls = [c for c in calls if c["method"] == "GET"]
    asked = sum(1 for c in calls if "?" in c["path"])
    reads = len(calls) - asked
    # The pages the lists hold (100 items a page; the acknowledged list one empty page); the
    # reader also asks for a few pages past the end, ahead of knowing it (they answer empty).
    pages = math.ceil(count / 100) + 1
    assert asked >= pages, (asked, pages)
    changes = len(plan["changes"])
    assert changes == expected, (changes, expected)
    assert all(c["rule"] == "noisy-check-p5" for c in plan["changes"])
    if name == "carried":
        assert reads == 0, f"{reads} per-incident reads although every item carries priority"
    bound = math.ceil((pages + reads) / PARALLELISM) * latency
    print(
        f"{name}: {count} open incidents, {pages} list pages (+{asked - pages} asked for ahead, "
        f"past the end), {reads} per-incident reads, "
        f"{changes} changes, {len(plan['operations'])} calls planned"
    )
    print(
        f"  plan --refresh, whole command: {elapsed:.3f} s over the bound {bound:.3f} s = "
        f"{elapsed / bound:.2f} (target <= 1.3)"
    )
    # Issue 20's target for the list pages alone; 1.3 with per-incident reads.
    target = 1.5 if name == "carried" else 1.3
    ratios = sorted(r / bound for r in readings)
    spread = "" if repeat == 1 else f" (of {repeat}: {ratios[0]:.2f} to {ratios[-1]:.2f})"
    print(
        f"  evaluating the rule (reads and expansion, in process): {readings[0]:.3f} s over "
        f"the bound = {readings[0] / bound:.2f}, median {ratios[len(ratios) // 2]:.2f}{spread} "
        f"(target <= {target:g})"
    )


@contextlib.contextmanager
def sandbox(reconcile: str, seed: Path, calls: Path, latency: float) -> Iterator[str]:
    """`reconcile sandbox` in its own process (as Spike is remote: its work does not share
    this process's interpreter), on a free loopback port; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [reconcile, "sandbox", "--port", str(port), "--seed-json", str(seed)]
    argv += ["--latency", f"{latency * 1000:g}", "--calls-file", str(calls)]
    env = dict(os.environ, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM)
    log = seed.with_name("sandbox.log")
    with open(log, "w") as out:
        server = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "http://" not in log.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the sandbox did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=1, help="evaluations in process, each timed")
    args = parser.parse_args()
    reconcile = shutil.which("reconcile") or sys.exit("install the package first: pip install .")
    print(f"latency {args.latency_ms:g} ms, parallelism {PARALLELISM}")
    for name in ("carried", "missing"):
        scenario(name, reconcile, args.incidents, args.latency_ms / 1000, args.repeat)


if __name__ == "__main__":
    main()
