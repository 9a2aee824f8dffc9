"""The edges of the command line against hostile or broken surroundings: secrets echoed back by
a server, a stdout that refuses writes, Ctrl-C and SIGTERM at any moment, file names written
to forge CI annotations, and plans too large for a pull-request comment. Each ends in a clean
message (or success), never a traceback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import RECONCILE, cli, plan

from reconciler import redact
from reconciler.github import COMMENT_LIMIT as GITHUB_COMMENT_LIMIT
from reconciler.journal import open_journal
from reconciler.journal.file import FileJournal
from reconciler.render import MARKDOWN_BUDGET, section_markdown
from reconciler.sandbox import SandboxServer

KEY = "sk-edges-Secret-4f1e9b77"
TEAM = "team-edges"
#: A state file name that, printed raw, would be a GitHub Actions error annotation.
FORGED = "a\n::error file=app.py,line=1::forged.yaml"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("RECONCILE_JOURNAL", "NO_COLOR", "SPIKE_API_URL", "SPIKE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def write_states(folder: Path, incidents: dict[str, Any], name: str = "s.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"incidents": incidents}))  # JSON is YAML
    return folder


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPIKE_", "RECONCILE_"))}
    return env | extra


# ---------------------------------------------------------------------------------------------
# Secrets echoed back


@pytest.fixture
def echoing_api() -> Iterator[str]:
    """An API that answers every call 400, quoting the request's headers back."""

    class Echo(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _echo(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = dict(self.headers.items())
            data = json.dumps({"message": f"bad request, headers: {headers}"}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _echo

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_api_key_echoed_in_an_error_body_is_masked_on_stdout_and_stderr(
    tmp_path: Path, echoing_api: str
) -> None:
    redact.register(KEY)  # as reading SPIKE_API_KEY does
    states = write_states(tmp_path / "states", {"a-1": {"priority": "p1"}})
    env = {"SPIKE_API_URL": echoing_api, "SPIKE_API_KEY": KEY, "SPIKE_TEAM_ID": TEAM}
    journal = str(tmp_path / "j.jsonl")

    applied = cli("apply", str(states), "--auto-approve", "--journal", journal, env=env)
    assert applied.code == 1
    assert "'x-api-key': '***'" in applied.stdout  # the failure's reason, as the API said it
    overlay_live = cli("plan", str(states), "--refresh", "--journal", journal, env=env)
    assert overlay_live.code == 1
    assert "'x-api-key': '***'" in overlay_live.stderr
    for shown in (applied.stdout, applied.stderr, overlay_live.stdout, overlay_live.stderr):
        assert KEY not in shown


def test_a_postgresql_password_is_registered_when_the_url_is_read() -> None:
    open_journal("postgresql://reconcile:pw-Zq81x%2Fk@127.0.0.1:1/test?namespace=edges")
    assert redact.redact("could not connect with pw-Zq81x/k") == "could not connect with ***"


# ---------------------------------------------------------------------------------------------
# A stdout that refuses writes


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_a_full_stdout_is_one_error_line(tmp_path: Path, fmt: str) -> None:
    states = write_states(tmp_path / "states", {"a-1": {"status": "acknowledged"}})
    args = [RECONCILE, "plan", str(states), "--journal", str(tmp_path / "j"), "--format", fmt]
    with open("/dev/full", "w") as full:
        done = subprocess.run(args, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == "error: cannot write output: No space left on device\n"


def test_a_closed_stdout_pipe_is_one_error_line(tmp_path: Path) -> None:
    states = write_states(tmp_path / "states", {f"a-{n}": {"priority": "p1"} for n in range(500)})
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: every write fails with EPIPE
    try:
        done = subprocess.run(
            [RECONCILE, "plan", str(states), "--journal", str(tmp_path / "j")],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert done.stderr == "error: cannot write output: Broken pipe\n"


def test_a_full_stderr_still_exits_1_quietly(tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [RECONCILE, "validate", str(tmp_path / "missing")],
            stdout=subprocess.PIPE,
            stderr=full,
            timeout=60,
        )
    assert (done.returncode, done.stdout) == (1, b"")


# ---------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM while a call is in flight


@pytest.fixture
def silent_api() -> Iterator[socket.socket]:
    """A port that accepts connections and never answers: the call stays in flight."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(60)
        yield listener


def start(args: list[str], listener: socket.socket) -> tuple[subprocess.Popen[str], socket.socket]:
    """Run `reconcile ARGS` against the silent API; return once its first request arrived."""
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    proc = subprocess.Popen(
        [str(RECONCILE), *args],
        env=child_env(SPIKE_API_URL=url, SPIKE_API_KEY=KEY, SPIKE_TEAM_ID=TEAM),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        conn, _ = listener.accept()
    except TimeoutError:
        proc.kill()
        proc.communicate()
        raise
    conn.settimeout(60)
    assert conn.recv(65536).startswith((b"GET /incidents/", b"POST /incidents/"))
    return proc, conn


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "Interrupted."), (signal.SIGTERM, 143, "Terminated.")],
)
def test_a_signal_during_plan_refresh_exits_130_or_143(
    tmp_path: Path, silent_api: socket.socket, signum: int, code: int, said: str
) -> None:
    states = write_states(tmp_path / "states", {"a-1": {"status": "resolved"}})
    out = tmp_path / "plan.json"
    args = ["plan", str(states), "--refresh", "--journal", str(tmp_path / "j"), "--out", str(out)]
    proc, conn = start(args, silent_api)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    conn.close()
    assert proc.returncode == code
    assert stderr.strip() == said
    assert stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "Interrupted."), (signal.SIGTERM, 143, "Terminated.")],
)
def test_a_signal_during_refresh_exits_130_or_143_and_records_nothing(
    tmp_path: Path, silent_api: socket.socket, signum: int, code: int, said: str
) -> None:
    states = write_states(tmp_path / "states", {"a-1": {"status": "resolved"}})
    journal = tmp_path / "j.jsonl"
    args = ["refresh", str(states), "--id", "a-1", "--journal", str(journal)]
    proc, conn = start(args, silent_api)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    conn.close()
    assert proc.returncode == code
    assert stderr.strip() == said
    assert stdout == ""
    assert [r["kind"] for r in FileJournal(journal).records()] in ([], ["lineage"])
    # The lock was released: the next refresh can take it.
    assert open_journal(str(journal)).read().incidents == {}


def test_a_second_ctrl_c_during_apply_ends_it_at_once_with_130(
    tmp_path: Path, silent_api: socket.socket
) -> None:
    states = write_states(tmp_path / "states", {"a-1": {"priority": "p1"}})
    journal = tmp_path / "j.jsonl"
    args = ["apply", str(states), "--auto-approve", "--journal", str(journal)]
    proc, conn = start(args, silent_api)
    proc.send_signal(signal.SIGINT)  # the first: no new calls, the one in flight may finish
    time.sleep(0.5)  # let the event loop take it (not an assertion: a slow loop only retries)
    proc.send_signal(signal.SIGINT)  # the second: the operator insists
    _, stderr = proc.communicate(timeout=60)
    conn.close()
    assert proc.returncode == 130
    assert stderr.strip() == "Interrupted."
    assert "op" not in [r["kind"] for r in FileJournal(journal).records()]


# ---------------------------------------------------------------------------------------------
# File names that would forge CI annotations


def no_forged_line(*texts: str) -> None:
    for text in texts:
        assert not any(line.startswith("::") for line in text.splitlines()), text


def test_a_file_name_with_a_newline_is_escaped_in_errors(tmp_path: Path) -> None:
    states = tmp_path / "states"
    states.mkdir()
    (states / FORGED).write_text("incidents:\n  a-1:\n    status: open\n")
    result = cli("validate", str(states))
    assert result.code == 1
    escaped = str(states / FORGED).replace("\n", "\\n")
    assert result.stderr.startswith(f"{escaped}:3:13: ")
    no_forged_line(result.stdout, result.stderr)


def test_a_file_name_with_a_newline_is_escaped_in_plan_fmt_and_import(tmp_path: Path) -> None:
    states = tmp_path / "states"
    write_states(states, {"a-1": {"status": "acknowledged"}}, FORGED)
    escaped = str(states / FORGED).replace("\n", "\\n")
    journal = str(tmp_path / "j.jsonl")

    planned = cli("plan", str(states), "--journal", journal)
    assert planned.code == 0
    assert f"  ~ incident a-1  ({escaped})\n" in planned.stdout
    formatted = cli("fmt", str(states), "--check", "--diff")
    assert formatted.code == 1
    assert formatted.stdout.startswith(f"{escaped}\n--- {escaped}\t(original)\n+++ {escaped}\t")
    no_forged_line(planned.stdout, planned.stderr, formatted.stdout, formatted.stderr)

    with SandboxServer({"b-2": {"status": "ACK"}}, api_key=KEY, team_id=TEAM) as server:
        env = {"SPIKE_API_URL": server.url, "SPIKE_API_KEY": KEY, "SPIKE_TEAM_ID": TEAM}
        target = states / f"new{FORGED}"
        args = ["import", "b-2", "--to", str(target), "--states", str(states)]
        imported = cli(*args, "--journal", journal, env=env)
    assert imported.code == 0, imported.stderr
    new_escaped = str(target).replace("\n", "\\n")
    assert imported.stdout.startswith(f"Imported 1 incident into {new_escaped}: b-2\n")
    no_forged_line(imported.stdout, imported.stderr)


# ---------------------------------------------------------------------------------------------
# Markdown plans within GitHub's comment limit, whatever they hold


def test_a_markdown_plan_with_every_part_at_its_largest_stays_under_the_limit() -> None:
    long_id = "x" * 50
    desired = {
        f"inc-{n:05d}-{long_id}": {
            "status": "resolved",
            "priority": "p1",
            "severity": "sev2",
            "public_sharing": True,
            "escalations": 3,
        }
        for n in range(2000)
    }
    journal = {f"old-{n:05d}-{long_id}": {"status": "triggered"} for n in range(1000)}
    unknown = [f"missing-{n:05d}-{long_id}" for n in range(1500)]
    made = plan(desired, journal, batch_size=1, targets=[*desired, *journal, *unknown])
    # 1,500 unknown targets, and the unsafe warning: forgetting 1,000 journaled incidents.
    assert len(made.warnings) == 1501
    assert made.warnings[-1].startswith("unsafe plan:")
    markdown = section_markdown(made)
    assert len(markdown) <= MARKDOWN_BUDGET < GITHUB_COMMENT_LIMIT
    assert markdown.startswith("### spike-reconcile plan\n\n**Plan: 10000 changes on 2000 of ")
    assert "> - ... and" not in markdown
    shown = markdown.count("> [!WARNING]\n> target missing-")
    assert 0 < shown < 1500
    assert f"> ... and {1501 - shown} more warnings (see the plan file)" in markdown
    assert "more rows not shown" in markdown and "more calls not shown" in markdown
    assert markdown.endswith("\n</details>\n")


def test_a_huge_warning_is_cut_and_a_newline_in_it_cannot_leave_the_quote() -> None:
    made = plan({}, {})
    made.warnings.extend(["x" * 200_000, "line one\n::error::two"])
    markdown = section_markdown(made)
    assert len(markdown) < 3_000
    assert f"> {'x' * 1000} ...\n" in markdown
    # As text: the backslash of \n escaped too, so it shows as written.
    assert "> line one\\\\n::error::two\n" in markdown
