"""The use cases behind the commands: load, plan, save. Glue between the pure core and I/O."""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .journal import JournalState, JournalWriter, now, open_journal
from .model import (
    Drift,
    Fields,
    InvalidPlanError,
    Operation,
    Problem,
    ReconcileError,
    StalePlanError,
    StateFileError,
    UnsafePlanError,
    is_counter_id,
    printable,
)
from .planfile import SavedPlan as SavedPlan
from .planfile import atomic_write as atomic_write
from .planfile import read_saved_plan as read_saved_plan
from .planfile import write_plan as write_plan
from .planner import Plan, calls_are_unsafe, plan

if TYPE_CHECKING:
    from .applier import ApplyResult
    from .spike import RetryPolicy, SpikeConfig
    from .states import DesiredState


@dataclass
class MadePlan:
    plan: Plan
    created_at: str
    sources: dict[str, str] = field(default_factory=dict)
    journal_warnings: list[str] = field(default_factory=list)
    #: The batch size the operations were made with (written into the plan file).
    batch_size: int | None = None


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
    refresh: bool = False,
    parallelism: int = 4,
    desired: DesiredState | None = None,
) -> MadePlan:
    """Load the state files and the journal, and plan. Reads files only, no network, unless
    `refresh` asks to read the managed incidents' live values from Spike first."""
    from .states import load

    check_targets(targets)
    desired = desired or load(paths or ("states",))
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
    )
    return MadePlan(result, now(), desired.sources, list(state.warnings), batch_size)


def read_live(ids: Iterable[str], parallelism: int) -> dict[str, Fields]:
    """Read incidents from Spike (GET /incidents/{counterId}), concurrently."""
    import asyncio  # here, not at the top: `plan` never needs it, and it is slow to import

    from .live import read_incidents
    from .spike import SpikeClient, SpikeConfig

    config = SpikeConfig.from_env()

    async def read() -> dict[str, Fields]:
        async with SpikeClient(config, parallelism=parallelism) as client:
            return await read_incidents(client, ids)

    return asyncio.run(read())


@dataclass
class RefreshOutcome:
    drift: list[Drift]
    recorded: dict[str, Fields]
    lineage: str | None
    serial: int


def run_refresh(
    paths: Sequence[str],
    adopt: Sequence[str],
    journal_location: str | None,
    parallelism: int,
    lock_timeout: float,
    escalations: int | None = None,
) -> RefreshOutcome:
    """Record live values in the journal without changing anything in Spike.

    Reads the incidents of the state files (the fields they manage or the journal holds)
    and adopts `adopt`: incidents the journal has never seen, all their live fields.

    With `escalations`, reads nothing from Spike: records that count, which the operator read
    in Spike's activity log, for the one incident in `adopt`, and clears the uncertainty of
    its last escalation. A count below the escalations the journal recorded as applied is
    refused.
    """
    from .planner import refreshed
    from .states import load

    check_targets(adopt)
    if escalations is not None:
        return _record_escalations(adopt, escalations, journal_location, lock_timeout)
    desired = load(paths or ("states",)).incidents
    journal = open_journal(journal_location)
    with journal.open_for_apply(lock_timeout, "reconcile refresh") as writer:
        state = writer.state
        ids = (set(desired) & set(state.incidents)) | set(adopt)
        live = read_live(ids, parallelism)
        adopted = {cid: live[cid] for cid in adopt if cid not in state.incidents}
        known = {cid: v for cid, v in live.items() if cid not in adopted}
        _, drift, record = refreshed(state.incidents, known, desired)
        record.update(adopted)
        writer.set_values(record, "refresh")
        return RefreshOutcome(drift, record, writer.state.lineage, writer.state.serial)


def _record_escalations(
    ids: Sequence[str], count: int, journal_location: str | None, lock_timeout: float
) -> RefreshOutcome:
    from .journal import ACTIVITY_LOG

    if len(ids) != 1:
        raise ReconcileError("--escalations records the count of one incident: give one --id")
    if type(count) is not int or count < 0:
        raise ReconcileError(f"--escalations must be a whole number, 0 or more, not {count!r}")
    (cid,) = ids
    journal = open_journal(journal_location)
    with journal.open_for_apply(lock_timeout, f"reconcile refresh --id {cid}") as writer:
        state = writer.state
        # Confirmed escalations (2xx) happened; an uncertain one is not counted in them.
        confirmed = state.escalations(cid) or 0
        if count < confirmed:
            raise ReconcileError(
                f"--escalations {count} is below the {confirmed} escalations of {cid} that "
                "Spike confirmed to this tool; the count only grows (nothing recorded)"
            )
        record: dict[str, Fields] = {cid: {"escalations": count}}
        writer.set_values(record, ACTIVITY_LOG)
        return RefreshOutcome([], record, writer.state.lineage, writer.state.serial)


