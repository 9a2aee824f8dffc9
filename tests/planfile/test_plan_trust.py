"""A saved plan is untrusted input: checked against itself, the journal and Spike, and signed.

Each forged plan here has its plan_digest recomputed after the edit (a digest only catches
accidents), and is applied over real HTTP against the sandbox: it must be refused before any
call that changes something, with the journal untouched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import KEY, TEAM, cli, env, write_states

from reconciler.planfile import KEY_ENV, digest, read_saved_plan, sign
from reconciler.sandbox import SandboxServer

PLAN_KEY = "plan-key-3f1e0c9a77b24d51"
APPLIED = {
    "116": {"status": "resolved"},
    "db-7": {"public_sharing": False, "escalations": 1},
    "prim-122": {"status": "triggered", "priority": "p3"},
}
NEXT = {**APPLIED, "prim-122": {"status": "acknowledged", "priority": "p3"}}


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[SandboxServer, Path, str]]:
    """The APPLIED states applied once; NEXT written; the sandbox with its calls cleared."""
    incidents = {cid: {"status": "NACK"} for cid in APPLIED}
    states = tmp_path / "states"
    journal = str(tmp_path / "j.jsonl")
    saved = os.environ.pop(KEY_ENV, None)
    with (
        SandboxServer(incidents, api_key=KEY, team_id=TEAM) as server,
        env(SPIKE_API_URL=server.url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
    ):
        write_states(states, APPLIED)
        code, out, err = cli("apply", str(states), "--auto-approve", "--journal", journal)
        assert code == 0, out + err
        write_states(states, NEXT)
        server.clear_calls()
        yield server, tmp_path, journal
    if saved is not None:
        os.environ[KEY_ENV] = saved


def make_plan(tmp_path: Path, journal: str, *args: str) -> Path:
    plan_file = tmp_path / "plan.json"
    code, _, err = cli(
        "plan", str(tmp_path / "states"), "--journal", journal, "--out", str(plan_file), *args
    )
    assert code == 0, err
    return plan_file


def forge(plan_file: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit a plan file as an attacker with write access to it would: digest recomputed."""
    body = json.loads(plan_file.read_text())
    edit(body)
    body.pop("signature", None)
    body["plan_digest"] = digest(body)
    plan_file.write_text(json.dumps(body))


def refused(server: SandboxServer, journal: str, plan_file: Path) -> str:
    """Apply the plan; assert it failed with nothing changed; return the message."""
    before = Path(journal).read_bytes()
    code, out, err = cli("apply", str(plan_file), "--journal", journal)
    assert code == 1, out + err
    assert out == ""
    assert [c for c in server.calls if c["method"] != "GET"] == []
    assert Path(journal).read_bytes() == before
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def op(method: str, path: str, **body: Any) -> dict[str, Any]:
    return {"method": method, "path": path, "body": body}


def change(cid: str, field: str, before: Any, after: Any, **extra: Any) -> dict[str, Any]:
    return {"incident": cid, "field": field, "before": before, "after": after, **extra}


# ---------------------------------------------------------------------------------------------
# Operations follow from the plan's changes, and changes from the journal


def test_the_untouched_plan_applies(repo: tuple[SandboxServer, Path, str]) -> None:
    server, tmp_path, journal = repo
    plan_file = make_plan(tmp_path, journal)
    body = json.loads(plan_file.read_text())
    assert body["batch_size"] == 100 and "signature" not in body
    code, _, err = cli("apply", str(plan_file), "--journal", journal)
    assert code == 0, err
    assert [(c["method"], c["path"], c["body"]) for c in server.calls] == [
        ("POST", "/incidents/acknowledge", {"ids": ["prim-122"]})
    ]


def test_reopening_a_resolved_incident_is_refused(repo: tuple[SandboxServer, Path, str]) -> None:
    server, tmp_path, journal = repo
    plan_file = make_plan(tmp_path, journal)

    def reopen(before: str) -> Callable[[dict[str, Any]], None]:
        def edit(body: dict[str, Any]) -> None:
            body["changes"].insert(0, change("116", "status", before, "triggered"))
            body["operations"].append(op("POST", "/incidents/unacknowledge", ids=["116"]))

        return edit

    for before in ("resolved", "acknowledged"):  # the truth, and a lie about it
        forge(plan_file, reopen(before))
        err = refused(server, journal, plan_file)
        assert err == (
            f"error: {plan_file}: the journal refuses the plan's changes: incident 116: status: "
            "resolved incidents are terminal in Spike; it cannot become triggered\n"
        )
        plan_file = make_plan(tmp_path, journal)


