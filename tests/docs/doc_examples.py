"""Docs as tests: the examples of README.md and docs/*.md, parsed, run and compared.

The convention (docs/contributing.md, "Examples are tests") in short:

- a ```console block is run: each `$ COMMAND` line (with its `\\` continuation lines and its
  heredoc lines) is a command, and the lines up to the next `$ ` are what it must print
  (stdout and stderr together, as a terminal shows them). A command with no lines below it
  must succeed and its output is not compared. It must exit 0 unless its line ends with a
  comment `# exit N`. A line `...` in a sample matches any number of lines;
- the blocks of one document run in order in one bash, in a fresh folder holding copies of
  the repository's `states/`, `schema/` and `examples/`, so `export`, `cd` and background
  jobs (`reconcile sandbox ... &`) carry over to the next block; the background jobs are
  ended with the document. A port 8700-8799 in a command is a free port the collector picks
  (the same one for the same number until a background command names that number again),
  and the output reads it back;
- a block right after `<!-- file: PATH -->` is data written to PATH (relative to the
  shell's current folder) when the run reaches it;
- a ```sh / ```bash / ```shell / ```zsh / ```fish block is not run and must come right after
  `<!-- not run: REASON -->` (the network, a real shell's rc file, GitHub...); a `$ ` line in
  any block other than console is refused, so that no output sample escapes comparison.

Normalised on both sides before comparing (`NORMALISATIONS`): timestamps, UUIDs (lineages,
plan ids), sha256 digests, durations, the temporary folder's path; trailing spaces and
trailing blank lines.

A small collector of our own rather than sybil or pytest-markdown-docs: what it needs is a
shell session per document (sequential state, background servers, ports), which neither
provides, and one test per document keeps a document's examples on one pytest-xdist worker.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: What the fresh folder of a document holds: copies of these repository folders.
SHIPPED = ("states", "schema", "examples")
SHELLS = {"sh", "bash", "shell", "zsh", "fish"}
COMMAND_TIMEOUT = 60.0
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not run|file):\s*(?P<value>.*?)\s*-->\s*$")
_EXIT = re.compile(r"\s#\s*exit (\d+)\b[^'\"]*$")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_]\w*)\1")
_PORT = re.compile(r"\b87\d\d\b")

#: (pattern, replacement), applied in order to the sample and to what the command printed.
NORMALISATIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"sha256:[0-9a-f]+…?"), "sha256:<digest>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s)\b"), "<duration>"),
)


@dataclass(frozen=True)
class Block:
    """One fenced block: where it opens (1-based line), its language, its lines, its marker."""

    path: Path
    line: int
    lang: str
    body: tuple[str, ...]
    not_run: str | None = None
    file: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    expected: tuple[str, ...]
    exit_code: int


def parse_blocks(path: Path, text: str) -> list[Block]:
    lines = text.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        j = i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""
        ):
            j += 1
        body = tuple(_dedent(line, indent) for line in lines[i + 1 : j])
        marker = _marker_before(lines, i)
        blocks.append(
            Block(
                path,
                i + 1,
                opening["lang"],
                body,
                not_run=marker[1] if marker and marker[0] == "not run" else None,
                file=marker[1] if marker and marker[0] == "file" else None,
            )
        )
        i = j + 1
    return blocks


def _dedent(line: str, indent: str) -> str:
    return line[len(indent) :] if line.startswith(indent) else line.lstrip()


def _marker_before(lines: list[str], i: int) -> tuple[str, str] | None:
    k = i - 1
    while k >= 0 and not lines[k].strip():
        k -= 1
    found = _MARKER.match(lines[k]) if k >= 0 else None
    return (found["kind"], found["value"]) if found else None


def problems(blocks: list[Block]) -> list[str]:
    """Blocks that break the convention: a shell block neither run nor marked, a `$ ` line
    outside a console block, a console block marked as data, an empty reason."""
    found = []
    for block in blocks:
        if block.not_run is not None and not block.not_run:
            found.append(f"{block.where}: `<!-- not run: -->` needs a reason")
        if block.lang == "console":
            if block.file is not None:
                found.append(f"{block.where}: a console block is run, not written to a file")
            elif block.not_run is None:
                found.extend(_console_problems(block))
        elif block.lang in SHELLS and block.not_run is None:
            found.append(
                f"{block.where}: a ```{block.lang} block is not run: make it a ```console "
                "block, or put `<!-- not run: REASON -->` before it"
            )
        elif block.not_run is None and any(line.startswith("$ ") for line in block.body):
            found.append(
                f"{block.where}: a `$ ` command in a ```{block.lang or '(no language)'} block: "
                "make it a ```console block (run and compared), or mark it not run"
            )
    return found


def _console_problems(block: Block) -> list[str]:
    first = next((line for line in block.body if line.strip()), None)
    if first is not None and not first.startswith("$ "):
        return [f"{block.where}: a console block starts with a command (`$ ...`)"]
    return []


def commands(block: Block) -> list[Command]:
    """The commands of a console block, each with the output sample below it."""
    found: list[Command] = []
    lines = block.body
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        start = i
        text = [lines[i][2:]]
        while text[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            text.append(lines[i])
        for _, word in _HEREDOC.findall("\n".join(text)):
            while i + 1 < len(lines) and lines[i] != word:
                i += 1
                text.append(lines[i])
        i += 1
        expected: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        exit_code = _EXIT.search(text[-1])
        found.append(
            Command(
                block.line + 1 + start,
                "\n".join(text),
                tuple(expected),
                int(exit_code[1]) if exit_code else 0,
            )
        )
    return found


def normalise(text: str) -> list[str]:
    for pattern, replacement in NORMALISATIONS:
        text = pattern.sub(replacement, text)
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    """`expected` equals `actual`, a line `...` matching any number of lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line == "..." else re.escape(line) + r"\n" for line in expected
    )
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)


