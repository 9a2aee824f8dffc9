"""JSON from outside the process (journal lines, plan files, API responses), read safely.

A hostile 100,000-deep `[[[...]]]` makes `json.loads` raise RecursionError from inside the
decoder (the C decoder counts its own depth, so it cannot crash the process). `loads` turns
that into a ValueError like any other text that is not JSON, so every reader reports it as
the bad input it is, with no traceback, and pays nothing on the happy path: a pre-scan of
the text took 5 s of a 70 MB plan file.
"""

from __future__ import annotations

import json
from typing import Any


class JsonTooDeepError(ValueError):
    """The text nests deeper than the decoder can follow."""

    def __init__(self) -> None:
        super().__init__("nested too deeply")


def loads(data: bytes | str) -> Any:
    """json.loads, with nesting too deep to decode reported as JsonTooDeepError (a ValueError).

    Raises ValueError for text that is not JSON, as json.loads does.
    """
    try:
        return json.loads(data)
    except RecursionError:
        raise JsonTooDeepError from None
