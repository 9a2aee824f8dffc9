"""Plan performance, as ratios measured in one run on this machine.

Generates state files with 10k and 100k incidents in block style (1k incidents and five
fields a file), and one file of 10k incidents in compact flow style (`id: {status: ...,
priority: ...}`, one in five with public_sharing too), in a temporary folder; then prints:

- plan wall time over the bare ruamel.yaml safe parse of the same files (target <= 0.9),
- the 100k / 10k plan time ratio (target <= 11: linear),
- peak RSS of the 100k plan over the bare parse's (target <= 1.2),
- `reconcile --help` wall time minus `python -c "import click"` (target <= 60 ms),
- `reconcile plan` of the bundled states/ minus `python -c "import click"` (target <= 80 ms).

Both sides of each ratio run as fresh processes (interpreter start-up included), best of
--repeat runs. Usage: python benchmarks/bench_plan.py [--repeat 3] [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PER_FILE = 1000
BARE_PARSE = """
import sys
from pathlib import Path
from ruamel.yaml import YAML
yaml = YAML(typ="safe")
files = sorted(p for p in Path(sys.argv[1]).rglob("*") if p.suffix in (".yaml", ".yml"))
docs = [yaml.load(p.read_text(encoding="utf-8")) for p in files]
"""


def generate(folder: Path, count: int, seed: int = 7) -> None:
    """`count` incidents, PER_FILE per file, every field in use, like a real states repo."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    statuses = ["triggered", "acknowledged", "resolved"]
    for start in range(0, count, PER_FILE):
        lines = ["version: 1", "incidents:"]
        for n in range(start, min(count, start + PER_FILE)):
            lines.append(f"  svc{n % 37}-{n}:")
            lines.append(f"    status: {rng.choice(statuses)}")
            lines.append(f"    priority: {rng.choice(['p1', 'p2', 'p3', 'p4', 'p5', 'null'])}")
            lines.append(f"    severity: {rng.choice(['sev1', 'sev2', 'sev3', 'null'])}")
            lines.append(f"    public_sharing: {rng.choice(['true', 'false'])}")
            lines.append(f"    escalations: {rng.randint(0, 3)}")
        (folder / f"service-{start // PER_FILE:04d}.yaml").write_text("\n".join(lines) + "\n")


def generate_flow(folder: Path, count: int) -> None:
    """`count` incidents in one file, one flow mapping a line; every fifth is shared."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["version: 1", "incidents:"]
    for n in range(count):
        shared = ", public_sharing: true" if n % 5 == 0 else ""
        lines.append(f"  svc-{n}: {{status: acknowledged, priority: p3{shared}}}")
    (folder / "services.yaml").write_text("\n".join(lines) + "\n")


def measure(argv: list[str], repeat: int) -> tuple[float, int]:
    """Best wall time (s) and the peak RSS (KiB) of that run, over `repeat` fresh processes."""
    best: tuple[float, int] | None = None
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) not in (0, 2):
            assert proc.stderr is not None
            raise SystemExit(f"{argv} failed: {proc.stderr.read().decode()[-2000:]}")
        if proc.stderr is not None:
            proc.stderr.close()
        if best is None or wall < best[0]:
            best = (wall, usage.ru_maxrss)
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    reconcile = shutil.which("reconcile") or sys.exit("install the package first: pip install .")
    python = sys.executable
    times: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        journal = str(Path(tmp) / "journal.jsonl")  # empty: every field is planned
        print(
            f"{'incidents':>10} {'parse s':>8} {'plan s':>8} {'ratio':>6} "
            f"{'parse MiB':>9} {'plan MiB':>8} {'RSS ratio':>9}"
        )
        cases = [(f"{size}", size, generate) for size in sizes]
        cases.append((f"{sizes[0]} flow", sizes[0], generate_flow))
        for label, size, make in cases:
            folder = Path(tmp) / f"states-{label.replace(' ', '-')}"
            make(folder, size)
            parse_s, parse_kb = measure([python, "-c", BARE_PARSE, str(folder)], args.repeat)
            plan_s, plan_kb = measure(
                [reconcile, "plan", str(folder), "--format", "json", "--journal", journal],
                args.repeat,
            )
            if label == str(size):
                times[size] = plan_s
            print(
                f"{label:>10} {parse_s:>8.2f} {plan_s:>8.2f} {plan_s / parse_s:>6.2f} "
                f"{parse_kb / 1024:>9.0f} {plan_kb / 1024:>8.0f} {plan_kb / parse_kb:>9.2f}"
            )
        if len(sizes) >= 2:
            small, large = sizes[0], sizes[-1]
            print(
                f"plan time {large}/{small}: {times[large] / times[small]:.2f} "
                f"(incidents x{large // small})"
            )
        bundled = Path(__file__).resolve().parent.parent / "states"
        runs = max(5, args.repeat)
        help_s, _ = measure([reconcile, "--help"], runs)
        states_s, _ = measure([reconcile, "plan", str(bundled), "--journal", journal], runs)
        click_s, _ = measure([python, "-c", "import click"], runs)
    print(
        f"reconcile --help: {help_s * 1000:.0f} ms, import click: {click_s * 1000:.0f} ms, "
        f"difference {1000 * (help_s - click_s):.0f} ms"
    )
    print(
        f"reconcile plan states/: {states_s * 1000:.0f} ms, "
        f"difference {1000 * (states_s - click_s):.0f} ms"
    )


if __name__ == "__main__":
    main()
