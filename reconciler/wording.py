"""How text counts and orders things: counted nouns ("1 file", "2 files") and ids sorted as
a person reads them (b-2 before b-10). Text only: JSON keeps its documented code-point order."""

from __future__ import annotations

import re
from collections.abc import Iterable

_DIGITS = re.compile(r"(\d+)")


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and `noun`, the noun in the plural unless the count is 1: `counted(1, "API
    call")` is "1 API call"; `plural` for nouns that do not just take an s ("1 escalation
    uncertain" needs no help, "1 match" / "2 matches" does)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key ordering runs of digits by their value: b-0, b-1, b-2, b-10, b-100."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(text) if part
    )


def natural_sorted(items: Iterable[str]) -> list[str]:
    """`items` in the order a person expects (natural_key); ties of value (b-01, b-1) keep a
    fixed order by the text itself."""
    return sorted(items, key=lambda item: (natural_key(item), item))
