"""`reconcile accept` keeps every comment (docs/drift.md, Accepting live values): the files
fmt's properties generate, with live values accepted into some of their fields, keep each
comment where fmt keeps it, and change only the accepted values."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from helpers import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.model import LIVE_FIELDS, PRIORITIES, SEVERITIES
from reconciler.states.loader import load
from reconciler.usecases.accept import _accepted_texts
from reconciler.usecases.drift import DriftEntry

from .test_fmt import Owner, _check_placement, state_files

# Every comment kept: the generated files of fmt's properties


LIVE_VALUES: dict[str, list[Any]] = {
    "status": ["triggered", "acknowledged", "resolved"],
    "priority": [*PRIORITIES, None],
    "severity": [*SEVERITIES, None],
}


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state_files(), st.data())
def test_accepting_keeps_every_comment_in_place_and_changes_only_accepted_values(
    case: tuple[str, list[tuple[str, str, Owner]]], data: st.DataObject
) -> None:
    text, expected = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_bytes(text.encode())
        desired = load([path])
        managed = [
            (cid, name)
            for cid, fields in sorted(desired.incidents.items())
            for name in LIVE_FIELDS
            if name in fields
        ]
        taken = data.draw(
            st.lists(st.sampled_from(managed), unique=True) if managed else st.just([])
        )
        entries = [
            DriftEntry(
                cid,
                name,
                desired.incidents[cid][name],
                None,
                data.draw(st.sampled_from(LIVE_VALUES[name])),
                "outside",
            )
            for cid, name in taken
        ]
        if not entries:
            return
        out = _accepted_texts(desired, {str(path): entries})[str(path)]
        path.write_bytes(out.encode())
        after = load([path]).incidents
    wanted = {cid: dict(fields) for cid, fields in desired.incidents.items()}
    for e in entries:
        assert e.field is not None
        wanted[e.incident][e.field] = e.live
    assert after == wanted
    for comment, _, _ in expected:
        assert comment in out
    _check_placement(out, expected)
