"""Rules end to end over real loopback HTTP against the sandbox (docs/rules.md): more open
incidents than one page, the stale-incident clean-up with a title filter, the guards with no
call made, saved plans, and plans that do not evaluate rules."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import KEY, TEAM, HandClock, cli, command, env

from reconciler.journal import open_journal
from reconciler.sandbox import SandboxServer

STALE_DISK = """\
rules:
  close-stale-disk:
    match:
      status: [triggered, acknowledged]
      older_than: 14d
      title: "^disk usage"
    set:
      status: resolved
    max_matches: {max_matches}
"""


@pytest.fixture
def clock() -> HandClock:
    # Rules compare ages with the real clock: the sandbox's starts there.
    return HandClock(time.time())


def serve(seed: dict[str, dict[str, Any]], clock: HandClock) -> Any:
    server = SandboxServer(seed, api_key=KEY, team_id=TEAM, clock=clock)
    return server


@pytest.fixture
def storm(clock: HandClock) -> Iterator[SandboxServer]:
    seed: dict[str, dict[str, Any]] = {
        "stale-1": {"title": "disk usage 97% on db-1", "age": "20d"},
        "stale-2": {"title": "disk usage 91% on db-2", "age": "15d", "status": "ACK"},
        "stale-3": {"title": "disk usage 99% on db-3", "age": "30d", "priority": "p2"},
        "kept-1": {"title": "disk usage 95% on db-4", "age": "40d"},
        "fresh-1": {"title": "disk usage 98% on db-5", "age": "2h"},
        "other-1": {"title": "checkout latency", "age": "20d"},
        "gone-1": {"title": "disk usage 99% on db-6", "age": "30d", "status": "RES"},
    }
    with (
        serve(seed, clock) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        yield server


def states(tmp_path: Path, text: str, incidents: str = "") -> str:
    folder = tmp_path / "states"
    folder.mkdir(exist_ok=True)
    (folder / "rules.yaml").write_text(text)
    if incidents:
        (folder / "incidents.yaml").write_text(incidents)
    return str(folder)


def changing(server: SandboxServer) -> list[dict[str, Any]]:
    return [c for c in server.calls if c["method"] != "GET"]


def test_stale_incidents_are_resolved_and_nothing_else(
    tmp_path: Path, storm: SandboxServer
) -> None:
    folder = states(
        tmp_path,
        STALE_DISK.format(max_matches=10),
        # An explicit entry wins over the rule: kept-1 stays open, acknowledged.
        "incidents:\n  kept-1:\n    status: acknowledged\n",
    )
    journal = str(tmp_path / "j.jsonl")
    code, out, err = cli("plan", folder, "--refresh", "--journal", journal)
    assert code == 0, err
    assert "status:         triggered -> resolved  (rule close-stale-disk)" in out
    assert "  ~ incident stale-2" in out and "fresh-1" not in out and "other-1" not in out

    code, out, err = cli("apply", folder, "--auto-approve", "--journal", journal)
    assert code == 0, err
    live = storm.incidents()
    assert {cid: live[cid]["status"] for cid in live} == {
        "stale-1": "RES",
        "stale-2": "RES",
        "stale-3": "RES",
        "kept-1": "ACK",
        "fresh-1": "NACK",
        "other-1": "NACK",
        "gone-1": "RES",
    }
    assert live["stale-3"]["priority"] == "p2"  # the rule sets status only
    assert changing(storm) == [
        {
            "method": "POST",
            "path": "/incidents/acknowledge",
            "body": {"ids": ["kept-1"]},
            "status": 200,
        },
        {
            "method": "POST",
            "path": "/incidents/resolve",
            "body": {"ids": ["stale-1", "stale-2", "stale-3"]},
            "status": 200,
        },
    ]
    records = open_journal(journal).records()
    resolve = next(r for r in records if r.get("path") == "/incidents/resolve")
    assert resolve["rules"] == {
        cid: "close-stale-disk" for cid in ("stale-1", "stale-2", "stale-3")
    }
    assert "rules" not in next(r for r in records if r.get("path") == "/incidents/acknowledge")
    assert open_journal(journal).read().rules == {
        "stale-1": "close-stale-disk",
        "stale-2": "close-stale-disk",
        "stale-3": "close-stale-disk",
    }

    # A plan without --refresh notes the rule and forgets none of what it journaled.
    code, out, err = cli("plan", folder, "--journal", journal, "--detailed-exitcode")
    assert code == 0, (out, err)
    assert "warning: rule close-stale-disk (" in out and "was not evaluated" in out
    assert "forget" not in out

    # Applying again makes no call: the resolved incidents no longer match and are forgotten.
    storm.clear_calls()
    code, out, err = cli("apply", folder, "--auto-approve", "--journal", journal)
    assert code == 0, err
    assert changing(storm) == []
    assert "3 forgotten" in out
    assert open_journal(journal).read().rules == {}
    code, out, err = cli("apply", folder, "--auto-approve", "--journal", journal)
    assert (code, changing(storm)) == (0, [])
    assert "No changes" in out


def test_more_open_incidents_than_one_page(tmp_path: Path, clock: HandClock) -> None:
    seed: dict[str, dict[str, Any]] = {
        f"storm-{n:03}": {
            "title": "disk usage",
            "age": "20d",
            "status": "ACK" if n % 10 == 0 else "NACK",
        }
        for n in range(250)
    }
    with (
        serve(seed, clock) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        folder = states(tmp_path, STALE_DISK.format(max_matches=250))
        out_file = str(tmp_path / "plan.json")
        journal = str(tmp_path / "j.jsonl")
        code, _, err = cli("plan", folder, "--refresh", "--journal", journal, "--out", out_file)
        assert code == 0, err
        listed = sorted(c["path"] for c in server.calls if c["method"] == "GET")
        # Every page of both lists, once; besides them only the page past the acknowledged
        # list's end, asked for with its first (2 a list: half the default parallelism, 4).
        pages = [
            "/incidents/acknowledged?page=1&perPage=100",
            "/incidents/triggered?page=1&perPage=100",
            "/incidents/triggered?page=2&perPage=100",
            "/incidents/triggered?page=3&perPage=100",
        ]
        ahead = {"/incidents/acknowledged?page=2&perPage=100"}
        assert set(pages) <= set(listed) <= set(pages) | ahead
        assert len(listed) == len(set(listed))
        saved = json.loads(Path(out_file).read_text())
        assert len(saved["changes"]) == 250
        assert {c["rule"] for c in saved["changes"]} == {"close-stale-disk"}
        assert [len(op["body"]["ids"]) for op in saved["operations"]] == [100, 100, 50]

        # Changing 250 incidents read live counts in the unsafe rule like any change.
        assert saved["unsafe"] is True
        # The saved plan applies exactly its calls, through the real process.
        server.clear_calls()
        done = subprocess.run(
            command("apply", out_file, "--journal", journal, "--force"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        # The resolve calls run concurrently: the same calls, in any order.
        sent = sorted(json.dumps(c["body"]) for c in changing(server))
        assert sent == sorted(json.dumps(op["body"]) for op in saved["operations"])
        assert all(i["status"] == "RES" for i in server.incidents().values())
        assert len(open_journal(journal).read().rules) == 250


@pytest.mark.parametrize("guard", ["max_matches", "conflict"])
def test_the_guards_stop_before_any_call(tmp_path: Path, storm: SandboxServer, guard: str) -> None:
    if guard == "max_matches":
        folder = states(tmp_path, STALE_DISK.format(max_matches=3))
        message = "rule close-stale-disk matches 4 open incidents, more than its max_matches of 3"
    else:
        folder = states(
            tmp_path,
            STALE_DISK.format(max_matches=10)
            + "  disk-p5:\n    match: {status: [triggered], title: disk}\n"
            + "    set: {status: acknowledged}\n",
        )
        message = (
            "incident stale-1: rules close-stale-disk ("
            f"{folder}/rules.yaml) and disk-p5 ({folder}/rules.yaml) set status to resolved and "
            "acknowledged"
        )
    journal = tmp_path / "j.jsonl"
    for args in (("plan", "--refresh"), ("apply", "--auto-approve"), ("drift",)):
        code, out, err = cli(*args, folder, "--journal", str(journal))
        assert code == 1 and out == ""
        assert message in err, err
        assert "Traceback" not in err
    assert changing(storm) == []
    assert not journal.exists() or journal.read_text() == ""


def test_a_list_answer_not_understood_stops_before_any_call(tmp_path: Path) -> None:
    """A server whose list has no list of incidents: an error naming what was missing."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"results": []}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}"
        with env(SPIKE_API_URL=url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM):
            folder = states(tmp_path, STALE_DISK.format(max_matches=10))
            code, out, err = cli("plan", folder, "--refresh", "--journal", str(tmp_path / "j"))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 1 and out == ""
    assert "GET /incidents/" in err and "the response has no list of incidents" in err


