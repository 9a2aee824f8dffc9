"""Resolved in the journal, open in Spike (docs/drift.md): after the sandbox restarted, a
plan --refresh says once what the contradiction means and which command gets out of it, and
`reconcile refresh --id ID --reopened` is that way out, over real loopback HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import KEY, TEAM, cli, env

from reconciler.sandbox import SandboxServer

FILE = """\
incidents:
  pay-1: {status: resolved}
  pay-2: {status: resolved}
  pay-3: {priority: p3}
"""


def serve(seed: dict[str, dict[str, str]]) -> SandboxServer:
    return SandboxServer(seed, api_key=KEY, team_id=TEAM)


def test_a_reset_sandbox_is_named_once_and_reopened_adopts_its_status(tmp_path: Path) -> None:
    states, journal = tmp_path / "states", str(tmp_path / "j.jsonl")
    states.mkdir()
    (states / "a.yaml").write_text(FILE)
    with serve({"pay-1": {}, "pay-2": {}, "pay-3": {}}) as first, env(SPIKE_API_URL=first.url):
        with env(SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM):
            code, out, err = cli("apply", str(states), "--auto-approve", "--journal", journal)
        assert code == 0, out + err
    # A restarted sandbox: every incident open again.
    with (
        serve({"pay-1": {}, "pay-2": {"status": "ACK"}, "pay-3": {}}) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        message = (
            "error: 2 incidents this journal recorded as resolved are open in Spike (pay-1 "
            "triggered, pay-2 acknowledged), and resolved is terminal in Spike: this journal "
            "may belong to another team or account (check SPIKE_TEAM_ID, the team's team_id "
            "and api_key_env, SPIKE_API_URL and the journal), or Spike's data was reset (a "
            "restarted sandbox). Nothing was planned. If Spike is right, record its status "
            "deliberately with `reconcile refresh --id pay-1 --id pay-2 --reopened` (with "
            "this command's --journal or --team)\n"
        )
        for command in ("plan", "apply"):
            args = [str(states), "--refresh", "--journal", journal]
            code, out, err = cli(
                command, *args, *(["--auto-approve"] if command == "apply" else [])
            )
            assert (code, out, err) == (1, "", message), command
        # The message docs/drift.md shows is the real one.
        docs = Path(__file__).parents[2] / "docs" / "drift.md"
        assert message in docs.read_text()
        assert [c for c in server.calls if c["method"] != "GET"] == []

        # Not recorded as resolved, or resolved in Spike too: refused, nothing recorded.
        before = Path(journal).read_bytes()
        code, _, err = cli("refresh", "--id", "pay-3", "--reopened", "--journal", journal)
        assert code == 1 and "--reopened: pay-3: this journal does not record it as resolved" in err
        assert Path(journal).read_bytes() == before

        code, out, err = cli(
            "refresh",
            "--id",
            "pay-1",
            "--id",
            "pay-2",
            "--reopened",
            "--journal",
            journal,
            "--format",
            "json",
        )
        assert code == 0, err
        assert json.loads(out)["recorded"] == {
            "pay-1": {"status": "triggered"},
            "pay-2": {"status": "acknowledged"},
        }
        server.clear_calls()
        code, out, err = cli(
            "apply", str(states), "--refresh", "--auto-approve", "--journal", journal
        )
        assert code == 0, out + err
        assert [
            (c["method"], c["path"], c["body"]) for c in server.calls if c["method"] != "GET"
        ] == [
            ("POST", "/incidents/priority", {"priority": "p3", "ids": ["pay-3"]}),
            ("POST", "/incidents/resolve", {"ids": ["pay-1", "pay-2"]}),
        ]
        code, out, _ = cli("plan", str(states), "--refresh", "--journal", journal)
        assert (code, out) == (0, "No changes. 3 incidents match the journal.\n")
