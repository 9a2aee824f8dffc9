"""`reload`: state files read before a lock are read again under it, parsed again only when
their bytes or their list changed (apply parsed 100k incidents twice)."""

from __future__ import annotations

from pathlib import Path

from helpers import write_states

from reconciler.states.loader import load, reload


def test_unchanged_files_are_not_parsed_again(tmp_path: Path) -> None:
    write_states(tmp_path / "states", {"a-1": {"status": "acknowledged"}})
    before = load([tmp_path / "states"])
    assert reload(before, [tmp_path / "states"]) is before


def test_a_changed_or_added_file_is_read_again(tmp_path: Path) -> None:
    states = tmp_path / "states"
    write_states(states, {"a-1": {"status": "acknowledged"}})
    before = load([states])
    write_states(states, {"a-1": {"status": "resolved"}})
    again = reload(before, [states])
    assert again is not before and again.incidents == {"a-1": {"status": "resolved"}}
    (states / "more.yaml").write_text("incidents:\n  b-2: {priority: p1}\n")
    added = reload(again, [states])
    assert added.incidents == {"a-1": {"status": "resolved"}, "b-2": {"priority": "p1"}}
