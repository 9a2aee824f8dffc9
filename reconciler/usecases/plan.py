"""Make a plan: load the state files and the journal (with refresh, Spike's live values too)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import ALL_REVERT, Policy
from ..errors import (
    ReconcileError,
)
from ..journal import open_journal
from ..journal.records import Recorded, now
from ..model import Fields, is_counter_id
from ..planner import DEFAULT_BATCH_SIZE, Plan, plan
from ..spike import DEFAULT_PARALLELISM
from ..states import DEFAULT_PATHS

if TYPE_CHECKING:
    from ..states.loader import DesiredState


@dataclass
class MadePlan:
    plan: Plan
    created_at: str
    sources: dict[str, str] = field(default_factory=dict)
    journal_warnings: list[str] = field(default_factory=list)
    #: The batch size the operations were made with (written into the plan file).
    batch_size: int | None = None


@dataclass(frozen=True)
class PlanRequest:
    """What `reconcile plan` plans: the state files, the journal, and how."""

    paths: Sequence[str] = ()
    journal_location: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    targets: Sequence[str] = ()
    #: Read the managed incidents' live values from Spike first (plan --refresh).
    refresh: bool = False
    parallelism: int = DEFAULT_PARALLELISM
    #: Each field's drift policy (docs/drift.md), followed with `refresh`.
    drift_policy: Mapping[str, Policy] = field(default_factory=lambda: ALL_REVERT)


def run_plan(request: PlanRequest) -> MadePlan:
    """Load the state files and the journal, and plan (see make_plan)."""
    return make_plan(
        request.paths,
        request.journal_location,
        request.batch_size,
        request.targets,
        refresh=request.refresh,
        parallelism=request.parallelism,
        drift_policy=request.drift_policy,
    )


def check_targets(targets: Sequence[str]) -> None:
    bad = [t for t in targets if not is_counter_id(t)]
    if bad:
        raise ReconcileError(f"--target: invalid incident id {bad[0]!r}")


def make_plan(
    paths: Sequence[str],
    journal_location: str | None,
    batch_size: int,
    targets: Sequence[str] = (),
    journal_state: Recorded | None = None,
    refresh: bool = False,
    parallelism: int = DEFAULT_PARALLELISM,
    desired: DesiredState | None = None,
    drift_policy: Mapping[str, Policy] = ALL_REVERT,
) -> MadePlan:
    """Load the state files and the journal, and plan. Reads files only, no network, unless
    `refresh` asks to read the managed incidents' live values from Spike first.

    `apply` passes the journal's state it read under the lock, and the desired state it
    loaded, so that nothing is read twice.
    """
    from ..states.loader import load

    check_targets(targets)
    desired = desired or load(paths or DEFAULT_PATHS)
    state = journal_state or open_journal(journal_location).read()
    live = None
    if refresh:
        scope = set(targets) & set(desired.incidents) if targets else set(desired.incidents)
        live = read_live(scope, parallelism)
    result = plan(
        desired.incidents,
        state.incidents,
        lineage=state.lineage,
        serial=state.serial,
        inputs_digest=desired.inputs_digest,
        batch_size=batch_size,
        targets=list(targets) or None,
        sources=desired.sources,
        live=live,
        kept=state.kept,
        uncertain=state.uncertain,
        drift_policy=drift_policy,
    )
    return MadePlan(result, now(), desired.sources, list(state.warnings), batch_size)


def read_live(
    ids: Iterable[str], parallelism: int, missing: list[str] | None = None
) -> dict[str, Fields]:
    """Read incidents from Spike (GET /incidents/{counterId}), concurrently; with a `missing`
    list, the ids that answer 404 go there instead of failing the read (spike.live)."""
    import asyncio  # here, not at the top: `plan` never needs it, and it is slow to import

    from ..spike.client import SpikeClient, SpikeConfig
    from ..spike.live import read_incidents

    config = SpikeConfig.from_env()

    async def read() -> dict[str, Fields]:
        async with SpikeClient(config, parallelism=parallelism) as client:
            return await read_incidents(client, ids, missing)

    return asyncio.run(read())
