"""Writing plan files: format 1 for the implicit team, format 2 for the teams of
reconcile.yaml, one member per line, whole or not at all (atomic_write)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ReconcileError, printable
from ..planner import Plan
from .content import (
    TEAMS_FORMAT_VERSION,
    Bound,
    LazyList,
    StreamingDigest,
    digest,
    has_lazy,
    plan_key,
    section_content,
    sign,
)

if TYPE_CHECKING:
    pass


def atomic_write(
    path: str | os.PathLike[str],
    produce: Callable[[Callable[[str], object]], None],
    mode: int | None = None,
) -> None:
    """Write a file whole or not at all (a temporary file, fsync, then a rename).

    `produce` is called with the write function of the temporary file. The file gets
    permission bits `mode` when given (the temporary file's 0600 otherwise). A target that
    exists and is not a regular file (`--out /dev/stdout`, a pipe, a device) is written
    into, never replaced: renaming over `/dev/full` replaced the device with a file.
    """
    target = Path(path)
    try:
        special = target.exists() and not stat.S_ISREG(target.stat().st_mode)
    except OSError:
        special = False  # what cannot be looked at is reported by the write below
    if special:
        try:
            with open(target, "w", encoding="utf-8") as handle:
                produce(handle.write)
        except OSError as exc:
            raise ReconcileError(
                f"{printable(str(target))}: cannot write: {exc.strerror}"
            ) from None
        return
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


class PlanToWrite(Protocol):
    """What one team's plan file section is written from (usecases.plan.MadePlan)."""

    plan: Plan
    created_at: str
    batch_size: int | None
    bound: Bound | None


class TeamPlanToWrite(Protocol):
    """One team's plan in a plan file (usecases.plan.TeamPlan)."""

    @property
    def name(self) -> str | None:
        """None: the one implicit team of a repository without reconcile.yaml."""

    @property
    def team_id(self) -> str | None: ...
    @property
    def journal(self) -> str:
        """The journal's location as shown (never with a password)."""

    @property
    def made(self) -> PlanToWrite: ...


class ProjectPlanToWrite(Protocol):
    """What a plan file is written from (usecases.plan.ProjectPlan)."""

    created_at: str
    plan_id: str

    @property
    def teams(self) -> Sequence[TeamPlanToWrite]: ...
    @property
    def named(self) -> bool:
        """Whether the teams are reconcile.yaml's: format 2, else format 1."""

    @property
    def unsafe(self) -> bool: ...
    def summary(self) -> Mapping[str, int]: ...


def write_plan_json(project: ProjectPlanToWrite, write: Callable[[str], object]) -> None:
    """The plan file's text, signed when RECONCILE_PLAN_KEY is set: format 1 for the implicit
    team, format 2 (a section per team) for the teams of reconcile.yaml."""
    key = plan_key()
    signer = (lambda plan_digest: sign(plan_digest, key)) if key else None
    if not project.named:
        (team,) = project.teams
        made = team.made
        write_plan_text(
            made.plan,
            project.created_at,
            write,
            batch_size=made.batch_size,
            sign=signer,
            bound=made.bound,
        )
        return
    _write_file(_teams_content(project), project.created_at, write, signer)


def write_plan(project: ProjectPlanToWrite, out: str) -> None:
    """Save a plan file, whole or not at all; a folder that does not exist is an error."""
    atomic_write(out, lambda write: write_plan_json(project, write))


def _teams_content(project: ProjectPlanToWrite) -> dict[str, Any]:
    """A plan of teams' content (docs/plan-format.md, format 2) without created_at and
    plan_digest: the plan's id, and a section per team, each a plan of format 1 but for its
    version and plan id, with the team's id and its journal's location."""
    sections: dict[str, Any] = {}
    for team in sorted(project.teams, key=lambda t: t.name or ""):
        body = section_content(team.made.plan, team.made.batch_size, with_digest=False)
        del body["format_version"]
        journal = body.pop("journal")
        sections[team.name or ""] = {
            "team_id": team.team_id,
            "journal": {"location": team.journal, **journal},
            **body,
        }
    return {
        "format_version": TEAMS_FORMAT_VERSION,
        "plan_id": project.plan_id,
        "teams": sections,
        "summary": dict(project.summary()),
        "unsafe": project.unsafe,
    }


_LAYOUT = json.JSONEncoder(ensure_ascii=False)


def write_plan_text(
    plan: Plan,
    created_at: str,
    write: Callable[[str], object],
    *,
    batch_size: int | None = None,
    sign: Callable[[str], str] | None = None,
    bound: Bound | None = None,
) -> None:
    """One plan as a plan file of format 1 (see _write_file)."""
    body = section_content(plan, batch_size, with_digest=False, bound=bound)
    _write_file(body, created_at, write, sign)


def _write_file(
    body: dict[str, Any],
    created_at: str,
    write: Callable[[str], object],
    sign: Callable[[str], str] | None,
) -> None:
    """The plan file: top-level keys one per line, each list item on its own line.

    One line per change or call reads well in a diff, and lets the C encoder do the work.
    With `sign`, a last key `signature` holds sign(plan_digest) (see planfile.sign). A plan
    of one team has its changes hashed while they are written: one pass.
    """
    streams: dict[str, Callable[[], Iterable[list[Any]]]] = {}
    hexdigest: Callable[[], str]
    if "changes" in body:
        streaming = StreamingDigest(body)
        hexdigest, streams["changes"] = streaming.hexdigest, streaming.changes
    else:
        whole = digest(body)
        hexdigest = lambda: whole  # noqa: E731
    out: dict[str, Any] = {
        "format_version": body.pop("format_version"),
        "created_at": created_at,
        **body,
        "plan_digest": hexdigest,
    }
    if sign is not None:
        out["signature"] = lambda: sign(hexdigest())
    write("{\n")
    _write_members(out, write, "  ", streams)
    write("}\n")


def _write_members(
    out: Mapping[str, Any],
    write: Callable[[str], object],
    indent: str,
    streams: Mapping[str, Callable[[], Iterable[list[Any]]]],
) -> None:
    """Write the members of one JSON object, one per line; lists one item per line; a
    nested object (a team's section) the same way, indented; a callable value is called
    once its turn comes (the digest, known only after the changes were hashed)."""
    last = len(out) - 1
    for n, (key, value) in enumerate(out.items()):
        comma = "," if n < last else ""
        name = _LAYOUT.encode(key)
        if (isinstance(value, dict) and has_lazy(value)) or key == "teams":
            write(f"{indent}{name}: {{\n")
            _write_members(value, write, indent + "  ", {})
            write(f"{indent}}}{comma}\n")
        elif isinstance(value, LazyList | list) and value:
            write(f"{indent}{name}: [\n")
            chunks = (
                streams[key]()
                if key in streams
                else value.chunks()
                if isinstance(value, LazyList)
                else [value]
            )
            inner = indent + "  "
            for i, chunk in enumerate(chunks):
                # Items hold no "}, {" and ids no quotes, so these are item boundaries.
                text = _LAYOUT.encode(chunk)[1:-1].replace("}, {", f"}},\n{inner}{{")
                if not chunk or not isinstance(chunk[0], dict):
                    text = f",\n{inner}".join(_LAYOUT.encode(item) for item in chunk)
                write((inner if i == 0 else f",\n{inner}") + text)
            write(f"\n{indent}]{comma}\n")
        else:
            plain = list(value) if isinstance(value, LazyList) else value  # [] when empty
            if callable(plain):
                plain = plain()
            write(f"{indent}{name}: {_LAYOUT.encode(plain)}{comma}\n")
