"""`reconcile show` lists what the journal keeps after forgetting and unmanaging, and the
incidents whose last escalation is uncertain: otherwise those facts, which block a reopen or
an escalation, are invisible (found in review)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cli

from reconciler.journal.file import FileJournal
from reconciler.model import Operation

RESOLVE = Operation("POST", "/incidents/resolve", {"ids": ["r"]})
ESCALATE = Operation("POST", "/incidents/escalate", {"ids": ["e"]})


def test_show_lists_kept_facts_and_uncertain_escalations(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with FileJournal(path).open_for_apply(0, "test") as writer:
        writer.applied(RESOLVE, None)
        writer.applied(ESCALATE, None, writer.intent(ESCALATE, None))
        writer.forget(["r"], None)
        writer.intent(ESCALATE, None)  # in flight when the process died: uncertain
    text = cli("show", "--journal", str(path))
    assert text.code == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[2] == "e  escalations=1"
    assert lines[3:6] == [
        "",
        "Kept after forgetting or unmanaging (Spike cannot undo these):",
        "r  status=resolved",
    ]
    assert lines[7].startswith("Escalation outcome uncertain")
    assert lines[8].startswith("e  an escalate call was in flight (journal serial 5, ")
    shown = json.loads(cli("show", "--journal", str(path), "--format", "json").stdout)
    assert shown["kept"] == {"r": {"status": "resolved"}}
    assert list(shown["uncertain"]) == ["e"]