@dataclass
class Shell:
    """One bash for one document, in `work`, its control files in `control`."""

    work: Path
    control: Path
    process: subprocess.Popen[bytes] = field(init=False)
    count: int = 0

    def __post_init__(self) -> None:
        bin_dir = str(Path(sys.executable).parent)
        environment = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.work),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "NO_COLOR": "1",
            "COLUMNS": "100",
            "PYTHONUNBUFFERED": "1",  # stdout and stderr interleave as on a terminal
            "TMPDIR": str(self.control),
        }
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=self.work,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its background jobs share its process group
        )

    def run(self, text: str) -> tuple[str, int, Path]:
        """Run `text`; its output, exit code, and the shell's folder afterwards."""
        self.count += 1
        n, ctl = self.count, self.control
        script = (
            f"{{ {text}\n}} >'{ctl}/{n}.out' 2>&1 </dev/null; echo $? >'{ctl}/{n}.rc'; "
            f"pwd >'{ctl}/{n}.pwd'; echo done-{n}\n"
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(script.encode())
        self.process.stdin.flush()
        deadline = time.monotonic() + COMMAND_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.process.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 1)
                if not chunk:
                    raise AssertionError(f"bash ended while running: {text}")
                line += chunk
            elif time.monotonic() > deadline:
                raise AssertionError(f"timed out after {COMMAND_TIMEOUT:.0f} s: {text}")
        assert line.decode().strip() == f"done-{n}", line
        out = (ctl / f"{n}.out").read_text(encoding="utf-8", errors="replace")
        rc = int((ctl / f"{n}.rc").read_text())
        return out, rc, Path((ctl / f"{n}.pwd").read_text().strip())

    def close(self) -> None:
        """End the shell and every background job it started (its own process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def fresh_folder(root: Path) -> tuple[Path, Path]:
    work, control = root / "work", root / "control"
    work.mkdir()
    control.mkdir()
    for name in SHIPPED:
        shutil.copytree(REPO / name, work / name)
    return work, control


def run_document(path: Path, root: Path, shown_as: str | None = None) -> Iterator[str]:
    """Run the examples of the markdown file `path` in a fresh folder under `root`; yield
    one message per example that is not true (where, what was expected, what was printed)."""
    shown = Path(shown_as or str(path))
    blocks = parse_blocks(shown, path.read_text(encoding="utf-8"))
    yield from problems(blocks)
    work, control = fresh_folder(root)
    ports: dict[str, str] = {}
    shell: Shell | None = None
    cwd = work
    try:
        for block in blocks:
            if block.not_run is not None:
                continue
            if block.file is not None:
                target = cwd / block.file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("".join(line + "\n" for line in block.body), encoding="utf-8")
                continue
            if block.lang != "console":
                continue
            for command in commands(block):
                shell = shell or Shell(work, control)
                if command.text.rstrip().endswith("&"):
                    # A server started again on a port gets a new one: the one before may
                    # still be closing.
                    for number in _PORT.findall(command.text):
                        ports[number] = str(free_port())
                text = _PORT.sub(lambda m: ports.setdefault(m[0], str(free_port())), command.text)
                out, rc, cwd = shell.run(text)
                where = f"{shown}:{command.line}"
                if text.rstrip().endswith("&"):
                    deadline = time.monotonic() + 10
                    for port in _ports_in(text, ports):
                        _wait_for_port(port, deadline)
                    continue
                for number, served in ports.items():
                    out = re.sub(rf"\b{served}\b", number, out)
                out = out.replace(str(work), "<tmp>").replace(str(control), "<tmp>")
                if rc != command.exit_code:
                    yield (
                        f"{where}: `{command.text}` exited {rc}, expected {command.exit_code}"
                        f"{' (end its line with `# exit N`)' if command.exit_code == 0 else ''}"
                        f"; it printed:\n{out}"
                    )
                    continue
                if not command.expected:
                    continue
                expected, actual = normalise("\n".join(command.expected)), normalise(out)
                if not matches(expected, actual):
                    yield _mismatch(where, command.text, expected, actual)
    finally:
        if shell is not None:
            shell.close()


def _ports_in(text: str, ports: dict[str, str]) -> list[int]:
    return sorted({int(p) for p in ports.values() if re.search(rf"\b{p}\b", text)})


def _mismatch(where: str, text: str, expected: list[str], actual: list[str]) -> str:
    diff = difflib.unified_diff(expected, actual, "shown in the doc", "printed", lineterm="")
    return f"{where}: `{text}` printed something else:\n" + "\n".join(diff)


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
