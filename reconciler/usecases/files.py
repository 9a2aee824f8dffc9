"""Rewrite state files, comments kept: `fmt` (canonical form) and `import` (live values in)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import (
    Problem,
    ReconcileError,
    StateFileError,
    printable,
)
from ..journal import DEFAULT_LOCK_TIMEOUT, open_journal
from ..model import Fields, is_counter_id
from ..spike import DEFAULT_PARALLELISM
from ..states import DEFAULT_PATHS

if TYPE_CHECKING:
    from ..config import TeamConfig
    from ..states.loader import DesiredState
from ..planfile import atomic_write
from .plan import read_live


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


@dataclass(frozen=True)
class FmtRequest:
    """What `reconcile fmt` rewrites: the state files under `paths` (default: states)."""

    paths: Sequence[str] = ()
    #: Write nothing, only report.
    check: bool = False
    #: Return a unified diff of each change.
    diff: bool = False


def run_fmt(request: FmtRequest) -> FmtOutcome:
    """Rewrite every state file under `paths` (default: states) in canonical form (see
    `fmt`), each atomically; with `check`, write nothing.

    A file with problems (each file checked on its own by `states.load`) is left untouched
    and its problems returned; the other files are still formatted. A symlink is written
    through; the file keeps its permission bits.
    """
    import difflib

    from ..states.document import format_text
    from ..states.loader import discover, load

    check, diff = request.check, request.diff
    files, problems = discover(request.paths or DEFAULT_PATHS)
    changed: list[Reformatted] = []
    unchanged = 0
    for file in files:
        try:
            loaded = load([file])
            incidents = loaded.incidents
            data = file.read_bytes()
        except StateFileError as exc:
            problems.extend(exc.problems)
            continue
        except OSError as exc:  # gone or unreadable between the two reads
            problems.append(Problem(str(file), 0, 0, f"cannot read: {exc.strerror}"))
            continue
        if loaded.rules:
            # The canonical form covers incidents only: a file with rules is left as written
            # (docs/authoring.md), never rewritten without them.
            unchanged += 1
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
            write_state_file(file, formatted)
    return FmtOutcome(changed, unchanged, problems)


def write_state_file(path: Path, text: str) -> None:
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
    parallelism: int = DEFAULT_PARALLELISM
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    #: The team of reconcile.yaml imported into (its id and key); None: SPIKE_TEAM_ID.
    team: TeamConfig | None = None


@dataclass
class ImportOutcome:
    """What was recorded: the live values per id, which file got which ids, the journal."""

    values: dict[str, Fields]
    files: dict[str, list[str]]
    lineage: str | None
    serial: int


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
    from ..states import SUFFIXES

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
    live = read_live(ids, request.parallelism, team=request.team)
    with journal.open_for_apply(request.lock_timeout, f"reconcile import {' '.join(ids)}") as w:
        # ... and decided under it: another import that held the lock meanwhile may have
        # written the same files (and the values journaled are never older than the journal).
        desired, written, to_name = _import_targets(request, ids)
        if w.state.serial != serial:
            live = read_live(ids, request.parallelism, team=request.team)
        placed: dict[str, list[str]] = {}
        for cid in ids:
            placed.setdefault(written.get(cid, to_name), []).append(cid)
        for path, text in _imported_texts(placed, desired, live).items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write_state_file(Path(path), text)
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
    from ..states.loader import DesiredState, discover, load

    to = Path(request.to)
    state_paths = list(request.state_paths) or [p for p in DEFAULT_PATHS if Path(p).exists()]
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
    """The new text of each file that receives ids: the file as it is (comments and rules
    and all) or a new one, with each id's live fields put in, in canonical form."""
    from ..states.document import Document, parse, rewrite

    texts: dict[str, str] = {}
    for path, ids in placed.items():
        before = None
        if path in desired.files:
            mine = {cid: f for cid, f in desired.incidents.items() if desired.sources[cid] == path}
            before = Path(path).read_bytes().decode("utf-8-sig")
            doc = parse(before, mine, path)
        else:
            doc = Document.new()
        for cid in ids:
            doc.put(cid, live[cid])
        texts[path] = rewrite(path, doc, before)
    return texts
