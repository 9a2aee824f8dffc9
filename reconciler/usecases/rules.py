"""Evaluating rules: read the team's open incidents from Spike, read again the few whose
missing priority or severity a rule's match needs, and expand the rules over them
(docs/rules.md). The plan, apply and drift use cases call `evaluate_rules` once per team, with
that team's rules, state-file entries and Spike configuration.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..journal.records import Recorded
from ..model import Change, Fields, IncidentMap, Value
from ..planner import Plan
from ..rules import (
    TITLE_BUDGET,
    Candidate,
    Expansion,
    Rule,
    TitleSearches,
    expand,
    not_evaluated,
    undecided,
)

if TYPE_CHECKING:
    from ..spike.client import SpikeConfig
    from ..states.loader import DesiredState


@dataclass
class Evaluation:
    """Rules evaluated against Spike's open incidents."""

    expansion: Expansion
    #: The open incidents as listed (and completed), by counter id.
    candidates: dict[str, Candidate] = field(default_factory=dict)
    #: How many incidents were read one by one (GET /incidents/{counterId}).
    reads: int = 0

    def desired(self, explicit: IncidentMap) -> IncidentMap:
        """The state files' entries with the rules' fields added where an entry holds none."""
        return self.expansion.merged(explicit)

    def live(self, explicit: Mapping[str, Fields]) -> dict[str, Fields]:
        """The live values the listing gave for rule-expanded incidents no entry names (those
        an entry names are read as every managed incident is, by --refresh)."""
        return {
            cid: self.candidates[cid].live()
            for cid in self.expansion.incidents
            if cid not in explicit and cid in self.candidates
        }


def evaluate_rules(
    rules: Sequence[Rule],
    explicit: Mapping[str, Mapping[str, Value]],
    parallelism: int,
    *,
    config: SpikeConfig | None = None,
    now: float | None = None,
    title_budget: float = TITLE_BUDGET,
) -> Evaluation:
    """List the open incidents (spike.live.list_open), complete the undecided ones
    (spike.live.complete), expand. Raises RuleError (guards, conflicts, a title pattern over
    its limit or its rule's `title_budget` of CPU seconds), LiveStateError (a list answer not
    understood) or ApiError, always before any call that changes anything. `config`
    defaults to the environment's (SPIKE_API_KEY, SPIKE_TEAM_ID)."""
    import asyncio

    from ..spike.client import SpikeClient, SpikeConfig
    from ..spike.live import complete, list_open

    spike = config or SpikeConfig.from_env()
    moment = time.time() if now is None else now
    # One meter for both passes: a rule's budget covers all its searches, each title once.
    searches = TitleSearches(title_budget)

    async def read() -> tuple[list[Candidate], int]:
        async with SpikeClient(spike, parallelism=parallelism) as client:
            listed = await list_open(client)
            ids = undecided(rules, listed, moment, searches)
            return await complete(client, listed, ids), len(ids)

    candidates, reads = asyncio.run(read())
    expansion = expand(rules, candidates, explicit, moment, searches)
    return Evaluation(expansion, {c.counter_id: c for c in candidates}, reads)


def owners_of_changes(rules: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """counter id -> the rule the journal names for it (the first by name of its fields')."""
    return {cid: min(by_field.values()) for cid, by_field in rules.items() if by_field}


@dataclass
class RulesInPlan:
    """What a team's rules add to one plan: evaluated, the expanded incidents, their rules
    and the live values listed for them; not evaluated, one note per rule and the journaled
    incidents a rule put there, never forgotten by this plan."""

    evaluation: Evaluation | None = None
    notes: list[str] = field(default_factory=list)
    keep: set[str] = field(default_factory=set)

    @classmethod
    def make(
        cls,
        desired: DesiredState,
        state: Recorded,
        *,
        evaluate: bool,
        parallelism: int,
        config: SpikeConfig | None = None,
    ) -> RulesInPlan:
        """`config`: the team's Spike settings (None: SPIKE_API_KEY and SPIKE_TEAM_ID)."""
        if not desired.rules:
            return cls()
        if evaluate:
            return cls(evaluate_rules(desired.rules, desired.incidents, parallelism, config=config))
        return cls(notes=not_evaluated(desired.rules), keep=set(state.rules))

    def desired(self, desired: DesiredState) -> IncidentMap:
        if self.evaluation is None:
            return desired.incidents
        return self.evaluation.desired(desired.incidents)

    def sources(self, desired: DesiredState) -> dict[str, str]:
        if self.evaluation is None:
            return desired.sources
        return {**self.evaluation.expansion.sources, **desired.sources}

    def live(
        self, desired: DesiredState, live: dict[str, Fields] | None
    ) -> dict[str, Fields] | None:
        """`live` (read by --refresh) with the listed values of rule-only incidents."""
        if self.evaluation is None:
            return live
        listed = self.evaluation.live(desired.incidents)
        return {**listed, **(live or {})} if listed or live else live

    def planner_arguments(self) -> dict[str, Any]:
        rules = {} if self.evaluation is None else self.evaluation.expansion.rules
        return {"rules": rules, "keep": self.keep}

    def settle(self, plan: Plan, desired: DesiredState, state: Recorded) -> None:
        """Leave out of the values to record the listed values of rule-only incidents that
        need no change and are not journaled: recording them would journal an incident the
        apply does nothing to (and would forget again when its rule stops matching)."""
        if self.evaluation is None or not plan.live_values:
            return
        changed = {change.incident for change in plan.changes}
        for cid in self.evaluation.expansion.incidents:
            if cid not in desired.incidents and cid not in changed and cid not in state.incidents:
                plan.live_values.pop(cid, None)


def rules_of_changes(changes: Iterable[Change]) -> dict[str, dict[str, str]]:
    """counter id -> field -> rule, from a (saved) plan's changes."""
    out: dict[str, dict[str, str]] = {}
    for change in changes:
        if change.rule is not None:
            out.setdefault(change.incident, {})[change.field] = change.rule
    return out
