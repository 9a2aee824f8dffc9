"""SIGTERM ends a command even when SIGINT is ignored, as it is for a script's background job
(`reconcile sandbox &` without job control): the SIGTERM handler cannot borrow Ctrl-C's path
then (found in review: the sandbox, `plan --refresh` and `refresh` kept running)."""

from __future__ import annotations

import os
import signal
import subprocess

from helpers import RECONCILE


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_sigterm_stops_the_sandbox_when_sigint_is_ignored() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPIKE_", "RECONCILE_"))}
    proc = subprocess.Popen(
        # Port 0: a port of its own, never one another test (or worker) may take meanwhile.
        [str(RECONCILE), "sandbox", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # printed once it listens
        assert first.startswith("Spike sandbox on http://127.0.0.1:"), first
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143
    assert stderr.endswith("Terminated.\n")
    assert "Traceback" not in stderr
