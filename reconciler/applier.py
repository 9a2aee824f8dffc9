"""Runs a plan's operations through the client, wave by wave, journaling each success.

Waves run in order (acknowledge/unacknowledge, priority/severity/sharing, escalate one call at
a time, resolve). A call counts as done only once the journal has it. A batch the API refuses
with a 400 or 422 (some id in the body was refused) is bisected to find the ids it rejects;
the rest are applied. Escalate is not idempotent: an intent is journaled before each call,
its batch is never bisected (that would escalate the accepted ids again), and a call whose
outcome is unknown is journaled as uncertain, never retried (docs/journal.md). An incident
whose operation failed is left out of later waves, so nothing is resolved whose priority
could not be set. Refused credentials and an unavailable API stop the apply at once.

Records of calls that finish together are synced as one group; a call holds a permit from
before it is sent until its record is synced, so a crash loses at most 2 x parallelism calls
(the next plan re-issues them; an escalation among them is left uncertain by its intent).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from .endpoints import ESCALATE, WAVES, wave_of
from .errors import (
    ApiError,
    ApiUnavailableError,
    CredentialsError,
    JournalError,
    ReconcileError,
    UncertainOutcomeError,
)
from .journal.base import JournalWriter
from .model import Operation, Value
from .redact import redact
from .spike.client import SpikeClient

#: Refusals that mean "some id in this body was refused": worth bisecting to find it. Any
#: other 4xx (404 from a wrong base path, 405, 413...) would fail every half the same way.
BISECT_STATUSES = frozenset({400, 422})
#: Failures after which Spike surely did not act on an escalate call: refused credentials,
#: and the statuses the client retries because nothing happened (429, 503). A failure
#: without a status is one the client raises only when no attempt reached Spike ambiguously
#: (an ambiguous one raises UncertainOutcomeError).
NOT_SENT_STATUSES = frozenset({None, 401, 403, 429, 503})


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
    #: Escalations whose outcome is unknown (the call may or may not have reached Spike).
    uncertain: list[Failure] = field(default_factory=list)
    #: Calls Spike confirmed whose record could not be stored (the apply stopped on the
    #: journal): the next plan makes them again; an escalation among them stays uncertain.
    unjournaled: list[Operation] = field(default_factory=list)
    interrupted: bool = False
    credentials_error: str | None = None
    #: The client gave up on the API (too many consecutive failures): the apply stopped.
    unavailable_error: str | None = None
    #: The apply died on this error (a journal write that failed, a bug): not every planned
    #: call was attempted.
    error: str | None = None
    requests: int = 0
    #: Wall time of the calls, from the first to the last (seconds).
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        if self.error:
            return "aborted"
        if self.interrupted:
            return "interrupted"
        if (
            self.failed
            or self.skipped
            or self.uncertain
            or self.credentials_error
            or self.unavailable_error
        ):
            return "failed"
        return "applied"

    @property
    def halt_reason(self) -> str | None:
        """Why the apply stopped starting calls (credentials refused, API unavailable)."""
        return self.credentials_error or self.unavailable_error

    def to_json(self, lineage: str | None, serial: int) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "applied": [op.to_json() for op in self.applied],
            "failed": [f.to_json() for f in self.failed],
            "skipped": [f.to_json() for f in self.skipped],
            "uncertain": [f.to_json() for f in self.uncertain],
            "unjournaled": [op.to_json() for op in self.unjournaled],
            "forgotten": list(self.forgotten),
            "unmanaged": [{"incident": i, "field": f} for i, f in self.unmanaged],
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "journal": {"lineage": lineage, "serial": serial},
            **({"error": stop} if (stop := self.halt_reason or self.error) else {}),
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
        # Group commit: records of calls that finish together share one sync. A call holds
        # a permit from before it is sent until its record is synced; the client keeps at
        # most `parallelism` calls in flight, so a slot is reused while the records before
        # it are synced, and a crash loses at most 2 x parallelism calls.
        self._unsynced = asyncio.Semaphore(2 * (client.limiter.maximum if client else 1))
        #: Records waiting for the next group: (writer method, its arguments, the caller).
        self._queue: list[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._fatal = False
        #: The first journal write that failed: the apply stops and raises it.
        self._journal_error: JournalError | None = None

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
        Raises JournalError when the journal cannot be written (after the calls in flight
        end); the apply-end record then says `aborted`, if it can still be written, and
        `result` says what was done before.

        Every journal write runs in a worker thread, never in the loop: the loop stays free
        to take a stop signal, whose handler may then cancel a write that cannot complete
        (JournalWriter.cancel).
        """
        writer = self.writer
        try:
            await asyncio.to_thread(writer.start, self.plan_digest, len(operations))
        except BaseException as exc:
            self._died(exc)  # no run began: no end record to write
            raise
        started = time.monotonic()
        try:
            await asyncio.to_thread(writer.set_values, refresh or {}, "refresh")
            # Journal-only changes first: they need no call and cannot fail halfway.
            await asyncio.to_thread(writer.forget, forget, self.plan_digest)
            await asyncio.to_thread(writer.unmanage, unmanaged, self.plan_digest)
            self.result.forgotten = list(forget)
            self.result.unmanaged = list(unmanaged)
            for wave in WAVES:
                ops = [op for op in operations if wave_of(op) == wave]
                if wave == 3:  # escalations, one call at a time
                    for op in ops:
                        await self._run_op(op)
                else:
                    await asyncio.gather(*(self._run_op(op) for op in ops))
                if self._journal_error is not None:
                    raise self._journal_error
        except BaseException as exc:
            # Whatever stopped the waves (a journal write, a bug, a cancellation), the
            # end record must not claim the plan was applied.
            self._died(exc)
            raise
        finally:
            if self._flusher is not None and not self._flusher.done():
                # Only after an abort: never write the end record beside a group.
                with suppress(asyncio.CancelledError):
                    await self._flusher
            self.result.seconds = time.monotonic() - started
            self.result.interrupted = self.stop.is_set()
            self.result.requests = self.client.requests if self.client else 0
            await asyncio.to_thread(self._end)
        return self.result

    def _died(self, exc: BaseException) -> None:
        self.result.error = redact(str(exc) if isinstance(exc, ReconcileError) else "")
        self.result.error = self.result.error or type(exc).__name__

    def _end(self) -> None:
        """Write the apply-end record, saying what happened."""
        result = self.result
        counts: dict[str, Any] = {
            "applied": len(result.applied),
            "failed": len(result.failed),
            "skipped": len(result.skipped),
            "uncertain": len(result.uncertain),
        }
        if result.error is not None:
            counts["error"] = result.error
        try:
            self.writer.end(self.plan_digest, result.outcome, **counts)
        except JournalError as exc:
            if result.error is None:
                self._died(exc)
                raise
            # The apply is already failing with an error (most likely this same journal
            # failure); that error is the one to report.

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
        if maybe.path == ESCALATE:
            await self._escalate(maybe)
        else:
            await self._send(maybe)

    async def _send(self, op: Operation) -> None:
        async with self._unsynced:
            await self._attempt(op)

    def _not_started(self, op: Operation) -> bool:
        """Record `op` as not started when the apply stopped; True when it did."""
        if not self._halted():
            return False
        if self.stop.is_set():
            reason = "apply was interrupted"
        elif self._journal_error is not None:
            reason = "the journal could not be written"
        elif self.result.unavailable_error:
            reason = "the Spike API is unavailable"
        else:
            reason = "credentials were refused"
        self.result.skipped.extend(Failure(c, op, f"not started: {reason}") for c in op.ids)
        return True

    def _halt(self, op: Operation, exc: ApiError) -> bool:
        """Stop the apply on refused credentials or an unavailable API; True when it did."""
        if isinstance(exc, CredentialsError):
            self.result.credentials_error = str(exc)
        elif isinstance(exc, ApiUnavailableError):
            self.result.unavailable_error = str(exc)
        else:
            return False
        self._fatal = True
        return True

    async def _journal(self, record: Callable[..., Any], *args: Any) -> Any:
        """Store one record (a writer method and its arguments); return once it is durable.

        Records that arrive while a group is being synced form the next group, written and
        synced in a thread, so responses of other calls are read meanwhile. A failed write
        stops the apply: the error is raised here, and from run() once the calls in flight
        have ended.
        """
        if self._journal_error is not None:
            raise self._journal_error
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((record, args, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return await done

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []

            def store(batch: list[tuple[Callable[..., Any], tuple[Any, ...], Any]]) -> list[Any]:
                with self.writer.group():
                    return [record(*args) for record, args, _ in batch]

            try:
                results = await asyncio.to_thread(store, batch)
            except JournalError as exc:
                self._journal_error = exc
                self._fatal = True
                for _, _, done in [*batch, *self._queue]:
                    if not done.done():  # its caller may have been cancelled meanwhile
                        done.set_exception(exc)
                self._queue = []
                return
            for (_, _, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)

    async def _attempt(self, op: Operation) -> None:
        """Call, then journal, holding the caller's permit (bisection reuses it)."""
        if self._not_started(op):
            return
        assert self.client is not None, "operations need a client"
        try:
            await self.client.call(op)
        except ApiError as exc:
            if self._halt(op, exc):
                self.result.failed.extend(Failure(c, op, str(exc), exc.status_code) for c in op.ids)
                self._failed_ids.update(op.ids)
                return
            await self._refused(op, exc)
            return
        try:
            await self._journal(self.writer.applied, op, self.plan_digest)
        except JournalError:  # raised from run() once the calls in flight end
            self.result.unjournaled.append(op)
            return
        self._done(op)

    def _done(self, op: Operation) -> None:
        self.result.applied.append(op)
        if self.progress is not None:
            self.progress(1)

    async def _refused(self, op: Operation, exc: ApiError) -> None:
        status = exc.status_code
        ids = op.ids
        if status in BISECT_STATUSES and "ids" in op.body and len(ids) > 1:
            # Find the ids the API rejects: bisect, apply the halves that it accepts.
            middle = len(ids) // 2
            for half in (ids[:middle], ids[middle:]):
                await self._attempt(Operation(op.method, op.path, {**op.body, "ids": list(half)}))
            return
        reason = exc.api_message if exc.api_message and status is not None else str(exc)
        self.result.failed.extend(Failure(cid, op, reason, status) for cid in ids)
        self._failed_ids.update(ids)

    async def _escalate(self, op: Operation) -> None:
        """One escalate call, sent at most once: intent, call, outcome, each journaled.

        The intent is stored before the call is sent, so a crash in between leaves the
        escalation uncertain instead of forgotten. The batch is never bisected or retried.
        """
        if self._not_started(op):
            return
        assert self.client is not None, "operations need a client"
        try:
            intent = await self._journal(self.writer.intent, op, self.plan_digest)
        except JournalError:
            self._not_started(op)  # never sent: its intent could not be recorded
            return
        sent_before = self.client.requests
        try:
            await self.client.call(op)
        except ApiError as exc:
            self._halt(op, exc)
            reason = exc.api_message if exc.api_message and exc.status_code else str(exc)
            nothing_sent = self.client.requests == sent_before
            if not isinstance(exc, UncertainOutcomeError) and (
                nothing_sent
                or (
                    exc.status_code in NOT_SENT_STATUSES
                    and not isinstance(exc, ApiUnavailableError)
                )
            ):
                outcome: Callable[..., Any] = self.writer.not_sent
                self.result.failed.extend(Failure(c, op, reason, exc.status_code) for c in op.ids)
            else:
                # Ambiguous: a 5xx, timeout or reset after sending; an unavailable API that
                # sent this call and gave up on it; or a refusal (400, 404, 422...) of the
                # batch: Spike documents nothing about partial batches, so it may have
                # escalated the ids it accepted before refusing the others. Only the
                # activity log tells, so the operator records the count.
                outcome = self.writer.uncertain
                self.result.uncertain.extend(
                    Failure(c, op, f"outcome unknown: {reason}", exc.status_code) for c in op.ids
                )
            self._failed_ids.update(op.ids)
            with suppress(JournalError):  # the intent stays: uncertain on the next read
                await self._journal(outcome, intent, redact(reason), self.plan_digest)
            return
        try:
            await self._journal(self.writer.applied, op, self.plan_digest, intent)
        except JournalError:  # the intent stays: uncertain on the next read
            self.result.unjournaled.append(op)
            return
        self._done(op)
