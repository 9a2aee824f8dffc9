"""A plan file's name is shown escaped (a newline and `::error` in it would forge a CI
annotation), and a refused short signing key does not garble its own message (both found in
review)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cli, env, write_states

FORGED = "q\n::error::forged.json"


def test_a_plan_file_name_is_shown_escaped_when_saved_and_when_refused(tmp_path: Path) -> None:
    write_states(tmp_path / "states", {"a-1": {"status": "acknowledged"}})
    out = tmp_path / FORGED
    journal = str(tmp_path / "j.jsonl")
    saved = cli("plan", str(tmp_path / "states"), "--journal", journal, "--out", str(out))
    assert saved.code == 0, saved.stderr
    assert "\n::error" not in saved.stdout
    assert "q\\n::error::forged.json" in saved.stdout
    body = json.loads(out.read_text())
    body["unsafe"] = True  # an edit: the digest no longer matches
    out.write_text(json.dumps(body))
    refused = cli("apply", str(out), "--journal", journal)
    assert refused.code == 1
    assert "\n::error" not in refused.stderr
    assert refused.stderr.endswith(
        "q\\n::error::forged.json: plan_digest does not match the content: the file was "
        "edited or truncated\n"
    )


def test_a_short_plan_key_is_refused_with_a_readable_message(tmp_path: Path) -> None:
    write_states(tmp_path / "states", {"a-1": {"status": "acknowledged"}})
    with env(RECONCILE_PLAN_KEY="short"):
        result = cli(
            "plan",
            str(tmp_path / "states"),
            "--journal",
            str(tmp_path / "j.jsonl"),
            "--out",
            str(tmp_path / "plan.json"),
        )
    assert result.code == 1
    assert result.stderr == (
        "error: RECONCILE_PLAN_KEY is shorter than 16 characters; use a random key (e.g. "
        "`openssl rand -hex 32`); its value is not shown\n"
    )
