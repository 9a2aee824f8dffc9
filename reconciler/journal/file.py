"""The file backend: `.reconcile/journal.jsonl`, JSON Lines appended and fsynced one record at a
time, locked with `flock` on the journal file itself (a lock file beside its resolved path
where there is no `flock`), docs/journal.md, Locking.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import JournalError, printable
from ..jsontext import JsonTooDeepError, loads
from .base import UNFINISHED_MIGRATION, Journal, JournalWriter, LockInfo, refuse_unfinished
from .records import Recorded, encode_record, parse_record, replay


@dataclass
class _Held:
    """What an apply holds of a file journal: where the holder is written, and where the good
    part of the file ends (a torn tail after it is cut before the first append)."""

    holder_path: Path
    good: int = 0
    unterminated: bool = False


#: How often a waiting apply tries the journal file's own lock again.
_LOCK_POLL = 0.05
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _lock_file_itself(path: Path, deadline: float) -> int | None:
    """An exclusive `flock` on the journal file itself: its descriptor (closing it releases
    the lock), or None when another process holds it past `deadline` (time.monotonic()).

    A lock on the file's inode sees the journal however it is reached: through a symlink, a
    hard link or a bind mount (a lock file beside the path did not: two applies through two
    such paths ran at once, escalated twice and wrote two records with one serial). -1 on
    systems without `flock` (Windows), which lock a file beside the resolved path instead.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on the systems CI runs
        return -1
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(_LOCK_POLL)
        # A migration renames its copy over the journal: a lock taken on the file it
        # replaced while this waited locks nothing any more, so lock the new one.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except OSError:
            pass
        os.close(fd)


