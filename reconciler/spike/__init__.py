"""Spike: the API client (the only user of httpx for Spike) and the reading of live incidents."""

from __future__ import annotations

from .client import DEFAULT_URL, RetryPolicy, SpikeClient, SpikeConfig
from .live import parse_incident, read_incidents

__all__ = [
    "DEFAULT_URL",
    "RetryPolicy",
    "SpikeClient",
    "SpikeConfig",
    "parse_incident",
    "read_incidents",
]
