"""The file journal's lock sees the journal however it is reached, and never writes through a
planted symlink (docs/journal.md, Locking; both found by a hostile review)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.errors import LockHeldError
from reconciler.journal.file import FileJournal


def test_a_hard_link_to_a_held_journal_is_locked_too(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = tmp_path / "a" / "journal.jsonl"
    first.touch()
    os.link(first, tmp_path / "b" / "journal.jsonl")
    with FileJournal(first).open_for_apply(0, "reconcile apply (first)") as writer:
        with (
            pytest.raises(LockHeldError) as info,
            FileJournal(tmp_path / "b" / "journal.jsonl").open_for_apply(0, "second"),
        ):
            pass  # pragma: no cover - the lock is refused
        writer.forget(["1"], None)
    # The holder file sits beside the path the first apply used; this path cannot name it.
    assert str(info.value).endswith(
        "journal.jsonl is locked by another apply: holder unknown; use --lock-timeout to wait"
    )
    # Released with the first apply: the second path can lock it now, and reads one journal.
    with FileJournal(tmp_path / "b" / "journal.jsonl").open_for_apply(0, "third") as writer:
        assert writer.state.serial == 1


def test_waiting_for_a_hard_linked_journal_times_out_with_the_lock_timeout(
    tmp_path: Path,
) -> None:
    first = tmp_path / "journal.jsonl"
    first.touch()
    os.link(first, tmp_path / "other.jsonl")
    with (
        FileJournal(first).open_for_apply(0, "first"),
        pytest.raises(LockHeldError, match=r"\(waited 0.2s\)"),
        FileJournal(tmp_path / "other.jsonl").open_for_apply(0.2, "second"),
    ):
        pass  # pragma: no cover - the lock is refused


def test_a_planted_holder_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    folder = tmp_path / ".reconcile"
    folder.mkdir()
    holder = folder / "journal.jsonl.lock.holder"
    holder.symlink_to(victim)
    journal = FileJournal(folder / "journal.jsonl")
    with journal.open_for_apply(0, "reconcile apply states"):
        assert not holder.is_symlink()
        assert '"purpose": "reconcile apply states"' in holder.read_text()
    assert victim.read_text() == "precious\n"
    assert not holder.exists()
