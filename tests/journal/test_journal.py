"""The file journal (docs/journal.md): durable appends, lineage and serial, replay, damage, lock.

Lock tests use real processes: a holder started with the venv's python, killed with SIGKILL
where the test needs a crashed holder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import JournalError, LockHeldError
from reconciler.journal.file import FileJournal
from reconciler.model import Operation

ACK = Operation("POST", "/incidents/acknowledge", {"ids": ["116", "pay-1"]})
P1 = Operation("POST", "/incidents/priority", {"priority": "p1", "ids": ["pay-1"]})
NO_SEV = Operation("DELETE", "/incidents/severity/remove", {"ids": ["pay-1"]})
SHARE = Operation("PATCH", "/incidents/pay-1/public-sharing", {"publicSharing": True})
ESCALATE = Operation("POST", "/incidents/escalate", {"ids": ["pay-1"]})
RESOLVE = Operation("POST", "/incidents/resolve", {"ids": ["116"]})


def lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def fill(path: Path) -> None:
    """A journal of one apply: lineage, start, six calls, end."""
    with FileJournal(path).open_for_apply(0, "test") as writer:
        writer.start("sha256:plan", 6)
        for op in (ACK, P1, NO_SEV, SHARE, ESCALATE, ESCALATE):
            writer.applied(op, "sha256:plan")
        writer.end("sha256:plan", "ok", applied=6)


def test_a_missing_journal_reads_as_empty(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path / "nothing" / "journal.jsonl")
    state = journal.read()
    assert (state.lineage, state.serial, state.incidents, state.warnings) == (None, 0, {}, [])
    assert journal.records() == []
    assert not (tmp_path / "nothing").exists()


def test_each_record_is_on_disk_when_the_call_returns(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "journal.jsonl"
    with FileJournal(path).open_for_apply(0, "test") as writer:
        writer.applied(ACK, "sha256:p")
        # Another reader (as after a crash) already sees the call, before the apply ends.
        seen = FileJournal(path).read()
        assert seen.serial == 1
        assert seen.incidents == {
            "116": {"status": "acknowledged"},
            "pay-1": {"status": "acknowledged"},
        }
        writer.applied(P1, "sha256:p")
        assert FileJournal(path).read().incidents["pay-1"] == {
            "status": "acknowledged",
            "priority": "p1",
        }
        assert writer.state.serial == 2
    records = lines(path)
    assert [r["kind"] for r in records] == ["lineage", "op", "op"]
    assert records[0]["format"] == 1 and isinstance(records[0]["lineage"], str)
    assert {k: records[1][k] for k in ("serial", "plan", "method", "path", "body")} == {
        "serial": 1,
        "plan": "sha256:p",
        "method": "POST",
        "path": "/incidents/acknowledge",
        "body": {"ids": ["116", "pay-1"]},
    }
    assert all(r["at"].endswith("Z") for r in records)


def test_replay_derives_the_last_applied_state(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    fill(path)
    state = FileJournal(path).read()
    assert state.serial == 6
    assert state.incidents == {
        "116": {"status": "acknowledged"},
        "pay-1": {
            "status": "acknowledged",
            "priority": "p1",
            "severity": None,
            "public_sharing": True,
            "escalations": 2,
        },
    }
    kinds = [r["kind"] for r in FileJournal(path).records()]
    assert kinds == ["lineage", "apply-start", *["op"] * 6, "apply-end"]


def test_serial_grows_with_state_records_only_and_lineage_stays(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    fill(path)
    lineage = FileJournal(path).read().lineage
    with FileJournal(path).open_for_apply(0, "test") as writer:
        writer.start(None, 1)
        writer.applied(RESOLVE, None)
        writer.forget(["gone"], None)
        writer.unmanage([("pay-1", "priority"), ("pay-1", "escalations")], None)
        writer.set_values({"pay-1": {"status": "triggered"}, "7": {"severity": "sev2"}}, "refresh")
        # Nothing to record: nothing written, the serial does not move.
        writer.forget([], None)
        writer.unmanage([], None)
        writer.set_values({}, "refresh")
        writer.end(None, "ok")
    records = lines(path)
    assert [r["kind"] for r in records].count("lineage") == 1
    assert [(r["kind"], r.get("serial")) for r in records[9:]] == [
        ("apply-start", None),
        ("op", 7),
        ("forget", 8),
        ("unmanage", 9),
        ("set", 10),
        ("apply-end", None),
    ]
    state = FileJournal(path).read()
    assert (state.lineage, state.serial) == (lineage, 10)
    assert state.incidents == {
        "116": {"status": "resolved"},
        # priority is no longer managed; the escalation count is kept
        "pay-1": {
            "status": "triggered",
            "severity": None,
            "public_sharing": True,
            "escalations": 2,
        },
        "7": {"severity": "sev2"},
    }


def test_forget_drops_the_incident_and_its_escalations(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    fill(path)
    with FileJournal(path).open_for_apply(0, "test") as writer:
        writer.forget(["pay-1"], "sha256:p")
    assert FileJournal(path).read().incidents == {"116": {"status": "acknowledged"}}


# ---------------------------------------------------------------------------------------------
# damage


def test_a_torn_last_line_is_ignored_then_cut_before_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    fill(path)
    good = path.read_bytes()
    with path.open("ab") as handle:
        handle.write(b'{"kind":"op","serial":7,"method":"POST","path":"/incidents/res')
    state = FileJournal(path).read()
    assert state.warnings == [
        f"{path}:10: ignoring a torn last line (an interrupted write); "
        "the next apply re-issues that call"
    ]
    assert state.serial == 6
    assert [r["kind"] for r in FileJournal(path).records()][-1] == "apply-end"

    with FileJournal(path).open_for_apply(0, "test") as writer:
        assert writer.state.warnings == state.warnings
        writer.applied(RESOLVE, None)
    data = path.read_bytes()
    assert data.startswith(good)
    assert json.loads(data[len(good) :])["serial"] == 7
    after = FileJournal(path).read()
    assert (after.serial, after.warnings) == (7, [])
    assert after.incidents["116"] == {"status": "resolved"}


def test_a_torn_first_line_leaves_an_empty_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"kind":"line')
    state = FileJournal(path).read()
    assert (state.lineage, state.serial, len(state.warnings)) == (None, 0, 1)
    with FileJournal(path).open_for_apply(0, "test") as writer:
        writer.applied(ACK, None)
    assert [r["kind"] for r in lines(path)] == ["lineage", "op"]


def _rewrite(path: Path, number: int, text: str) -> None:
    raw = path.read_text().splitlines(keepends=True)
    raw[number - 1] = text + "\n"
    path.write_text("".join(raw))


@pytest.mark.parametrize(
    ("line", "text", "message"),
    [
        (3, "garbage", ":3: corrupt journal line (not JSON)"),
        (3, "", ":3: corrupt journal line (not JSON)"),
        (4, "[1, 2]", ":4: not a journal record"),
        (
            1,
            '{"kind":"lineage","lineage":"x","format":2,"at":"t"}',
            ":1: unsupported journal format 2",
        ),
        (2, '{"kind":"lineage","lineage":"x","format":1,"at":"t"}', ":2: a second lineage record"),
        (5, '{"kind":"mystery","serial":3,"at":"t"}', ":5: unknown record kind 'mystery'"),
        (5, '{"kind":"forget","serial":3,"ids":"116","at":"t"}', ":5: malformed forget record"),
        (
            5,
            '{"kind":"op","serial":3,"method":"DELETE","path":"/incidents/116","body":{},"at":"t"}',
            ":5: op: DELETE /incidents/116 is not a call this tool makes",
        ),
    ],
)
def test_any_other_damage_is_an_error_naming_the_line(
    tmp_path: Path, line: int, text: str, message: str
) -> None:
    path = tmp_path / "journal.jsonl"
    fill(path)
    _rewrite(path, line, text)
    before = path.read_bytes()
    for action in (
        lambda: FileJournal(path).read(),
        lambda: FileJournal(path).records(),
        lambda: FileJournal(path).open_for_apply(0, "test").__enter__(),
    ):
        with pytest.raises(JournalError) as caught:
            action()
        assert str(caught.value).startswith(f"{path}{message}")
    assert path.read_bytes() == before  # never reset, never repaired silently


def test_a_journal_without_a_lineage_record_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    fill(path)
    raw = path.read_text().splitlines(keepends=True)
    path.write_text("".join(raw[1:]))
    with pytest.raises(JournalError, match=r":1: the journal does not start with a lineage record"):
        FileJournal(path).read()


@pytest.mark.parametrize(("serial", "after"), [(8, 5), (5, 5), (None, 5)])
def test_serial_gaps_are_errors(tmp_path: Path, serial: int | None, after: int) -> None:
    path = tmp_path / "journal.jsonl"
    fill(path)
    record = json.loads(path.read_text().splitlines()[7])
    record["serial"] = serial
    _rewrite(path, 8, json.dumps(record))
    with pytest.raises(JournalError) as caught:
        FileJournal(path).read()
    assert str(caught.value) == f"{path}:8: serial {serial!r} does not follow {after}"


def test_a_location_that_cannot_be_created_is_an_error_before_any_call(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    journal = FileJournal(tmp_path / "file" / "journal.jsonl")
    with pytest.raises(JournalError, match="cannot create the journal's folder"):
        journal.open_for_apply(0, "test").__enter__()


def test_a_location_that_cannot_be_written_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "journal.jsonl").mkdir()
    journal = FileJournal(tmp_path / "journal.jsonl")
    with pytest.raises(JournalError, match=r"cannot (read|write) the journal"):
        journal.open_for_apply(0, "test").__enter__()


# ---------------------------------------------------------------------------------------------
# the lock

HOLDER = """
import sys, time
from reconciler.journal.file import FileJournal
with FileJournal(sys.argv[1]).open_for_apply(0, "holder under test") as writer:
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", flush=True)
"""

TRY_LOCK = """
import sys
from reconciler.journal.file import FileJournal
from reconciler.errors import LockHeldError
try:
    with FileJournal(sys.argv[1]).open_for_apply(0, "second"):
        print("got the lock")
