"""Properties of drift handling (docs/drift.md), over real HTTP against the sandbox, with
generated state files and generated changes behind the tool's back:

- after `apply --refresh` with only revert policies, `drift` reports nothing;
- after `accept`, `drift` reports nothing for the accepted fields and a plain plan is empty;
- `drift` never writes: the journal's bytes are the same and Spike got no call but reads.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from helpers import KEY, TEAM, HandClock, env, write_states
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config import ALL_REVERT
from reconciler.sandbox import SandboxServer
from reconciler.usecases.accept import AcceptRequest, run_accept
from reconciler.usecases.apply import ApplyRequest, run_apply
from reconciler.usecases.drift import DriftRequest, run_drift
from reconciler.usecases.plan import PlanRequest, run_plan

IDS = ["1", "116", "a-1", "b-2", "c-3", "prim-122"]
OPEN = {"triggered": "NACK", "acknowledged": "ACK"}
PRIORITY = st.sampled_from([None, "p1", "p2", "p5"])
SEVERITY = st.sampled_from([None, "sev1", "sev3"])
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Incidents = dict[str, dict[str, Any]]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Incidents, Incidents]:
    """(desired states of open incidents, changes made in the dashboard after an apply).

    Statuses stay open: a resolve behind the tool's back cannot be reverted (resolved is
    terminal), which the planner refuses on its own terms."""
    desired: Incidents = {}
    changes: Incidents = {}
    for cid in draw(st.lists(st.sampled_from(IDS), min_size=1, unique=True)):
        fields: dict[str, Any] = {}
        if draw(st.booleans()):
            fields["status"] = draw(st.sampled_from(sorted(OPEN)))
        if draw(st.booleans()):
            fields["priority"] = draw(PRIORITY)
        if draw(st.booleans()):
            fields["severity"] = draw(SEVERITY)
        desired[cid] = fields
        change: dict[str, Any] = {}
        if draw(st.booleans()):
            change["status"] = draw(st.sampled_from(sorted(OPEN.values())))
        if draw(st.booleans()):
            change["priority"] = draw(PRIORITY)
        if draw(st.booleans()):
            change["severity"] = draw(SEVERITY)
        if change:
            changes[cid] = change
    return desired, changes


class Repo(NamedTuple):
    server: SandboxServer
    states: Path
    journal: Path

    def apply(self, refresh: bool = False) -> None:
        request = ApplyRequest(
            paths=[str(self.states)],
            journal_location=str(self.journal),
            refresh=refresh,
            force=True,
        )
        outcome = run_apply([request], confirm=lambda _made: True)
        assert not outcome.failed

    def drift(self, **policy: str) -> Any:
        return run_drift(
            [DriftRequest([str(self.states)], str(self.journal), 4, {**ALL_REVERT, **policy})]
        )


@contextlib.contextmanager
def applied(desired: Incidents, changes: Incidents) -> Iterator[Repo]:
    """`desired` applied to a sandbox, then `changes` made behind the tool's back."""
    with tempfile.TemporaryDirectory() as tmp:
        states, journal = Path(tmp) / "states", Path(tmp) / "journal.jsonl"
        write_states(states, desired)
        seed: Incidents = {cid: {} for cid in desired}
        with (
            SandboxServer(seed, api_key=KEY, team_id=TEAM, clock=HandClock()) as server,
            env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
        ):
            repo = Repo(server, states, journal)
            repo.apply()
            server.set_incidents(changes)
            server.clear_calls()
            yield repo


@PROPERTY
@given(scenarios())
def test_after_self_heal_with_revert_policies_there_is_no_drift(
    case: tuple[Incidents, Incidents],
) -> None:
    with applied(*case) as repo:
        repo.apply(refresh=True)
        assert repo.drift().entries == []
        # Everything reverted was recorded: a plain plan has nothing to do either.
        plain = run_plan([PlanRequest([str(repo.states)], str(repo.journal))]).only
        assert not plain.plan.has_changes


@PROPERTY
@given(scenarios(), st.sampled_from(["status", "priority", "severity"]))
def test_after_accept_there_is_no_drift_in_accepted_fields_and_a_plain_plan_is_empty(
    case: tuple[Incidents, Incidents], accepted: str
) -> None:
    desired, changes = case
    with applied(desired, changes) as repo:
        before = repo.drift(**{accepted: "accept"}).entries
        (outcome,) = run_accept(
            [
                AcceptRequest(
                    [str(repo.states)],
                    str(repo.journal),
                    drift_policy={**ALL_REVERT, accepted: "accept"},
                )
            ]
        )
        taken = {(e.incident, e.field) for entries in outcome.files.values() for e in entries}
        assert taken == {(e.incident, e.field) for e in before if e.field == accepted}
        after = repo.drift(**{accepted: "accept"}).entries
        assert [e for e in after if e.field == accepted] == []
        # The other fields' drift is left as it was.
        assert after == [e for e in before if e.field != accepted]
        assert not run_plan([PlanRequest([str(repo.states)], str(repo.journal))]).has_changes


@PROPERTY
@given(scenarios(), st.lists(st.sampled_from(IDS), unique=True))
def test_drift_never_writes(case: tuple[Incidents, Incidents], deleted: list[str]) -> None:
    desired, changes = case
    with applied(desired, changes) as repo:
        gone = [cid for cid in deleted if cid in desired]
        repo.server.set_incidents(dict.fromkeys(gone))
        journal = repo.journal.read_bytes()
        files = {p: p.read_bytes() for p in repo.states.rglob("*")}
        report = repo.drift(status="warn", priority="accept")
        assert report.missing == len(gone)
        assert repo.journal.read_bytes() == journal
        assert {p: p.read_bytes() for p in repo.states.rglob("*")} == files
        assert {c["method"] for c in repo.server.calls} <= {"GET"}
