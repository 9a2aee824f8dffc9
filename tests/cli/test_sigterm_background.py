"""SIGTERM ends a command even when SIGINT is ignored, as it is for a script's background job
(`reconcile sandbox &` without job control): the SIGTERM handler cannot borrow Ctrl-C's path
then (found in review: the sandbox, `plan --refresh` and `refresh` kept running)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from helpers import RECONCILE


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_stops_the_sandbox_when_sigint_is_ignored() -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPIKE_", "RECONCILE_"))}
    proc = subprocess.Popen(
        [str(RECONCILE), "sandbox", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until it listens
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143
    assert stderr.endswith("Terminated.\n")
    assert "Traceback" not in stderr
