"""Shared by the tests: the one in-process CLI runner, environment, state files, the sandbox."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from reconciler.cli import main
from reconciler.planfile import Bound, write_plan_text
from reconciler.planner import Plan
from reconciler.sandbox import SandboxServer

KEY = "sk-e2e-secret-7c1f9a"
TEAM = "team-e2e"
API_STATUS = {"triggered": "NACK", "acknowledged": "ACK", "resolved": "RES"}


@contextlib.contextmanager
def env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class CliRun(NamedTuple):
    """One run of the CLI: unpacks as (code, stdout, stderr)."""

    code: int
    stdout: str
    stderr: str


#: The installed `reconcile` console script, for tests that need a real process (signals,
#: kill -9, exit codes as the shell sees them); `cli` below runs the same entry point in-process.
RECONCILE = Path(sys.executable).with_name("reconcile")


def command(*args: str) -> list[str]:
    """The argv of `reconcile ARGS...` as a real process."""
    return [str(RECONCILE), *args]


#: `python -c DISK_FULL LIMIT ARGS...`: reconcile ARGS with files limited to LIMIT bytes, so
#: a journal write past it fails with EFBIG (a full disk, as the journal sees it).
DISK_FULL = """
import resource, signal, sys
from reconciler.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.exit(main(sys.argv[2:]))
"""


def cli(*args: str, env: Mapping[str, str | None] | None = None) -> CliRun:
    """`reconcile ARGS...` in-process through reconciler.cli.main, the real entry point, with
    stdout and stderr captured apart (click's CliRunner isolation) and `env` set meanwhile.

    The one CLI runner of the tests. An unexpected exception is not caught: it fails the
    test with its traceback, which is what "no traceback" rules out.
    """
    from click.testing import CliRunner

    with CliRunner().isolation(env=env) as (out, err, _):
        code = main(list(args))
        sys.stdout.flush()  # the captured streams are buffered text over these BytesIO
        sys.stderr.flush()
    return CliRun(code, out.getvalue().decode(), err.getvalue().decode())


def write_states(folder: Path, desired: Mapping[str, Mapping[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = {"version": 1, "incidents": {cid: dict(f) for cid, f in desired.items()}}
    # JSON is YAML: no second writer to trust.
    (folder / "incidents.yaml").write_text(json.dumps(body, indent=1))


def live_matches(server: SandboxServer, desired: Mapping[str, Mapping[str, Any]]) -> None:
    live = server.incidents()
    for cid, fields in desired.items():
        for name, value in fields.items():
            have = live[cid][name]
            want = API_STATUS[value] if name == "status" else value
            assert have == want, (cid, name, have, want)


def with_params(url: str, **params: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


#: Where the plans of plan_json are for: no team id, the journal "journal.jsonl", one plan id.
BOUND = Bound(None, "journal.jsonl", "00000000-0000-4000-8000-000000000000")


def plan_json(plan: Plan, created_at: str, bound: Bound = BOUND) -> str:
    """The plan file's text, as `reconcile plan --format json` writes it (unsigned)."""
    parts: list[str] = []
    write_plan_text(plan, created_at, parts.append, bound=bound)
    return "".join(parts)


_WANTED = ("sources", "inputs_digest", "rules", "keep", "warnings")
_JOURNALED = ("lineage", "serial", "kept", "uncertain", "owners", "recorded")
_OPTIONS = ("batch_size", "targets", "unsafe", "drift_policy")


def plan(desired: Any, journal: Any, *, live: Any = None, **keywords: Any) -> Plan:
    """planner.plan with its values given as keywords, for brevity: each keyword goes into
    the value it belongs to (Wanted, Journaled, Options)."""
    from reconciler import planner

    unknown = set(keywords) - {*_WANTED, *_JOURNALED, *_OPTIONS}
    assert not unknown, unknown
    pick = {name: value for name, value in keywords.items() if value is not None}
    return planner.plan(
        planner.Wanted(desired, **{k: v for k, v in pick.items() if k in _WANTED}),
        planner.Journaled(journal, **{k: v for k, v in pick.items() if k in _JOURNALED}),
        live,
        planner.Options(**{k: v for k, v in keywords.items() if k in _OPTIONS}),
    )


def one_team(made: Any) -> Any:
    """A plan of one team (usecases.plan.MadePlan) as the plan of a repository without
    reconcile.yaml, what the plan file and the views take."""
    from reconciler.usecases.plan import project_plan

    return project_plan([(None, None, made)])


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan file's content (planfile.section_content) with every list made whole."""
    from reconciler.planfile import LazyList, section_content

    return {k: list(v) if isinstance(v, LazyList) else v for k, v in section_content(plan).items()}


#: CI (CI=true) and RECONCILE_TEST_THOROUGH=1 make each property's whole count of examples.
THOROUGH = any(
    os.environ.get(name, "").lower() in {"true", "1"} for name in ("CI", "RECONCILE_TEST_THOROUGH")
)


def examples(thorough: int) -> int:
    """How many examples a hypothesis property makes: `thorough` under CI, else a third of
    it, never fewer than 100 (hypothesis's own default): a developer's run stays quick, and
    CI still makes every example the property asks for."""
    return thorough if THOROUGH else max(100, thorough // 3)


#: A fixed start for clocks moved by hand: 2027-01-15T08:00:00Z.
T0 = 1_800_000_000.0


class HandClock:
    """A clock for the sandbox that the test moves by hand (`clock.now = ...`): no sleeping."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


#: A client loads the CA bundle (tens of ms) even for plain http unless handed a context.
TLS = ssl.create_default_context()


@contextlib.contextmanager
def serve_sandbox(
    seed: Mapping[str, Mapping[str, object]], clock: HandClock | None = None, **options: Any
) -> Iterator[tuple[SandboxServer, Any]]:
    """A sandbox seeded with `seed` on a hand-moved clock, and an httpx.Client for it that
    sends the default key and team."""
    import httpx

    auth = {"x-api-key": "dev", "x-team-id": "dev"}
    with (
        SandboxServer(dict(seed), clock=clock or HandClock(), **options) as server,
        httpx.Client(base_url=server.url, headers=auth, timeout=10, verify=TLS) as client,
    ):
        yield server, client