def test_drift_reports_what_a_rule_asks_for_and_changes_nothing(
    tmp_path: Path, storm: SandboxServer
) -> None:
    folder = states(
        tmp_path,
        "rules:\n  disk-p5:\n    match: {status: [triggered, acknowledged], title: '^disk'}\n"
        "    set: {priority: p5}\n",
    )
    code, out, err = cli(
        "drift", folder, "--journal", str(tmp_path / "j.jsonl"), "--format", "json"
    )
    assert code == 0, err
    drifted = {
        (e["incident"], e["field"]): (e["desired"], e["live"]) for e in json.loads(out)["drift"]
    }
    # Listed without a priority (none set): read one by one, then compared.
    assert drifted == {
        ("stale-1", "priority"): ("p5", None),
        ("stale-2", "priority"): ("p5", None),
        ("stale-3", "priority"): ("p5", "p2"),
        ("kept-1", "priority"): ("p5", None),
        ("fresh-1", "priority"): ("p5", None),
    }
    reads = sorted(c["path"] for c in storm.calls if "?" not in c["path"])
    assert reads == sorted(
        f"/incidents/{cid}" for cid in ("stale-1", "stale-2", "kept-1", "fresh-1")
    )
    assert changing(storm) == []


def test_each_team_evaluates_its_own_rules_against_its_own_incidents(
    tmp_path: Path, clock: HandClock
) -> None:
    """With reconcile.yaml, a team's rules see that team's open incidents only (its
    x-team-id), and its journal names them; the same counter id in another team is left."""
    pay, plat = "team-pay", "team-plat"
    old = {"title": "disk usage 90%", "age": "20d"}
    teams = {pay: {"s-1": dict(old), "pay-1": dict(old)}, plat: {"s-1": dict(old)}}
    for name in ("payments", "platform"):
        folder = tmp_path / "teams" / name
        folder.mkdir(parents=True)
        if name == "payments":
            (folder / "rules.yaml").write_text(STALE_DISK.format(max_matches=10))
        else:
            (folder / "incidents.yaml").write_text("incidents: {}\n")
    config = tmp_path / "reconcile.yaml"
    config.write_text(
        f"version: 1\nteams:\n  payments:\n    team_id: {pay}\n  platform:\n    team_id: {plat}\n"
    )
    with (
        SandboxServer(teams=teams, api_key=KEY, clock=clock) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY),
    ):
        code, out, err = cli("plan", "--config", str(config), "--refresh", "--format", "json")
        assert code == 0, err
        plan = json.loads(out)
        changes = plan["teams"]["payments"]["changes"]
        assert [(c["incident"], c["rule"]) for c in changes] == [
            ("pay-1", "close-stale-disk"),
            ("s-1", "close-stale-disk"),
        ]
        assert plan["teams"]["platform"]["changes"] == []
        code, out, err = cli("apply", "--config", str(config), "--auto-approve")
        assert code == 0, err
        assert {c["status"] for c in server.incidents(pay).values()} == {"RES"}
        assert server.incidents(plat)["s-1"]["status"] == "NACK"
        lists = {c["team"] for c in server.calls if "?" in c["path"]}
        assert lists == {pay}
        journal = open_journal(str(tmp_path / ".reconcile" / "payments.jsonl")).read()
        assert journal.rules == {"pay-1": "close-stale-disk", "s-1": "close-stale-disk"}
