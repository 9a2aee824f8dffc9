"""The use cases behind the commands: load, plan, save. Glue between the pure core and I/O."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .journal import JournalState, JournalWriter, now, open_journal
from .model import (
    FIELDS,
    LIVE_FIELDS,
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
    is_field_value,
    printable,
)
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
    )
    return MadePlan(result, now(), desired.sources, list(state.warnings))


def read_live(ids: Iterable[str], parallelism: int) -> dict[str, Fields]:
    """Read incidents from Spike (GET /incidents/{counterId}), concurrently."""
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
) -> RefreshOutcome:
    """Record live values in the journal without changing anything in Spike.

    Reads the incidents of the state files (the fields they manage or the journal holds)
    and adopts `adopt`: incidents the journal has never seen, all their live fields.
    """
    from .planner import refreshed
    from .states import load

    check_targets(adopt)
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


def atomic_write(
    path: str | os.PathLike[str],
    produce: Callable[[Callable[[str], object]], None],
    mode: int | None = None,
) -> None:
    """Write a file whole or not at all (a temporary file, fsync, then a rename).

    `produce` is called with the write function of the temporary file. The file gets
    permission bits `mode` when given (the temporary file's 0600 otherwise).
    """
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    except OSError as exc:
        raise ReconcileError(f"{printable(str(target))}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            produce(handle.write)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise ReconcileError(f"{printable(str(target))}: cannot write: {exc.strerror}") from None
    finally:
        # Whatever stopped the write (Ctrl-C included), no half file is left beside the
        # target; after the rename there is nothing to remove.
        Path(tmp).unlink(missing_ok=True)


def write_plan(made: MadePlan, out: str) -> None:
    from .render import write_plan_json

    atomic_write(out, lambda write: write_plan_json(made.plan, made.created_at, write))


# ---------------------------------------------------------------------------------------------
# apply


@dataclass
class SavedPlan:
    """A plan file, checked: digest, format, and every operation against the endpoint table."""

    path: str
    lineage: str | None
    serial: int
    digest: str
    unsafe: bool
    operations: list[Operation]
    forget: list[str]
    unmanaged: list[tuple[str, str]]
    refresh: dict[str, Fields]
    body: dict[str, Any]


def read_saved_plan(path: str) -> SavedPlan:
    """Load a plan file; refuse (InvalidPlanError) anything edited, truncated or foreign."""
    from .endpoints import parse_operation
    from .planner import FORMAT_VERSION, digest

    try:
        with open(path, encoding="utf-8") as handle:
            body = json.load(handle)
    except OSError as exc:
        raise ReconcileError(f"{path}: cannot read the plan: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidPlanError(f"{path}: not a plan file (invalid JSON: {exc})") from None
    except RecursionError:
        raise InvalidPlanError(f"{path}: not a plan file (nested too deeply)") from None
    if not isinstance(body, dict) or body.get("format_version") != FORMAT_VERSION:
        raise InvalidPlanError(
            f"{path}: not a plan file of format_version {FORMAT_VERSION} "
            "(make it with `reconcile plan --out`)"
        )
    if body.get("plan_digest") != digest(body):
        raise InvalidPlanError(
            f"{path}: plan_digest does not match the content: the file was edited or truncated"
        )
    journal = body.get("journal")
    if (
        not isinstance(journal, dict)
        or not isinstance(journal.get("lineage"), str | type(None))
        or type(journal.get("serial")) is not int
    ):
        raise InvalidPlanError(f"{path}: journal must be {{lineage, serial}}")
    raw_ops = body.get("operations")
    forget = body.get("forget")
    unmanaged = body.get("unmanaged")
    if not isinstance(raw_ops, list) or not isinstance(forget, list):
        raise InvalidPlanError(f"{path}: operations and forget must be lists")
    operations = [parse_operation(op, f"{path}: operations[{n}]") for n, op in enumerate(raw_ops)]
    if not all(is_counter_id(cid) for cid in forget):
        raise InvalidPlanError(f"{path}: forget must list counter ids")
    if not isinstance(unmanaged, list) or not all(
        isinstance(u, dict)
        and set(u) == {"incident", "field"}
        and is_counter_id(u["incident"])
        and u["field"] in FIELDS
        for u in unmanaged
    ):
        raise InvalidPlanError(f"{path}: unmanaged must list {{incident, field}} objects")
    refresh = body.get("refresh", {})
    if not isinstance(refresh, dict) or not all(
        is_counter_id(cid)
        and isinstance(fields, dict)
        and all(k in LIVE_FIELDS and is_field_value(k, v) for k, v in fields.items())
        for cid, fields in refresh.items()
    ):
        raise InvalidPlanError(f"{path}: refresh must map counter ids to live field values")
    if not isinstance(body.get("unsafe"), bool):
        raise InvalidPlanError(f"{path}: unsafe must be true or false")
    return SavedPlan(
        path=path,
        lineage=journal["lineage"],
        serial=journal["serial"],
        digest=body["plan_digest"],
        unsafe=body["unsafe"],
        operations=operations,
        forget=list(forget),
        unmanaged=[(u["incident"], u["field"]) for u in unmanaged],
        refresh=refresh,
        body=body,
    )


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
    StalePlanError, UnsafePlanError, InvalidPlanError before any call is made.
    """
    from .states import load

    # Every input is checked before the journal is touched (not even created).
    saved = read_saved_plan(request.plan_file) if request.plan_file else None
    desired = None if saved else load(request.paths or ("states",))
    check_targets(request.targets)
    journal = open_journal(request.journal_location)
    purpose = f"reconcile apply {request.plan_file or ' '.join(request.paths) or 'states'}"
    with journal.open_for_apply(request.lock_timeout, purpose) as writer:
        state = writer.state
        made: MadePlan | None = None
        if saved is not None:
            if (saved.lineage, saved.serial) != (state.lineage, state.serial):
                raise StalePlanError(
                    f"{saved.path} is stale: it was made against journal serial {saved.serial} "
                    f"(lineage {saved.lineage}), the journal is now at serial {state.serial} "
                    f"(lineage {state.lineage}). Plan again."
                )
            operations, forget, unmanaged = saved.operations, saved.forget, saved.unmanaged
            digest, live = saved.digest, saved.refresh
            unsafe = saved.unsafe or calls_are_unsafe(operations, state.incidents)
        else:
            made = make_plan(
                request.paths,
                None,
                request.batch_size,
                request.targets,
                journal_state=state,
                desired=desired,
            )
            fresh = made.plan
            operations, forget, unmanaged = fresh.operations, fresh.forget, fresh.unmanaged
            unsafe, digest, live = fresh.unsafe, fresh.content()["plan_digest"], fresh.refresh
            if not fresh.has_changes:
                return ApplyOutcome(
                    None, state.lineage, state.serial, made=made, warnings=state.warnings
                )
        if unsafe and not request.force:
            raise UnsafePlanError(
                "the plan is marked unsafe (it changes recorded values on more than 30% of the "
                "journaled incidents); review it, then apply with --force"
            )
        if not (operations or forget or unmanaged or live):
            return ApplyOutcome(
                None, state.lineage, state.serial, made=made, warnings=state.warnings
            )
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
        return ApplyOutcome(
            result, writer.state.lineage, writer.state.serial, signal, made, state.warnings
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
    from .states import SUFFIXES, DesiredState, discover, load

    ids = list(dict.fromkeys(request.ids))
    bad = [cid for cid in ids if not is_counter_id(cid)]
    if bad:
        raise ReconcileError(f"import: invalid incident id {bad[0]!r}")
    to = Path(request.to)
    if to.suffix not in SUFFIXES:
        raise ReconcileError(f"--to {to}: a state file's name ends in .yaml or .yml")
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
    journal = open_journal(request.journal_location)
    # Read before taking the lock, so that a failing id leaves no trace at all (taking the
    # lock creates a journal that does not exist yet); read again under the lock if anything
    # was recorded in between, so the values journaled are never older than the journal.
    serial = journal.read().serial
    live = read_live(ids, request.parallelism)
    with journal.open_for_apply(request.lock_timeout, f"reconcile import {' '.join(ids)}") as w:
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