def test_escalations_no_change_asks_for_are_refused(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    server, tmp_path, journal = repo
    plan_file = make_plan(tmp_path, journal)
    forge(
        plan_file,
        lambda body: body["operations"].extend(
            [op("POST", "/incidents/escalate", ids=["db-7"])] * 3
        ),
    )
    err = refused(server, journal, plan_file)
    assert err == (
        f"error: {plan_file}: operations are not the calls its changes make: operations[1] is "
        "{'method': 'POST', 'path': '/incidents/escalate', 'body': {'ids': ['db-7']}}, the "
        "planner makes nothing; plan again\n"
    )


def test_a_before_that_is_not_the_journals_is_refused(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    """db-7 was escalated once: a plan claiming 0 cannot make it three more calls."""
    server, tmp_path, journal = repo
    plan_file = make_plan(tmp_path, journal)

    def edit(body: dict[str, Any]) -> None:
        body["changes"].insert(0, change("db-7", "escalations", 0, 3))
        body["operations"].extend([op("POST", "/incidents/escalate", ids=["db-7"])] * 3)

    forge(plan_file, edit)
    err = refused(server, journal, plan_file)
    assert "changes does not match the journal it names" in err
    assert "changes[0] is {'incident': 'db-7', 'field': 'escalations', 'before': 0" in err
    assert "the planner makes {'incident': 'db-7', 'field': 'escalations', 'before': 1" in err

    # The same for an unknown before where the journal knows the value.
    plan_file = make_plan(tmp_path, journal)

    def share(body: dict[str, Any]) -> None:
        body["changes"].insert(0, change("db-7", "public_sharing", None, True, before_known=False))
        body["operations"].append(op("PATCH", "/incidents/db-7/public-sharing", publicSharing=True))

    forge(plan_file, share)
    assert "changes does not match the journal" in refused(server, journal, plan_file)


def test_public_sharing_no_change_asks_for_is_refused(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    server, tmp_path, journal = repo
    plan_file = make_plan(tmp_path, journal)
    forge(
        plan_file,
        lambda body: body["operations"].append(
            op("PATCH", "/incidents/db-7/public-sharing", publicSharing=True)
        ),
    )
    err = refused(server, journal, plan_file)
    assert "operations are not the calls its changes make: operations[1]" in err
    assert server.incidents()["db-7"]["public_sharing"] is False


def test_operations_in_another_order_or_batching_are_refused(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    server, tmp_path, journal = repo
    write_states(
        tmp_path / "states",
        {**NEXT, "116": {"status": "resolved", "priority": "p1"}, "db-7": {"priority": "p1"}},
    )
    plan_file = make_plan(tmp_path, journal)
    body = json.loads(plan_file.read_text())
    assert [o["path"] for o in body["operations"]] == [
        "/incidents/acknowledge",
        "/incidents/priority",
    ]
    forge(plan_file, lambda b: b["operations"].reverse())
    assert "operations are not the calls" in refused(server, journal, plan_file)

    plan_file = make_plan(tmp_path, journal)

    def split(b: dict[str, Any]) -> None:
        b["operations"][1:2] = [
            op("POST", "/incidents/priority", priority="p1", ids=[cid]) for cid in ("116", "db-7")
        ]

    forge(plan_file, split)  # batch_size 100 says these are one call
    assert "operations are not the calls" in refused(server, journal, plan_file)


def test_a_plan_without_batch_size_is_batched_as_its_largest_call(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    """Plans written before the key: the largest batch found reproduces the operations."""
    server, tmp_path, journal = repo
    write_states(tmp_path / "states", {cid: {"priority": "p1"} for cid in APPLIED})
    plan_file = make_plan(tmp_path, journal, "--batch-size", "2")
    forge(plan_file, lambda body: body.pop("batch_size"))
    assert "batch_size" not in read_saved_plan(str(plan_file)).body
    code, _, err = cli("apply", str(plan_file), "--journal", journal)
    assert code == 0, err
    # The two calls are in flight together: their order is the scheduler's.
    assert sorted(c["body"]["ids"] for c in server.calls) == [["116", "db-7"], ["prim-122"]]


# ---------------------------------------------------------------------------------------------
# Journal-only changes name what the journal has


def test_forget_and_unmanaged_name_only_what_the_journal_has(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    server, tmp_path, journal = repo
    plan_file = make_plan(tmp_path, journal)
    forge(plan_file, lambda body: body["forget"].append("zz-9"))
    assert refused(server, journal, plan_file) == (
        f"error: {plan_file}: forget: incident zz-9 is not in the journal\n"
    )
    forge(plan_file, lambda body: body.update(forget=["prim-122"]))
    assert "forget: incident prim-122 also has changes" in refused(server, journal, plan_file)
    forge(
        plan_file,
        lambda body: body.update(forget=[], unmanaged=[{"incident": "116", "field": "severity"}]),
    )
    assert refused(server, journal, plan_file) == (
        f"error: {plan_file}: unmanaged: the journal has no severity for incident 116\n"
    )
    # What the journal has can be unmanaged and forgotten.
    forge(
        plan_file,
        lambda body: body.update(
            forget=["116"], unmanaged=[{"incident": "db-7", "field": "public_sharing"}]
        ),
    )
    code, _, err = cli("apply", str(plan_file), "--journal", journal)
    assert code == 0, err
    records = [json.loads(line) for line in Path(journal).read_text().splitlines()]
    assert [(r["kind"], r.get("ids"), r.get("fields")) for r in records[-5:]] == [
        ("apply-start", None, None),
        ("forget", ["116"], None),
        ("unmanage", None, [["db-7", "public_sharing"]]),
        ("op", None, None),
        ("apply-end", None, None),
    ]


# ---------------------------------------------------------------------------------------------
# Live values are facts: re-read before they are recorded


def test_live_values_are_read_again_before_they_are_recorded(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    server, tmp_path, journal = repo
    server.set_incidents({"prim-122": {"priority": "p5"}})  # changed in the dashboard
    plan_file = make_plan(tmp_path, journal, "--refresh")
    body = json.loads(plan_file.read_text())
    assert body["refresh"] == {"prim-122": {"priority": "p5"}}
    server.set_incidents({"prim-122": {"priority": "p4"}})  # and again, after the plan
    server.clear_calls()
    err = refused(server, journal, plan_file)
    assert err == (
        f"error: {plan_file} is stale: live values changed since the plan was made (incident "
        "prim-122 priority: the plan has 'p5', Spike now reports 'p4'). Plan again with "
        "--refresh.\n"
    )
    assert [(c["method"], c["path"]) for c in server.calls] == [("GET", "/incidents/prim-122")]

    server.set_incidents({"prim-122": {"priority": "p5"}})  # as the plan saw it: applies
    server.clear_calls()
    code, _, err = cli("apply", str(plan_file), "--journal", journal)
    assert code == 0, err
    assert [(c["method"], c["path"]) for c in server.calls] == [
        ("GET", "/incidents/prim-122"),
        ("POST", "/incidents/acknowledge"),
        ("POST", "/incidents/priority"),
    ]


def test_a_made_up_live_value_is_refused(repo: tuple[SandboxServer, Path, str]) -> None:
    server, tmp_path, journal = repo
    plan_file = make_plan(tmp_path, journal)
    forge(plan_file, lambda body: body["refresh"].update({"zz-9": {"status": "resolved"}}))
    assert refused(server, journal, plan_file) == (
        f"error: {plan_file} is stale: its live values cannot be read again: incident zz-9: "
        "not found in Spike (deleted, or another team)\n"
    )
    assert [(c["method"], c["path"]) for c in server.calls] == [("GET", "/incidents/zz-9")]
    # A journaled incident: Spike is asked, and says otherwise.
    forge(plan_file, lambda body: body.update(refresh={"116": {"status": "triggered"}}))
    assert "is stale: live values changed" in refused(server, journal, plan_file)


def test_live_values_of_an_incident_that_already_matches_its_file_are_recorded(
    repo: tuple[SandboxServer, Path, str],
) -> None:
    """`plan --refresh` of a new incident already as its file says: no change, one record."""
    server, tmp_path, journal = repo
    server.set_incidents({"new-1": {"status": "ACK"}})
    write_states(tmp_path / "states", {**APPLIED, "new-1": {"status": "acknowledged"}})
    plan_file = make_plan(tmp_path, journal, "--refresh")
    body = json.loads(plan_file.read_text())
    assert (body["changes"], body["refresh"]) == ([], {"new-1": {"status": "acknowledged"}})
    server.clear_calls()
    code, _, err = cli("apply", str(plan_file), "--journal", journal)
    assert code == 0, err
    assert [(c["method"], c["path"]) for c in server.calls] == [("GET", "/incidents/new-1")]
    code, out, _ = cli("show", "--journal", journal, "--format", "json")
    assert json.loads(out)["incidents"]["new-1"] == {"status": "acknowledged"}


# ---------------------------------------------------------------------------------------------
# Signatures


def test_a_signed_plan_applies_only_with_its_key(
    repo: tuple[SandboxServer, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, tmp_path, journal = repo
    monkeypatch.setenv(KEY_ENV, PLAN_KEY)
    plan_file = make_plan(tmp_path, journal)
    body = json.loads(plan_file.read_text())
    assert list(body)[-2:] == ["plan_digest", "signature"]
    assert body["signature"] == sign(body["plan_digest"], PLAN_KEY)
    assert body["signature"].startswith("hmac-sha256:") and len(body["signature"]) == 76
    assert PLAN_KEY not in plan_file.read_text()
    signed = plan_file.read_text()

    forge(plan_file, lambda body: None)  # re-digested, signature dropped
    assert refused(server, journal, plan_file) == (
        f"error: {plan_file} is not signed, and {KEY_ENV} is set: only plans signed with that "
        f"key are applied (make it with `reconcile plan --out` where {KEY_ENV} is set)\n"
    )
    plan_file.write_text(signed)
    monkeypatch.setenv(KEY_ENV, "another-key-of-enough-length")
    assert refused(server, journal, plan_file) == (
        f"error: {plan_file}: the signature does not match {KEY_ENV}: the plan was not made "
        "by a job holding this key, or was changed after it was signed\n"
    )
    monkeypatch.setenv(KEY_ENV, PLAN_KEY)
    code, out, err = cli("apply", str(plan_file), "--journal", journal)
    assert code == 0, err
    assert PLAN_KEY not in out + err
    assert [c["path"] for c in server.calls] == ["/incidents/acknowledge"]


def test_a_signed_plan_without_the_key_applies_with_a_warning(
    repo: tuple[SandboxServer, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, tmp_path, journal = repo
    monkeypatch.setenv(KEY_ENV, PLAN_KEY)
    plan_file = make_plan(tmp_path, journal)
    monkeypatch.delenv(KEY_ENV)
    code, _, err = cli("apply", str(plan_file), "--journal", journal)
    assert code == 0, err
    assert err == (
        f"warning: {plan_file} is signed, but {KEY_ENV} is not set: its signature was not checked\n"
    )
    assert [c["path"] for c in server.calls] == ["/incidents/acknowledge"]


def test_plan_json_on_stdout_is_signed_like_the_file(
    repo: tuple[SandboxServer, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, tmp_path, journal = repo
    monkeypatch.setenv(KEY_ENV, PLAN_KEY)
    out_file = tmp_path / "p.json"
    code, out, _ = cli(
        "plan", str(tmp_path / "states"), "--journal", journal, "--format", "json",
        "--out", str(out_file),
    )  # fmt: skip
    assert code == 0
    assert out == out_file.read_text() and '"signature": "hmac-sha256:' in out


def test_a_short_key_is_refused_without_showing_it(
    repo: tuple[SandboxServer, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, tmp_path, journal = repo
    monkeypatch.setenv(KEY_ENV, "short-k3y")
    code, out, err = cli(
        "plan", str(tmp_path / "states"), "--journal", journal, "--out", str(tmp_path / "p.json")
    )
    assert code == 1
    assert "short-k3y" not in out + err
    assert err == (
        f"error: {KEY_ENV} is shorter than 16 characters; use a random key (e.g. `openssl "
        "rand -hex 32`); its value is not shown\n"
    )
    assert not (tmp_path / "p.json").exists()


# ---------------------------------------------------------------------------------------------
# Reading and writing plan files


def test_a_deeply_nested_plan_file_is_refused_cleanly(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text('{"format_version": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, _, err = cli("apply", str(plan_file), "--journal", str(tmp_path / "j.jsonl"))
    assert code == 1
    assert err == (f"error: {plan_file}: not a plan file (invalid JSON: nested too deeply)\n")
    assert not (tmp_path / "j.jsonl").exists()


def test_plan_out_into_a_missing_or_unwritable_folder_is_a_clean_error(tmp_path: Path) -> None:
    write_states(tmp_path / "states", {"a-1": {"status": "acknowledged"}})
    journal = str(tmp_path / "j.jsonl")
    out = tmp_path / "missing" / "plan.json"
    code, stdout, err = cli(
        "plan", str(tmp_path / "states"), "--journal", journal, "--out", str(out)
    )
    assert code == 1 and stdout == ""
    assert err == f"error: {out}: cannot write: No such file or directory\n"
    if os.geteuid() == 0:
        return  # root writes anywhere
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = cli(
        "plan", str(tmp_path / "states"), "--journal", journal, "--out", str(locked / "p.json")
    )
    assert code == 1
    assert err == f"error: {locked / 'p.json'}: cannot write: Permission denied\n"
