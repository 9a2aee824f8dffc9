"""The sandbox: a local Spike-compatible API (docs/api-calls.md) for tests, benchmarks and
trying `apply` without an account. core.py answers requests, with the endpoint table and
the answers' shapes of wire.py and the incidents (and seeds) of incidents.py; server.py
serves them on a loopback port.
"""

from __future__ import annotations

from .incidents import seed_from_json, seed_from_paths
from .server import SandboxServer

__all__ = ["SandboxServer", "seed_from_json", "seed_from_paths"]
