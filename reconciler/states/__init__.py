"""State files: loading and validating them (loader), their schema, and the comment-keeping
YAML document that `fmt` and `import` rewrite (document).
"""

from __future__ import annotations

from .loader import DEFAULT_PATHS, SUFFIXES, DesiredState, discover, load
from .schema import json_schema, schema_json

__all__ = [
    "DEFAULT_PATHS",
    "SUFFIXES",
    "DesiredState",
    "discover",
    "json_schema",
    "load",
    "schema_json",
]
