"""Secrets this process holds, and the one function that removes them from shown text.

The Spike API key, the GitHub token and a PostgreSQL password are registered where they are
read; every text the CLI shows (results, errors, warnings, in every format) passes through
`redact` on its way out, so a server that echoes a request header back cannot make us print a
credential.
"""

from __future__ import annotations

_SECRETS: set[str] = set()
#: Secrets shorter than this are not redacted: replacing every "a" or "dev" would garble
#: output without protecting anything worth protecting.
MIN_LENGTH = 4
MASK = "***"


def register(secret: str | None) -> None:
    """Remember a secret so that `redact` removes it from any text shown."""
    if secret and len(secret) >= MIN_LENGTH:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by ***."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def clip(text: str, limit: int, ellipsis: str = "") -> str:
    """`text` redacted, THEN cut to `limit` characters (plus `ellipsis` when cut).

    The order matters: cutting first could leave the head of a secret, which no longer
    matches it, to be shown (a server padding its echo so the cut falls inside the key).
    """
    text = redact(text)
    return text if len(text) <= limit else text[:limit] + ellipsis