class FileJournal(Journal):
    """`.reconcile/journal.jsonl`: JSON Lines, appended and fsynced one record at a time."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.location = str(self.path)

    @property
    def lock_path(self) -> Path:
        # At the resolved path: an apply through a symlink and one through the real path
        # must take the same lock.
        real = self.path.resolve()
        return real.with_name(real.name + ".lock")

    @property
    def holder_path(self) -> Path:
        real = self.path.resolve()
        return real.with_name(real.name + ".lock.holder")

    def _lines(
        self, unfinished: bool = False
    ) -> tuple[list[tuple[str, Any]], int, list[str], bool]:
        """((where, record) pairs, the byte length of the good part, warnings, and whether
        the last record lacks its newline). An unfinished migration is refused, unless
        `unfinished` (a migration replacing it)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], 0, [], False
        except OSError as exc:
            raise JournalError(
                f"{self.location}: cannot read the journal: {exc.strerror}"
            ) from None
        warnings: list[str] = []
        good = len(data)
        lines = data.split(b"\n")
        unterminated = False
        if lines[-1]:
            # A last line without its newline: a complete record whose newline was never
            # written (kept: the next append adds the newline first), or a line torn by an
            # interrupted write (ignored, and cut before the next append).
            try:
                whole = isinstance(loads(lines[-1]), dict)
            except JsonTooDeepError:
                whole = True  # not torn: refused below, naming the line
            except ValueError:
                whole = False
            if whole:
                unterminated = True
                lines.append(b"")
            else:
                good = len(data) - len(lines[-1])
                warnings.append(
                    f"{self.location}:{len(lines)}: ignoring a torn last line "
                    "(an interrupted write); the next apply re-issues that call"
                )
        records: list[tuple[str, Any]] = []
        for number, raw in enumerate(lines[:-1], start=1):
            where = f"{self.location}:{number}"
            records.append((where, parse_record(where, raw, "journal line")))
        if not unfinished:
            refuse_unfinished(self.location, records)
        return records, good, warnings, unterminated

    def _replayed(self) -> tuple[Recorded, int, bool]:
        records, good, warnings, unterminated = self._lines()
        state = replay(records)
        state.warnings[:0] = warnings
        return state, good, unterminated

    def _read(self) -> Recorded:
        return self._replayed()[0]

    def records(self) -> list[dict[str, Any]]:
        records, _, _, _ = self._lines()
        replay(records)  # refuse to show a corrupt history as if it were fine
        return [record for _, record in records]

    @contextmanager
    def _locked(self, timeout: float) -> Iterator[_Held]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            holder_path = self.holder_path
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise JournalError(
                f"{self.location}: cannot create the journal's folder: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None
        try:
            fd = _lock_file_itself(self.path, time.monotonic() + timeout)
        except OSError as exc:  # opened for writing: a folder, no permission
            raise JournalError(
                f"{self.location}: cannot write the journal: {exc.strerror}"
            ) from None
        if fd is None:
            raise self._lock_held(timeout, self._holder(holder_path))
        if fd >= 0:
            try:
                yield _Held(holder_path)
            finally:
                os.close(fd)  # closing the descriptor releases the lock
            return
        # No flock (Windows): a lock file beside the journal's resolved path.
        from filelock import FileLock, Timeout

        lock = FileLock(self.lock_path, timeout=timeout)
        try:
            lock.acquire()
        except Timeout:
            raise self._lock_held(timeout, self._holder(holder_path)) from None
        except OSError as exc:
            raise JournalError(
                f"{self.location}: cannot lock the journal: {exc.strerror}"
            ) from None
        try:
            yield _Held(holder_path)
        finally:
            lock.release()

    def _write_holder(self, held: _Held, info: LockInfo) -> None:
        # The holder file only improves the message a waiting apply prints. It is replaced,
        # never written through: the journal's folder may be committed, and a symlink planted
        # there would otherwise have apply overwrite whatever it points at.
        path = held.holder_path
        with suppress(OSError):
            path.unlink(missing_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(info.__dict__))

    def _replay_locked(self, held: _Held) -> Recorded:
        state, held.good, held.unterminated = self._replayed()
        return state

    def _open_writer(self, held: _Held, state: Recorded) -> JournalWriter:
        try:
            # Unbuffered: a failed write leaves nothing pending that a later flush (at
            # close) could append after the cut.
            handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 - the writer closes it
            if handle.tell() != held.good:
                handle.truncate(held.good)  # drop a torn tail before appending after it
                handle.seek(held.good)
        except OSError as exc:
            raise JournalError(
                f"{self.location}: cannot write the journal: {exc.strerror}"
            ) from None
        return _FileWriter(state, handle, self.location, held.good, held.unterminated)

    def _clear_holder(self, held: _Held) -> None:
        held.holder_path.unlink(missing_ok=True)

    def _copy_in(
        self, held: _Held, records: Sequence[dict[str, Any]], marker: dict[str, Any]
    ) -> None:
        found = self._lines(unfinished=True)[0]
        if found and found[0][1].get("kind") != UNFINISHED_MIGRATION:
            raise self._not_empty()
        real = self.path.resolve()  # through a symlink: replace the file, not the link
        # The marker first, in place (the file is locked), then the whole copy, written
        # beside it and renamed over it: the file holds the marker or the copy, never a part.
        try:
            _write_durably(real, encode_record(marker) + "\n")
        except OSError as exc:
            raise JournalError(
                f"{self.location}: cannot migrate into the journal: {exc.strerror}; "
                "nothing was copied"
            ) from None
        fd, temporary = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
        os.close(fd)
        try:
            _write_durably(Path(temporary), "".join(encode_record(r) + "\n" for r in records))
            os.replace(temporary, real)
        except OSError as exc:
            with suppress(OSError):
                os.unlink(temporary)
            raise JournalError(
                f"{self.location}: cannot migrate into the journal: {exc.strerror}; nothing "
                "was copied: the file holds the marker of an unfinished migration, which "
                "every command refuses; run the migration again (it replaces it)"
            ) from None
        with suppress(OSError):  # the rename is done; this only makes it durable sooner
            folder = os.open(real.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)

    def _holder(self, path: Path) -> str:
        try:
            fd = os.open(path, os.O_RDONLY | _NO_FOLLOW)
            with os.fdopen(fd, "rb") as handle:
                info = LockInfo(**loads(handle.read(4096)))
            return printable(str(info))
        except (OSError, ValueError, TypeError):
            return "holder unknown"


def _write_durably(path: Path, text: str) -> None:
    """Replace `path`'s content with `text`, fsynced."""
    with open(path, "r+b" if path.exists() else "wb") as handle:
        handle.truncate(0)
        handle.write(text.encode())
        handle.flush()
        os.fsync(handle.fileno())


class _FileWriter(JournalWriter):
    def __init__(
        self, state: Recorded, handle: Any, location: str, size: int, unterminated: bool
    ) -> None:
        super().__init__(state)
        self._handle = handle
        self._location = location
        #: The length of what is durable: a failed write or sync is cut back to it.
        self._size = size
        #: The length written, synced or not (more than _size inside a group).
        self._written = size
        #: The last record has no newline yet: the next append writes it first.
        self._unterminated = unterminated
        self._broken: JournalError | None = None

    def close(self) -> None:
        self._handle.close()

    def _store(self, record: dict[str, Any]) -> None:
        if self._broken is not None:
            raise self._broken
        data = ("\n" if self._unterminated else "") + encode_record(record) + "\n"
        raw = data.encode()
        try:
            written = 0
            while written < len(raw):
                written += self._handle.write(raw[written:])
        except OSError as exc:
            self._fail(exc)
        self._written += len(raw)
        self._unterminated = False
        if not self._grouped:
            self._sync()

    def _sync(self) -> None:
        if self._broken is not None:
            raise self._broken
        try:
            os.fsync(self._handle.fileno())
        except OSError as exc:
            self._fail(exc)
        self._size = self._written

    def _fail(self, exc: OSError) -> None:
        # Disk full, quota, I/O error: cut back what reached the file since the last sync,
        # so the records stored before stay readable, and refuse every later append.
        with suppress(OSError):
            os.ftruncate(self._handle.fileno(), self._size)
        self._broken = JournalError(
            f"{self._location}: cannot write the journal: {exc.strerror}; the calls "
            "journaled before this one are kept, this one and any later are not"
        )
        raise self._broken from None
