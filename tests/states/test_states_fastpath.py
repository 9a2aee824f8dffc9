"""The fast path of `states.load` (plain checks instead of pydantic, for files that are plainly
valid) must accept exactly what the StateFile model accepts and read it the same way; on
anything else it must defer, so that the model reports the problems as it always did."""

from __future__ import annotations

import io
import json
from typing import Any

from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.planfile import section_content
from reconciler.states.fastpath import _valid_incidents
from reconciler.states.loader import _load_file
from reconciler.states.schema import models

IDS = st.sampled_from(
    ["a", "prim-122", "116", "svc-1", "A-b-9", "a" * 64, "a" * 65, "a--b", "-a", "a b", "é", ""]
)
VALUES: st.SearchStrategy[Any] = st.sampled_from(
    [
        "triggered", "acknowledged", "resolved", "closed", "p1", "p5", "p6", "sev1", "sev3",
        "sev4", None, True, False, 0, 1, 3, 100, 101, -1, 1.0, 2.5, "true", "1", [], {}, ["p1"],
    ]
)  # fmt: skip
NAMES = st.sampled_from(
    ["status", "priority", "severity", "public_sharing", "escalations", "priorty", "owner"]
)
SPECS = st.one_of(
    st.none(),
    st.dictionaries(NAMES, VALUES, max_size=6),
    st.sampled_from(["resolved", 1, [], True]),
)
INCIDENTS = st.one_of(
    st.dictionaries(IDS, SPECS, max_size=6),
    st.sampled_from([None, [], "x", 0]),
)


@st.composite
def documents(draw: st.DrawFn) -> dict[Any, Any]:
    doc: dict[Any, Any] = {}
    if draw(st.booleans()):
        doc["version"] = draw(st.sampled_from([1, 1, 2, True, 1.0, "1", None]))
    if draw(st.integers(0, 9)):
        doc["incidents"] = draw(INCIDENTS)
    if not draw(st.integers(0, 9)):
        doc[draw(st.sampled_from(["incident", "extra", 1]))] = draw(VALUES)
    return doc


def items(incidents: dict[str, Any] | None) -> Any:
    """Incidents with their order and their fields' order, which dict equality ignores."""
    if incidents is None:
        return None
    return [(cid, None if spec is None else list(spec.items())) for cid, spec in incidents.items()]


@settings(max_examples=examples(3000), deadline=None)
@given(documents())
def test_the_fast_path_reads_what_the_model_reads(doc: dict[Any, Any]) -> None:
    from pydantic import ValidationError

    fast = _valid_incidents(doc)
    try:
        model = models()[1].validate_python(doc)
    except ValidationError:
        assert fast is None  # the model refuses it: the fast path must not accept it
        return
    if fast is not None:
        assert items(fast) == items(model.incidents or {})


@settings(max_examples=examples(300), deadline=None)
@given(documents(), st.booleans())
def test_a_file_loads_the_same_with_and_without_the_fast_path(
    doc: dict[Any, Any], block: bool
) -> None:
    if block:
        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = False
        out = io.BytesIO()
        yaml.dump(doc, out)
        text = out.getvalue().decode()
    else:
        text = json.dumps(doc)  # JSON is YAML in flow style
    fast = _load_file("s.yaml", text.encode(), fast=True)
    slow = _load_file("s.yaml", text.encode(), fast=False)
    assert fast.problems == slow.problems
    assert items(fast.data) == items(slow.data)


def test_the_usual_shapes_take_the_fast_path() -> None:
    doc = {
        "version": 1,
        "incidents": {
            "a": {"priority": "p1", "status": "resolved"},
            "116": None,
            "b": {},
            "c": {"public_sharing": True, "escalations": 100, "severity": None},
        },
    }
    assert items(_valid_incidents(doc)) == [
        ("a", [("status", "resolved"), ("priority", "p1")]),
        ("116", None),
        ("b", []),
        ("c", [("severity", None), ("public_sharing", True), ("escalations", 100)]),
    ]
    assert _valid_incidents({}) == {}
    assert _valid_incidents({"incidents": None}) == {}


KEYS = st.sampled_from(["a", "b", "116", "0116", "1_0", "true", "null", "~", '"a"', "'116'", "<<"])
SCALARS = st.sampled_from(
    [
        "resolved", "p1", "sev2", "true", "yes", "null", "~", "3", "0x10", "1_000", "1.5",
        "!!int 3", "!!int pay-1", "!!bool x", "!!bool true", "!!str 3", "!!null x", "!!float 1",
        '"p1"', "'3'", "2026-01-01", "*x",
    ]
)  # fmt: skip


@st.composite
def texts(draw: st.DrawFn) -> str:
    """State files in YAML's own spelling: tags, duplicates, quoted and numeric keys,
    merges and aliases, which the plain constructor must either read like the generic one
    or leave to it."""
    lines = ["base: &x {status: resolved}"] if draw(st.booleans()) else []
    lines.append("incidents:")
    for _ in range(draw(st.integers(0, 4))):
        fields = draw(st.lists(st.tuples(NAMES | KEYS, SCALARS), max_size=4))
        body = ", ".join(f"{k}: {v}" for k, v in fields)
        lines.append(f"  {draw(KEYS | IDS.filter(bool))}: {{{body}}}")
    return "\n".join(lines) + "\n"


@settings(max_examples=examples(1000), deadline=None)
@given(texts())
def test_yaml_spellings_load_the_same_with_and_without_the_fast_path(text: str) -> None:
    fast = _load_file("s.yaml", text.encode(), fast=True)
    slow = _load_file("s.yaml", text.encode(), fast=False)
    assert fast.problems == slow.problems
    assert items(fast.data) == items(slow.data)


# The plan JSON is written in one pass: the digest of its changes is worked out while they
# are written. It must be the digest of the whole content, as `apply` recomputes it.
FIELD_VALUES = {
    "status": st.sampled_from(["triggered", "acknowledged", "resolved"]),
    "priority": st.sampled_from(["p1", "p3", None]),
    "severity": st.sampled_from(["sev1", None]),
    "public_sharing": st.booleans(),
    "escalations": st.integers(0, 2),
}
STATE = st.dictionaries(
    st.sampled_from([f"i-{n}" for n in range(12)]),
    st.fixed_dictionaries({}, optional=FIELD_VALUES),
    max_size=12,
)


@settings(max_examples=examples(300), deadline=None)
@given(STATE, STATE, st.integers(1, 3))
def test_the_one_pass_plan_json_carries_the_whole_digest(
    desired: dict[str, Any], journal: dict[str, Any], batch: int
) -> None:
    from helpers import BOUND, plan, plan_json

    from reconciler.errors import PlanError
    from reconciler.planfile import digest

    try:
        made = plan(desired, journal, lineage="l", serial=3, batch_size=batch)
    except PlanError:
        return
    written = json.loads(plan_json(made, "2026-01-01T00:00:00Z"))
    content = section_content(made, bound=BOUND)
    assert written["plan_digest"] == digest(written) == content["plan_digest"]
    assert list(written) == ["format_version", "created_at", *list(content)[1:]]
