"""Plan files: the only reader and writer of them (format, digest, signature, checks).

A plan file is untrusted input: it may come from a CI artifact that anyone who can push a
branch can influence. Reading one checks, in order (docs/trust.md):

1. its syntax: JSON no deeper than jsontext allows, the format version, every key's type;
2. its `plan_digest`, which catches accidents (an edited or truncated file), not intent;
3. its `signature` (HMAC-SHA256 with RECONCILE_PLAN_KEY), when a key is set;
4. every operation against the endpoint table (endpoints.parse_operation).

Before the journal is opened, `check_made_for` checks that it was made for this team and this
journal location; then, under the journal's lock, `verify` checks it against the journal it
names: the same lineage, a plan id the journal has not applied yet, every `before` is the
journal's value, forget and unmanaged name what the journal has, and the
operations are exactly what the planner makes of the plan's own changes. Live values it
carries are facts to record, so the caller reads them again from Spike first (`stale_live`).

The package: content.py (formats, sections, digest, signature), write.py, read.py and
verify.py; every name below is imported from here.
"""

from __future__ import annotations

from .content import (
    FORMAT_VERSION,
    KEY_ENV,
    LAZY_CHUNK,
    MIN_KEY_LENGTH,
    SIGNATURE_SCHEME,
    TEAMS_FORMAT_VERSION,
    Bound,
    LazyList,
    StreamingDigest,
    digest,
    plan_key,
    section_content,
    sign,
)
from .read import (
    SavedPlan,
    SavedTeam,
    SavedTeamsPlan,
    one_team,
    read_plan_file,
    read_saved_plan,
    section_plan,
)
from .verify import (
    Verified,
    check_journal,
    check_made_for,
    check_signature,
    stale_live,
    verify,
)
from .write import (
    PlanToWrite,
    ProjectPlanToWrite,
    TeamPlanToWrite,
    atomic_write,
    write_plan,
    write_plan_json,
    write_plan_text,
)

__all__ = [
    "FORMAT_VERSION",
    "KEY_ENV",
    "LAZY_CHUNK",
    "MIN_KEY_LENGTH",
    "SIGNATURE_SCHEME",
    "TEAMS_FORMAT_VERSION",
    "Bound",
    "LazyList",
    "PlanToWrite",
    "ProjectPlanToWrite",
    "SavedPlan",
    "SavedTeam",
    "SavedTeamsPlan",
    "StreamingDigest",
    "TeamPlanToWrite",
    "Verified",
    "atomic_write",
    "check_journal",
    "check_made_for",
    "check_signature",
    "digest",
    "one_team",
    "plan_key",
    "read_plan_file",
    "read_saved_plan",
    "section_content",
    "section_plan",
    "sign",
    "stale_live",
    "verify",
    "write_plan",
    "write_plan_json",
    "write_plan_text",
]
