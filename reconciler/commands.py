"""The use cases behind the commands: load, plan, save. Glue between the pure core and I/O."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .journal import JournalState, now, open_journal
from .model import ReconcileError, is_counter_id
from .planner import Plan, plan


@dataclass
class MadePlan:
    plan: Plan
    created_at: str
    sources: dict[str, str] = field(default_factory=dict)
    journal_warnings: list[str] = field(default_factory=list)


def check_targets(targets: Sequence[str]) -> None:
    bad = [t for t in targets if not is_counter_id(t)]
    if bad:
        raise ReconcileError(f"--target: invalid incident id {bad[0]!r}")


def make_plan(
    paths: Sequence[str],
    journal_location: str | None,
    batch_size: int,
    targets: Sequence[str] = (),
    journal_state: JournalState | None = None,
) -> MadePlan:
    """Load the state files and the journal, and plan. Reads files only; no network."""
    from .states import load

    check_targets(targets)
    desired = load(paths or ("states",))
    state = journal_state or open_journal(journal_location).read()
    result = plan(
        desired.incidents,
        state.incidents,
        lineage=state.lineage,
        serial=state.serial,
        inputs_digest=desired.inputs_digest,
        batch_size=batch_size,
        targets=list(targets) or None,
        sources=desired.sources,
    )
    return MadePlan(result, now(), desired.sources, list(state.warnings))


def atomic_write(path: str | os.PathLike[str], text: str) -> None:
    """Write a file whole or not at all (a temporary file, fsync, then a rename)."""
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    except OSError as exc:
        raise ReconcileError(f"{target}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ReconcileError(f"{target}: cannot write: {exc.strerror}") from None


def write_plan(made: MadePlan, out: str) -> None:
    from .render import plan_json

    atomic_write(out, plan_json(made.plan, made.created_at))


def read_json(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise ReconcileError(f"{path}: cannot read: {exc.strerror}") from None
