"""What every view shares: colors, markdown escaping, values and calls as text, the
budget of a GitHub comment, and the outputs of several teams, each under its name."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import printable
from ..limits import COMMENT_LIMIT
from ..model import Change, Operation, Value

if TYPE_CHECKING:
    pass


#: GitHub refuses comments longer than this; markdown plans stay below it with room to spare.
MARKDOWN_BUDGET = COMMENT_LIMIT - 2_000


#: A longer warning (only a plan file can hold one) is cut in markdown.
WARNING_CHARS = 1_000


Styler = Callable[[str, str], str]


#: ANSI foreground codes of the colors the views use (click is the CLI's alone).
_ANSI = {"red": 31, "green": 32, "yellow": 33, "magenta": 35, "cyan": 36}


def styler(color: bool) -> Styler:
    """A function painting text in a named color, or leaving it alone."""
    if not color:
        return lambda text, _color: text
    return lambda text, fg: f"\x1b[{_ANSI[fg]}m{text}\x1b[0m"  # as click.style(text, fg=fg)


#: The ASCII punctuation that can open markup inside a line: emphasis, code, links, images,
#: HTML and entities, table cells, strikethrough, math, escapes. (A backslash before any ASCII
#: punctuation shows it as itself, CommonMark says; `- . : ' , / = ? ; % "` open nothing
#: within a line and are left as they are, so commands and paths stay readable.)
_MARKUP = re.compile(r"""([!#$&()*+<>@\[\\\]^_`{|}~])""")


#: What can open a block at the start of a line (a list, a heading, a quote, a rule, a
#: setext underline): the first character, or the `.` / `)` after leading digits (an
#: ordered list). Leading spaces (an indented block) get a zero-width space before them.
_BLOCK_START = re.compile(r"""^(?:\d+(?=[.)])|(?=[!-/:-@\[-`{-~]))""")


#: What GitHub links after rendering, in text itself (a backslash escape does not stop it):
#: @mentions, #references, URLs and www. links; a zero-width space after each breaks them.
_GITHUB_LINKS = re.compile(r"@|#|:(?=//)|(?i:www)(?=\.)")


def markdown_text(text: str) -> str:
    """`text` (a file or folder name, a warning naming one, a rule name, an incident title,
    anything Spike or a plan file says) for markdown outside code spans and HTML: shown as
    the same characters, never as markup. No @mention, link, image, HTML tag, table cell
    break, heading, list, code span or fence can be formed from it; control characters are
    escaped as `printable` does, so it stays on one line. The one escaping function of the
    markdown views."""
    shown = _GITHUB_LINKS.sub(lambda m: m.group() + "\u200b", printable(text))
    shown = _MARKUP.sub(r"\\\1", shown)
    if shown.startswith(" "):  # indented: a list or a code block; not after a character
        return "\u200b" + shown
    start = _BLOCK_START.match(shown)
    if start is not None and not shown.startswith("\\", start.end()):
        at = start.end()
        shown = shown[:at] + "\\" + shown[at:]
    return shown


def show_value(value: Value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def show_before(change: Change) -> str:
    return show_value(change.before) if change.before_known else "(unknown)"


def describe_operation(op: Operation) -> str:
    """One line: the method, the path and the body, ids listed in full."""
    body = ", ".join(
        f"{k}=[{', '.join(v)}]" if isinstance(v, list) else f"{k}={show_value(v)}"
        for k, v in op.body.items()
    )
    return f"{op.method} {op.path}  {body}"


def fill(out: str, lines: Sequence[str], budget: int) -> tuple[str, int]:
    """Append whole lines while they fit in `budget` characters."""
    parts = [out]
    size = len(out)
    for shown, line in enumerate(lines):
        if size + len(line) + 1 > budget:
            return "".join(parts), shown
        parts.append(line + "\n")
        size += len(line) + 1
    return "".join(parts), len(lines)


def by_team_text(parts: Mapping[str | None, str]) -> str:
    """Each team's text (show, log, refresh, accept) under `Team NAME:`, indented; the
    implicit team's (named None) as it is."""
    if None in parts:
        return parts[None]
    lines: list[str] = []
    for name, text in parts.items():
        lines.append(f"Team {name}:")
        lines.extend(f"  {line}" if line else "" for line in text.rstrip("\n").split("\n"))
        lines.append("")
    return "\n".join(lines[:-1]) + "\n" if lines else ""


def by_team_json(parts: Mapping[str | None, str]) -> str:
    """Each team's JSON document (show, log, refresh, accept) as {"teams": {NAME:
    document}}; the implicit team's (named None) as it is."""
    if None in parts:
        return parts[None]
    teams = {name: json.loads(text) for name, text in parts.items()}
    return json.dumps({"teams": teams}, indent=2, ensure_ascii=False) + "\n"
