"""Runs a plan's operations through the client, wave by wave, journaling each success.

Waves run in SPEC order (acknowledge/unacknowledge, priority/severity/sharing, escalate one
call at a time, resolve). A call counts as done only once the journal has it. A batch the API
refuses with a 4xx is bisected to find the ids it rejects; the rest are applied. An incident
whose operation failed is left out of later waves, so nothing is resolved whose priority
could not be set.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .endpoints import WAVES, wave_of
from .journal import JournalWriter
from .model import ApiError, CredentialsError, Operation, Value
from .spike import SpikeClient


@dataclass(frozen=True)
class Failure:
    """An incident an operation could not be applied to, and why."""

    incident: str
    operation: Operation
    reason: str
    status_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "call": f"{self.operation.method} {self.operation.path}",
            "status": self.status_code,
            "reason": self.reason,
        }


@dataclass
class ApplyResult:
    applied: list[Operation] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    unmanaged: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    credentials_error: str | None = None
    requests: int = 0
    #: Wall time of the calls, from the first to the last (seconds).
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.failed or self.skipped or self.credentials_error:
            return "failed"
        return "applied"

    def to_json(self, lineage: str | None, serial: int) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "applied": [op.to_json() for op in self.applied],
            "failed": [f.to_json() for f in self.failed],
            "skipped": [f.to_json() for f in self.skipped],
            "forgotten": list(self.forgotten),
            "unmanaged": [{"incident": i, "field": f} for i, f in self.unmanaged],
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "journal": {"lineage": lineage, "serial": serial},
            **({"error": self.credentials_error} if self.credentials_error else {}),
        }


Progress = Callable[[int], None]


class Applier:
    """One apply run: the plan's operations, a journal writer, a client, a stop signal."""

    def __init__(
        self,
        client: SpikeClient | None,
        writer: JournalWriter,
        *,
        plan_digest: str | None,
        stop: asyncio.Event | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.writer = writer
        self.plan_digest = plan_digest
        self.stop = stop or asyncio.Event()
        self.progress = progress
        self.result = ApplyResult()
        self._failed_ids: set[str] = set()
        self._journal_lock = asyncio.Lock()
        # A call holds its slot until it is journaled, so a crash loses at most the calls in
        # flight: no call starts while more than `parallelism` successes are unrecorded.
        self._slots = asyncio.Semaphore(client.limiter.maximum if client else 1)
        self._fatal = False

    def _halted(self) -> bool:
        return self._fatal or self.stop.is_set()

    async def run(
        self,
        operations: Sequence[Operation],
        forget: Sequence[str] = (),
        unmanaged: Sequence[tuple[str, str]] = (),
        refresh: Mapping[str, Mapping[str, Value]] | None = None,
    ) -> ApplyResult:
        """Apply everything; never raises for API failures (they are in the result).

        `refresh` holds live values the plan was made against (plan --refresh): they are
        recorded first, so the journal agrees with what the operations were planned from.
        """
        self.writer.start(self.plan_digest, len(operations))
        self.writer.set_values(refresh or {}, "refresh")
        # Journal-only changes first: they need no call and cannot fail halfway.
        self.writer.forget(forget, self.plan_digest)
        self.writer.unmanage(unmanaged, self.plan_digest)
        self.result.forgotten = list(forget)
        self.result.unmanaged = list(unmanaged)
        started = time.monotonic()
        try:
            for wave in WAVES:
                ops = [op for op in operations if wave_of(op) == wave]
                if wave == 3:  # escalations, one call at a time
                    for op in ops:
                        await self._run_op(op)
                else:
                    await asyncio.gather(*(self._run_op(op) for op in ops))
        finally:
            self.result.seconds = time.monotonic() - started
            self.result.interrupted = self.stop.is_set()
            self.result.requests = self.client.requests if self.client else 0
            self.writer.end(
                self.plan_digest,
                self.result.outcome,
                applied=len(self.result.applied),
                failed=len(self.result.failed),
                skipped=len(self.result.skipped),
            )
        return self.result

    def _without_failed(self, op: Operation) -> Operation | None:
        """The operation for the incidents still in good standing, or None for none."""
        if not self._failed_ids.intersection(op.ids):
            return op
        for cid in op.ids:
            if cid in self._failed_ids:
                self.result.skipped.append(
                    Failure(cid, op, "skipped: an earlier operation failed for this incident")
                )
        if "ids" not in op.body:
            return None
        ids = [cid for cid in op.ids if cid not in self._failed_ids]
        return Operation(op.method, op.path, {**op.body, "ids": ids}) if ids else None

    async def _run_op(self, op: Operation) -> None:
        maybe = self._without_failed(op)
        if maybe is None:
            return
        await self._send(maybe)

    async def _send(self, op: Operation) -> None:
        async with self._slots:
            await self._attempt(op)

    async def _attempt(self, op: Operation) -> None:
        """Call, then journal, holding the caller's slot (bisection reuses it)."""
        if self._halted():
            stopped = self.stop.is_set()
            reason = "apply was interrupted" if stopped else "credentials were refused"
            self.result.skipped.extend(Failure(c, op, f"not started: {reason}") for c in op.ids)
            return
        assert self.client is not None, "operations need a client"
        try:
            await self.client.call(op)
        except CredentialsError as exc:
            self._fatal = True
            self.result.credentials_error = str(exc)
            self.result.failed.extend(Failure(c, op, str(exc), exc.status_code) for c in op.ids)
            self._failed_ids.update(op.ids)
            return
        except ApiError as exc:
            await self._refused(op, exc)
            return
        # The fsync runs off the event loop, so responses of other calls are read meanwhile;
        # the lock keeps one writer, and the call counts as done only once it is stored.
        async with self._journal_lock:
            await asyncio.to_thread(self.writer.applied, op, self.plan_digest)
        self.result.applied.append(op)
        if self.progress is not None:
            self.progress(1)

    async def _refused(self, op: Operation, exc: ApiError) -> None:
        status = exc.status_code
        ids = op.ids
        if status is not None and 400 <= status < 500 and "ids" in op.body and len(ids) > 1:
            # Find the ids the API rejects: bisect, apply the halves that it accepts.
            middle = len(ids) // 2
            for half in (ids[:middle], ids[middle:]):
                await self._attempt(Operation(op.method, op.path, {**op.body, "ids": list(half)}))
            return
        reason = exc.api_message if exc.api_message and status is not None else str(exc)
        self.result.failed.extend(Failure(cid, op, reason, status) for cid in ids)
        self._failed_ids.update(ids)