except LockHeldError as exc:
    print(exc)
"""


@contextmanager
def holder(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "locked\n", proc.stderr.read() if proc.stderr else ""
        yield proc
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_a_second_apply_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with holder(path, 60) as proc:
        started = time.monotonic()
        with pytest.raises(LockHeldError) as caught:
            FileJournal(path).open_for_apply(0, "test").__enter__()
        assert time.monotonic() - started < 1
        message = str(caught.value)
        assert message.startswith(f"{path} is locked by another apply: pid {proc.pid} on ")
        assert "(holder under test)" in message
        assert message.endswith("; use --lock-timeout to wait")

        started = time.monotonic()
        with pytest.raises(LockHeldError, match=rf"pid {proc.pid} .*\(waited 0\.3s\)$"):
            FileJournal(path).open_for_apply(0.3, "test").__enter__()
        assert time.monotonic() - started >= 0.3


def test_a_second_apply_waits_for_the_lock_up_to_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with holder(path, 0.5) as proc:
        started = time.monotonic()
        with FileJournal(path).open_for_apply(20, "test") as writer:
            waited = time.monotonic() - started
            writer.applied(ACK, None)
        assert proc.stdout is not None and proc.stdout.readline() == "released\n"
    assert 0.2 < waited < 15
    assert FileJournal(path).read().serial == 1


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with holder(path, 60) as proc:
        proc.kill()  # SIGKILL: no cleanup runs in the holder
        proc.wait()
    started = time.monotonic()
    with FileJournal(path).open_for_apply(0, "after the crash") as writer:
        assert time.monotonic() - started < 1
        writer.applied(ACK, None)
        # A third process sees this holder, not the dead one.
        other = subprocess.run(
            [sys.executable, "-c", TRY_LOCK, str(path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert f"pid {os.getpid()} " in other.stdout
        assert "(after the crash)" in other.stdout
    assert FileJournal(path).read().serial == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"kind":"set","serial":1,"at":"t","incidents":{"chk-201":"zz"}}', "malformed set"),
        (
            '{"kind":"set","serial":1,"at":"t","incidents":{"a":{"status":"bogus"}}}',
            "malformed set",
        ),
        ('{"kind":"set","serial":1,"at":"t","incidents":{"../x":{}}}', "malformed set"),
        ('{"kind":"unmanage","serial":1,"at":"t","fields":[[{"a":1},"x"]]}', "malformed unmanage"),
        ('{"kind":"unmanage","serial":1,"at":"t","fields":[["a","colour"]]}', "malformed unmanage"),
        ('{"kind":"forget","serial":1,"at":"t","ids":["a b"]}', "malformed forget"),
        ('{"kind":"apply-start","plan":null,"operations":1}', "without its time"),
    ],
)
def test_records_with_bad_contents_are_errors_naming_the_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(
        '{"kind":"lineage","lineage":"L","format":1,"at":"t"}\n' + line + "\n", encoding="utf-8"
    )
    with pytest.raises(JournalError, match=f"journal.jsonl:2: .*{message}"):
        FileJournal(path).read()
