"""JSON from outside the process (journal lines, plan files, API responses), read safely.

`json.loads` recurses once per level of nesting: a hostile 100,000-deep `[[[...]]]` ends in a
RecursionError (or worse) inside the parser. `loads` measures the nesting first, with a loop
that does not recurse, and refuses anything deeper than any document this tool reads.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Deeper than any plan file, journal record or Spike response this tool reads.
MAX_DEPTH = 64

# Strings (with their escapes) are skipped whole; what remains are the brackets that nest.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class JsonTooDeepError(ValueError):
    """The text nests deeper than MAX_DEPTH."""


def depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text (0 for a scalar)."""
    level = deepest = 0
    for match in _TOKENS.finditer(data):
        char = match.group()
        if char in (b"[", b"{"):
            level += 1
            deepest = max(deepest, level)
        elif char in (b"]", b"}"):
            level -= 1
    return deepest


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, refusing (JsonTooDeepError, a ValueError) text nested deeper than max_depth.

    Raises ValueError for text that is not JSON, as json.loads does.
    """
    raw = data.encode() if isinstance(data, str) else data
    # Quick path: text with fewer brackets than the limit cannot nest deeper than it.
    if raw.count(b"[") + raw.count(b"{") > max_depth and depth(raw) > max_depth:
        raise JsonTooDeepError(f"nested deeper than {max_depth} levels")
    return json.loads(raw)
