"""fmt performance, as a ratio measured in one run on this machine.

Generates one canonical state file with 10k incidents (every field in use, a comment above
every fifth incident and at the end of every seventh field line, numeric ids among them) in
a temporary folder, then prints the wall time of `reconcile fmt --check` on it beside the
bare ruamel.yaml round-trip load of the same file, and their ratio (target <= 1.3).

Both sides run as fresh processes (interpreter start-up included), best of --repeat runs.
Usage: python benchmarks/bench_fmt.py [--repeat 3] [--count 10000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_plan import measure

BARE_ROUND_TRIP = """
import sys
from pathlib import Path
from ruamel.yaml import YAML
YAML().load(Path(sys.argv[1]).read_text(encoding="utf-8"))
"""


def generate(path: Path, count: int, seed: int = 7) -> None:
    """A file `reconcile fmt` leaves as it is: sorted ids, canonical fields, comments."""
    rng = random.Random(seed)
    ids = sorted(f"svc{n % 37}-{n}" if n % 4 else str(n) for n in range(count))
    lines = ["# yaml-language-server: $schema=../schema/state-file.json", "version: 1"]
    lines.append("incidents:")
    tick = 0
    for n, cid in enumerate(ids):
        if n:
            lines.append("")
        if n % 5 == 0:
            lines.append(f"  # Incident {cid}: reviewed in the weekly PIR.")
        lines.append(f'  "{cid}":' if cid.isdigit() else f"  {cid}:")
        fields = {
            "status": rng.choice(["triggered", "acknowledged", "resolved"]),
            "priority": rng.choice(["p1", "p2", "p3", "p4", "p5", "null"]),
            "severity": rng.choice(["sev1", "sev2", "sev3", "null"]),
            "public_sharing": rng.choice(["true", "false"]),
            "escalations": str(rng.randint(0, 3)),
        }
        for name, value in fields.items():
            tick += 1
            note = "  # agreed with the owner" if tick % 7 == 0 else ""
            lines.append(f"    {name}: {value}{note}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    reconcile = shutil.which("reconcile") or sys.exit("install the package first: pip install .")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "incidents.yaml"
        generate(path, args.count)
        check = [reconcile, "fmt", "--check", str(path)]
        done = subprocess.run(check, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"the generated file is not canonical:\n{done.stdout}{done.stderr}")
        fmt_time, _ = measure(check, args.repeat)
        bare_time, _ = measure([sys.executable, "-c", BARE_ROUND_TRIP, str(path)], args.repeat)
    ratio = fmt_time / bare_time
    print(f"fmt --check, {args.count} incidents: {fmt_time:.2f} s")
    print(f"bare ruamel.yaml round-trip load:  {bare_time:.2f} s")
    verdict = "ok" if ratio <= 1.3 else "OVER"
    print(f"ratio: {ratio:.2f} (target <= 1.3: {verdict}), best of {args.repeat} fresh processes")


if __name__ == "__main__":
    main()
