"""Rules: desired fields for every open incident that matches a filter (docs/rules.md).

A rule is written under `rules:` in a state file (states/loader.py reads it); its candidates
are the team's open incidents as Spike lists them (spike/live.py reads them). `expand` turns
rules and candidates into desired fields per incident, with the rule behind each field, for
the planner. Pure: no I/O, no clock (the caller passes `now`), no randomness; only the title
searches are metered, in CPU time, as a guard (TitleSearches).

The guards, all here: a rule only ever matches open incidents (triggered or acknowledged),
never makes an incident page public and never escalates (the loader refuses such a rule; the
Rule type refuses it again); explicit `incidents:` entries win field by field; two rules
setting one field of one incident differently, a rule matching more incidents than its
`max_matches`, and a title pattern over its time limit or budget, are errors (RuleError)
listing every problem, raised before any call.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import regex

from .errors import RuleError
from .model import IncidentMap, Value

#: Rule names: lower-case letters and digits in hyphen-joined groups (docs/state-files.md).
RULE_NAME_PATTERN = r"[a-z0-9]+(?:-[a-z0-9]+)*"
RULE_NAME_MAX = 64
#: `older_than`: a whole number of days or hours.
AGE_PATTERN = r"[0-9]{1,6}[dh]"
DEFAULT_MAX_MATCHES = 100
#: Seconds a title pattern may take on one incident's title. Titles come from alert payloads:
#: a pattern with nested repetition can take exponential time on one of them, and Python's
#: own `re` cannot be stopped (not even by a signal); the `regex` module can.
TITLE_TIMEOUT = 0.1
#: CPU seconds the title searches of one rule may take over all its candidates, in one
#: evaluation: a pattern under TITLE_TIMEOUT on each title can still add up over thousands.
TITLE_BUDGET = 1.0
#: The largest `max_matches` a file may give (a guard, not a target).
MAX_MATCHES_LIMIT = 1_000_000
#: The statuses a rule may match: it never touches a resolved incident.
OPEN_STATUSES: tuple[str, ...] = ("triggered", "acknowledged")
#: The fields a rule may set: never public sharing true, never escalations.
SET_FIELDS: tuple[str, ...] = ("status", "priority", "severity", "public_sharing")
#: The fields of a candidate that an open-incident list may leave out.
OPTIONAL_FIELDS: tuple[str, ...] = ("priority", "severity")

_RULE_NAME = re.compile(RULE_NAME_PATTERN)
_AGE = re.compile(AGE_PATTERN)
_AGE_UNITS = {"d": 86400, "h": 3600}


def is_rule_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= RULE_NAME_MAX
        and _RULE_NAME.fullmatch(value) is not None
    )


def age_seconds(text: str) -> int:
    """`14d` / `12h` as seconds; ValueError for anything else."""
    if _AGE.fullmatch(text) is None:
        raise ValueError(f"an age is a whole number of days or hours (14d, 12h), not {text!r}")
    return int(text[:-1]) * _AGE_UNITS[text[-1]]


class Unknown:
    """A field an open-incident list did not report: read the incident to know it."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = Unknown()


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a state file. `title` is a regular expression searched in the title."""

    name: str
    source: str
    statuses: frozenset[str]
    set: Mapping[str, Value]
    older_than: int | None = None  # seconds since the incident was triggered
    priority: frozenset[Value] | None = None
    severity: frozenset[Value] | None = None
    title: str | None = None
    max_matches: int = DEFAULT_MAX_MATCHES
    #: `title` compiled once (a rule is matched against every open incident).
    pattern: regex.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The loader refuses all of these with a position; this is the last line of defence.
        if not is_rule_name(self.name):
            raise ValueError(f"invalid rule name {self.name!r}")
        if not self.statuses or not self.statuses <= set(OPEN_STATUSES):
            raise ValueError(f"rule {self.name}: matches open statuses only")
        if not self.set or not set(self.set) <= set(SET_FIELDS):
            raise ValueError(f"rule {self.name}: sets status, priority, severity, sharing off")
        if "public_sharing" in self.set and self.set["public_sharing"] is not False:
            raise ValueError(f"rule {self.name}: never makes an incident page public")
        if self.max_matches < 1:
            raise ValueError(f"rule {self.name}: max_matches must be at least 1")
        compiled = None
        if self.title is not None:
            import regex  # here: a plan of files without a title pattern never needs it

            compiled = regex.compile(self.title)
        object.__setattr__(self, "pattern", compiled)

    def needs(self) -> tuple[str, ...]:
        """The optional candidate fields this rule's match reads."""
        return tuple(
            name
            for name, wanted in (("priority", self.priority), ("severity", self.severity))
            if wanted is not None
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """One open incident as listed by Spike: its counter id, status (triggered or
    acknowledged), title, when it was triggered (epoch seconds), and its priority and
    severity, UNKNOWN when the list left them out (None: it has none)."""

    counter_id: str
    status: str
    title: str | None = None
    created: float | None = None
    priority: Value | Unknown = UNKNOWN
    severity: Value | Unknown = UNKNOWN

    def value(self, name: str) -> Value | Unknown:
        if name == "status":
            return self.status
        if name == "priority":
            return self.priority
        if name == "severity":
            return self.severity
        return UNKNOWN

    def live(self) -> dict[str, Value]:
        """The fields this listing tells for sure (status, and priority/severity if given)."""
        out: dict[str, Value] = {"status": self.status}
        for name in OPTIONAL_FIELDS:
            value = self.value(name)
            if not isinstance(value, Unknown):
                out[name] = value
        return out


class TitleSearches:
    """The title searches of one evaluation, metered: each search is stopped after `limit`
    seconds, and the searches of one rule over all candidates share `budget` seconds of CPU
    (`meter`). Each outcome is remembered, so the passes over the candidates (`undecided`,
    then `expand`) search each title once, and match each candidate they share once
    (`decided`: a candidate read again since is a new one, matched again)."""

    def __init__(
        self,
        budget: float = TITLE_BUDGET,
        limit: float = TITLE_TIMEOUT,
        meter: Callable[[], float] = time.process_time,
    ) -> None:
        self.budget = budget
        self.limit = limit
        self._meter = meter
        self._spent: dict[str, float] = {}
        self._found: dict[tuple[str, str, str], bool] = {}
        #: (rule, counter id) -> the candidate matched, at what time, and the decision.
        self._decided: dict[tuple[str, str], tuple[Candidate, float, bool | None]] = {}

    def decided(self, rule: Rule, candidate: Candidate, now: float) -> bool | None:
        """`_known_match`, once per rule, candidate and time. Raises as it does (a problem
        is not remembered: the evaluation stops on it)."""
        key = (rule.name, candidate.counter_id)
        hit = self._decided.get(key)
        if hit is not None and hit[0] is candidate and hit[1] == now:
            return hit[2]
        decision = _known_match(rule, candidate, now, self)
        self._decided[key] = (candidate, now, decision)
        return decision

    def found(self, rule: Rule, candidate: Candidate, title: str) -> bool:
        """Whether `rule`'s pattern is found in `title` (the candidate's). Raises
        _Undecidable naming the incident when one search takes over the limit, and
        _OverBudget when the rule's searches together took over the budget."""
        assert rule.pattern is not None
        key = (rule.name, candidate.counter_id, title)
        if key in self._found:
            return self._found[key]
        if self._spent.get(rule.name, 0.0) > self.budget:
            raise _OverBudget(rule, self.budget)
        start = self._meter()
        try:
            found = rule.pattern.search(title, timeout=self.limit) is not None
        except TimeoutError:
            raise _Undecidable(
                f"incident {candidate.counter_id}: rule {rule.name}: its title pattern took "
                f"more than {self.limit:g} s on the incident's title; simplify it (nested "
                "repetition such as (a+)+ can take exponential time)"
            ) from None
        finally:
            self._spent[rule.name] = self._spent.get(rule.name, 0.0) + self._meter() - start
        if self._spent[rule.name] > self.budget:
            raise _OverBudget(rule, self.budget)
        self._found[key] = found
        return found


def _known_match(
    rule: Rule, candidate: Candidate, now: float, searches: TitleSearches
) -> bool | None:
    """Whether `rule` matches `candidate`: True, False, or None when the known fields pass
    and an unknown one decides. Raises _Undecidable (the problem as its message)."""
    if candidate.status not in OPEN_STATUSES or candidate.status not in rule.statuses:
        return False
    if rule.older_than is not None:
        if candidate.created is None:
            raise _Missing(candidate.counter_id, rule.name, "its trigger time (NACK_at)")
        if now - candidate.created <= rule.older_than:
            return False
    if rule.pattern is not None:
        if candidate.title is None:
            raise _Missing(candidate.counter_id, rule.name, "its title")
        if not searches.found(rule, candidate, candidate.title):
            return False
    undecided = False
    for name, wanted in (("priority", rule.priority), ("severity", rule.severity)):
        if wanted is None:
            continue
        value = candidate.value(name)
        if isinstance(value, Unknown):
            undecided = True
        elif value not in wanted:
            return False
    return None if undecided else True


class _Undecidable(Exception):
    """A rule cannot say whether it matches a candidate: the problem says why."""


class _OverBudget(_Undecidable):
    """A rule's title searches together took more than their budget: the rule is stopped."""

    def __init__(self, rule: Rule, budget: float) -> None:
        super().__init__(
            f"{rule.source}: rule {rule.name}: its title pattern took more than {budget:g} s "
            "of CPU over the open incidents' titles; simplify it (nested repetition such as "
            "(a+)+ can take exponential time); nothing was planned"
        )


class _Missing(_Undecidable):
    def __init__(self, counter_id: str, rule: str, what: str) -> None:
        super().__init__(
            f"incident {counter_id}: rule {rule} matches on {what}, which Spike did not report"
        )


def undecided(
    rules: Sequence[Rule],
    candidates: Iterable[Candidate],
    now: float,
    searches: TitleSearches | None = None,
) -> list[str]:
    """The candidates some rule can only match or not once their missing priority or
    severity is read (GET /incidents/{counterId}), sorted. Empty when the list carried every
    field a rule reads. Raises RuleError when a candidate lacks a title or trigger time a
    rule needs (reading the incident would not tell it either), or a title pattern takes
    over its limit or budget (`searches`: pass the same to `expand`, which then searches no
    title again)."""
    searches = searches or TitleSearches()
    out: list[str] = []
    problems: list[str] = []
    for candidate in candidates:
        for rule in rules:
            try:
                decided = searches.decided(rule, candidate, now)
            except _Undecidable as exc:
                problems.append(str(exc))
                continue
            if decided is None:
                out.append(candidate.counter_id)
                break
    if problems:
        raise RuleError(sorted(set(problems)))
    return sorted(set(out))


@dataclass
class Expansion:
    """What rules make of the open incidents: desired fields per incident and the rule
    behind each field (explicit entries' fields left out: they win)."""

    #: counter id -> field -> value, for fields no explicit entry holds.
    incidents: IncidentMap = field(default_factory=dict)
    #: counter id -> field -> the rule that set it.
    rules: dict[str, dict[str, str]] = field(default_factory=dict)
    #: counter id -> the file of the (first, by name) rule that matched it.
    sources: dict[str, str] = field(default_factory=dict)
    #: rule name -> the ids it matched, sorted (explicit entries included).
    matches: dict[str, list[str]] = field(default_factory=dict)

    def merged(self, explicit: IncidentMap) -> IncidentMap:
        """The explicit entries with the rules' fields added where they hold none."""
        out = dict(explicit)
        for cid, fields in self.incidents.items():
            out[cid] = {**fields, **explicit.get(cid, {})}
        return out

    def owners(self) -> dict[str, str]:
        """counter id -> the rule named in the journal for it (the first by name)."""
        return {cid: min(by_field.values()) for cid, by_field in self.rules.items()}


def expand(
    rules: Sequence[Rule],
    candidates: Iterable[Candidate],
    explicit: Mapping[str, Mapping[str, Value]],
    now: float,
    searches: TitleSearches | None = None,
) -> Expansion:
    """Desired fields for every candidate a rule matches (docs/rules.md, Precedence).

    Every candidate field a rule's match reads must be known (see `undecided`). Raises
    RuleError listing every problem: a rule over its max_matches (with the count), two
    rules setting one field of one incident to different values (both named), a field a
    rule needs that the candidate lacks, a title pattern over its per-title limit (the
    incident named) or its rule's budget (`searches`, TitleSearches).
    """
    searches = searches or TitleSearches()
    ordered = sorted(rules, key=lambda r: r.name)
    pool = {c.counter_id: c for c in candidates}
    problems: list[str] = []
    result = Expansion()
    # counter id -> field -> (value, rule)
    wanted: dict[str, dict[str, tuple[Value, Rule]]] = {}
    for rule in ordered:
        matched: list[str] = []
        for cid in sorted(pool):
            try:
                decided = searches.decided(rule, pool[cid], now)
            except _OverBudget as exc:
                problems.append(str(exc))
                break  # the rest of this rule's candidates would only add to it
            except _Undecidable as exc:
                problems.append(str(exc))
                continue
            if decided is None:
                problems.append(
                    f"incident {cid}: rule {rule.name} matches on "
                    f"{' and '.join(rule.needs())}, which Spike did not report"
                )
            elif decided:
                matched.append(cid)
        result.matches[rule.name] = matched
        if len(matched) > rule.max_matches:
            problems.append(
                f"{rule.source}: rule {rule.name} matches {len(matched)} open incidents, more "
                f"than its max_matches of {rule.max_matches}; nothing was planned"
            )
            continue
        for cid in matched:
            holds = explicit.get(cid, {})
            fields = wanted.setdefault(cid, {})
            for name, value in rule.set.items():
                if name in holds:
                    continue  # the explicit entry wins
                if name in fields and fields[name][0] != value:
                    first, first_rule = fields[name]
                    problems.append(
                        f"incident {cid}: rules {first_rule.name} ({first_rule.source}) and "
                        f"{rule.name} ({rule.source}) set {name} to {_shown(first)} and "
                        f"{_shown(value)}"
                    )
                    continue
                fields.setdefault(name, (value, rule))
            result.sources.setdefault(cid, rule.source)
    if problems:
        raise RuleError(sorted(set(problems)))
    for cid in sorted(wanted):
        if wanted[cid]:
            result.incidents[cid] = {name: value for name, (value, _) in wanted[cid].items()}
            result.rules[cid] = {name: rule.name for name, (_, rule) in wanted[cid].items()}
    result.sources = {cid: src for cid, src in result.sources.items() if cid in result.incidents}
    return result


def _shown(value: Value) -> str:
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def not_evaluated(rules: Sequence[Rule]) -> list[str]:
    """One note per rule for a plan that does not read live data (plan without --refresh)."""
    return [
        f"rule {rule.name} ({rule.source}) was not evaluated: rules need Spike's open "
        "incidents (plan --refresh, apply)"
        for rule in sorted(rules, key=lambda r: r.name)
    ]