# ---------------------------------------------------------------------------------------------
# apply


@dataclass
class ApplyRequest:
    plan_file: str | None = None
    paths: Sequence[str] = ()
    journal_location: str | None = None
    batch_size: int = 100
    parallelism: int = 4
    lock_timeout: float = 0.0
    force: bool = False
    targets: Sequence[str] = ()


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
    from .planfile import check_signature, stale_live, verify
    from .states import load

    # Every input is checked before the journal is touched (not even created); what the
    # lock protects (the journal, the state files that import writes under it) is read
    # again once it is held.
    notes: list[str] = []
    saved = read_saved_plan(request.plan_file) if request.plan_file else None
    if saved is not None and (note := check_signature(saved)):
        notes.append(note)
    if saved is None:
        load(request.paths or ("states",))
    check_targets(request.targets)
    journal = open_journal(request.journal_location)
    purpose = f"reconcile apply {request.plan_file or ' '.join(request.paths) or 'states'}"
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
            made = make_plan(
                request.paths,
                None,
                request.batch_size,
                request.targets,
                journal_state=state,
                desired=load(request.paths or ("states",)),
            )
            fresh = made.plan
            operations, forget, unmanaged = fresh.operations, fresh.forget, fresh.unmanaged
            digest = fresh.content(request.batch_size)["plan_digest"]
            unsafe, live = fresh.unsafe, fresh.refresh
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
            from .live import LiveStateError

            try:
                now_live = read_live(live, request.parallelism)
            except LiveStateError as exc:
                raise StalePlanError(
                    f"{saved.path} is stale: its live values cannot be read again: {exc}"
                ) from None
            stale_live(saved, now_live)
        import asyncio

        from .spike import SpikeConfig

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
    path: str, operations: Sequence[Operation], state: JournalState
) -> None:
    """A saved plan never escalates an incident whose last escalation has an unknown outcome
    (a plan made now would not; the file is untrusted input)."""
    from .endpoints import ESCALATE

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

    from .applier import Applier
    from .spike import SpikeClient

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


# ---------------------------------------------------------------------------------------------
# fmt and import: rewriting state files, comments kept


@dataclass
class Reformatted:
    """A state file whose text is not canonical: its path and, when asked, a unified diff."""

    path: str
    diff: str = ""


@dataclass
class FmtOutcome:
    changed: list[Reformatted]
    unchanged: int
    problems: list[Problem]


def run_fmt(paths: Sequence[str], *, check: bool, diff: bool) -> FmtOutcome:
    """Rewrite every state file under `paths` (default: states) in canonical form (see
    `fmt`), each atomically; with `check`, write nothing.

    A file with problems (each file checked on its own by `states.load`) is left untouched
    and its problems returned; the other files are still formatted. A symlink is written
    through; the file keeps its permission bits.
    """
    import difflib

    from .fmt import format_text
    from .states import discover, load

    files, problems = discover(paths or ("states",))
    changed: list[Reformatted] = []
    unchanged = 0
    for file in files:
        try:
            incidents = load([file]).incidents
            data = file.read_bytes()
        except StateFileError as exc:
            problems.extend(exc.problems)
            continue
        except OSError as exc:  # gone or unreadable between the two reads
            problems.append(Problem(str(file), 0, 0, f"cannot read: {exc.strerror}"))
            continue
        text = data.decode("utf-8-sig")
        formatted = format_text(text, incidents)
        if formatted.encode() == data:
            unchanged += 1
            continue
        patch = ""
        if diff:
            patch = "".join(
                difflib.unified_diff(
                    text.splitlines(keepends=True),
                    formatted.splitlines(keepends=True),
                    f"{printable(str(file))}\t(original)",
                    f"{printable(str(file))}\t(formatted)",
                )
            )
        changed.append(Reformatted(str(file), patch))
        if not check:
            _write_state_file(file, formatted)
    return FmtOutcome(changed, unchanged, problems)


def _write_state_file(path: Path, text: str) -> None:
    """Replace (or create) a state file atomically, through a symlink, keeping its mode."""
    target = path.resolve()
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask

    def produce(write: Callable[[str], object]) -> None:
        write(text)

    atomic_write(target, produce, mode=mode)


@dataclass
class ImportRequest:
    ids: Sequence[str]
    to: str
    overwrite: bool = False
    state_paths: Sequence[str] = ()
    journal_location: str | None = None
    parallelism: int = 4
    lock_timeout: float = 0.0


