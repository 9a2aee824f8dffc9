"""A plan file's content: the formats, a team's section, the digest (whole or streamed while
written) and the signing key and signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from .. import redact
from ..errors import ReconcileError
from ..model import (
    Change,
    Drift,
    Operation,
)
from ..planner import Plan

if TYPE_CHECKING:
    pass


#: The plan file format this tool writes and reads (docs/plan-format.md) ...
FORMAT_VERSION = 1


#: ... and the format of a plan of the teams of reconcile.yaml: one section per team.
TEAMS_FORMAT_VERSION = 2


#: The environment variable holding the key that signs plan files (a secret).
KEY_ENV = "RECONCILE_PLAN_KEY"


#: A shorter key is refused: an HMAC is only as strong as its key.
MIN_KEY_LENGTH = 16


SIGNATURE_SCHEME = "hmac-sha256:"


#: Prefixed to the digest before signing, so the key signs plan files and nothing else.
_SIGNED_CONTEXT = b"spike-reconcile plan file\n"


def plan_key() -> str | None:
    """RECONCILE_PLAN_KEY, registered as a secret (never shown); None when unset or empty."""
    key = os.environ.get(KEY_ENV) or None
    if key is None:
        return None
    if len(key) < MIN_KEY_LENGTH:
        # Not registered for redaction: it is refused, never used, and a short key would
        # garble this very message ("is ***er than" for the key "short").
        raise ReconcileError(
            f"{KEY_ENV} is shorter than {MIN_KEY_LENGTH} characters; use a random key "
            "(e.g. `openssl rand -hex 32`); its value is not shown"
        )
    redact.register(key)
    return key


def sign(plan_digest: str, key: str) -> str:
    """The signature of a plan file: an HMAC-SHA256 of its plan_digest under `key`."""
    mac = hmac.new(key.encode(), _SIGNED_CONTEXT + plan_digest.encode(), hashlib.sha256)
    return SIGNATURE_SCHEME + mac.hexdigest()


def _unmanaged_json(pair: tuple[str, str]) -> dict[str, str]:
    return {"incident": pair[0], "field": pair[1]}


@dataclass(frozen=True)
class Bound:
    """Where a plan was made for (docs/trust.md, Bound to where it was made for): the team id
    it would apply to (None: no SPIKE_TEAM_ID was set), its journal's location as given or
    configured (never with a password), and its random plan id."""

    team_id: str | None
    location: str
    plan_id: str


LAZY_CHUNK = 256


@dataclass(frozen=True)
class LazyList:
    """A long list of JSON objects, made LAZY_CHUNK items at a time."""

    items: Sequence[Any]
    encode: Callable[[Any], Any]

    def chunks(self) -> Iterator[list[Any]]:
        items = iter(self.items)
        while chunk := [self.encode(item) for item in islice(items, LAZY_CHUNK)]:
            yield chunk

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        for chunk in self.chunks():
            yield from chunk


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: Any) -> Iterator[str]:
    """json.dumps(value, sort_keys=True, separators=(",", ":")), in pieces."""
    if isinstance(value, LazyList):
        yield "["
        first = True
        for chunk in value.chunks():
            text = _CANONICAL.encode(chunk)[1:-1]
            yield text if first else "," + text
            first = False
        yield "]"
    elif isinstance(value, dict) and has_lazy(value):
        yield "{"
        for n, key in enumerate(sorted(value)):
            yield ("," if n else "") + _CANONICAL.encode(key) + ":"
            yield from _canonical(value[key])
        yield "}"
    else:
        yield _CANONICAL.encode(value)


def has_lazy(value: Mapping[str, Any]) -> bool:
    """Whether a LazyList is somewhere in `value` (a team's section holds them, one level
    down in a plan of teams)."""
    return any(
        isinstance(v, LazyList) or (isinstance(v, dict) and has_lazy(v)) for v in value.values()
    )


#: Keys of a plan file outside its digest: the digest itself, when it was made, and the
#: signature (which signs the digest).
_NOT_DIGESTED = frozenset({"created_at", "plan_digest", "signature"})


def digest(body: Mapping[str, Any]) -> str:
    """sha256 of a plan's canonical JSON (sorted keys, no spaces), without created_at,
    plan_digest and signature. `apply` recomputes it from the parsed plan file."""
    content = {k: v for k, v in body.items() if k not in _NOT_DIGESTED}
    hasher = hashlib.sha256()
    for piece in _canonical(content):
        hasher.update(piece.encode())
    return "sha256:" + hasher.hexdigest()


class StreamingDigest:
    """digest(body), worked out while a writer takes body["changes"] chunk by chunk.

    The changes are the costly part of a plan to produce (ChangeView derives them again on
    each pass), so they are hashed as they are written instead of in a pass of their own;
    the keys before them in the canonical (sorted) order are hashed first, the rest at the end.
    """

    def __init__(self, body: Mapping[str, Any]) -> None:
        self._body = {k: v for k, v in body.items() if k not in _NOT_DIGESTED}
        keys = sorted(self._body)
        at = keys.index("changes")
        self._after = keys[at + 1 :]
        self._hasher = hashlib.sha256(b"{")
        for key in keys[:at]:
            self._member(key)
            self._hasher.update(b",")
        self._hasher.update(b'"changes":[')
        self._hashed = False
        self._digest: str | None = None

    def _member(self, key: str) -> None:
        self._hasher.update((_CANONICAL.encode(key) + ":").encode())
        for piece in _canonical(self._body[key]):
            self._hasher.update(piece.encode())

    def changes(self) -> Iterator[list[Any]]:
        """The chunks of body["changes"] (once), hashed as they go."""
        assert not self._hashed
        self._hashed = True
        first = True
        for chunk in self._body["changes"].chunks():
            text = _CANONICAL.encode(chunk)[1:-1]
            self._hasher.update((text if first else "," + text).encode())
            first = False
            yield chunk
        self._hasher.update(b"]")

    def hexdigest(self) -> str:
        """The plan digest; takes the changes first if no writer did."""
        if self._digest is None:
            if not self._hashed:
                for _ in self.changes():
                    pass
            for key in self._after:
                self._hasher.update(b",")
                self._member(key)
            self._hasher.update(b"}")
            self._digest = "sha256:" + self._hasher.hexdigest()
        return self._digest


def section_content(
    plan: Plan,
    batch_size: int | None = None,
    with_digest: bool = True,
    bound: Bound | None = None,
) -> dict[str, Any]:
    """`plan`'s plan-file content (docs/plan-format.md, format 1: a team's section of format 2
    is this but for its version and plan id) without created_at, with plan_digest
    (unless `with_digest` is False: see StreamingDigest). `bound` names where the plan is
    for: a plan file without it cannot be applied (its team id, journal location and plan id
    are not known).

    `batch_size`, when given, is the size the operations were batched with: apply
    batches the plan's changes again with it and requires the same operations
    (docs/trust.md). The long lists are LazyLists: a plan of 100k incidents never holds
    all its JSON objects at once.
    """
    body: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        **({"plan_id": bound.plan_id, "team_id": bound.team_id} if bound else {}),
        "journal": {
            **({"location": bound.location} if bound else {}),
            "lineage": plan.lineage,
            "serial": plan.serial,
        },
        **({"batch_size": batch_size} if batch_size is not None else {}),
        "inputs_digest": plan.inputs_digest,
        "changes": LazyList(plan.changes, Change.to_json),
        "forget": list(plan.forget),
        # Only when there are such forgets: every other plan file stays as it was.
        **({"forget_left_rule": dict(sorted(plan.left_rule.items()))} if plan.left_rule else {}),
        "unmanaged": LazyList(plan.unmanaged, _unmanaged_json),
        "operations": LazyList(plan.operations, Operation.to_json),
        "summary": plan.summary(),
        "drift": LazyList(plan.drift, Drift.to_json),
        "refresh": {cid: dict(fields) for cid, fields in sorted(plan.live_values.items())},
        "unsafe": plan.unsafe,
        "warnings": list(plan.warnings),
        # Only with approval rules: every other plan file stays as it was.
        **({"approvals": [n.to_json() for n in plan.approvals]} if plan.approvals else {}),
    }
    if with_digest:
        body["plan_digest"] = digest(body)
    return body
