"""Apply: plan (or read a saved plan and verify it), take the journal's lock, run the calls,
journal each one; the first signal stops starting calls.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import ALL_REVERT, Policy
from ..errors import (
    InvalidPlanError,
    ReconcileError,
    StalePlanError,
    UnsafePlanError,
    printable,
)
from ..journal import DEFAULT_LOCK_TIMEOUT, open_journal
from ..journal.base import JournalWriter
from ..journal.records import Recorded
from ..model import Fields, Operation
from ..planner import DEFAULT_BATCH_SIZE, calls_are_unsafe
from ..spike import DEFAULT_PARALLELISM
from ..states import DEFAULT_PATHS

if TYPE_CHECKING:
    from ..applier import ApplyResult
    from ..spike.client import RetryPolicy, SpikeConfig
from ..planfile import plan_content, read_saved_plan
from .plan import MadePlan, check_targets, make_plan, read_live


@dataclass
class ApplyRequest:
    plan_file: str | None = None
    paths: Sequence[str] = ()
    journal_location: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    parallelism: int = DEFAULT_PARALLELISM
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    force: bool = False
    targets: Sequence[str] = ()
    #: Self-heal (apply --refresh): plan against live values, reverting only the fields whose
    #: `drift_policy` is revert (docs/drift.md); the live values read are recorded.
    refresh: bool = False
    drift_policy: Mapping[str, Policy] = field(default_factory=lambda: ALL_REVERT)


@dataclass
class ApplyOutcome:
    """What happened: the result (None when there was nothing to do), the journal after."""

    result: ApplyResult | None
    lineage: str | None
    serial: int
    signal: int | None = None
    made: MadePlan | None = None
    #: The journal's own warnings (a torn last line ignored).
    warnings: list[str] = field(default_factory=list)


def run_apply(
    request: ApplyRequest,
    *,
    confirm: Callable[[MadePlan], bool],
    observe: Callable[[str], None] | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
    retry: RetryPolicy | None = None,
) -> ApplyOutcome:
    """Plan (or read a saved plan), take the lock, apply, journal.

    `confirm` is shown the plan made from paths and says whether to go on. Raises
    StalePlanError, UnsafePlanError, InvalidPlanError before any call is made. A saved plan
    is checked against its signature, the journal and (for the live values it carries)
    Spike, as docs/trust.md describes.
    """
    from ..planfile import check_signature, stale_live, verify
    from ..states.loader import load, reload

    # Every input is checked before the journal is touched (not even created); what the
    # lock protects (the journal, the state files that import writes under it) is read
    # again once it is held.
    notes: list[str] = []
    saved = read_saved_plan(request.plan_file) if request.plan_file else None
    if saved is not None and (note := check_signature(saved)):
        notes.append(note)
    paths = request.paths or DEFAULT_PATHS
    read_before = None if saved is not None else load(paths)
    check_targets(request.targets)
    journal = open_journal(request.journal_location)
    shown = request.plan_file or " ".join(map(str, paths))
    purpose = f"reconcile apply {printable(shown)}"
    with journal.open_for_apply(request.lock_timeout, purpose) as writer:
        state = writer.state
        notes.extend(state.warnings)
        made: MadePlan | None = None
        if saved is not None:
            # The specific refusal first: verify would only say the calls differ.
            _refuse_uncertain_escalations(saved.path, saved.operations, state)
            unsafe = verify(saved, state).unsafe or saved.unsafe
            operations, forget, unmanaged = saved.operations, saved.forget, saved.unmanaged
            digest, live = saved.digest, saved.refresh
            # The file's own flag is untrusted; forgets count as in a fresh plan.
            unsafe = unsafe or calls_are_unsafe(operations, state.incidents, forget)
        else:
            # Read again under the lock (an import may have written meanwhile); parsed again
            # only if the files changed.
            desired = load(paths) if read_before is None else reload(read_before, paths)
            made = make_plan(
                request.paths,
                None,
                request.batch_size,
                request.targets,
                journal_state=state,
                refresh=request.refresh,
                parallelism=request.parallelism,
                desired=desired,
                drift_policy=request.drift_policy,
            )
            fresh = made.plan
            operations, forget, unmanaged = fresh.operations, fresh.forget, fresh.unmanaged
            digest = plan_content(fresh, request.batch_size)["plan_digest"]
            unsafe, live = fresh.unsafe, fresh.live_values
            if not fresh.has_changes:
                # The plan is not shown, but its warnings (uncertain escalations) still are.
                warnings = [*notes, *fresh.warnings]
                return ApplyOutcome(None, state.lineage, state.serial, made=made, warnings=warnings)
        if unsafe and not request.force:
            raise UnsafePlanError(
                "the plan is marked unsafe (it changes or forgets recorded values on more than "
                "30% of the journaled incidents); review it, then apply with --force"
            )
        if not (operations or forget or unmanaged or live):
            return ApplyOutcome(None, state.lineage, state.serial, made=made, warnings=notes)
        if saved is not None and live:
            # Live values are recorded as facts: record only what Spike still says. (An
            # incident the journal lacks and the plan does not change is one whose live
            # values already match its file: recorded as `refresh --id` would.)
            from ..errors import LiveStateError

            try:
                now_live = read_live(live, request.parallelism)
            except LiveStateError as exc:
                raise StalePlanError(
                    f"{saved.path} is stale: its live values cannot be read again: {exc}"
                ) from None
            stale_live(saved, now_live)
        import asyncio

        from ..spike.client import SpikeConfig

        config = SpikeConfig.from_env() if operations else None
        if made is not None and not confirm(made):
            raise ReconcileError("apply cancelled; nothing was changed")
        result, signal = asyncio.run(
            _apply(
                config,
                writer,
                operations,
                forget,
                unmanaged,
                live,
                digest=digest,
                parallelism=request.parallelism,
                observe=observe,
                progress=progress(len(operations)) if progress and operations else None,
                retry=retry,
            )
        )
        return ApplyOutcome(result, writer.state.lineage, writer.state.serial, signal, made, notes)


def _refuse_uncertain_escalations(
    path: str, operations: Sequence[Operation], state: Recorded
) -> None:
    """A saved plan never escalates an incident whose last escalation has an unknown outcome
    (a plan made now would not; the file is untrusted input)."""
    from ..endpoints import ESCALATE

    uncertain = sorted(
        {cid for op in operations if op.path == ESCALATE for cid in op.ids} & set(state.uncertain)
    )
    if uncertain:
        raise InvalidPlanError(
            f"{path} escalates {', '.join(uncertain)}, whose last escalation has an unknown "
            "outcome; record the count from Spike's activity log with `reconcile refresh "
            "--id ID --escalations N`, then plan again"
        )


async def _apply(
    config: SpikeConfig | None,
    writer: JournalWriter,
    operations: Sequence[Operation],
    forget: Sequence[str],
    unmanaged: Sequence[tuple[str, str]],
    live: dict[str, Fields],
    *,
    digest: str,
    parallelism: int,
    observe: Callable[[str], None] | None,
    progress: Callable[[int], None] | None,
    retry: RetryPolicy | None,
) -> tuple[ApplyResult, int | None]:
    import asyncio

    from ..applier import Applier
    from ..spike.client import SpikeClient

    stop = asyncio.Event()
    received: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(number: int) -> None:
        # Stop starting calls; the ones in flight finish and are journaled. A second signal
        # gets the default behaviour: the operator insists, the process ends at once.
        received.append(number)
        stop.set()
        for installed_number in installed:
            loop.remove_signal_handler(installed_number)
        installed.clear()

    installed: list[int] = []
    for number in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
            loop.add_signal_handler(number, on_signal, int(number))
            installed.append(number)
    try:
        if config is None:  # journal-only changes: no client, no network
            applier = Applier(None, writer, plan_digest=digest, stop=stop)
            result = await applier.run(operations, forget, unmanaged, live)
        else:
            client = SpikeClient(
                config, parallelism=parallelism, retry=retry, observe=observe, stop=stop
            )
            async with client:
                applier = Applier(client, writer, plan_digest=digest, stop=stop, progress=progress)
                result = await applier.run(operations, forget, unmanaged, live)
    finally:
        for handled in installed:
            loop.remove_signal_handler(handled)
    return result, (received[0] if received else None)
