"""The command line's output boundary: stdout and stderr as streams that mask every
registered secret and turn a refused write into one clean error."""

from __future__ import annotations

import codecs
import contextlib
import io
import os
from typing import Any, TextIO


class ShownStream(io.TextIOBase):
    """stdout or stderr as the CLI's output boundary: every text on its way out has each
    registered secret masked (reconciler.redact), whatever printed it, and a write the stream
    refuses becomes one clean error instead of a traceback.

    Text is passed on a line at a time, so that a secret split across two writes is still
    seen whole; `flush` (which click.echo calls after every message) passes on the rest.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending = ""
        self.failed = False
        self._bytes = ShownBytes(self)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._stream, "errors", None)

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def buffer(self) -> ShownBytes:
        """Where bytes go (click.echo writes bytes to a stream's `buffer`, as shell
        completion does): they are shown as text, through this stream, so masked too."""
        return self._bytes

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click probes streams with b"": this one takes text
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        pending = self._pending + text
        cut = pending.rfind("\n") + 1
        self._pending = pending[cut:]
        if cut:
            self._send(pending[:cut])
        return len(text)

    def flush(self) -> None:
        if self._pending:
            text, self._pending = self._pending, ""
            self._send(text)
        if not self.failed:
            try:
                self._stream.flush()
            except OSError as exc:
                raise self._failure(exc) from None

    def _send(self, text: str) -> None:
        from ..redact import redact

        if self.failed:  # already reported; the rest has nowhere to go
            return
        try:
            self._stream.write(redact(text))
        except OSError as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: OSError) -> Exception:
        from ..errors import ReconcileError

        self.failed = True
        # The interpreter flushes the standard streams once more at exit; pointed at
        # /dev/null, what the stream still buffers goes nowhere instead of into a second error.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            fd = self._stream.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        return ReconcileError(f"cannot write output: {exc.strerror or exc}")


class ShownBytes:
    """The `buffer` of a ShownStream: bytes decoded with the stream's encoding (a character
    split across two writes is kept whole) and passed on as text. Not an io class: those
    flush (so may fail) whenever the garbage collector closes them."""

    def __init__(self, shown: ShownStream) -> None:
        self._shown = shown
        self._decoder = codecs.getincrementaldecoder(shown.encoding)(errors="replace")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._shown.write(self._decoder.decode(chunk))
        return len(chunk)

    def flush(self) -> None:
        self._shown.flush()
