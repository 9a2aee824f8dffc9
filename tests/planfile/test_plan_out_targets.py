"""`plan --out` into something that is not a regular file writes into it, never replaces it
(renaming the new plan over `/dev/full` replaced the device with a file; found in review)."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

from helpers import cli, write_states


def test_plan_out_into_a_fifo_writes_through_it_and_leaves_it_a_fifo(tmp_path: Path) -> None:
    write_states(tmp_path / "states", {"a-1": {"status": "acknowledged"}})
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = cli(
        "plan", str(tmp_path / "states"), "--journal", str(tmp_path / "j.jsonl"), "--out", str(fifo)
    )
    reader.join(timeout=30)
    assert result.code == 0, result.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    plan = json.loads(received[0])
    assert [op["path"] for op in plan["operations"]] == ["/incidents/acknowledge"]
