"""Signals: SIGTERM takes Ctrl-C's path (the same clean-up), and the exit codes 130 and
143 they end with."""

from __future__ import annotations

import _thread
import signal
import threading

import click

#: Set by SIGTERM, which is then handled as Ctrl-C (exit 143 instead of 130).
sigterm_received = threading.Event()


def terminate(signum: int, frame: object) -> None:
    """SIGTERM takes Ctrl-C's path, so the same clean-up runs (locks released, half-written
    files removed). Raising here instead would land in whatever asyncio task was running
    (a call in flight) and leave it failed and unreported; as a SIGINT, asyncio's runner
    cancels its main task cleanly first."""
    sigterm_received.set()
    if callable(signal.getsignal(signal.SIGINT)):
        _thread.interrupt_main(signal.SIGINT)
    else:
        # SIGINT is ignored (a script's background job inherits that): interrupt_main would
        # do nothing, and SIGTERM must still end the command.
        raise KeyboardInterrupt


def interrupted(exc: KeyboardInterrupt) -> int:
    terminated = sigterm_received.is_set()
    click.echo("Terminated." if terminated else "Interrupted.", err=True)
    return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