@dataclass
class ImportOutcome:
    """What was recorded: the live values per id, which file got which ids, the journal."""

    values: dict[str, Fields]
    files: dict[str, list[str]]
    lineage: str | None
    serial: int

    def message(self) -> str:
        lines = [
            f"Imported {len(ids)} incident{'s' * (len(ids) != 1)} into {printable(path)}: "
            + ", ".join(ids)
            for path, ids in self.files.items()
        ]
        lines.append(f"Recorded their live values in the journal (serial {self.serial}).")
        return "\n".join(lines) + "\n"


def run_import(request: ImportRequest) -> ImportOutcome:
    """Write incidents' live status, priority and severity into a state file and the journal,
    so the next plan is empty for them.

    Each id is read from Spike (`GET /incidents/{counterId}`); the files and the journal are
    written under the journal's apply lock.
    New ids are added to `request.to` (created if needed) in canonical form, keeping the
    file's other incidents and every comment. An id already in a state file (those under
    `state_paths`, default `states` when it exists, and `to`) is refused unless
    `overwrite`; then its live fields are set where it is written, its other fields and
    comments kept. Raises ReconcileError, with nothing written (no file, no journal record),
    when an id is invalid or already written, a state file is invalid, or any id cannot be
    read (naming each one).
    """
    from .states import SUFFIXES

    ids = list(dict.fromkeys(request.ids))
    bad = [cid for cid in ids if not is_counter_id(cid)]
    if bad:
        raise ReconcileError(f"import: invalid incident id {bad[0]!r}")
    to = Path(request.to)
    if to.suffix not in SUFFIXES:
        raise ReconcileError(f"--to {to}: a state file's name ends in .yaml or .yml")
    # Checked before the lock, so that bad input or a failing id leaves no trace at all
    # (taking the lock creates a journal that does not exist yet) ...
    _import_targets(request, ids)
    journal = open_journal(request.journal_location)
    serial = journal.read().serial
    live = read_live(ids, request.parallelism)
    with journal.open_for_apply(request.lock_timeout, f"reconcile import {' '.join(ids)}") as w:
        # ... and decided under it: another import that held the lock meanwhile may have
        # written the same files (and the values journaled are never older than the journal).
        desired, written, to_name = _import_targets(request, ids)
        if w.state.serial != serial:
            live = read_live(ids, request.parallelism)
        placed: dict[str, list[str]] = {}
        for cid in ids:
            placed.setdefault(written.get(cid, to_name), []).append(cid)
        for path, text in _imported_texts(placed, desired, live).items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _write_state_file(Path(path), text)
        # Files first: a journal record without its file line would make the next apply
        # forget the incident; a file line without its record only plans an idempotent call.
        w.set_values({cid: live[cid] for cid in ids}, "import")
        return ImportOutcome(
            {cid: live[cid] for cid in ids}, placed, w.state.lineage, w.state.serial
        )


def _import_targets(
    request: ImportRequest, ids: Sequence[str]
) -> tuple[DesiredState, dict[str, str], str]:
    """Read the state files an import writes to: (their desired state, the file of each id
    already written, the name of `request.to` as `load` names it). Refuses ids already
    written unless `request.overwrite`."""
    from .states import DesiredState, discover, load

    to = Path(request.to)
    state_paths = list(request.state_paths) or [p for p in ("states",) if Path(p).exists()]
    files, missing = discover(state_paths)
    if missing:
        raise StateFileError(missing)
    if to.exists() and to.resolve() not in {f.resolve() for f in files}:
        files.append(to)
    desired = load(files) if files else DesiredState()
    # The file each id goes to, as `load` names it (so `to` given as an absolute path or
    # through a symlink still matches the same file found under `states`).
    to_name = next((str(f) for f in files if f.resolve() == to.resolve()), str(to))
    written = {cid: desired.sources[cid] for cid in ids if cid in desired.sources}
    if written and not request.overwrite:
        raise ReconcileError(
            "already in a state file (pass --overwrite to set their live fields there): "
            + ", ".join(f"{cid} ({printable(path)})" for cid, path in written.items())
        )
    return desired, written, to_name


def _imported_texts(
    placed: Mapping[str, Sequence[str]], desired: DesiredState, live: Mapping[str, Fields]
) -> dict[str, str]:
    """The new text of each file that receives ids: the file as it is (comments and all) or a
    new one, with each id's live fields put in, in canonical form."""
    from .fmt import Document, parse

    texts: dict[str, str] = {}
    for path, ids in placed.items():
        if path in desired.files:
            mine = {cid: f for cid, f in desired.incidents.items() if desired.sources[cid] == path}
            doc = parse(Path(path).read_bytes().decode("utf-8-sig"), mine)
        else:
            doc = Document.new()
        for cid in ids:
            doc.put(cid, live[cid])
        texts[path] = doc.render()
    return texts
